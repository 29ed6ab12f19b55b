"""MIDI clock in: the tempo of incoming 0xF8 pulses, the sender's transport and its song position.

The listener hands each clock message here with its arrival time (seconds on
the engine clock's scale); `ClockSync` keeps the engine's tempo map on it
when `timing.source = "clock"`.

MIDI's conventions, as the receiver must read them: Start (0xFA) plays from
the song's beginning, and the first pulse after it is beat 0; Continue
(0xFB) plays from where the song position stands (where it stopped, or where
a Song Position Pointer put it), its first pulse being that position; Stop
(0xFC) keeps the position; Song Position Pointer (0xF2, 14 bits) counts
sixteenths (6 pulses each) from the beginning, which is a bar line.
"""
from __future__ import annotations

from collections import deque
from typing import Callable


class MidiClockIn:
    """Follows incoming MIDI clock: 24 pulses per beat, the transport and the song position.

    `pulse(t_s)` is called for every 0xF8 with its arrival time; the tempo is
    the mean pulse interval over the last beat (24 pulses), which smooths the
    jitter of USB and JACK delivery. Returns the new bpm when it moved by more
    than `min_change_bpm`, else None, so the caller re-anchors only on change.
    While running, each pulse also moves the song position on by one pulse
    (`beat`: the song position of the last pulse, in beats; None when stopped).
    """

    PPQ = 24
    PER_SIXTEENTH = 6  # pulses

    def __init__(self, min_change_bpm: float = 0.5) -> None:
        self.min_change_bpm = min_change_bpm
        self.running = False
        self.bpm: float | None = None
        self.clocks = 0  # the song position, in pulses from the beginning: where the next pulse lands
        self.beat: float | None = None  # the song position (beats) of the last pulse while running
        self._times: deque[float] = deque(maxlen=self.PPQ + 1)

    def start(self) -> None:
        """Play from the beginning: the next pulse is beat 0."""
        self.clocks = 0
        self.resume()

    def resume(self) -> None:
        """Continue: play on from the song position."""
        self.running = True
        self.beat = None
        self._times.clear()  # an interval across the stop is not the tempo

    def stop(self) -> None:
        self.running = False
        self.beat = None

    def song_position(self, sixteenths: int) -> None:
        """Song Position Pointer: sixteenths from the beginning (0..16383)."""
        self.clocks = int(sixteenths) * self.PER_SIXTEENTH

    def transport(self, kind: str, sixteenths: int = 0) -> None:
        """A transport message by mido's name: start, continue, stop or songpos (with its position)."""
        {"start": self.start, "continue": self.resume, "stop": self.stop,
         "songpos": lambda: self.song_position(sixteenths)}[kind]()

    @property
    def position_beats(self) -> float:
        """Where the next pulse lands in the song, beats (quarter notes) from the beginning."""
        return self.clocks / self.PPQ

    def pulse(self, t_s: float) -> float | None:
        if self.running:
            self.beat = self.clocks / self.PPQ
            self.clocks += 1
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


class ClockSync:
    """Keeps a tempo map on incoming MIDI clock, while `follows()` says so (timing.source = "clock").

    - tempo: each new estimate sets the map's tempo (the beat stays continuous);
    - start: beat 0 now, a bar line there; continue: the song position's beat now;
      each is placed again, exactly, at the first pulse after it (that pulse is
      the position, by MIDI's rule);
    - every pulse on a whole beat puts the map's beat back on the clock's count,
      so a tempo estimate a little off never drifts the grid; a map more than a
      quarter beat off (the source switched to clock mid-song) is placed there;
    - bars: song position 0 is a bar line, so the map's bar lines are whole
      multiples of `beats_per_bar` from the beginning: the DAW's bars;
    - stop: `on_stop(t_s)` (the engine cuts the agent's notes).

    `out` (a clockout.ClockOut, or None) is told of each jump (start, continue: a
    song position sent on) and each stop, so whatever listens to Antiphon's clock
    follows the DAW through it. Runs on the listener thread.
    """

    def __init__(self, tempo, follows: Callable[[], bool], clock_in: MidiClockIn | None = None,
                 on_stop: Callable[[float], None] | None = None) -> None:
        self.tempo = tempo
        self.follows = follows
        self.clock_in = clock_in or MidiClockIn()
        self.on_stop = on_stop
        self.out = None
        self._place = False  # start/continue heard: place the map at the next pulse

    def tempo_in(self, bpm: float, t_s: float) -> None:
        if self.follows():
            self.tempo.set_bpm(min(max(bpm, 20.0), 400.0), t_s)

    def transport(self, kind: str, t_s: float) -> None:
        """After the clock in has taken the message (the listener does that, whatever the source)."""
        if not self.follows() or kind == "songpos":
            return  # a song position takes effect at continue
        if kind == "stop":
            if self.on_stop is not None:
                self.on_stop(t_s)
            if self.out is not None:
                self.out.halt()
            return
        self._locate(self.clock_in.position_beats, t_s)  # at once; exactly at the first pulse
        self._place = True

    def pulse(self, beat: float, t_s: float) -> None:
        """A pulse while the sender runs: `beat` is its song position (MidiClockIn.beat)."""
        if not self.follows():
            return
        if self._place:
            self._place = False
            self._locate(beat, t_s)
        elif beat == int(beat):
            if abs(self.tempo.beat(t_s) - beat) > 0.25:
                self._locate(beat, t_s)
            else:
                self.tempo.align(self.tempo.bpm, t_s)  # the whole beat nearest: the clock's

    def _locate(self, beat: float, t_s: float) -> None:
        self.tempo.locate(beat, t_s, bar_beat=0.0)
        if self.out is not None:
            self.out.jump()
