"""Antiphon's roll models on the published polyphonic benchmark (JSB Chorales, Nottingham).

    python scripts/bench_polyphonic.py                       # score the committed models from model.onnx alone
    python scripts/bench_polyphonic.py --train jsb-sigmoid   # (re)train a row with its recorded settings first
    python scripts/bench_polyphonic.py --json bench.json

The command only: the work is in agent/training/polyphonic.py.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.training.polyphonic import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
