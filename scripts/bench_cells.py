"""LSTM vs GRU at equal parameter count and equal minutes on the same split (issue 24 item 4).

    python scripts/bench_cells.py --data data/cells --minutes 10 --seeds 1,2 [--hidden 128] [--json OUT]

The command only: the work is in agent/bench/cells.py.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.bench.cells import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
