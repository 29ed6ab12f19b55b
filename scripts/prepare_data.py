"""Turn real music into cached token arrays: music21's corpus and folders of MIDI files.

    python scripts/prepare_data.py                       # the default corpus -> data/prepared/
    python scripts/prepare_data.py --corpus essen,bach --midi-dir ~/midi --out data/mine
    python scripts/prepare_data.py --corpus poly --workers 1 --out data/poly   # the polyphonic sources

The command only: the work is in agent/training/prepare.py.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.training.prepare import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
