"""A trained roll model's ONNX export and card: what scripts/train.py --kind roll writes at the end.

    python scripts/roll_report.py models/roll-jsb --data ../shared/data/poly_music/JSB_Chorales.mat

The command only: the work is in agent/training/rollcard.py.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.training.rollcard import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
