"""MIDI clock in: the tempo from 24 pulses a beat; start, stop, continue and song position keep the
DAW's beat and bar (fake clock: the listener handles each message at its arrival time)."""
from __future__ import annotations

import random

import mido
import pytest

from agent.live.listener import Listener
from agent.midi.clockin import ClockSync, MidiClockIn
from agent.music.tempomap import FakeClock, TempoMap

T0 = 1000.0


def test_midi_clock_tempo():
    mc = MidiClockIn()
    bpms = [mc.pulse(i * 60 / 90 / 24) for i in range(30)]
    assert [b for b in bpms if b is not None][-1] == pytest.approx(90, abs=0.1)
    assert mc.pulse(30 * 60 / 90 / 24) is None  # steady: nothing new to report


class Daw:
    """A DAW sending MIDI clock into a listener wired as the engine wires it (timing.source = "clock")."""

    def __init__(self, bpm: float = 120.0, follows: bool = True, beats_per_bar: int = 4) -> None:
        self.bpm, self.t = bpm, T0
        self.tempo = TempoMap(100.0, T0, beats_per_bar)  # the engine's map, at the config's tempo
        self.cuts: list[float] = []
        self.sync = ClockSync(self.tempo, lambda: follows, on_stop=self.cuts.append)
        self.li = Listener(None, FakeClock(T0), midi_clock=self.sync.clock_in, on_tempo=self.sync.tempo_in,
                           on_transport=self.sync.transport, on_pulse=self.sync.pulse)
        self.pulse_times: list[float] = []

    def send(self, kind: str, **kw) -> None:
        self.li.handle(mido.Message(kind, **kw), self.t)

    def run(self, beats: float, jitter_s: float = 0.0, rng=None) -> None:
        """Clock pulses for `beats` beats, from a pulse interval after now (the first right after a start)."""
        for _ in range(round(beats * 24)):
            self.t += 60.0 / self.bpm / 24
            self.pulse_times.append(self.t)
            self.li.handle(mido.Message("clock"), self.t + (rng.uniform(-jitter_s, jitter_s) if rng else 0.0))

    def wait(self, seconds: float) -> None:
        self.t += seconds


def test_start_stop_song_position_to_bar_5_beat_3_then_continue_plays_on_the_daws_beat_and_bar():
    daw = Daw(120.0)
    daw.send("start")
    daw.run(8)  # two bars
    daw.send("stop")
    daw.wait(3.0)
    daw.send("songpos", pos=72)  # 72 sixteenths = 18 beats from the song's start: bar 5, beat 3 (4/4)
    daw.wait(0.5)
    daw.send("continue")
    daw.run(1 / 24)  # the first pulse after continue is the position
    first = daw.pulse_times[-1]
    assert daw.tempo.beat(first) == pytest.approx(18.0, abs=1e-9)
    assert daw.tempo.bar_position(first) == pytest.approx(2.0, abs=1e-9)  # beat 3 of its bar
    assert daw.tempo.next_bar(first) == pytest.approx(first + 2 * 0.5, abs=1e-9)  # bar 6, two beats on
    daw.run(6)
    assert daw.tempo.beat(daw.pulse_times[-1]) == pytest.approx(24.0, abs=1e-6)  # 144 pulses on
    assert daw.tempo.bpm == pytest.approx(120.0, abs=0.5)
    assert daw.cuts == [pytest.approx(T0 + 8 * 0.5)]  # the stop cut the agent's notes


def test_continue_without_a_song_position_resumes_where_it_stopped_not_at_beat_0():
    daw = Daw(96.0)
    daw.send("start")
    daw.run(2.5)  # stopped half-way through beat 3
    daw.send("stop")
    daw.wait(4.0)
    daw.send("continue")
    daw.run(1 / 24)
    assert daw.tempo.beat(daw.pulse_times[-1]) == pytest.approx(2.5, abs=1e-9)
    assert daw.tempo.bar_position(daw.pulse_times[-1]) == pytest.approx(2.5, abs=1e-9)


def test_start_after_playing_is_beat_0_at_the_first_pulse_and_a_bar_line():
    daw = Daw(140.0)
    daw.send("songpos", pos=40)
    daw.send("continue")
    daw.run(5)
    daw.send("stop")
    daw.send("start")  # a restart: from the song's beginning, whatever the position was
    daw.run(1 / 24)
    first = daw.pulse_times[-1]
    assert daw.tempo.beat(first) == pytest.approx(0.0, abs=1e-9)
    assert daw.tempo.next_bar(first) == pytest.approx(first, abs=1e-9)


def test_the_grid_stays_on_the_clocks_count_over_a_long_jittered_run():
    """500 beats of clock jittered by +-1 ms (USB, a JACK period): the tempo estimate wobbles, but
    each whole beat puts the map back on the clock's count, so the grid never drifts off it."""
    daw = Daw(123.0)
    daw.send("start")
    daw.run(500, jitter_s=0.001, rng=random.Random(3))
    last_whole = daw.pulse_times[24 * 499]  # the pulse of beat 499
    assert daw.tempo.beat(last_whole) == pytest.approx(499.0, abs=0.01)
    assert daw.tempo.bar_position(last_whole) == pytest.approx(3.0, abs=0.01)  # 499 = 124 bars + 3 beats


def test_switching_to_the_clock_mid_song_places_the_grid_on_its_next_whole_beat():
    daw = Daw(110.0)
    daw.send("songpos", pos=33)  # 8.25 beats in
    daw.send("continue")
    daw.sync._place = False  # as if the source became "clock" after the DAW had started: no placing pending
    daw.run(0.75 + 1 / 24)  # up to the pulse of beat 9
    t9 = daw.pulse_times[-1]
    assert daw.tempo.beat(t9) == pytest.approx(9.0, abs=1e-9)
    assert daw.tempo.bar_position(t9) == pytest.approx(1.0, abs=1e-9)


def test_with_another_tempo_source_the_clock_moves_nothing():
    daw = Daw(150.0, follows=False)
    before = (daw.tempo.bpm, daw.tempo.beat(T0 + 10.0))
    daw.send("songpos", pos=16)
    daw.send("continue")
    daw.run(4)
    daw.send("stop")
    assert (daw.tempo.bpm, daw.tempo.beat(T0 + 10.0)) == before and daw.cuts == []
    assert daw.sync.clock_in.bpm == pytest.approx(150.0, abs=0.5)  # heard all the same (the toolbar can say so)


def test_an_answer_aligned_to_the_bar_comes_in_on_the_daws_bar_line_after_a_mid_song_continue():
    from agent.live.jam.turn import place

    daw = Daw(100.0, beats_per_bar=3)  # a waltz
    daw.send("songpos", pos=4 * 13)  # beat 13 of the song: bar 5, beat 2 in 3/4
    daw.send("continue")
    daw.run(2.5)  # the call ends in the first beat of bar 6 (song beat 13 + 59/24 = 15.46)
    t = daw.pulse_times[-1]
    assert daw.tempo.beat(place(daw.tempo, t, "bar")) == pytest.approx(15.0 + 3.0, abs=1e-6)  # bar 7's downbeat
    assert daw.tempo.beat(place(daw.tempo, t, "beat")) == pytest.approx(15.0 + 1.0, abs=1e-6)
