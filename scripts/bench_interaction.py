"""Interaction benchmark: does the agent answer in the player's time, on the player's beat?

    python scripts/bench_interaction.py [--quick] [--json OUT] [--per-group N] [--calls N] [--rows ...] [--serial]

The command only: the work is in agent/bench/interaction.py.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.bench.interaction import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
