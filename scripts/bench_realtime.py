"""Real-time benchmark: scripted phrases into the live engine over JACK (or loopback).

    python scripts/bench_realtime.py [--json OUT] [--quick] [--transport jack|loopback] [--model DIR]

The command only: the work is in agent/bench/realtime.py.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.bench.realtime import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
