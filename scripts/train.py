"""Train the LSTM token model on prepared data: stateful truncated BPTT, every position a target.

    python scripts/train.py --data data/prepared --out models/default --max-minutes 60
    torchrun --nproc_per_node=2 scripts/train.py --data data/prepared --out runs/ddp
    python scripts/train.py --kind roll --data ../shared/data/poly_music/JSB_Chorales.mat --out models/roll-jsb

The command only: the work is in agent/training/train.py.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.training.train import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
