"""Reading a JACK MIDI input under load: mido's callback port against Antiphon's polled port, side by side.

    python scripts/bench_input.py [--bursts 400] [--burst 5] [--hogs 2] [--json OUT]

The command only: the work is in agent/bench/burst.py.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.bench.burst import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
