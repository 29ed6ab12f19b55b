"""The one token stream the model hears, and its clock.

The player's notes and the agent's own output go into the model in time
order, so the state always holds the whole conversation. `Stream` owns the
encoder (the stream's tick, velocity bin, the player's sounding notes), the
agent's sounding pitches and the anchor that maps stream ticks to seconds:
(tick, time_s, seconds per tick). The anchor moves on a tempo change and at
the start of an answer. A rollback restores all of it with the predictor's
state (`frontier` / `restore`). It also keeps the player's recent note-ons
apart from the agent's (`player_pitches`, never rolled back: the player's
notes are never undone): the sampler's key estimate listens to those, and
its polyphony cap counts `agent_sounding` (the sampler's `parts`).
"""
from __future__ import annotations

from collections import deque

from agent.music.tokens import StreamEncoder, Vocab

PLAYER_PITCHES = 256  # the player's recent note-ons kept (the key heard is estimated from them)
MAX_GAP_BEATS = 4.0  # longer pauses are fed as this much rest (the model never saw minutes of silence)


class Stream:
    def __init__(self, predictor, vocab: Vocab, tempo, now_s: float) -> None:
        self.predictor = predictor
        self.vocab = vocab
        self.tempo = tempo
        self.enc = StreamEncoder(vocab)
        self.agent_sounding: set[int] = set()  # the agent's pitches the model has heard start and not end
        self.player_pitches: deque[int] = deque(maxlen=PLAYER_PITCHES)  # the player's note-ons, oldest first
        self.anchor = (0, now_s, self.spt())  # (tick, time_s, seconds per tick)

    # -- time -----------------------------------------------------------------
    def spt(self) -> float:
        """Seconds per stream tick at the tempo now."""
        return self.tempo.seconds_per_beat() / self.vocab.resolution

    def time_of(self, tick: int) -> float:
        """A stream tick -> seconds."""
        a_tick, a_t, spt = self.anchor
        return a_t + (tick - a_tick) * spt

    def tick_at(self, t_s: float) -> int:
        """Seconds -> the nearest stream tick."""
        a_tick, a_t, spt = self.anchor
        return a_tick + round((t_s - a_t) / spt)

    def front_s(self) -> float:
        """When the stream's frontier (its tick now) is due, seconds."""
        return self.time_of(self.enc.tick)

    def first_heard_alike(self, t_s: float) -> float:
        """A time (seconds) for a first phrase: the tick nearest t_s, but past MAX_GAP_BEATS from the
        stream's start, so the model hears the same capped rest before it however long the engine took
        to start (the scripted player of `antiphon demo` starts there)."""
        return self.time_of(max(round(MAX_GAP_BEATS * self.vocab.resolution) + 1, self.tick_at(t_s)))

    def anchor_at(self, t_s: float) -> None:
        """The frontier is due at t_s (seconds); the ticks after it follow at the tempo now."""
        self.anchor = (self.enc.tick, t_s, self.spt())

    def follow_tempo(self) -> None:
        """The tempo changed: the ticks ahead run at the new tempo, the frontier keeps its time."""
        if abs(self.anchor[2] - self.spt()) > 1e-12:
            self.anchor_at(self.front_s())

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
