"""The interaction policy: call-and-response, accompany, solo.

`Jam` runs on the engine (listener) thread, the one thread that owns the
predictor. The listener calls `player_note` for every note the player plays
and `tick(now)` whenever it wakes; `tick` returns the time it wants to be
woken next. Time comes from the clock passed in, so tests drive it by hand.

One token stream: the player's notes and the agent's own output go into the
model in time order, so the state always holds the whole conversation.
Stream ticks map to seconds through one anchor (tick, time, seconds per
tick); the anchor moves on a tempo change and at the start of an answer.

Time is the player's: with `timing.source = "player"` every player note-on
goes to the tempo follower (tempo.py), which keeps the tempo map on the
player's beat; the stream's ticks, and so the answer, run at that tempo.

Modes:
- call: when the turn policy (turn.py: `jam.turn`) says the phrase has
  ended (no key or pedal held), or the end-of-phrase CC is pressed, the
  agent answers. Its first note lands on the next grid point
  (`jam.align`: beat, bar, none) at least `lead_ms` after it was sampled.
  Rests it samples before its first note are fed but take no time. It
  lasts `response_bars`, or as long as the call. A player note-on during
  the answer stops it at once (barge-in), closing its notes; one before, or
  within WENT_ON_BEATS of, its first note withdraws it: the phrase goes on.
- accompany: the agent plays while the player plays, sampling at most
  `lookahead_ms` ahead. Each sampled token keeps a snapshot; a player event
  at time t rolls the predictor back to the first token not yet due, drops
  the queued messages after t, feeds the player's tokens and resamples.
  Notes already sent stay sent (the scheduler still owns them). The agent
  stops after the silence threshold.
- solo: plays until stopped; player input is folded in as in accompany.
"""
from __future__ import annotations

import logging
import time
from collections import deque

import mido

from agent.live.jam.phrases import Generation, Opening, Phrase, record
from agent.music.tokens import StreamEncoder, Vocab
from agent.live.jam.limits import Guards
from agent.live.jam.shaping import Shaping
from agent.live.jam.turn import make_turn, place

log = logging.getLogger(__name__)
MAX_TOKENS_PER_TICK = 64  # a model that emits notes without ever moving time cannot hog the thread
WENT_ON_BEATS = 0.5  # a player note this soon after the answer's first note means the phrase was not over
MAX_GAP_BEATS = 4.0  # longer pauses are fed as this much rest (the model never saw minutes of silence)
HISTORY = 10_000  # responses and resample times kept for reports (a long session must not grow without bound)


