"""Bad live input on a fake clock: floods, sysex, clock floods, stuck and duplicate notes, 16 channels.

The listener's callback side (`receive`) and its engine-thread side (`step`,
then `jam.tick`) are driven by hand, so a 10 s flood at 10,000 messages/s
runs in seconds and the bounds can be read off exactly.
"""
from __future__ import annotations

import sys
from pathlib import Path

import mido
import pytest

from scripted import ScriptedPredictor  # noqa: E402

from agent.music.tempomap import FakeClock, TempoMap
from agent.config import load_config
from agent.live.controls import LiveControls
from agent.live.jam.policy import Jam
from agent.live.listener import INBOX_MAX, EchoFilter, Listener
from agent.live.scheduler import Scheduler
from helpers import ListOut


class Live:
    """Listener + jam + scheduler with the engine thread's loop run by hand on a fake clock."""

    def __init__(self, mode: str, extra=()) -> None:
        self.cfg = load_config(overrides=[f'jam.mode="{mode}"', "timing.bpm=120.0", "jam.silence_ms=300.0",
                                          "jam.held_note_timeout_s=4.0", *extra])
        self.clock = FakeClock(100.0)
        self.out = ListOut(self.clock)
        self.sched = Scheduler(self.out, self.clock, max_polyphony=self.cfg.sampling.max_polyphony)
        self.jam = Jam(ScriptedPredictor(self.cfg.vocab()), self.sched, TempoMap(120.0, 100.0),
                       LiveControls(self.cfg), self.clock, self.cfg.vocab())
        self.echo = EchoFilter()
        self.sched.sending_hooks.append(self.echo.sending)
        self.li = Listener(self.jam, self.clock, echo=self.echo)
        self.li._running = True  # step() as the thread runs it
        self.most_queued = 0
        self.most_at_once = 0

    def engine_step(self) -> None:
        self.most_queued = max(self.most_queued, self.li.inbox.qsize())
        self.li.step(0.0)
        self.jam.tick(self.clock.now())
        self.sched.pump()
        self.most_at_once = max(self.most_at_once, len(self.sched.open_notes))

    def flood(self, msgs, rate_per_s: float, step_every_s: float = 0.05) -> None:
        """msgs arrive at rate_per_s; the engine thread gets to run every step_every_s (a busy machine)."""
        next_step = self.clock.now() + step_every_s
        for i, m in enumerate(msgs):
            t = 100.0 + i / rate_per_s if self.clock.now() < 100.0 else self.clock.now() + 1.0 / rate_per_s
            self.clock.set(t)
            self.li.receive(m, t)
            if t >= next_step:
                self.engine_step()
                next_step = t + step_every_s

    def run_for(self, dt_s: float, every_s: float = 0.01) -> None:
        end = self.clock.now() + dt_s
        while self.clock.now() < end:
            self.clock.advance(every_s)
            self.engine_step()

    def phrase(self, pitches=(60, 64, 67, 72)) -> None:
        for p in pitches:
            self.li.receive(mido.Message("note_on", note=p, velocity=90), self.clock.now())
            self.run_for(0.6)  # long enough for the scripted agent's first note (0.5 s in) in accompany
            self.li.receive(mido.Message("note_off", note=p), self.clock.now())
            self.run_for(0.1)

    def agent_note_ons(self, since_s: float) -> int:
        return sum(1 for t, m in self.out.sent if t >= since_s and m.type == "note_on" and m.velocity > 0)


def flood_messages(n: int):
    """Every kind at once: notes on all 16 channels (duplicates, velocity 0, never-released), sysex,
    clock, aftertouch, pitch bend, program changes, active sensing."""
    out = []
    for i in range(n):
        ch, k = i % 16, i % 11
        p = 30 + (i * 7) % 70
        if k in (0, 1):
            out.append(mido.Message("note_on", channel=ch, note=p, velocity=1 + i % 127))
        elif k == 2:
            out.append(mido.Message("note_on", channel=ch, note=p, velocity=1 + i % 127))  # duplicate note-on
        elif k == 3:
            out.append(mido.Message("note_on", channel=ch, note=p, velocity=0))  # velocity 0 = note-off
        elif k == 4:
            out.append(mido.Message("note_off", channel=ch, note=(p + 14) % 128))
        elif k == 5:
            out.append(mido.Message("sysex", data=bytes([i % 128]) * (i % 200)))
        elif k == 6:
            out.append(mido.Message("clock"))
        elif k == 7:
            out.append(mido.Message("aftertouch", channel=ch, value=i % 128))
        elif k == 8:
            out.append(mido.Message("pitchwheel", channel=ch, pitch=(i * 37) % 16384 - 8192))
        elif k == 9:
            out.append(mido.Message("control_change", channel=ch, control=64, value=127 * (i % 2)))
        else:
            out.append(mido.Message("active_sensing"))
    return out


@pytest.mark.parametrize("mode", ["call", "accompany"])
def test_after_a_ten_second_flood_the_agent_answers_and_every_buffer_stayed_bounded(mode):
    live = Live(mode)
    live.flood(flood_messages(100_000), rate_per_s=10_000.0)  # 10 s at 10,000 messages/s
    assert live.most_queued <= INBOX_MAX and live.li.overflow > 0  # the flood overflowed, bounded
    live.run_for(6.0)  # the backlog drains, then the releases kept aside during the flood
    assert not live.jam.enc.sounding  # no player note left held in the context
    assert live.jam.held_released == 0  # without waiting for the held-note timeout: no release was lost
    t = live.clock.now()
    live.phrase()
    live.run_for(3.0)
    assert live.agent_note_ons(t) > 0  # it still answers
    assert live.most_at_once <= live.cfg.sampling.max_polyphony
    assert len(live.echo._sent) <= 512 and len(live.jam.player_onset) <= 128
    assert len(live.li.held_by_pedal) <= 128 and len(live.jam.predictor.sounding) <= 128
    assert live.sched.pending() < 200  # what the lookahead queued, not the flood
    live.jam.cut(live.clock.now())
    assert not live.sched.open_notes


def test_a_clock_flood_only_moves_the_tempo_within_its_bounds():
    live = Live("call", extra=['timing.source="clock"'])
    seen = []
    live.li.on_tempo = lambda bpm, t: seen.append(bpm)
    live.flood([mido.Message("clock")] * 20_000, rate_per_s=10_000.0)
    live.run_for(0.5)
    assert live.li.ignored == {} and all(bpm > 0 for bpm in seen)
    t = live.clock.now()
    live.phrase()
    live.run_for(3.0)
    assert live.agent_note_ons(t) > 0
