"""The jam's limits: what keeps a long or wild session from holding notes for ever.

An object the jam owns (`Jam.limits`), on the engine thread. It decides and
counts; the jam acts on what it says (feeds the model, queues the note-offs):

- an agent note is closed at `sampling.max_note_beats` (at a high
  temperature the state drifts and may never emit the NOTE_OFF): `sent`
  keeps the agent's recent onsets (a few per pitch), `unsent_after` forgets
  those a rollback dropped, `overlong` says which notes to close and when;
- a player's note held past `jam.held_note_timeout_s` (a stuck key, a lost
  note-off) is released from the context, so it cannot silence the agent:
  `stuck` names them;
- the model state is re-primed from the rolling context, so it cannot
  drift for minutes: `reprime_if_due`, then in slices in the thread's idle
  time (`idle_work`), the live state untouched until the re-primed one has
  caught up.

`notes_over` and `limit_ticks` are the note-length bound as pure functions:
the live limit and `antiphon generate` both use them.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping

log = logging.getLogger(__name__)
REPRIME_SLICE = 16  # re-prime steps between two looks at the inbox (~1.5 ms at 0.1 ms a step)
IDLE_MARGIN_S = 0.003  # no slice this close to the thread's next deadline
ONSETS_KEPT = 4  # per pitch: a rollback can only undo the ones still ahead of the clock


def limit_ticks(max_note_beats: float, resolution: int) -> int:
    """The note-length bound in stream ticks (`resolution` ticks a beat), at least one tick."""
    return max(1, round(max_note_beats * resolution))


def notes_over(onsets: Mapping[int, tuple[int, float]], tick: int, now_s: float, limit: int,
               limit_s: float = math.inf) -> list[int]:
    """The pitches (ascending) held `limit` stream ticks or `limit_s` seconds or longer at (`tick`, `now_s`).

    `onsets` maps each sounding pitch to its onset (stream tick, seconds).
    Live, the two can part (a player's event or a tempo change moves the
    stream's anchor): whichever comes first. Offline there is only the tick."""
    return sorted(p for p, (on, on_s) in onsets.items() if tick - on >= limit or now_s - on_s >= limit_s - 1e-9)


class Limits:
    def __init__(self, predictor, controls, tempo, resolution: int) -> None:
        self.predictor = predictor  # re-primed here; everything else it hears comes from the jam
        self.controls = controls
        self.tempo = tempo
        self.resolution = resolution  # stream ticks a beat
        self.agent_onset: dict[int, list[tuple[int, float]]] = {}  # pitch -> [(tick, due_s)], oldest first
        self.notes_limited = 0  # agent notes closed at max_note_beats
        self.held_released = 0  # player notes dropped from the context after held_note_timeout_s
        self.reprimes = 0

    # -- the agent's note length ------------------------------------------------
    def sent(self, pitch: int, tick: int, due_s: float) -> None:
        """An agent note-on is queued for `due_s` (seconds) at stream tick `tick`."""
        ons = self.agent_onset.setdefault(pitch, [])
        ons.append((tick, due_s))
        del ons[:-ONSETS_KEPT]

    def unsent_after(self, t_s: float) -> None:
        """A rollback at t_s (seconds): the note-ons due after it were dropped from the queue, never sounded."""
        for ons in self.agent_onset.values():
            while ons and ons[-1][1] > t_s:
                ons.pop()

    def overlong(self, sounding, tick: int, front_s: float,
                 time_of: Callable[[int], float]) -> tuple[list[tuple[int, float]], float]:
        """The agent notes (of `sounding`) held max_note_beats or longer at the stream's frontier
        (`tick`, `front_s` seconds), each with when its note-off is due (seconds): at that length.
        Counted as closed. Also returns when the next one reaches the limit (seconds; inf: none).

        `time_of` maps a stream tick to seconds. A pitch with no onset kept sounds from the frontier."""
        beats = self.controls.cfg.sampling.max_note_beats
        limit = limit_ticks(beats, self.resolution)
        limit_s = beats * self.tempo.seconds_per_beat()
        onsets = {p: (self.agent_onset.get(p) or [(tick, front_s)])[-1] for p in sounding}
        over = notes_over(onsets, tick, front_s, limit, limit_s)
        self.notes_limited += len(over)
        due = [(p, max(min(time_of(onsets[p][0] + limit), onsets[p][1] + limit_s), onsets[p][1])) for p in over]
        next_s = min((on_s + limit_s for p, (_, on_s) in onsets.items() if p not in over), default=math.inf)
        return due, next_s

    # -- the player's held notes --------------------------------------------------
    def stuck(self, held: Mapping[int, float], now: float) -> tuple[list[int], float]:
        """The player's notes (`held`: pitch -> when pressed, seconds) held held_note_timeout_s or longer
        at `now`, to release as if the player had let go (counted), and when the next of the others
        times out (seconds)."""
        timeout = self.controls.cfg.jam.held_note_timeout_s
        out = [p for p, t in sorted(held.items()) if now - t >= timeout]
        for p in out:
            log.warning("pitch %d held for %.1f s: released from the context", p, now - held[p])
        self.held_released += len(out)
        return out, min((t for p, t in held.items() if p not in out), default=now) + timeout

    # -- re-prime -------------------------------------------------------------------
    def reprime(self) -> None:
        """Re-prime the model state from the rolling context now (one step per context token)."""
        self.predictor.reprime()
        self.reprimes += 1

    def reprime_if_due(self) -> None:
        """`jam.reprime_tokens` steps since the last re-prime: start one that runs in the thread's idle
        time (`idle_work`), so the music does not stop for a context's worth of steps (100-300 ms for
        512 tokens on a busy 2-core machine); if the gaps never let it finish, do it now."""
        every, p = self.controls.cfg.jam.reprime_tokens, self.predictor
        if not every or p.steps < every:
            return
        if p.steps >= 2 * every:
            self.reprime()
        elif not p.repriming:
            p.begin_reprime()

    def idle_work(self, now: float, until: float) -> bool:
        """One slice of a re-prime under way, if there is time before `until` (the thread's next
        deadline, seconds). True: there is more to do."""
        p = self.predictor
        if not p.repriming or until - now < IDLE_MARGIN_S:
            return False
        if p.advance_reprime(REPRIME_SLICE):
            self.reprimes += 1
            return False
        return True