class Jam(Guards):
    def __init__(self, predictor, scheduler, tempo, controls, clock, vocab: Vocab, *,
                 lead_s: float = 0.002, channel: int = 0, report=None, follow=None) -> None:
        self.predictor = predictor
        self.scheduler = scheduler
        self.tempo = tempo
        self.controls = controls
        self.clock = clock
        self.vocab = vocab
        self.lead_s = lead_s
        self.channel = channel
        self.report = report or (lambda line: None)
        self.enc = StreamEncoder(vocab)
        self.agent_sounding: set[int] = set()
        self._anchor = (0, clock.now(), self._spt())  # (tick, time_s, seconds per tick)
        self.mode = controls.cfg.jam.mode
        self.phrase: Phrase | None = None
        self.gen: Generation | None = None
        self.phrases = 0
        self.responses: deque[dict] = deque(maxlen=HISTORY)  # the latest finished answers / runs, for reports
        self.answers = 0  # every answer / run retired (responses keeps only the latest)
        self.observers: list = []  # fn(kind, t_s, info) per finished answer: kind "phrase" then "answer"
        self.player_events = 0
        self.rollbacks = 0
        self.resample_s: deque[float] = deque(maxlen=HISTORY)
        # pitch -> [(tick, due_s)] of the agent's recent note-ons, oldest first (a rollback drops the later ones)
        self.agent_onset: dict[int, list[tuple[int, float]]] = {}
        self.player_onset: dict[int, float] = {}  # pitch -> when the player pressed it, while held
        self.notes_limited = 0  # agent notes closed at max_note_beats
        self.held_released = 0  # player notes dropped from the context after held_note_timeout_s
        self.reprimes = 0
        self._resample_from: float | None = None
        self.shaping = Shaping(vocab)
        self.follow = follow  # a tempo.TempoFollower: the player's onsets set the tempo map
        self._turn = None
        self.chord_s = 0.05  # note-ons this close are one onset (a chord)
        self.withdrawn = 0  # answers that had begun when the player went on within WENT_ON_BEATS
        self.held: str | None = None  # silenced (panic, Ctrl-C): until "play" (the player plays) or "mode"

    def hold(self, until: str | None) -> None:
        """Stay silent (after a cut) until the player plays ("play") or hold(None) ("mode")."""
        if until is not None:
            self.phrase = None
        self.held = until

    # -- time ----------------------------------------------------------------
    def _spt(self) -> float:
        return self.tempo.seconds_per_beat() / self.vocab.resolution

    def time_of(self, tick: int) -> float:
        a_tick, a_t, spt = self._anchor
        return a_t + (tick - a_tick) * spt

    def tick_at(self, t_s: float) -> int:
        a_tick, a_t, spt = self._anchor
        return a_tick + round((t_s - a_t) / spt)

    def _frontier(self):
        return (self.enc.tick, self.enc.velocity_bin, frozenset(self.agent_sounding), self._anchor)

    def silence_s(self) -> float:
        j = self.controls.cfg.jam
        return j.silence_beats * self.tempo.seconds_per_beat() if j.silence_beats > 0 else j.silence_ms / 1000.0

    def sampling(self, lead: bool = False, grid: int | None = None):
        """The live sampling controls shaped for the stream (shaping.py): no piece boundaries;
        `lead` no rest before an answer's first note; `grid` ticks off the player's eighth grid."""
        return self.shaping.controls(self.controls.sampling, self.controls.cfg.jam.grid_strength, lead, grid)

    def _grid_offset(self, g: Generation) -> int | None:
        """Ticks the stream's frontier is past the player's eighth grid (None: no grid to keep)."""
        if self._align() == "none" or self.controls.cfg.jam.grid_strength <= 0:
            return None
        return self.shaping.grid_offset(self.tempo, self.time_of(self.enc.tick)) if g.started else 0

    # -- feeding -------------------------------------------------------------
    def _feed(self, ids) -> None:
        for i in ids:
            self.predictor.feed(i)

    def _catch_up(self, t_s: float) -> None:
        """Feed the rest from the stream's tick up to t_s; a longer pause than
        MAX_GAP_BEATS is fed as that much rest and the anchor skips the remainder."""
        target = self.tick_at(t_s)
        cap = self.enc.tick + round(MAX_GAP_BEATS * self.vocab.resolution)
        if target > cap:
            self._feed(self.enc.advance(cap))
            self._anchor = (self.enc.tick, t_s, self._spt())
        else:
            self._feed(self.enc.advance(target))

    # -- player input --------------------------------------------------------
    def player_note(self, pitch: int, velocity: int, on: bool, t_s: float) -> None:
        now = self.clock.now()
        floor = now + self.controls.cfg.jam.rollback_guard_ms / 1000.0
        self.player_events += 1
        if on and self.held == "play":
            self.held = None
        if on:
            self.player_onset[pitch] = t_s
        else:
            self.player_onset.pop(pitch, None)
        if on and self.follow is not None and self.controls.cfg.timing.source == "player":
            if self.follow.onset(t_s):
                self._follow_tempo()
        g = self.gen
        if g is not None:
            if g.kind == "call":
                if on:
                    self._barge_in(now)
            elif self._rewind(max(t_s, floor)):
                # what is due sooner than the guard stays as sampled: resampling it would make it late
                self.rollbacks += 1
                self._resample_from = time.perf_counter()
        if self.phrase is None and on:
            self.phrases += 1
            self._catch_up(t_s)
            tick = max(self.enc.tick, self.tick_at(t_s))
            self.phrase = Phrase(self.phrases, t_s, tick, t_s, tick, first_beat=self.tempo.beat(t_s))
        tick = max(self.enc.tick, self.tick_at(t_s))
        if pitch in self.agent_sounding and (on or pitch in self.enc.sounding):
            self._yield_pitch(pitch, tick, now)
        ids = self.enc.note_on(pitch, velocity, tick) if on else self.enc.note_off(pitch, tick)
        self._feed(ids)
        if self.phrase is not None:
            p = self.phrase
            p.last_t, p.last_tick = t_s, tick
            p.notes += on
            if on and (not p.onsets or t_s - p.onsets[-1] >= self.chord_s):
                p.onsets.append(t_s)
                p.last_on_t = t_s
        if on and self.gen is None and self.mode == "accompany":
            self.gen = Generation("accompany", started=True, t0=now + self.lead_s)
        if self.gen is not None and self.gen.kind != "call" and self.time_of(self.enc.tick) < floor:
            # the agent goes on from here, no sooner than the guard: what it samples next
            # must not be due before it is sampled
            self._anchor = (self.enc.tick, floor, self._spt())

    def _yield_pitch(self, pitch: int, tick: int, now: float) -> None:
        """The player plays (or releases) a pitch the agent holds: the agent's note ends here.

        The model has one stream with one voice per pitch: once it has the
        player's NOTE_OFF it masks its own, so the agent's note would sound
        until the run ends. Its note-off is due no sooner than any queued
        message, so it cannot overtake the note-on it closes."""
        self._feed(self.enc.advance(tick))
        if pitch not in self.enc.sounding:  # a note-on the encoder will not close first
            self.predictor.feed(self.vocab.note_off(pitch))
        self.agent_sounding.discard(pitch)
        self.scheduler.schedule(max(self.time_of(tick), now),
                                mido.Message("note_off", channel=self.channel, note=pitch))

    def phrase_end(self, t_s: float) -> None:
        if self.phrase is not None:
            self.phrase.forced_t = t_s

    # -- the policy step -----------------------------------------------------
    def tick(self, now: float) -> float:
        """Advance the policy to `now`; returns when it wants to run next (seconds)."""
        cfg = self.controls.cfg
        if cfg.jam.mode != self.mode:
            self.cut(now)
            self.mode, self.phrase, self.held = cfg.jam.mode, None, None
        if self.held is not None:
            return now + 0.05
        self._follow_tempo()
        wake = [now + 0.05]
        if self.player_onset:
            wake.append(self._release_held(now))
        every = cfg.jam.reprime_tokens
        if every and self.predictor.steps >= every:
            self._reprime_due(every)
        g = self.gen
        if g is not None and g.done and now >= g.end_t:
            self._retire(now)
            g = None
        if self.mode == "solo" and g is None:
            self._catch_up(now)
            self._anchor = (self.enc.tick, now + self.lead_s, self._spt())
            g = self.gen = Generation("solo", started=True, t0=now + self.lead_s)
        p = self.phrase
        if p is not None and g is None and self.mode == "call" and not self.enc.sounding:
            thr = self.turn().end_time(p, now)
            target = self._place(thr + self.lead_s, p)
            prepare = min(thr, target - self.controls.cfg.jam.prepare_ms / 1000.0)
            if now >= prepare:  # compose the answer's start now; it is undone if the player plays on
                self._start_answer(p, thr, target, now)
                g = self.gen
            else:
                wake.append(prepare)
        elif p is not None and g is not None and g.kind == "accompany" and not self.enc.sounding:
            thr = p.last_t + self.silence_s()
            if now >= thr:
                self._stop_gen(now)
                self.phrase = None
            else:
                wake.append(thr)
        elif p is not None and g is None and self.mode != "call":
            self.phrase = None
        g = self.gen
        if g is not None and not g.done:
            wake.append(self._limit_notes(now))  # woken when a note reaches the limit, to close it on time
            self._generate(now)
            if not g.done:
                wake.append(max(self.time_of(self.enc.tick) - self.lookahead_s(), g.pause_until))
        if g is not None and g.done:
            wake.append(g.end_t)
        return min(wake)

    def lookahead_s(self) -> float:
        return self.controls.cfg.jam.lookahead_ms / 1000.0

    def turn(self):
        """The turn-taking policy (jam.turn), rebuilt when the setting changes."""
        name = self.controls.cfg.jam.turn
        if self._turn is None or self._turn.name != name:
            self._turn = make_turn(name, self)
        return self._turn

    def _align(self) -> str:
        j = self.controls.cfg.jam
        return "bar" if j.align_to_bar else j.align

    def _place(self, t_s: float, p: Phrase | None) -> float:
        """The answer's first-note time: the first grid point (jam.align) at or after t_s."""
        return place(self.tempo, t_s, self._align(), p.first_beat if p is not None else None)

    def _follow_tempo(self) -> None:
        if abs(self._anchor[2] - self._spt()) > 1e-12:  # tempo changed: keep the frontier's time
            self._anchor = (self.enc.tick, self.time_of(self.enc.tick), self._spt())

    def _start_answer(self, p: Phrase, thr: float, target: float, now: float) -> None:
        j = self.controls.cfg.jam
        res = self.vocab.resolution
        if j.response_bars > 0:
            length = round(j.response_bars * self.tempo.beats_per_bar * res)
        else:
            length = max(p.last_tick - p.first_tick, res)  # as long as the call, at least a beat
        base = (self.predictor.snapshot(), self._frontier())
        self._catch_up(target)  # the pause as the model will have heard it when the answer starts
        opening = Opening(target - self.lead_s, thr, target, base=base, turn=dict(getattr(self.turn(), "last", {})))
        self.gen = Generation("call", phrase=p, opening=opening, length_ticks=length, bpm=self.tempo.bpm)
        self.phrase = None

    def _begin(self, g: Generation, now: float) -> None:
        """The answer's first note: fix its time and re-anchor the stream there.

        Composed ahead (prepare_ms), it is due at the planned grid point; if
        composing ran past that, on the next grid point lead_s after now."""
        o = g.opening
        t0 = o.target_t
        if t0 is None or self.clock.now() + self.lead_s > t0:
            t0 = self._place(self.clock.now() + self.lead_s, g.phrase)
        g.started, g.t0 = True, t0
        self._anchor = (self.enc.tick, t0, self._spt())
        g.end_tick = self.enc.tick + g.length_ticks
        g.snaps = deque((t0, s, f) for _, s, f in g.snaps)
        for pitch, vel in o.onset:
            self._onset(pitch, t0)
            self.scheduler.schedule(t0, mido.Message("note_on", channel=self.channel, note=pitch, velocity=vel))
        if o.onset:
            g.first_note_t = t0

    def _generate(self, now: float) -> None:
        g = self.gen
        while len(g.snaps) > 1 and g.snaps[1][0] is not None and g.snaps[1][0] <= now:
            g.snaps.popleft()  # already due: can never be rolled back to (the last one may be a running rest)
        horizon = now + self.lookahead_s()
        if self.clock.now() < g.pause_until:
            return
        for _ in range(MAX_TOKENS_PER_TICK):
            if g.done or (g.started and self.time_of(self.enc.tick) > horizon):
                break
            due = self.time_of(self.enc.tick) if g.started else None
            g.snaps.append((due, self.predictor.snapshot(), self._frontier()))
            lead = not g.started and not g.opening.onset
            self._emit(g, self.predictor.sample(self.sampling(lead, None if lead else self._grid_offset(g))), now)
            if g.pause_until and self.clock.now() < g.pause_until:
                break  # the answer's first note (chord) is queued: let it go out before sampling on
        if self._resample_from is not None:
            self.resample_s.append(time.perf_counter() - self._resample_from)
            self._resample_from = None

    def _emit(self, g: Generation, token_id: int, now: float) -> None:
        tok = self.vocab.token(token_id)
        kind, v = tok.kind, tok.value
        if kind == "SHIFT":
            if not g.started and g.opening.onset:
                self._begin(g, now)  # the first onset is complete: it goes out now
            if not g.started:
                g.opening.lead_ticks += v
                self.enc.tick += v
                if g.opening.lead_ticks >= self.tempo.beats_per_bar * self.vocab.resolution:
                    self._begin(g, now)  # a bar of rest sampled: start the clock anyway
            else:
                if g.opening is not None and g.first_note_t is not None and not g.pause_until:
                    # the first onset is queued: sampling waits until it is sent, as on a
                    # busy machine the sampling thread would delay that send (GIL, CPU)
                    g.opening.pause_until = g.first_note_t + 0.0005
                if g.end_tick is not None and self.enc.tick + v >= g.end_tick:
                    self.enc.tick = g.end_tick
                    self._finish(g)
                else:
                    self.enc.tick += v
                    self._limit_notes(now)
        elif kind == "VEL":
            self.enc.velocity_bin = v
        elif kind == "NOTE_ON":
            vb = self.enc.velocity_bin
            vel = self.vocab.bin_velocity(vb) if vb is not None else 64
            self.agent_sounding.add(v)
            g.notes += 1
            if not g.started:
                # an answer's first onset (a chord, maybe) is held until complete, then
                # timed from when it is: notes sampled after t0 would be late
                g.opening.onset = [(p, x) for p, x in g.opening.onset if p != v] + [(v, vel)]
                return
            due = self.time_of(self.enc.tick)
            self._onset(v, due)
            self.scheduler.schedule(due, mido.Message("note_on", channel=self.channel, note=v, velocity=vel))
            if g.first_note_t is None:
                g.first_note_t = due
        elif kind == "NOTE_OFF":
            if not g.started and v in self.agent_sounding:  # a zero-length note in the held onset
                g.opening.onset = [(p, x) for p, x in g.opening.onset if p != v]
                self.agent_sounding.discard(v)
            elif v in self.agent_sounding:
                self.agent_sounding.discard(v)
                self.scheduler.schedule(self.time_of(self.enc.tick),
                                        mido.Message("note_off", channel=self.channel, note=v))
        elif g.kind == "call":  # END (or START) despite the bias: the answer ends here
            if not g.started and g.opening.onset:
                self._begin(g, now)
            if g.started:
                self._finish(g)

    def _close_agent_notes(self, at_s: float | None) -> None:
        """Feed NOTE_OFF for the agent's sounding notes; schedule them at at_s (None: cut already sent them)."""
        pitches = sorted(self.agent_sounding)
        if at_s is not None:  # all queued first: feeding the model takes time
            for p in pitches:
                self.scheduler.schedule(at_s, mido.Message("note_off", channel=self.channel, note=p))
        for p in pitches:
            self.predictor.feed(self.vocab.note_off(p))
        self.agent_sounding.clear()

    def _finish(self, g: Generation, not_before_s: float = 0.0) -> None:
        g.ended = "finished"
        g.end_t = max(self.time_of(self.enc.tick), not_before_s)
        self._close_agent_notes(g.end_t)

    def _rewind(self, t_s: float) -> bool:
        """Roll back to the first token due after t_s and drop what was queued after it.

        If the token before that is a rest still running at t_s, roll back into
        the rest instead: it sent nothing, and the player's event then lands
        at its own tick, part-way through it."""
        g = self.gen
        snaps = g.snaps
        self.scheduler.cancel_after(t_s)
        idx = next((i for i, (due, _, _) in enumerate(snaps) if due is None or due > t_s), len(snaps))
        if idx > 0:
            prev_tick = snaps[idx - 1][2][0]
            next_tick, next_t = ((snaps[idx][2][0], snaps[idx][0]) if idx < len(snaps)
                                 else (self.enc.tick, self.time_of(self.enc.tick)))
            if next_tick > prev_tick and (next_t is None or next_t > t_s):
                idx -= 1
        if idx == len(snaps):
            return False
        _, snap, (tick, vel, sounding, anchor) = g.snaps[idx]
        for _ in range(len(g.snaps) - idx):
            g.snaps.pop()
        self.predictor.rollback(snap)
        self.enc.tick, self.enc.velocity_bin, self._anchor = tick, vel, anchor
        self.agent_sounding = set(sounding)
        self._forget_onsets_after(t_s)
        g.ended, g.end_t = None, None
        return True

    def _barge_in(self, now: float) -> None:
        g = self.gen
        window = WENT_ON_BEATS * self.tempo.seconds_per_beat() if self._align() != "none" else 0.0
        went_on = g.t0 is None or now < g.t0 + window
        if g.opening.base is not None and went_on:
            # the player played on before the answer's first note, or on the beat it came in on
            # (a long note inside the phrase taken for a cadence): the phrase was not over. Undo
            # the answer entirely (the pause fed, what was sampled; what sounded is closed now)
            # and let the phrase go on
            self.withdrawn += g.t0 is not None and now >= g.t0
            snap, (tick, vel, sounding, anchor) = g.opening.base
            self.scheduler.cut()
            self.predictor.rollback(snap)
            self.enc.tick, self.enc.velocity_bin, self._anchor = tick, vel, anchor
            self.agent_sounding = set(sounding)
            self.gen, self.phrase = None, g.phrase
            self.phrase.forced_t = None
            return
        self._rewind(now)
        self.scheduler.cut()
        self._close_agent_notes(None)
        g.ended, g.end_t = "barged", now
        self._retire(now)

    def _stop_gen(self, now: float) -> None:
        self._rewind(now)
        self._finish(self.gen, now)
        self.gen.end_t = now
        self._retire(now)

    def cut(self, now: float) -> list[int]:
        """Stop generating at once and close every agent note (stop, mode change, panic).

        Returns the pitches that were sounding and got their note-off now."""
        if self.gen is not None:
            self._rewind(now)
            self.gen.ended, self.gen.end_t = "stopped", now
            self._retire(now)
        closed = self.scheduler.cut()
        self._close_agent_notes(None)
        return closed

    def recover(self, now: float) -> None:
        """After an exception on the engine thread: close the agent's notes, drop the answer
        in progress and the phrase, re-prime the model from the context; the show goes on."""
        self.scheduler.cut()
        self.gen, self.phrase = None, None
        pitches, self.agent_sounding = sorted(self.agent_sounding), set()
        for p in pitches:
            self.predictor.feed(self.vocab.note_off(p))
        self.reprime()
        self._anchor = (self.enc.tick, max(now, self.time_of(self.enc.tick)), self._spt())

    def _retire(self, now: float) -> None:
        g, self.gen = self.gen, None
        rec, line = record(g, self.vocab.resolution)
        if line is not None:
            self.report(line)
        self.responses.append(rec)
        self.answers += 1
        for fn in list(self.observers):
            if g.phrase is not None:
                fn("phrase", g.phrase.first_t, rec)
            fn("answer", g.first_note_t, rec)
