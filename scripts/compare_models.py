"""Token models side by side on one prepared data set: NLL per source, clean and humanised.

    python scripts/compare_models.py --model old=/tmp/old_default --model new=models/default \
        --data data/full --on nottingham,palestrina --json runs/compare.json

The command only: the work is in agent/training/compare.py.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.training.compare import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
