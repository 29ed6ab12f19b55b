"""Train the beat tracker's hypothesis scorer (agent/music/beat_weights.json) on the corpus' bar lines.

The command only: the work is in agent/training/train_beat.py.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.training.train_beat import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
