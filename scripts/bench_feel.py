"""Feel benchmark: the agent's answers on the player's own grid, straight, swung and in 6/8.

The command only: the work is in agent/bench/feel.py.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.bench.feel import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
