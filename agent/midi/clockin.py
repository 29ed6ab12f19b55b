"""MIDI clock in: the tempo of incoming 0xF8 pulses, and whether the sender is running.

The listener hands each clock message here with its arrival time and passes
a new tempo, and start/stop/continue, on to the engine (which re-anchors or
restarts its tempo map). Times are seconds on the engine clock's scale.
"""
from __future__ import annotations

from collections import deque


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
