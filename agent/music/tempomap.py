"""Clocks (real and fake), the tempo map (beats <-> seconds) and MIDI clock in.

Every timing rule in the engine takes a clock as a dependency, so tests drive
time by hand with `FakeClock` and never sleep. Times are seconds on the
`time.perf_counter()` scale; beats are quarter notes.
"""
from __future__ import annotations

import math
import threading
import time
from collections import deque


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
        return self._anchor_beat + (t_s - self._anchor_s) * self.bpm / 60.0

    def _time(self, beat: float) -> float:
        return self._anchor_s + (beat - self._anchor_beat) * 60.0 / self.bpm

    def seconds_per_beat(self) -> float:
        return 60.0 / self.bpm

    def set_bpm(self, bpm: float, at_s: float) -> None:
        if bpm <= 0:
            raise ValueError(f"tempo must be > 0 bpm, not {bpm}")
        with self._lock:  # read and re-anchor in one step: a restart between them would be lost
            self._anchor_s, self._anchor_beat, self.bpm = float(at_s), self._beat(at_s), float(bpm)
        for fn in list(self.listeners):
            fn(float(bpm), float(at_s))

    def align(self, bpm: float, beat_s: float) -> None:
        """Follow the player: this tempo, with a beat at beat_s (seconds).

        The beat count stays the nearest whole beat to what it was, so the
        grid moves by at most half a beat and bar numbers go on."""
        if bpm <= 0:
            raise ValueError(f"tempo must be > 0 bpm, not {bpm}")
        with self._lock:
            old = self.bpm
            self._anchor_beat, self._anchor_s, self.bpm = float(round(self._beat(beat_s))), float(beat_s), float(bpm)
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
            self._anchor_s, self._anchor_beat = float(at_s), 0.0

    def next_bar(self, t_s: float) -> float:
        """The time of the first bar line at or after t_s (seconds)."""
        with self._lock:  # one tempo for both conversions
            bar = math.ceil(self._beat(t_s) / self.beats_per_bar - 1e-9) * self.beats_per_bar
            return self._time(bar)


class MidiClockIn:
    """Follows incoming MIDI clock: 24 pulses per beat, start/stop/continue.

    `pulse(t_s)` is called for every 0xF8 with its arrival time; the tempo is
    the mean pulse interval over the last beat (24 pulses), which smooths the
    jitter of USB and JACK delivery. Returns the new bpm when it moved by more
    than `min_change_bpm`, else None, so the caller re-anchors only on change.
    """

    PPQ = 24

    def __init__(self, min_change_bpm: float = 0.5) -> None:
        self.min_change_bpm = min_change_bpm
        self.running = False
        self.bpm: float | None = None
        self._times: deque[float] = deque(maxlen=self.PPQ + 1)

    def start(self) -> None:
        self.running = True
        self._times.clear()

    def stop(self) -> None:
        self.running = False

    def pulse(self, t_s: float) -> float | None:
        self._times.append(t_s)
        if len(self._times) < 7:  # a quarter beat of pulses before trusting it
            return None
        span = self._times[-1] - self._times[0]
        if span <= 0:
            return None
        bpm = 60.0 * (len(self._times) - 1) / (self.PPQ * span)
        if self.bpm is None or abs(bpm - self.bpm) >= self.min_change_bpm:
            self.bpm = bpm
            return bpm
        return None
