"""Does typing in the REPL move the real-time figures? bench_realtime with and without a typist, in one run.

The command only: the work is in agent/bench/repl.py.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.bench.repl import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
