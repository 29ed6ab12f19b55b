"""The recorded session as notes on the score's grid: notes paired from on/off events, and the
followed beat that puts the score's bar lines where the player's bars were.

`pair_notes` turns a part's (t_s, pitch, velocity) events into `TimedNote`s; `on_grid` puts
them on a grid of ticks (a TickMap, or a `FollowedBeats.grid`). `FollowedBeats` samples the
engine's tempo map as it was followed (agent/session/recorder.py feeds it), so the MusicXML
and the piano roll draw their bar lines on the beat the jam kept, restarts included.
"""
from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

from agent.music.tempomap import TickMap


@dataclass(frozen=True)
class TimedNote:
    """One recorded note: seconds from the recording's start."""

    pitch: int
    start_s: float
    end_s: float
    velocity: int



class FollowedBeats:
    """The engine's tempo map as it was followed: its beat sampled at clock times (at attach, at
    each tempo change, each time the recorder takes its inbox), beats between samples in a straight
    line, and its bar line (`bar_beat`: the player's downbeat) there. A restart (MIDI clock start:
    beat 0 again) goes on from the next whole bar. `grid(t0, ...)` gives the score's grid: beat 0 is
    the followed bar line at or before the recording's time 0."""

    def __init__(self, beats_per_bar: int) -> None:
        self.beats_per_bar = beats_per_bar
        self.times: list[float] = []  # clock seconds, rising
        self.beats: list[float] = []  # the map's beat there, made monotonic across restarts
        self.bpms: list[float] = []  # the map's tempo there (beyond the samples, beats go on at it)
        self.bar_beats: list[float] = []  # the beat number of a bar line there (restarts counted in)
        self._offset = 0.0

    def add(self, t_s: float, beat: float, bpm: float, bar_beat: float = 0.0) -> None:
        if self.times and t_s <= self.times[-1]:
            return
        beat += self._offset
        if self.beats:
            went_on = self.beats[-1] + (t_s - self.times[-1]) * self.bpms[-1] / 60
            if beat < went_on - 1.0:  # the map began again at beat 0: on from the next whole bar
                bars = math.ceil((went_on - beat) / self.beats_per_bar - 1e-9)
                self._offset += bars * self.beats_per_bar
                beat += bars * self.beats_per_bar
            elif beat <= self.beats[-1]:  # the follower moved the beat back a little (at most half a
                return  # beat): the samples either side of it carry the move

        self.times.append(t_s)
        self.beats.append(beat)
        self.bpms.append(bpm)
        self.bar_beats.append(bar_beat + self._offset)

    def beat(self, t_s: float) -> float:
        ts, bs = self.times, self.beats
        if t_s <= ts[0]:
            return bs[0] + (t_s - ts[0]) * self.bpms[0] / 60
        if t_s >= ts[-1]:
            return bs[-1] + (t_s - ts[-1]) * self.bpms[-1] / 60
        i = bisect.bisect_right(ts, t_s) - 1
        return bs[i] + (t_s - ts[i]) * (bs[i + 1] - bs[i]) / (ts[i + 1] - ts[i])

    def bar_before(self, t_s: float) -> float:
        """The beat of the followed bar line at or before t_s (the bar line of the sample before it)."""
        i = max(0, bisect.bisect_right(self.times, t_s) - 1)
        bar, bpb = self.bar_beats[i], self.beats_per_bar
        return bar + math.floor((self.beat(t_s) - bar) / bpb + 1e-9) * bpb

    def time(self, beat: float) -> float:
        """The clock time (seconds) of a followed beat: beat() inverted (the beats only rise)."""
        ts, bs = self.times, self.beats
        if beat <= bs[0]:
            return ts[0] - (bs[0] - beat) * 60 / self.bpms[0]
        if beat >= bs[-1]:
            return ts[-1] + (beat - bs[-1]) * 60 / self.bpms[-1]
        i = bisect.bisect_right(bs, beat) - 1
        return ts[i] + (beat - bs[i]) * (ts[i + 1] - ts[i]) / (bs[i + 1] - bs[i])

    def grid(self, t0: float, ticks_per_beat: int) -> "_Grid":
        return _Grid(self, t0, self.bar_before(t0), ticks_per_beat)


@dataclass(frozen=True)
class _Grid:
    """Recording seconds -> ticks of the followed beat (what on_grid and the score need of a TickMap)."""

    beats: FollowedBeats
    t0: float
    origin: float
    tpb: int

    def tick(self, t_s: float) -> int:
        return round((self.beats.beat(self.t0 + t_s) - self.origin) * self.tpb)



def pair_notes(events: list[tuple[float, int, int]], end_s: float) -> list[TimedNote]:
    """(t_s, pitch, velocity) on/off events -> notes. A re-struck pitch ends the note it sounds;
    a note-off with nothing sounding is ignored; notes still sounding end at end_s."""
    sounding: dict[int, tuple[float, int]] = {}
    out = []
    for t, pitch, vel in events:
        if pitch in sounding:
            start, v = sounding.pop(pitch)
            out.append(TimedNote(pitch, start, t, v))
        if vel > 0:
            sounding[pitch] = (t, vel)
    out += [TimedNote(p, s, max(s, end_s), v) for p, (s, v) in sounding.items()]
    return sorted(out, key=lambda n: (n.start_s, n.pitch))


def on_grid(notes: list[TimedNote], tm: TickMap) -> list[tuple[int, int, int, int]]:
    """Notes -> (pitch, start_tick, end_tick, velocity), sorted. A note lasts at least one tick
    (one of no length would never sound); a pitch struck again before its note ends on the grid
    ends it there, and a note struck again within its own first tick is dropped (one sound)."""
    out: list = []
    last: dict[int, int] = {}
    for n in sorted(notes, key=lambda n: (n.start_s, n.pitch)):
        a = tm.tick(n.start_s)
        b = max(a + 1, tm.tick(n.end_s))
        i = last.get(n.pitch)
        if i is not None and out[i][2] > a:
            p, pa, _, pv = out[i]
            out[i] = (p, pa, a, pv) if pa < a else None
        last[n.pitch] = len(out)
        out.append((n.pitch, a, b, n.velocity))
    return sorted((x for x in out if x is not None), key=lambda x: (x[1], x[0]))

