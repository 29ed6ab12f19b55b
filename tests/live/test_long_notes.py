"""Defects a long session shows, on a fake clock with the real default model.

At temperature 2.0 (the top of the temperature CC range) the agent used to
hold notes for minutes: once `max_polyphony` notes sounded, new note-ons
were masked and the drifting state rarely emitted their note-offs. These
tests run minutes of solo and accompany in a fraction of that time (no
sleeping: the test moves the clock) and measure at the receiving port.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from agent.music.tempomap import FakeClock, TempoMap
from agent.config import load_config
from agent.live.controls import LiveControls
from agent.live.jam.policy import Jam
from agent.model.predictor import Predictor
from agent.live.scheduler import Scheduler
from helpers import ListOut

DEFAULT = Path(__file__).resolve().parents[2] / "models" / "default"
pytestmark = pytest.mark.skipif(not (DEFAULT / "model.onnx").exists(), reason="models/default has no model.onnx")


class Session:
    """Jam + scheduler over the real default model; run_until drives both on a fake clock."""

    def __init__(self, mode: str, temperature: float, seed: int, extra=()) -> None:
        self.cfg = load_config(overrides=[f'jam.mode="{mode}"', f"sampling.temperature={temperature}", *extra])
        self.clock = FakeClock(10.0)
        self.out = ListOut(self.clock)
        self.sched = Scheduler(self.out, self.clock)
        self.tempo = TempoMap(self.cfg.timing.bpm, self.clock.now())
        self.controls = LiveControls(self.cfg)
        self.pred = Predictor.load(DEFAULT, backend="onnx", seed=seed, context_tokens=self.cfg.jam.context_tokens)
        self.jam = Jam(self.pred, self.sched, self.tempo, self.controls, self.clock, self.pred.vocab)
        self.wake = self.jam.tick(self.clock.now())

    def run_until(self, t_s: float) -> None:
        while True:
            nd = self.sched.next_due()
            nxt = min(x for x in (self.wake, nd, t_s) if x is not None)
            self.clock.set(max(nxt, self.clock.now()))
            self.sched.pump()
            self.wake = self.jam.tick(self.clock.now())
            while self.jam.idle_work(self.clock.now(), self.wake):
                pass  # as the listener's thread does between ticks (no time passes on this clock)
            if nxt >= t_s:
                return

    def note(self, pitch: int, on: bool, t_s: float) -> None:
        """A player's event, then the policy step the listener runs right after it."""
        self.jam.player_note(pitch, 80 if on else 0, on, t_s)
        self.wake = self.jam.tick(self.clock.now())

    def note_lengths_beats(self) -> tuple[list[float], int]:
        """Every agent note's length in beats as the receiver heard it, and how many never ended."""
        on: dict[int, float] = {}
        lengths = []
        spb = 60.0 / self.cfg.timing.bpm
        for t, m in self.out.sent:
            if m.type == "note_on" and m.velocity > 0:
                assert m.note not in on, "a note-on for a pitch already sounding at the receiver"
                on[m.note] = t
            elif m.type in ("note_on", "note_off") and m.note in on:
                lengths.append((t - on.pop(m.note)) / spb)
        return lengths, len(on)


@pytest.mark.parametrize("temperature", [1.5, 2.0])
def test_no_agent_note_outlasts_max_note_beats_in_a_long_solo(temperature):
    s = Session("solo", temperature, seed=7)
    s.run_until(s.clock.now() + 180.0)  # three minutes of solo
    lengths, open_now = s.note_lengths_beats()
    assert len(lengths) > 100  # it did play
    limit = s.cfg.sampling.max_note_beats
    assert max(lengths) <= limit + 1e-6, f"longest note {max(lengths):.1f} beats (limit {limit})"
    s.jam.cut(s.clock.now())
    _, open_after = s.note_lengths_beats()
    assert open_after == 0


def test_the_state_is_reprimed_from_the_context_periodically():
    s = Session("solo", 1.0, seed=3, extra=["jam.reprime_tokens=512"])
    s.run_until(s.clock.now() + 120.0)
    every = s.cfg.jam.reprime_tokens
    assert s.jam.reprimes > 0
    assert s.jam.notes_limited >= 0 and s.out.sent  # it played through the re-primes
    assert s.pred.steps <= every + 64  # never drifts for more than that many steps (64: one tick's tokens)


@pytest.mark.parametrize("backstop", [
    pytest.param(False, marks=pytest.mark.xfail(strict=True, reason=(
        "a known defect, older than the layout move: after the rollbacks of accompany the jam's own "
        "bound (limits.overlong, checked at the stream's frontier) can close a note late, 4.41 beats "
        "here (seed 11; at 4730ef6 seed 17 gave 4.54, 1 seed in 27 tried); the engine's scheduler "
        "backstop closes it for a listener (the backstop case below)"))),
    True])
def test_no_agent_note_outlasts_max_note_beats_in_a_long_accompany_run(backstop):
    """The player's events move the agent's time anchor: the bound holds in seconds, not just ticks.
    Without the backstop it is the jam's own bound; with it (as the engine wires it), what a listener hears."""
    import random

    s = Session("accompany", 2.0, seed=11)
    if backstop:  # as the engine wires it: a note may sound max_note_beats at the tempo of its note-on
        s.sched.max_note_s = lambda: s.cfg.sampling.max_note_beats * s.tempo.seconds_per_beat()
    rng = random.Random(5)
    t = s.clock.now() + 0.5
    end = t + 90.0
    while t < end:
        p = rng.randrange(48, 84)
        s.run_until(t)
        s.note(p, True, t)
        s.run_until(t + rng.uniform(0.05, 0.6))
        s.note(p, False, s.clock.now())
        t = s.clock.now() + rng.uniform(0.05, 0.4)
    s.run_until(end + 5.0)
    lengths, open_now = s.note_lengths_beats()
    assert len(lengths) > 50
    limit = s.cfg.sampling.max_note_beats
    assert max(lengths) <= limit + 1e-6, f"longest note {max(lengths):.2f} beats (limit {limit})"
    assert open_now == 0
