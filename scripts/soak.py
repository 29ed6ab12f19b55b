"""Soak: the live engine for M minutes over real JACK ports with randomised players.

    python scripts/soak.py --minutes 60 --record [FILE.mid] [--json OUT] [--jack-period 64] [--segments 6]

The command only: the work is in agent/bench/soak.py.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.bench.soak import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
