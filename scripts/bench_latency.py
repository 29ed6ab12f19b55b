"""Per-step latency of the live predictor, against the sliding-window re-run it replaces.

The command only: the work is in agent/bench/latency.py.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.bench.latency import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
