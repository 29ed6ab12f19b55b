"""Leave-one-collection-out: train without a whole collection, test on all of it, against n-grams.

    python scripts/held_out.py --data data/prepared --hold-out essen,bach --out runs/held_out \
        --card models/default -- --max-minutes 20 --threads 1

The command only: the work is in agent/training/held_out.py.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.training.held_out import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
