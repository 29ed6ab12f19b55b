"""Fuzz the file reader + tokenizer and the listener + jam policy (hypothesis).

The command only: the work is in agent/bench/fuzz.py.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.bench.fuzz import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
