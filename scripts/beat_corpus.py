"""Real tunes for the beat benchmark and tests: onsets in beats, bar lines and phrase ends, from music21's corpus.

The command only: the work is in agent/training/beat_corpus.py.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.training.beat_corpus import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
