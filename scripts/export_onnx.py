"""Export a checkpoint's LSTM as a single-step ONNX graph for the live agent.

    python scripts/export_onnx.py models/default/checkpoint.pt [--out DIR] [--int8]

The command only: the work is in agent/training/export.py.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.training.export import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
