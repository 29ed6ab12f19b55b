"""The agent's voice: the model sampled into timed messages, one generation at a time.

`Voice` samples the stream's model (`stream.py`) for the generation the jam
hands it, at most `lookahead_ms` ahead of the clock, and queues what it
plays on the scheduler. Each sampled token keeps a snapshot, so the jam can
roll back what is not yet due (`rewind`). An answer's first onset (a chord,
maybe) is held until it is complete and then timed from when it is
(`begin`); rests sampled before it are fed but take no time. It closes the
agent's notes at the generation's end, at the note-length limit (the jam's
`Limits` say which and when) and when the player takes a pitch it holds.
On the engine thread, with the jam.
"""
from __future__ import annotations

from collections import deque

import mido

from agent.live.jam.phrases import Generation
from agent.live.jam.shaping import Shaping
from agent.live.jam.turn import align_of, place

MAX_TOKENS_PER_TICK = 64  # a model that emits notes without ever moving time cannot hog the thread
LATE_FIRST_BEATS = 0.25  # an answer composed this late (beats) still keeps its grid point; its first note goes out late


class Voice:
    def __init__(self, stream, scheduler, limits, controls, clock, tempo, *, lead_s: float, channel: int) -> None:
        self.stream = stream  # the model is reached through it: stream.predictor
        self.scheduler = scheduler
        self.limits = limits
        self.controls = controls
        self.clock = clock
        self.tempo = tempo
        self.lead_s = lead_s  # seconds between sampling a note and its earliest due time
        self.channel = channel  # 0-15
        self.vocab = stream.vocab
        self.shaping = Shaping(stream.vocab)
        self._floor = float("-inf")  # no agent message goes out before the answer's (late) first note
        self.trusted = lambda: True  # whether bars and phrase slots may be counted on the beat (Jam.beat_trusted)

    def lookahead_s(self) -> float:
        return self.controls.cfg.jam.lookahead_ms / 1000.0

    def sampling(self, lead: bool = False, grid: int | None = None):
        """The live sampling controls shaped for the stream (shaping.py): no piece boundaries;
        `lead` no rest before an answer's first note; `grid` ticks off the player's subdivision grid
        (eighths, or thirds where the tempo map's division is 3)."""
        step = self.shaping.grid_step(self.tempo.division)
        return self.shaping.controls(self.controls.sampling, self.controls.cfg.jam.grid_strength, lead, grid, step)

    def place(self, t_s: float, phrase) -> float:
        """An answer's first-note time (seconds): the first grid point (jam.align) at or after t_s; a
        phrase slot counts from the call `phrase`'s first beat (turn.py `place`)."""
        return place(self.tempo, t_s, align_of(self.controls.cfg.jam), phrase, self.trusted())

    def _keeps_grid(self) -> bool:
        """The agent keeps to the player's grid: jam.grid_strength > 0 and an alignment (jam.align not "none")."""
        return align_of(self.controls.cfg.jam) != "none" and self.controls.cfg.jam.grid_strength > 0

    def _grid_offset(self, g: Generation) -> int | None:
        """Ticks the stream's frontier is past the player's subdivision grid, in straight ticks (a swung
        player's eighths are straight in the stream); None: no grid to keep."""
        if not self._keeps_grid():
            return None
        s = self.stream
        return self.shaping.ticks_past(s.beat_of(s.enc.tick), self.tempo.division) if g.started else 0

    def _send(self, due_s: float, pitch: int, velocity: int | None = None) -> None:
        """Queue a note-on (with `velocity`) or a note-off (None) on the agent's channel, due at due_s (seconds)."""
        if velocity is None:
            msg = mido.Message("note_off", channel=self.channel, note=pitch)
        else:
            msg = mido.Message("note_on", channel=self.channel, note=pitch, velocity=velocity)
        self.scheduler.schedule(max(due_s, self._floor), msg)

    # -- sampling ---------------------------------------------------------------
    def generate(self, g: Generation, now: float) -> bool:
        """Sample up to the lookahead horizon (seconds past `now`). False: it may not sample yet."""
        s = self.stream
        while len(g.snaps) > 1 and g.snaps[1][0] is not None and g.snaps[1][0] <= now:
            g.snaps.popleft()  # already due: can never be rolled back to (the last one may be a running rest)
        horizon = now + self.lookahead_s()
        if self.clock.now() < g.pause_until:
            return False
        for _ in range(MAX_TOKENS_PER_TICK):
            if g.done or (g.started and s.front_s() > horizon):
                break
            if g.started and self._keeps_grid():
                s.onto_grid(self.tempo.division)  # an anchor between the player's ticks moves onto the grid
            due = s.front_s() if g.started else None
            g.snaps.append((due, s.predictor.snapshot(), s.frontier()))
            lead = not g.started and not g.opening.onset
            self._emit(g, s.predictor.sample(self.sampling(lead, None if lead else self._grid_offset(g))), now)
            if g.pause_until and self.clock.now() < g.pause_until:
                break  # the answer's first note (chord) is queued: let it go out before sampling on
        return True

    def begin(self, g: Generation, now: float) -> None:
        """The answer's first note: fix its time and re-anchor the stream there.

        Composed ahead (prepare_ms), it is due at the planned grid point (a
        phrase slot: the next is a bar on). If composing ran past that by up
        to LATE_FIRST_BEATS (a loaded machine), the answer keeps the grid point
        and only its first note goes out late, as soon as it can; later, the
        answer moves to the next grid point lead_s after now."""
        o = g.opening
        t0, due = o.target_t, self.clock.now() + self.lead_s
        if t0 is None or due > t0 + LATE_FIRST_BEATS * self.tempo.seconds_per_beat():
            t0 = self.place(due, g.phrase)
        due = max(t0, due)
        self._floor = due  # a late first note: what the answer plays after it on the grid waits for it (order kept)
        g.started, g.t0 = True, t0
        self.stream.anchor_at(t0, loose=False)  # a grid point (place): the rhythm sampled from it stays
        g.end_tick = self.stream.enc.tick + g.length_ticks
        g.snaps = deque((t0, s, f) for _, s, f in g.snaps)
        for pitch, vel in o.onset:
            self.limits.sent(pitch, self.stream.enc.tick, due)
            self._send(due, pitch, vel)
        if o.onset:
            g.first_note_t = due

    def _emit(self, g: Generation, token_id: int, now: float) -> None:
        tok = self.vocab.token(token_id)
        if tok.kind == "SHIFT":
            self._shift(g, tok.value, now)
        elif tok.kind == "VEL":
            self.stream.enc.velocity_bin = tok.value
        elif tok.kind == "NOTE_ON":
            self._note_on(g, tok.value)
        elif tok.kind == "NOTE_OFF":
            s, v = self.stream, tok.value
            if not g.started and v in s.agent_sounding:  # a zero-length note in the held onset
                g.opening.onset = [(p, x) for p, x in g.opening.onset if p != v]
                s.agent_sounding.discard(v)
            elif v in s.agent_sounding:
                s.agent_sounding.discard(v)
                self._send(s.front_s(), v)
        elif g.kind == "call":  # END (or START) despite the bias: the answer ends here
            if not g.started and g.opening.onset:
                self.begin(g, now)
            if g.started:
                self.finish(g)

    def _shift(self, g: Generation, ticks: int, now: float) -> None:
        enc = self.stream.enc
        if not g.started and g.opening.onset:
            self.begin(g, now)  # the first onset is complete: it goes out now
        if not g.started:
            g.opening.lead_ticks += ticks
            enc.tick += ticks
            if g.opening.lead_ticks >= self.tempo.beats_per_bar * self.vocab.resolution:
                self.begin(g, now)  # a bar of rest sampled: start the clock anyway
            return
        if g.opening is not None and g.first_note_t is not None and not g.pause_until:
            # the first onset is queued: sampling waits until it is sent, as on a
            # busy machine the sampling thread would delay that send (GIL, CPU)
            g.opening.pause_until = g.first_note_t + 0.0005
        if g.end_tick is not None and enc.tick + ticks >= g.end_tick:
            enc.tick = g.end_tick
            self.finish(g)
        else:
            enc.tick += ticks
            self.limit_notes(g, now)

    def _note_on(self, g: Generation, pitch: int) -> None:
        s = self.stream
        vb = s.enc.velocity_bin
        vel = self.vocab.bin_velocity(vb) if vb is not None else 64
        s.agent_sounding.add(pitch)
        g.notes += 1
        if not g.started:
            # an answer's first onset (a chord, maybe) is held until complete, then
            # timed from when it is: notes sampled after t0 would be late
            g.opening.onset = [(p, x) for p, x in g.opening.onset if p != pitch] + [(pitch, vel)]
            return
        due = s.front_s()
        self.limits.sent(pitch, s.enc.tick, due)
        self._send(due, pitch, vel)
        if g.first_note_t is None:
            g.first_note_t = due

    # -- ending notes -------------------------------------------------------------
    def close_notes(self, at_s: float | None) -> None:
        """End the agent's sounding notes in the stream; queue their note-offs at at_s (seconds;
        None: a cut already sent them)."""
        if at_s is not None:  # all queued first: feeding the model takes time
            for p in sorted(self.stream.agent_sounding):
                self._send(at_s, p)
        self.stream.end_agent_notes()

    def finish(self, g: Generation, not_before_s: float = 0.0) -> None:
        """The generation ends at the stream's frontier (no sooner than not_before_s), its notes with it."""
        g.ended = "finished"
        g.end_t = max(self.stream.front_s(), not_before_s)
        self.close_notes(g.end_t)

    def limit_notes(self, g: Generation | None, now: float) -> float:
        """Close every agent note held max_note_beats or longer, at that length (limits.py).

        At a high temperature the state drifts and may never emit a note's
        NOTE_OFF (and once max_polyphony notes sound, no new note may start):
        the NOTE_OFF is fed here as if the model had sampled it. Returns when
        the next agent note reaches the limit (seconds; inf: none)."""
        s = self.stream
        if g is None or not g.started or not s.agent_sounding:
            return float("inf")
        due, next_s = self.limits.overlong(s.agent_sounding, s.enc.tick, max(s.front_s(), now), s.time_of)
        s.end_agent_notes([p for p, _ in due])
        for p, t in due:
            self._send(t, p)
        return next_s

    def yield_pitch(self, pitch: int, tick: int, now: float) -> None:
        """The player plays (or releases) a pitch the agent holds: the agent's note ends here.

        The model has one stream with one voice per pitch: once it has the
        player's NOTE_OFF it masks its own, so the agent's note would sound
        until the run ends. Its note-off is due no sooner than any queued
        message, so it cannot overtake the note-on it closes."""
        s = self.stream
        s.feed(s.enc.advance(tick))
        if pitch not in s.enc.sounding:  # a note-on the encoder will not close first
            s.end_agent_notes([pitch])
        s.agent_sounding.discard(pitch)
        self._send(max(s.time_of(tick), now), pitch)

    # -- rollback -----------------------------------------------------------------
    def rewind(self, g: Generation, t_s: float) -> bool:
        """Roll back to the first token due after t_s (seconds) and drop what was queued after it.

        If the token before that is a rest still running at t_s, roll back into
        the rest instead: it sent nothing, and the player's event then lands
        at its own tick, part-way through it. False: nothing to roll back."""
        snaps = g.snaps
        self.scheduler.cancel_after(t_s)
        idx = next((i for i, (due, _, _) in enumerate(snaps) if due is None or due > t_s), len(snaps))
        if idx > 0:
            prev_tick = snaps[idx - 1][2][0]
            next_tick, next_t = ((snaps[idx][2][0], snaps[idx][0]) if idx < len(snaps)
                                 else (self.stream.enc.tick, self.stream.front_s()))
            if next_tick > prev_tick and (next_t is None or next_t > t_s):
                idx -= 1
        if idx == len(snaps):
            return False
        _, snap, frontier = snaps[idx]
        for _ in range(len(snaps) - idx):
            snaps.pop()
        self.stream.restore(snap, frontier)
        self.limits.unsent_after(t_s)
        g.ended, g.end_t = None, None
        return True
