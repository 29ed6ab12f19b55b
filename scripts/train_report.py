"""What scripts/train.py reports: per-piece NLL, the loss curve, and the model card.

    python scripts/train_report.py models/default --data data/prepared   # (re)write card.json

The command only: the work is in agent/training/report.py.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.training.report import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
