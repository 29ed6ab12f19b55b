"""Training throughput: our chunked stateful scheme vs the classic sliding window, in one run.

    python scripts/bench_train.py [--json OUT] [--quick] [--model models/default] [--data data/prepared]

The command only: the work is in agent/training/throughput.py.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.training.throughput import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
