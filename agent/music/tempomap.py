"""Clocks (real and fake) and the tempo maps: beats <-> seconds live, seconds -> ticks for a recording.

Every timing rule in the engine takes a clock as a dependency, so tests drive
time by hand with `FakeClock` and never sleep. Times are seconds on the
`time.perf_counter()` scale; beats are quarter notes.
"""
from __future__ import annotations

import bisect
import math
import threading
import time


class RealClock:
    """perf_counter time; `sleep_until` sleeps to an absolute target (no drift)."""

    def now(self) -> float:
        return time.perf_counter()

    def sleep_until(self, t_s: float) -> None:
        delay = t_s - time.perf_counter()
        if delay > 0:
            time.sleep(delay)


class FakeClock:
    """A clock that moves only when told to: `advance(dt_s)` or `set(t_s)`.

    `sleep_until` jumps straight to the target, so code that sleeps runs
    instantly and deterministically under test.
    """

    def __init__(self, t0_s: float = 1000.0) -> None:
        self._t = float(t0_s)
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return self._t

    def set(self, t_s: float) -> None:
        with self._lock:
            self._t = max(self._t, float(t_s))

    def advance(self, dt_s: float) -> float:
        with self._lock:
            self._t += float(dt_s)
            return self._t

    def sleep_until(self, t_s: float) -> None:
        self.set(t_s)


def beat_at(t_s: float, anchor_s: float, anchor_beat: float, bpm: float) -> float:
    """The beat at t_s (seconds), when beat `anchor_beat` fell at `anchor_s` and beats run at `bpm`."""
    return anchor_beat + (t_s - anchor_s) * bpm / 60.0


def time_at(beat: float, anchor_s: float, anchor_beat: float, bpm: float) -> float:
    """The inverse of beat_at: the time (seconds) of `beat`."""
    return anchor_s + (beat - anchor_beat) * 60.0 / bpm


