"""Every buffer a long session or a flood touches is bounded (the bounds are in the modules' docstrings)."""
from __future__ import annotations

import sys
from pathlib import Path

import mido

sys.path.insert(0, str(Path(__file__).parent))
from scripted import ScriptedPredictor  # noqa: E402

from agent import jam as jam_mod
from agent import listener as listener_mod
from agent.clock import FakeClock, TempoMap
from agent.config import load_config
from agent.engine import LiveControls
from agent.jam import Jam
from agent.listener import Listener
from agent.scheduler import Scheduler
from helpers import ListOut


def test_a_flood_fills_the_inbox_to_its_bound_and_the_rest_is_counted():
    li = Listener(jam=None, clock=FakeClock(0.0))
    n = listener_mod.INBOX_MAX + 1000
    for i in range(n):
        li.receive(mido.Message("note_on", note=60, velocity=64), i * 1e-4)
    assert li.inbox.qsize() == listener_mod.INBOX_MAX and li.overflow == 1000
    li.wake()  # never blocks, even when full
    assert li.inbox.qsize() == listener_mod.INBOX_MAX


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
