"""The one token stream the model hears, and its clock.

The player's notes and the agent's own output go into the model in time
order, so the state always holds the whole conversation. `Stream` owns the
encoder (the stream's tick, velocity bin, the player's sounding notes), the
agent's sounding pitches and the anchor that maps stream ticks to seconds:
(tick, time_s, seconds per tick, the player's beat at time_s, swing). It is
the one place ticks and seconds meet. Ticks are straight: with a swung player
(the tempo map's swing, music/feel.py) the player's off-beats are de-swung
onto them when fed and the agent's are swung when timed, a warp within each
of the player's beats, so the model hears and plays straight eighths as it
learnt them. The anchor moves on a change of tempo, phase or swing (the
frontier keeps its time) and at the start of an answer. A rollback restores
all of it with the predictor's state (`frontier` / `restore`). It also keeps the player's recent note-ons
apart from the agent's (`player_pitches`, never rolled back: the player's
notes are never undone): the sampler's key estimate listens to those, and
its polyphony cap counts `agent_sounding` (the sampler's `parts`).
"""
from __future__ import annotations

import math
from collections import deque
from typing import NamedTuple

from agent.music.feel import played_swing, unwarp, warp
from agent.music.tokens import StreamEncoder, Vocab

PLAYER_PITCHES = 256  # the player's recent note-ons kept (the key heard is estimated from them)
GRID_SLACK_TICKS = 0.25  # a frontier this close to a point of the player's grid (or tick lattice) stays put
MAX_GAP_BEATS = 4.0  # longer pauses are fed as this much rest (the model never saw minutes of silence)


class Anchor(NamedTuple):
    """Stream tick `tick` is due at `t_s` (seconds), the player's beat count there being `beat`; ticks run
    `spt` seconds apart on the straight beat, swung at `swing` (1.0 straight). `loose`: set at an arbitrary
    time (a rollback guard, a solo's start), not yet moved onto the player's grid (`Stream.onto_grid`)."""

    tick: int
    t_s: float
    spt: float
    beat: float
    swing: float
    loose: bool


