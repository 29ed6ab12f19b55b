"""Every buffer a long session or a flood touches is bounded (the bounds are in the modules' docstrings)."""
from __future__ import annotations

import sys
from pathlib import Path

import mido

from scripted import ScriptedPredictor  # noqa: E402

from agent.live.jam import policy as jam_mod
from agent.live import listener as listener_mod
from agent.music.tempomap import FakeClock, TempoMap
from agent.config import load_config
from agent.live.controls import LiveControls
from agent.live.jam.policy import Jam
from agent.live.listener import Listener
from agent.live.scheduler import Scheduler
from helpers import ListOut


def test_a_flood_fills_the_inbox_to_its_bound_and_the_rest_is_counted():
    li = Listener(jam=None, clock=FakeClock(0.0))
    n = listener_mod.INBOX_MAX + 1000
    for i in range(n):
        li.receive(mido.Message("note_on", note=60, velocity=64), i * 1e-4)
    assert li.inbox.qsize() == listener_mod.INBOX_MAX and li.overflow == 1000
    li.wake()  # never blocks, even when full
    assert li.inbox.qsize() == listener_mod.INBOX_MAX


class _Heard:
    """A jam that only writes down the player's notes it is given."""

    def __init__(self) -> None:
        self.notes: list[tuple[int, bool]] = []

    def player_note(self, pitch, velocity, on, t_s) -> None:
        self.notes.append((pitch, on))


def test_in_a_flood_the_releases_are_kept_in_order_so_no_player_note_sticks():
    heard = _Heard()
    li = Listener(jam=heard, clock=FakeClock(0.0))
    for i in range(listener_mod.INBOX_MAX):  # the flood fills the inbox...
        li.receive(mido.Message("note_on", note=i % 100, velocity=64), i * 1e-4)
    li.receive(mido.Message("note_on", note=100, velocity=64), 1.0)  # ...then a note-on is dropped,
    li.receive(mido.Message("control_change", control=64, value=127), 1.0)  # the pedal going down too,
    li.receive(mido.Message("note_off", note=5), 1.1)  # but the releases are kept, in order
    li.receive(mido.Message("note_on", note=7, velocity=0), 1.2)
    li.receive(mido.Message("control_change", control=64, value=0), 1.3)
    assert li.overflow == 2
    while li.inbox.qsize():
        li.step(0.0)
    li.step(0.0)  # the inbox is empty: the kept releases are handled after the backlog
    assert heard.notes[listener_mod.INBOX_MAX:] == [(5, False), (7, False)]
    li.receive(mido.Message("note_on", note=100, velocity=64), 2.0)  # and input flows again
    li.step(0.0)
    assert heard.notes[-1] == (100, True) and li.overflow == 2


def test_responses_and_resample_times_are_bounded_in_a_long_session():
    cfg = load_config(overrides=['jam.mode="call"', "timing.bpm=120.0", "jam.silence_ms=100.0"])
    clock = FakeClock(0.0)
    sched = Scheduler(ListOut(clock), clock)
    jam = Jam(ScriptedPredictor(cfg.vocab()), sched, TempoMap(120.0, 0.0), LiveControls(cfg), clock, cfg.vocab())
    jam.responses = type(jam.responses)(maxlen=5)  # the real bound is jam_mod.HISTORY; 5 keeps it fast
    for i in range(12):  # a phrase, then the answer: barge in on it with the next phrase
        clock.advance(1.0)
        jam.player_note(60, 90, True, clock.now())
        clock.advance(0.2)
        jam.player_note(60, 0, False, clock.now())
        for _ in range(40):
            clock.advance(0.05)
            sched.pump()
            jam.tick(clock.now())
    assert jam.answers >= 10 and len(jam.responses) == 5
    fresh = Jam(ScriptedPredictor(cfg.vocab()), sched, TempoMap(120.0, 0.0), LiveControls(cfg), clock, cfg.vocab())
    assert fresh.responses.maxlen == jam_mod.HISTORY and fresh.resample_s.maxlen == jam_mod.HISTORY
