"""The jam's guards: what keeps a long or wild session from holding notes for ever.

A mixin of `Jam` (agent/live/jam/policy.py), on the same engine thread and state:

- an agent note is closed at `sampling.max_note_beats` (at a high
  temperature the state drifts and may never emit the NOTE_OFF);
- a player's note held past `jam.held_note_timeout_s` (a stuck key, a lost
  note-off) is released from the context, so it cannot silence the agent;
- the model state is re-primed from the rolling context, so it cannot
  drift for minutes: in slices, in the thread's idle time (`idle_work`), the
  live state untouched until the re-primed one has caught up;
- the agent's recent onsets, which the note-length bound measures from, are
  kept (a few per pitch) and forgotten when a rollback unsends them.
"""
from __future__ import annotations

import logging

import mido

log = logging.getLogger("agent.live.jam.policy")
REPRIME_SLICE = 16  # re-prime steps between two looks at the inbox (~1.5 ms at 0.1 ms a step)
IDLE_MARGIN_S = 0.003  # no slice this close to the thread's next deadline


class Guards:
    def _release_held(self, now: float) -> float:
        """A player's note held past held_note_timeout_s (a stuck key, a lost note-off) is
        released as if the player had let go now, so the agent is never silenced by it.
        Returns when the next held note times out."""
        timeout = self.controls.cfg.jam.held_note_timeout_s
        for p, t in sorted(self.player_onset.items()):
            if now - t >= timeout:
                self.held_released += 1
                log.warning("pitch %d held for %.1f s: released from the context", p, now - t)
                self.player_note(p, 0, False, now)
        return min(self.player_onset.values(), default=now) + timeout

    def reprime(self) -> None:
        """Re-prime the model state from the rolling context now (one step per context token)."""
        self.predictor.reprime()
        self.reprimes += 1

    def _reprime_due(self, every: int) -> None:
        """`every` steps since the last re-prime: start one that runs in the thread's idle time
        (`idle_work`), so the music does not stop for a context's worth of steps (100-300 ms for
        512 tokens on a busy 2-core machine); if the gaps never let it finish, do it now."""
        p = self.predictor
        if p.steps >= 2 * every:
            self.reprime()
        elif not p.repriming:
            p.begin_reprime()

    def idle_work(self, now: float, until: float) -> bool:
        """One slice of a re-prime under way, if there is time before `until` (the thread's next
        deadline). True: there is more to do."""
        p = self.predictor
        if not p.repriming or until - now < IDLE_MARGIN_S:
            return False
        if p.advance_reprime(REPRIME_SLICE):
            self.reprimes += 1
            return False
        return True

    def _limit_notes(self, now: float) -> float:
        """Close every agent note held max_note_beats or longer, at that length.

        At a high temperature the state drifts and may never emit a note's
        NOTE_OFF (and once max_polyphony notes sound, no new note may start):
        the NOTE_OFF is fed here as if the model had sampled it. The length
        is bounded in stream ticks and in seconds (the anchor can move on:
        a player's event, a tempo change), whichever comes first. Returns
        when the next agent note reaches the limit in seconds (inf: none)."""
        g = self.gen
        if g is None or not g.started or not self.agent_sounding:
            return float("inf")
        beats = self.controls.cfg.sampling.max_note_beats
        limit = max(1, round(beats * self.vocab.resolution))
        limit_s = beats * self.tempo.seconds_per_beat()
        tick = self.enc.tick
        front = max(self.time_of(tick), now)
        next_s = float("inf")
        for p in sorted(self.agent_sounding):
            on, on_t = (self.agent_onset.get(p) or [(tick, front)])[-1]
            if tick - on >= limit or front - on_t >= limit_s - 1e-9:
                self.agent_sounding.discard(p)
                self.predictor.feed(self.vocab.note_off(p))
                due = max(min(self.time_of(on + limit), on_t + limit_s), on_t)
                self.scheduler.schedule(due, mido.Message("note_off", channel=self.channel, note=p))
                self.notes_limited += 1
            else:
                next_s = min(next_s, on_t + limit_s)
        return next_s

    def _onset(self, pitch: int, due_s: float) -> None:
        ons = self.agent_onset.setdefault(pitch, [])
        ons.append((self.enc.tick, due_s))
        del ons[:-4]  # a few: a rollback can only undo the ones still ahead of the clock

    def _forget_onsets_after(self, t_s: float) -> None:
        """A rollback at t_s: the note-ons due after it were dropped from the queue, never sounded."""
        for ons in self.agent_onset.values():
            while ons and ons[-1][1] > t_s:
                ons.pop()
