"""Shared fixtures: real data only (music21's corpus and the MIDI files its wheel ships)."""
from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def music21_midi_dir() -> Path:
    """Real MIDI files installed with music21 (multi-track, several tempos and resolutions)."""
    import music21

    return Path(music21.__file__).parent / "midi" / "testPrimitive"


@pytest.fixture(scope="session")
def chorale():
    """A real Bach chorale (BWV 66.6) parsed by music21."""
    from music21 import corpus

    return corpus.parse("bach/bwv66.6")