class TempoMap:
    """beats <-> seconds at one current tempo, re-anchored when it changes.

    beat(t) = anchor_beat + (t - anchor_s) * bpm / 60. A tempo change at time
    t keeps beat(t) continuous, so the grid never jumps. Thread-safe: the
    engine thread reads it, the REPL or MIDI clock may write it.
    """

    def __init__(self, bpm: float, origin_s: float, beats_per_bar: int = 4) -> None:
        if bpm <= 0:
            raise ValueError(f"tempo must be > 0 bpm, not {bpm}")
        self._lock = threading.Lock()
        self.bpm = float(bpm)
        self.beats_per_bar = int(beats_per_bar)
        self.bar_beat = 0.0  # the beat number of a bar line: bars are bar_beat + k * beats_per_bar
        self.division = 2  # the player's subdivision of the beat: 2 (eighths) or 3 (triplets, compound metres)
        self.swing = 1.0  # the long/short ratio of the player's off-beat eighths (1.0 straight)
        self._anchor_s = float(origin_s)
        self._anchor_beat = 0.0
        self.listeners: list = []  # fn(bpm, at_s) after each set_bpm (e.g. the session recorder)

    def beat(self, t_s: float) -> float:
        with self._lock:
            return self._beat(t_s)

    def time(self, beat: float) -> float:
        with self._lock:
            return self._time(beat)

    def _beat(self, t_s: float) -> float:  # callers hold the lock
        return beat_at(t_s, self._anchor_s, self._anchor_beat, self.bpm)

    def _time(self, beat: float) -> float:
        return time_at(beat, self._anchor_s, self._anchor_beat, self.bpm)

    def seconds_per_beat(self) -> float:
        return 60.0 / self.bpm

    def set_bpm(self, bpm: float, at_s: float) -> None:
        if bpm <= 0:
            raise ValueError(f"tempo must be > 0 bpm, not {bpm}")
        with self._lock:  # read and re-anchor in one step: a restart between them would be lost
            self._anchor_s, self._anchor_beat, self.bpm = float(at_s), self._beat(at_s), float(bpm)
        for fn in list(self.listeners):
            fn(float(bpm), float(at_s))

    def align(self, bpm: float, beat_s: float, *, downbeat_s: float | None = None, beats_per_bar: int | None = None,
              division: int | None = None, swing: float | None = None) -> None:
        """Follow the player: this tempo, with a beat at beat_s (seconds); where given, a bar line at
        downbeat_s (a beat time), the bar's length, the beat's division and the swing ratio.

        The beat count stays the nearest whole beat to what it was, so the
        grid moves by at most half a beat and beat numbers go on; a bar line
        moves `bar_beat`, not the beat count."""
        if bpm <= 0:
            raise ValueError(f"tempo must be > 0 bpm, not {bpm}")
        with self._lock:
            old = self.bpm
            self._anchor_beat, self._anchor_s, self.bpm = float(round(self._beat(beat_s))), float(beat_s), float(bpm)
            if beats_per_bar is not None:
                self.beats_per_bar = int(beats_per_bar)
            if downbeat_s is not None:
                self.bar_beat = float(round(self._beat(downbeat_s)))
            if division is not None:
                self.division = int(division)
            if swing is not None:
                self.swing = float(swing)
        if abs(bpm - old) > 0.002 * old:  # a change a listener (the recorder) should keep; not every nudge
            for fn in list(self.listeners):
                fn(float(bpm), float(beat_s))

    def next_beat(self, t_s: float, every: float = 1.0, origin: float = 0.0) -> float:
        """The first grid point at or after t_s: beats origin + k * every (every=4: bars from origin)."""
        with self._lock:
            k = math.ceil((self._beat(t_s) - origin) / every - 1e-9)
            return self._time(origin + k * every)

    def restart(self, at_s: float) -> None:
        """Beat 0 is now (MIDI clock start)."""
        with self._lock:
            self._anchor_s, self._anchor_beat, self.bar_beat = float(at_s), 0.0, 0.0
        for fn in list(self.listeners):  # the recorder's bar lines begin again here too
            fn(self.bpm, float(at_s))

    def locate(self, beat: float, at_s: float, bar_beat: float = 0.0) -> None:
        """Beat `beat` is at at_s, bar lines from `bar_beat` (MIDI clock continue or song position)."""
        with self._lock:
            self._anchor_s, self._anchor_beat, self.bar_beat = float(at_s), float(beat), float(bar_beat)
        for fn in list(self.listeners):
            fn(self.bpm, float(at_s))

    def next_bar(self, t_s: float) -> float:
        """The time of the first bar line at or after t_s (seconds)."""
        with self._lock:  # one tempo for both conversions
            bpb = self.beats_per_bar
            bar = self.bar_beat + math.ceil((self._beat(t_s) - self.bar_beat) / bpb - 1e-9) * bpb
            return self._time(bar)

    def bar_position(self, t_s: float) -> float:
        """Beats since the last bar line at t_s (0 <= x < beats_per_bar)."""
        with self._lock:
            return (self._beat(t_s) - self.bar_beat) % self.beats_per_bar


class TickMap:
    """Seconds -> beats -> ticks through a list of tempo changes (a recording's), kept whole.

    `tempo` is [(t_s, bpm)], sorted, the first at 0 s (beat 0); each change
    starts a segment at the beat the one before it reached.
    """

    def __init__(self, tempo: list[tuple[float, float]], ticks_per_beat: int) -> None:
        self.tpb = ticks_per_beat
        self.segments = []  # (t_s, beat at t_s, bpm)
        last = (0.0, 0.0, tempo[0][1])
        for t, bpm in tempo:
            last = (t, beat_at(t, *last), bpm)
            self.segments.append(last)
        self._starts = [seg[0] for seg in self.segments]

    def beat(self, t_s: float) -> float:
        i = max(0, bisect.bisect_right(self._starts, t_s) - 1)  # the last change at or before t_s
        return beat_at(t_s, *self.segments[i])

    def tick(self, t_s: float) -> int:
        return round(self.beat(t_s) * self.tpb)
