"""The interaction policy: call-and-response, accompany, solo.

`Jam` runs on the engine (listener) thread, the one thread that owns the
predictor. The listener calls `player_note` for every note the player plays
and `tick(now)` whenever it wakes; `tick` returns the time it wants to be
woken next. Time comes from the clock passed in, so tests drive it by hand.

One token stream (stream.py): the player's notes and the agent's own output
go into the model in time order, so the state always holds the whole
conversation. The jam decides; its parts do: the `Stream` (the model's
input and its clock), the `Voice` (voice.py: sampling into queued notes,
rollback) and the `Limits` (limits.py: note length, held notes, re-prime).

Time is the player's: with `timing.source = "player"` every player note-on
goes to the tempo follower (music/beat.py), which keeps the tempo map on the
player's beat; the stream's ticks, and so the answer, run at that tempo.

Modes:
- call: when the turn policy (turn.py: `jam.turn`) says the phrase has
  ended (no key or pedal held), or the end-of-phrase CC is pressed, the
  agent answers. Its first note lands on the next grid point
  (`jam.align`: the next phrase slot, bar line or beat, or none; turn.py
  `place`) at least `lead_ms` after it was sampled. Rests it samples before
  its first note are fed but take no time. It lasts `response_bars`, or as
  long as the call (in whole bars where it comes in at a phrase slot). A player note-on during
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

import time
from collections import deque

from agent.live.jam.limits import IDLE_MARGIN_S, REPRIME_SLICE, Limits
from agent.live.jam.memory import SessionMemory
from agent.live.jam.phrases import Generation, Opening, Phrase, summarise
from agent.live.jam.stream import Stream
from agent.live.jam.swap import Swap
from agent.live.jam.turn import align_of, answer_bars, make_turn
from agent.live.jam.voice import Voice
from agent.music.tokens import Vocab

WENT_ON_BEATS = 0.5  # a player note this soon after the answer's first note means the phrase was not over
BEAT_TRUST = 0.5  # the tempo follower's confidence from which bars and phrase slots are counted on its beat
SYNC_STEPS = 64  # at a swap's take-over in solo: steps the new model may still take to catch up at once
HISTORY = 10_000  # responses and resample times kept for reports (a long session must not grow without bound)


class Jam:
    def __init__(self, predictor, scheduler, tempo, controls, clock, vocab: Vocab, *,
                 lead_s: float = 0.002, channel: int = 0, report=None, follow=None) -> None:
        self.scheduler = scheduler
        self.tempo = tempo
        self.controls = controls
        self.clock = clock
        self.vocab = vocab
        self.lead_s = lead_s  # seconds between sampling a note and its earliest due time
        self.report = report or (lambda line: None)
        self.stream = Stream(predictor, vocab, tempo, clock.now())
        self.memory = SessionMemory(vocab)  # this session's material, for jam.echo (memory.py)
        self._tell_sampler()
        self.limits = Limits(predictor, controls, tempo, vocab.resolution)
        self.voice = Voice(self.stream, scheduler, self.limits, controls, clock, tempo, lead_s=lead_s, channel=channel)
        self.voice.trusted = self.beat_trusted
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
        self.player_onset: dict[int, float] = {}  # pitch -> when the player pressed it (seconds), while held
        self._resample_from: float | None = None
        self.follow = follow  # a beat.TempoFollower: the player's onsets set the tempo map
        self._turn = None
        self.chord_s = 0.05  # note-ons this close (seconds) are one onset (a chord)
        self.withdrawn = 0  # answers that had begun when the player went on within WENT_ON_BEATS
        self.held: str | None = None  # silenced (panic, Ctrl-C): until "play" (the player plays) or "mode"
        self.swap: Swap | None = None  # a loaded model priming beside the live one (begin_swap)
        self._swapped = None  # fn(new predictor) once it has taken over
        self.turn()  # built now: the phrase-end classifier's weights are read at start (~5 ms), not at a note

    # -- what the engine, the reports and the watchdogs read or set --------------
    @property
    def predictor(self):
        """The model: the stream feeds it, the limits re-prime it (a swap reaches both)."""
        return self.stream.predictor

    @predictor.setter
    def predictor(self, predictor) -> None:
        self.stream.predictor = self.limits.predictor = predictor
        self._tell_sampler()

    def _tell_sampler(self) -> None:
        """The sampler (a device backend's too) tells the player's notes from the agent's by the stream."""
        sampler = getattr(self.stream.predictor, "sampler", None)
        if sampler is not None:
            sampler.parts, sampler.memory = self.stream, self.memory
            sampler.hear_key()

    @property
    def channel(self) -> int:
        """The agent's MIDI channel, 0-15."""
        return self.voice.channel

    @channel.setter
    def channel(self, channel: int) -> None:
        self.voice.channel = channel

    enc = property(lambda self: self.stream.enc, doc="The stream's encoder: its tick, the player's sounding notes.")
    agent_sounding = property(lambda self: self.stream.agent_sounding, doc="The agent's sounding pitches.")
    agent_onset = property(lambda self: self.limits.agent_onset, doc="pitch -> the agent's recent (tick, due_s).")
    notes_limited = property(lambda self: self.limits.notes_limited, doc="Agent notes closed at max_note_beats.")
    held_released = property(lambda self: self.limits.held_released, doc="Player notes released after the timeout.")
    reprimes = property(lambda self: self.limits.reprimes, doc="Re-primes of the model state done.")

    def idle_work(self, now: float, until: float) -> bool:
        """Background work in the thread's idle time before `until` (seconds): a re-prime's slice,
        a loaded model's slice of priming (and its take-over once primed). True: more to do."""
        if self.limits.idle_work(now, until):
            return True
        sw = self.swap
        if sw is None or until - now < IDLE_MARGIN_S:
            return False
        if sw.advance(REPRIME_SLICE):
            return True
        if sw.caught_up:
            self.take_over(now)
        return False

    def begin_swap(self, new, on_done) -> None:
        """Prime `new` (a loaded model) beside the live one, a slice at a time in the idle time, hearing
        what the live one hears meanwhile (swap.py); then `take_over`, and on_done(new)."""
        self.swap, self._swapped = Swap(self.predictor, new, self.vocab), on_done

    def take_over(self, now: float) -> bool:
        """The primed model replaces the live one, when nothing holds snapshots of the live one that a
        rollback could need: between answers (call) and accompaniments, or in a solo (which never
        ends) at once, its notes sampled ahead undone and sampled again by the new model."""
        g, sw = self.gen, self.swap
        if g is not None and g.kind != "solo":
            return False  # at the end of this answer or accompaniment
        if g is not None:
            self.voice.rewind(g, now)
            sw.advance(SYNC_STEPS)  # back to its mark before what was undone, then the few tokens since
            if not sw.caught_up:
                return False
            g.snaps.clear()  # the live model's: never rolled back to by the new one
        self.swap = None
        self.predictor = sw.new
        self._swapped(sw.new)
        return True

    def hold(self, until: str | None) -> None:
        """Stay silent (after a cut) until the player plays ("play") or hold(None) ("mode")."""
        if until is not None:
            self.phrase = None
        self.held = until

    def silence_s(self) -> float:
        """The silence that ends a phrase, seconds (jam.silence_beats at the tempo, else jam.silence_ms)."""
        j = self.controls.cfg.jam
        return j.silence_beats * self.tempo.seconds_per_beat() if j.silence_beats > 0 else j.silence_ms / 1000.0

    def beat_trusted(self) -> bool:
        """Whether bars and phrase slots may be counted on the tempo map's beat: always for a clock,
        Link or a set tempo; for the player's beat once the follower is confident (BEAT_TRUST)."""
        tracker = getattr(self.follow, "tracker", None)
        if self.controls.cfg.timing.source != "player" or tracker is None:
            return True
        return tracker.confidence >= BEAT_TRUST

    # -- player input --------------------------------------------------------
    def player_note(self, pitch: int, velocity: int, on: bool, t_s: float) -> None:
        now = self.clock.now()
        floor = now + self.controls.cfg.jam.rollback_guard_ms / 1000.0
        self.player_events += 1
        if on and self.held == "play":
            self.held = None
        if on:
            self.player_onset[pitch] = t_s
            self.stream.player_pitches.append(pitch)
            sampler = getattr(self.predictor, "sampler", None)
            if sampler is not None:  # the key is heard as the player plays, not at the phrase end
                sampler.hear_key()
        else:
            self.player_onset.pop(pitch, None)
        if on and self.follow is not None and self.controls.cfg.timing.source == "player":
            if self.follow.onset(t_s, pitch=pitch, velocity=velocity):
                self.stream.follow_tempo()
        g = self.gen
        if g is not None:
            if g.kind == "call":
                if on:
                    self._barge_in(now)
            elif self.voice.rewind(g, max(t_s, floor)):
                # what is due sooner than the guard stays as sampled: resampling it would make it late
                self.rollbacks += 1
                self._resample_from = time.perf_counter()
        s = self.stream
        fresh = self.phrase is None and on
        if fresh:
            self.phrases += 1
            s.catch_up(t_s)
            tick = max(s.enc.tick, s.tick_at(t_s))
            first_beat = self.tempo.beat(t_s) if self.beat_trusted() else None  # else counted at the turn
            self.phrase = Phrase(self.phrases, t_s, tick, t_s, tick, first_beat=first_beat)
        tick = max(s.enc.tick, s.tick_at(t_s))
        if pitch in s.agent_sounding and (on or pitch in s.enc.sounding):
            self.voice.yield_pitch(pitch, tick, now)
        s.feed(s.enc.note_on(pitch, velocity, tick) if on else s.enc.note_off(pitch, tick))
        if on:
            self.memory.hear(pitch, tick, velocity, "player")
        if self.phrase is not None:
            self._heard(self.phrase, on, t_s, tick)
            if self.mode == "call":
                self.turn().heard(pitch, on, t_s, fresh)
        if on and self.gen is None and self.mode == "accompany":
            self.gen = Generation("accompany", started=True, t0=now + self.lead_s)
        if self.gen is not None and self.gen.kind != "call" and s.front_s() < floor:
            # the agent goes on from here, no sooner than the guard: what it samples next
            # must not be due before it is sampled
            s.anchor_at(floor)

    def _heard(self, p: Phrase, on: bool, t_s: float, tick: int) -> None:
        p.last_t, p.last_tick = t_s, tick
        p.notes += on
        if on and (not p.onsets or t_s - p.onsets[-1] >= self.chord_s):
            p.onsets.append(t_s)
            p.last_on_t = t_s

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
        self.stream.follow_tempo()
        wake = [now + 0.05]
        if self.player_onset:
            wake.append(self._release_held(now))
        self.limits.reprime_if_due()
        g = self.gen
        if g is not None and g.done and now >= g.end_t:
            self._retire(now)
            g = None
        if self.mode == "solo" and g is None:
            self.stream.catch_up(now)
            self.stream.anchor_at(now + self.lead_s)
            g = self.gen = Generation("solo", started=True, t0=now + self.lead_s)
        p = self.phrase
        if p is not None and g is None and self.mode == "call" and not self.enc.sounding:
            thr = self.turn().end_time(p, now)
            target = self.voice.place(thr + self.lead_s, p)
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
            wake.append(self.voice.limit_notes(g, now))  # woken when a note reaches the limit, to close it on time
            self._sample(g, now)
            if not g.done:
                wake.append(max(self.stream.front_s() - self.voice.lookahead_s(), g.pause_until))
        if g is not None and g.done:
            wake.append(g.end_t)
        return min(wake)

    def turn(self):
        """The turn-taking policy (jam.turn), rebuilt when the setting changes."""
        name = self.controls.cfg.jam.turn
        if self._turn is None or self._turn.name != name:
            self._turn = make_turn(name, self)
        return self._turn

    def _release_held(self, now: float) -> float:
        """A player's note held past held_note_timeout_s (a stuck key, a lost note-off) is
        released as if the player had let go now, so the agent is never silenced by it.
        Returns when the next held note times out (seconds)."""
        stuck, next_s = self.limits.stuck(self.player_onset, now)
        for p in stuck:
            self.player_note(p, 0, False, now)
        return next_s

    def _sample(self, g: Generation, now: float) -> None:
        """The voice samples on; the first sampling after a rollback is timed (resample_s, seconds)."""
        if self.voice.generate(g, now) and self._resample_from is not None:
            self.resample_s.append(time.perf_counter() - self._resample_from)
            self._resample_from = None

    def _start_answer(self, p: Phrase, thr: float, target: float, now: float) -> None:
        j = self.controls.cfg.jam
        res = self.vocab.resolution
        if j.response_bars > 0:
            length = round(j.response_bars * self.tempo.beats_per_bar * res)
        elif align_of(j) == "phrase":
            length = answer_bars(self.tempo, p) * self.tempo.beats_per_bar * res
        else:
            length = max(p.last_tick - p.first_tick, res)  # as long as the call, at least a beat
        base = (self.predictor.snapshot(), self.stream.frontier())
        self.stream.catch_up(target)  # the pause as the model will have heard it when the answer starts
        opening = Opening(target - self.lead_s, thr, target, base=base, turn=dict(getattr(self.turn(), "last", {})))
        self.gen = Generation("call", phrase=p, opening=opening, length_ticks=length, bpm=self.tempo.bpm)
        self.phrase = None

    # -- ending --------------------------------------------------------------
    def _barge_in(self, now: float) -> None:
        g = self.gen
        window = WENT_ON_BEATS * self.tempo.seconds_per_beat() if align_of(self.controls.cfg.jam) != "none" else 0.0
        went_on = g.t0 is None or now < g.t0 + window
        if g.opening.base is not None and went_on:
            # the player played on before the answer's first note, or on the beat it came in on
            # (a long note inside the phrase taken for a cadence): the phrase was not over. Undo
            # the answer entirely (the pause fed, what was sampled; what sounded is closed now)
            # and let the phrase go on
            self.withdrawn += g.t0 is not None and now >= g.t0
            self.scheduler.cut()
            self.stream.restore(*g.opening.base)
            self.gen, self.phrase = None, g.phrase
            self.phrase.forced_t = None
            return
        self.voice.rewind(g, now)
        self.scheduler.cut()
        self.voice.close_notes(None)
        g.ended, g.end_t = "barged", now
        self._retire(now)

    def _stop_gen(self, now: float) -> None:
        self.voice.rewind(self.gen, now)
        self.voice.finish(self.gen, now)
        self.gen.end_t = now
        self._retire(now)

    def cut(self, now: float) -> list[int]:
        """Stop generating at once and close every agent note (stop, mode change, panic).

        Returns the pitches that were sounding and got their note-off now."""
        if self.gen is not None:
            self.voice.rewind(self.gen, now)
            self.gen.ended, self.gen.end_t = "stopped", now
            self._retire(now)
        closed = self.scheduler.cut()
        self.voice.close_notes(None)
        return closed

    def recover(self, now: float) -> None:
        """After an exception on the engine thread: close the agent's notes, drop the answer
        in progress and the phrase, re-prime the model from the context; the show goes on."""
        self.scheduler.cut()
        self.gen, self.phrase = None, None
        self.voice.close_notes(None)
        self.limits.reprime()
        self.stream.anchor_at(max(now, self.stream.front_s()))

    def _retire(self, now: float) -> None:
        g, self.gen = self.gen, None
        rec, line = summarise(g, self.vocab.resolution)
        if line is not None:
            self.report(line)
        self.responses.append(rec)
        self.answers += 1
        for fn in list(self.observers):
            if g.phrase is not None:
                fn("phrase", g.phrase.first_t, rec)
            fn("answer", g.first_note_t, rec)
