"""Train and evaluate the phrase-end classifier on the corpus' real phrase ends; write its weights.

    python scripts/train_phrase_end.py [--quick] [--out models/default/phrase_end.json] [--json REPORT]

The command only: the work is in agent/training/phrase_end.py (data in agent/training/phrase_data.py,
features and inference in agent/music/phrase_end.py).
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.training.phrase_end import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
