"""`antiphon demo`: each answer begins on a bar line of the recording (issue 20: answers in the next phrase slot).

The demo's player (at the default 100 bpm; real time, ~40 s) comes in on a bar line with two-bar phrases of a chorale's top line; the agent follows its
tempo and answers at the phrase slot (jam.align = "phrase", the default), which is then a bar line of the
session's MIDI file (and of its PNG, drawn from the same beats). Times are read from session.mid's markers
and the agent's track, in beats of the file (its tempo map is the one the agent followed).
"""
from __future__ import annotations

import os
import subprocess
import sys

import mido
import pytest

ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo_slots")
    r = subprocess.run([sys.executable, "-m", "agent", "demo", "--out", str(out), "--seed", "3", "--phrases", "3",
                        "--no-wav", "--set", "scheduler.late_tolerance_ms=10000.0"],
                       capture_output=True, text=True, env=ENV, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    return mido.MidiFile(out / "session.mid")


def first_onsets(mid: mido.MidiFile) -> tuple[list[float], list[float]]:
    """Each phrase's and each answer's first note-on, in beats from the file's start."""
    beats = {}
    for tr in mid.tracks:
        tick, ons = 0, []
        for m in tr:
            tick += m.time
            if m.type == "note_on" and m.velocity > 0:
                ons.append(tick / mid.ticks_per_beat)
        beats[tr.name] = ons
    return beats["human"], beats["agent"]


def starts(ons: list[float], gap: float = 2.0) -> list[float]:
    """The first onset of each run of onsets (a run ends at a pause of `gap` beats or more)."""
    return [b for i, b in enumerate(ons) if i == 0 or b - ons[i - 1] >= gap]


def test_every_answer_begins_on_a_bar_line(session):
    human, agent = first_onsets(session)
    phrase_starts = starts(human)
    answer_starts = [min(b for b in agent if b > p) for p in phrase_starts]
    assert len(answer_starts) == 3
    off_bar = [min(b % 4, 4 - b % 4) for b in answer_starts]  # beats from the nearest bar line
    assert max(off_bar) == pytest.approx(0.0, abs=0.06), f"answers at beats {answer_starts}, phrases at {phrase_starts}"
