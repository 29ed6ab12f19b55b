"""Evaluate a trained model on the held-out test split, against two count baselines.

    python scripts/evaluate.py models/default [--data data/prepared] [--json OUT]
        [--samples 64] [--temperature 1.0] [--plots DIR]

The command only: the work is in agent/training/evaluate.py.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.training.evaluate import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
