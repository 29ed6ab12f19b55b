"""Relatedness of answers to their calls, per answer form and echo: see agent/bench/relate.py.

    python scripts/bench_relate.py [--quick] [--json OUT] [--seed N] [--model DIR]
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.bench.relate import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
