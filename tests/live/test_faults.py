"""Crash safety: stop the voice, not the show.

An exception in any thread (listener, jam policy, sampler, scheduler) cuts
the agent's notes and the music goes on; only an error that keeps coming
back ends the session. A send that blocks never holds up the model thread,
and a send that never returns cannot hang stop(). Notes are counted at a
receiving port, never read back from the scheduler's own bookkeeping.
"""
from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import mido
import pytest

from scripted import ScriptedPredictor  # noqa: E402

from agent.music.tempomap import FakeClock, RealClock
from agent.config import load_config
from agent.live.engine import Engine
from agent.live.faults import Fuse
from agent.midi.ports import Loopback, Ports
from agent.live.scheduler import Scheduler
from helpers import wait_for

FAST = ["timing.bpm=240.0", "jam.silence_ms=150.0"]
SCRIPT = "VEL(8) NOTE_ON(60) SHIFT(3) NOTE_OFF(60) NOTE_ON(64) SHIFT(3) NOTE_OFF(64)"


def still_open(msgs) -> set[int]:
    open_: set[int] = set()
    for _, m in msgs:
        if m.type == "note_on" and m.velocity > 0:
            assert m.note not in open_, "note-on for a pitch the receiver already hears"
            open_.add(m.note)
        elif m.type in ("note_on", "note_off"):
            open_.discard(m.note)
    return open_


def solo_engine(extra=()):
    cfg = load_config(overrides=FAST + ['jam.mode="solo"', *extra])
    loop = Loopback()
    lines = []
    eng = Engine(cfg, ScriptedPredictor(cfg.vocab(), SCRIPT), ports=Ports("loopback", loop=loop),
                 input_name="keyboard", virtual_name="Antiphon", report=lines.append).start()
    heard = []
    Ports("loopback", loop=loop).open_input("Antiphon", lambda m, t: heard.append((t, m)))
    return eng, heard, lines


def once(fn):
    """fn wrapped to raise RuntimeError the first time it is called."""
    state = {"raised": False}

    def wrapper(*a, **kw):
        if not state["raised"]:
            state["raised"] = True
            raise RuntimeError("injected")
        return fn(*a, **kw)

    return wrapper, state


def inject(eng, where):
    if where == "listener":
        eng.listener.handle, state = once(eng.listener.handle)
        kbd = Ports("loopback", loop=eng.ports.loop).open_output("keyboard")
        kbd.send(mido.Message("control_change", control=1, value=1))
    elif where == "jam":
        eng.jam.tick, state = once(eng.jam.tick)
    elif where == "sampler":
        eng.predictor.sample, state = once(eng.predictor.sample)
    elif where == "scheduler":
        hook, state = once(lambda *a: None)
        eng.scheduler.hooks.append(hook)
    return state


@pytest.mark.parametrize("where", ["listener", "jam", "sampler", "scheduler"])
def test_an_exception_in_a_thread_cuts_the_notes_and_the_music_goes_on(where):
    eng, heard, lines = solo_engine()
    try:
        assert wait_for(lambda: len(heard) >= 4)
        state = inject(eng, where)
        assert wait_for(lambda: state["raised"])
        n = len(heard)
        assert wait_for(lambda: len(heard) >= n + 8)  # it plays on after the fault
        assert not eng.stopped.is_set() and eng.error is None
        faults = eng.listener.faults + eng.scheduler.faults
        assert faults == 1
    finally:
        eng.stop()
    assert still_open(heard) == set()


def test_an_error_that_keeps_coming_back_ends_the_session_with_every_note_closed():
    eng, heard, lines = solo_engine()
    assert wait_for(lambda: len(heard) >= 4)

    def always(*a):
        raise RuntimeError("broken model")

    eng.predictor.sample = always
    assert eng.wait(10.0) and isinstance(eng.error, RuntimeError)
    eng.stop()
    assert still_open(heard) == set()
    assert any("playing on" in line for line in lines)  # the first ones were survived and said so


def test_the_fuse_blows_on_the_limit_within_the_window_only():
    f = Fuse(limit=3, window_s=10.0)
    assert not f.blow(0.0) and not f.blow(5.0)
    assert not f.blow(20.0)  # 0 s and 5 s are too long ago
    assert not f.blow(25.0)
    assert f.blow(26.0)


