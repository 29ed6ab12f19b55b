"""MIDI clock in: the tempo from 24 pulses a beat."""
from __future__ import annotations

import pytest

from agent.midi.clockin import MidiClockIn


def test_midi_clock_tempo():
    mc = MidiClockIn()
    bpms = [mc.pulse(i * 60 / 90 / 24) for i in range(30)]
    assert [b for b in bpms if b is not None][-1] == pytest.approx(90, abs=0.1)
    assert mc.pulse(30 * 60 / 90 / 24) is None  # steady: nothing new to report
