"""Beat tracker benchmark: real tunes from music21's corpus in every metre, played plain and with rubato.

The command only: the work is in agent/bench/beat.py.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.bench.beat import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