class BlockingOut:
    """An output whose send of note 99 blocks until released (a DAW hanging, a full pipe)."""

    name = "blocking"

    def __init__(self):
        self.release = threading.Event()
        self.entered = threading.Event()
        self.sent = []

    def send(self, msg):
        if getattr(msg, "note", None) == 99 and msg.type == "note_on":
            self.entered.set()
            self.release.wait()
        self.sent.append(msg)


def in_thread(fn):
    done = threading.Event()
    out = {}

    def run():
        out["value"] = fn()
        done.set()

    threading.Thread(target=run, daemon=True).start()
    return done, out


def test_a_blocking_send_does_not_hold_up_schedule():
    out = BlockingOut()
    s = Scheduler(out, RealClock(), spin_s=0.0).start()
    try:
        s.schedule(time.perf_counter(), mido.Message("note_on", note=99, velocity=64))
        assert out.entered.wait(5.0)
        done, _ = in_thread(lambda: s.schedule(time.perf_counter() + 1.0, mido.Message("note_on", note=60)))
        assert done.wait(5.0) and not out.release.is_set()  # queued while the send is still blocked
        assert s.pending() == 1
    finally:
        out.release.set()
        s.stop()


def test_a_send_that_never_returns_cannot_hang_stop():
    out = BlockingOut()
    s = Scheduler(out, RealClock(), spin_s=0.0).start()
    s.schedule(time.perf_counter(), mido.Message("note_on", note=60, velocity=64))
    s.schedule(time.perf_counter(), mido.Message("note_on", note=99, velocity=64))
    assert out.entered.wait(5.0)
    done, result = in_thread(s.stop)
    try:
        assert done.wait(5.0) and not out.release.is_set()  # stop() returned while the send still hangs
        assert result["value"] == [] and s.unclosed == 2  # 60 and 99 could not be closed, and it says so
    finally:
        out.release.set()


def test_held_note_released_from_the_context_after_the_timeout_so_call_mode_answers():
    from helpers import ListOut

    from agent.music.tempomap import TempoMap
    from agent.live.controls import LiveControls
    from agent.live.jam.policy import Jam

    cfg = load_config(overrides=['jam.mode="call"', "jam.held_note_timeout_s=5.0", "timing.bpm=120.0"])
    clock = FakeClock(100.0)
    out = ListOut(clock)
    sched = Scheduler(out, clock)
    pred = ScriptedPredictor(cfg.vocab())
    jam = Jam(pred, sched, TempoMap(120.0, clock.now()), LiveControls(cfg), clock, cfg.vocab())
    jam.player_note(50, 90, True, clock.now())  # never released (a stuck key, a lost note-off)
    for p in (60, 62, 64):
        clock.advance(0.25)
        jam.player_note(p, 90, True, clock.now())
        clock.advance(0.2)
        jam.player_note(p, 0, False, clock.now())
    wake = jam.tick(clock.now())
    while clock.now() < 112.0:
        clock.set(min(wake, clock.now() + 0.01))
        sched.pump()
        wake = jam.tick(clock.now())
    assert jam.held_released == 1 and 50 not in jam.enc.sounding
    assert jam.answers >= 1 and any(m.type == "note_on" for _, m in out.sent)


def test_engine_stop_returns_while_an_output_send_hangs_for_good():
    cfg = load_config(overrides=FAST + ['jam.mode="solo"'])
    loop = Loopback()
    hang = BlockingOut()
    hang.send = lambda msg, _h=hang: (_h.entered.set(), _h.release.wait())  # every send hangs
    eng = Engine(cfg, ScriptedPredictor(cfg.vocab(), SCRIPT), ports=Ports("loopback", loop=loop),
                 input_name="keyboard", virtual_name="Antiphon", extra_outputs=[hang], report=lambda line: None)
    eng.start()
    try:
        assert hang.entered.wait(10.0)  # the scheduler thread is stuck in a send now
        done, _ = in_thread(eng.stop)
        assert done.wait(5.0) and not hang.release.is_set()  # stop() came back; the send never did
        assert eng.stopped.is_set()
    finally:
        hang.release.set()
