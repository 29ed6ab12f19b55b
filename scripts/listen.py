"""Listening comparison: continuations of the same primers from several models, and what they hold.

The command only: the work is in agent/training/listen.py.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.training.listen import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