class Stream:
    def __init__(self, predictor, vocab: Vocab, tempo, now_s: float) -> None:
        self.predictor = predictor
        self.vocab = vocab
        self.tempo = tempo
        self.enc = StreamEncoder(vocab)
        self.agent_sounding: set[int] = set()  # the agent's pitches the model has heard start and not end
        self.player_pitches: deque[int] = deque(maxlen=PLAYER_PITCHES)  # the player's note-ons, oldest first
        self.anchor = Anchor(0, now_s, self.spt(), tempo.beat(now_s), self.swing(), True)

    # -- time -----------------------------------------------------------------
    def spt(self) -> float:
        """Seconds per stream tick at the tempo now."""
        return self.tempo.seconds_per_beat() / self.vocab.resolution

    def swing(self) -> float:
        """The swing ratio the agent plays now (1.0 straight): the player's, as the tempo map follows it."""
        return played_swing(self.tempo.division, self.tempo.swing)

    def time_of(self, tick: int) -> float:
        """A stream tick -> seconds (its straight beat position swung onto the player's beat)."""
        a = self.anchor
        if a.swing == 1.0:
            return a.t_s + (tick - a.tick) * a.spt
        straight = unwarp(a.beat, a.swing) + (tick - a.tick) / self.vocab.resolution
        return a.t_s + (warp(straight, a.swing) - a.beat) * a.spt * self.vocab.resolution

    def tick_at(self, t_s: float) -> int:
        """Seconds -> the nearest stream tick (the player's beat position de-swung onto straight ticks)."""
        a = self.anchor
        if a.swing == 1.0:
            return a.tick + round((t_s - a.t_s) / a.spt)
        res = self.vocab.resolution
        beat = a.beat + (t_s - a.t_s) / (a.spt * res)
        return a.tick + round((unwarp(beat, a.swing) - unwarp(a.beat, a.swing)) * res)

    def beat_of(self, tick: int) -> float:
        """A stream tick -> its straight beat position in the player's beat count (the grid the agent keeps)."""
        a = self.anchor
        return unwarp(a.beat, a.swing) + (tick - a.tick) / self.vocab.resolution

    def front_s(self) -> float:
        """When the stream's frontier (its tick now) is due, seconds."""
        return self.time_of(self.enc.tick)

    def first_heard_alike(self, t_s: float) -> float:
        """A time (seconds) for a first phrase: the tick nearest t_s, but past MAX_GAP_BEATS from the
        stream's start, so the model hears the same capped rest before it however long the engine took
        to start (the scripted player of `antiphon demo` starts there)."""
        return self.time_of(max(round(MAX_GAP_BEATS * self.vocab.resolution) + 1, self.tick_at(t_s)))

    def anchor_at(self, t_s: float, loose: bool = True) -> None:
        """The frontier is due at t_s (seconds); the ticks after it follow at the tempo, phase and swing now.
        `loose`: t_s is any time, not a tick of the player's (onto_grid moves it onto the grid)."""
        self.anchor = Anchor(self.enc.tick, t_s, self.spt(), self.tempo.beat(t_s), self.swing(), loose)

    def onto_grid(self, division: int) -> None:
        """Keep the frontier on the player's time: a loose anchor (accompany's rollback guard, a solo's
        start) moves forward to the next point of the player's grid (`division` a straight beat), where
        the agent can next come in on it; a frontier a change of tempo or phase left between two ticks
        moves forward to the next tick (the model's own rhythm, off-grid sixteenths included, goes on).
        Within GRID_SLACK_TICKS of such a point it stays where it is."""
        res, swing = self.vocab.resolution, self.swing()
        step = res // division if self.anchor.loose else 1
        ticks = unwarp(self.tempo.beat(self.front_s()), swing) * res
        if abs(ticks - round(ticks / step) * step) > GRID_SLACK_TICKS:
            self.anchor_at(self.tempo.time(warp(math.ceil(ticks / step) * step / res, swing)), loose=False)
        elif self.anchor.loose:
            self.anchor = self.anchor._replace(loose=False)

    def follow_tempo(self) -> None:
        """The tempo, the beat's phase or the swing changed: the ticks ahead follow, the frontier keeps its time."""
        a, front = self.anchor, self.front_s()
        phase = a.beat + (front - a.t_s) / (a.spt * self.vocab.resolution) - self.tempo.beat(front)
        if abs(a.spt - self.spt()) > 1e-12 or a.swing != self.swing() or abs(phase) > 1e-6:
            self.anchor_at(front, loose=a.loose)

    # -- feeding --------------------------------------------------------------
    def feed(self, ids) -> None:
        for i in ids:
            self.predictor.feed(i)

    def catch_up(self, t_s: float) -> None:
        """Feed the rest from the stream's tick up to t_s (seconds); a longer pause than
        MAX_GAP_BEATS is fed as that much rest and the anchor skips the remainder."""
        target = self.tick_at(t_s)
        cap = self.enc.tick + round(MAX_GAP_BEATS * self.vocab.resolution)
        if target > cap:
            self.feed(self.enc.advance(cap))
            self.anchor_at(t_s)
        else:
            self.feed(self.enc.advance(target))

    def end_agent_notes(self, pitches=None) -> list[int]:
        """Feed NOTE_OFF for the agent's sounding `pitches` (None: all), as if it had sampled them.
        Returns the pitches ended, ascending; queuing their note-offs is the caller's."""
        ended = sorted(self.agent_sounding if pitches is None else self.agent_sounding & set(pitches))
        self.agent_sounding.difference_update(ended)
        for p in ended:
            self.predictor.feed(self.vocab.note_off(p))
        return ended

    # -- rollback -------------------------------------------------------------
    def frontier(self) -> tuple:
        """What a rollback restores beside the predictor's snapshot: (tick, velocity bin, agent's sounding, anchor)."""
        return (self.enc.tick, self.enc.velocity_bin, frozenset(self.agent_sounding), self.anchor)

    def restore(self, snap, frontier: tuple) -> None:
        """Back to a predictor snapshot and the frontier taken with it (an answer withdrawn, a rollback)."""
        self.predictor.rollback(snap)
        tick, vel, sounding, self.anchor = frontier
        self.enc.tick, self.enc.velocity_bin = tick, vel
        self.agent_sounding = set(sounding)
