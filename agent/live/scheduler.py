"""The output thread: an absolute-time queue of MIDI messages, and every open note.

Messages are queued with an absolute due time (perf_counter seconds). The
thread waits on a condition until `spin_s` before the earliest one (so a new,
earlier message can wake it), then spins to the deadline and sends.

Late policy (written down because it is a choice): a message later than its
due time by at most `late_tolerance_s` is sent as is; a *note-on* later than
that is dropped and counted (a burst of stale notes sounds worse than a
gap), while note-offs and controllers are always sent, however late, so no
note is left hanging. Nothing is ever sent early. A note-on that would make
more than `max_polyphony` notes sound at once is dropped and counted
(`dropped_polyphony`); its note-off then finds nothing to close.

The scheduler owns every open note of the agent: `cut()` (stop, mode change,
barge-in), `panic()`, `stop()` and a failing port all send the matching
note-offs; `stop()` then sends all-notes-off on every channel it played on,
twice (REPEAT_S apart), so a synth is silent even if a note-off was lost.
A note-on for a pitch already sounding first sends its note-off,
so one note-off always closes one note. With `max_note_s` set (the engine:
`sampling.max_note_beats` at the tempo of the note-on), a note still sounding
that long after its note-on is closed here, on time, even when the thread
that decides the notes is late (`limited` counts them).

Locks: `_cond` guards the queue and the open notes and is never held
across `output.send` or a hook, so a slow send (a DAW, a blocked port) never
holds up the model thread's `schedule()`; `_send_lock` lets one sender at a
time go out, so a note-on and the note-off that closes it keep their order.
`stop()` and `cut()` wait at most `send_wait_s` for a send that never
returns, then give up on the output (the notes are counted in `unclosed`).

An exception in the thread (a bug, a failing send) closes the open notes and
the thread goes on; a lost port, or errors that keep coming (see faults.Fuse),
stop it and tell the engine.

Tests drive it without the thread: `pump(now_s)` sends whatever is due.
"""
from __future__ import annotations

import heapq
import itertools
import logging
import os
import threading
import time
from collections import deque
from typing import Callable

import mido

from agent.errors import PortLost
from agent.live.faults import Fuse

log = logging.getLogger(__name__)
SentHook = Callable[[mido.Message, float, float], None]  # (message, due_s, sent_s)
SendingHook = Callable[[mido.Message, float], None]  # (message, now_s), just before it goes out
SEND_WAIT_S = 0.25  # stop()/cut() wait this long for a send in progress, then give up on the output
JOIN_S = 0.25  # stop() waits this long for the thread
# stop() sends all-notes-off twice, this far apart: on a busy machine a JACK xrun can drop one whole
# cycle of MIDI events (seen here as note-offs missing at every reader at once); 10 ms is ~8 cycles of 64
REPEAT_S = 0.010
# the backstop closes a note this much before max_note_s: a transport delivers by cycles (JACK -p 256:
# 5.3 ms), so a note-off sent at the limit can be heard one cycle longer than its note-on says
BACKSTOP_MARGIN_S = 0.012


class Scheduler:
    def __init__(self, output, clock, *, channel: int = 0, velocity_scale: float = 1.0,
                 late_tolerance_s: float = 0.020, spin_s: float = 0.001, rt_priority: int = 0,
                 on_error: Callable[[Exception], None] | None = None, max_polyphony: int = 0) -> None:
        """`channel` is 0-based (mido's); velocities are scaled then clipped to 1..127;
        max_polyphony: most notes sounding at once (0 = no limit)."""
        self.output = output
        self.clock = clock
        self.channel = channel
        self.velocity_scale = velocity_scale
        self.late_tolerance_s = late_tolerance_s
        self.spin_s = spin_s
        self.on_error = on_error
        self.max_polyphony = max_polyphony
        self.on_port_lost: Callable[[Exception], None] | None = None  # set: a lost port is not fatal (see portwatch)
        self.rt_priority = rt_priority  # > 0: ask for SCHED_FIFO at this priority (Linux), else keep normal
        self.rt_granted = False
        self.hooks: list[SentHook] = []
        # told before the send: a loop back to our input (loopback, a DAW) can deliver the message
        # before output.send returns, so whoever must recognise it (the echo filter) has to know first
        self.sending_hooks: list[SendingHook] = []
        self._heap: list[tuple[float, int, mido.Message]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()  # guards the heap and open notes; never held across a send
        self._send_lock = threading.Lock()  # one sender at a time (keeps note-on/note-off order)
        self.send_wait_s = SEND_WAIT_S
        self.fuse = Fuse()
        self._open: set[tuple[int, int]] = set()  # (channel, note) sounding now
        self._open_since: dict[tuple[int, int], float] = {}  # its note-on's due time
        # the note-length backstop: (deadline_s, key, note-on due_s); a note still open at its deadline
        # is closed here, on this thread, however late the model's own note-off (or the jam's) comes
        self._guards: list[tuple[float, tuple[int, int], float]] = []
        self.max_note_s: Callable[[], float] | None = None  # read at each note-on: the longest a note may sound
        self.limited = 0  # notes closed by the backstop
        self.channels_used: set[int] = set()  # channels a note-on went out on: stop() ends with CC123 there
        self._thread: threading.Thread | None = None
        self._running = False
        self.error: Exception | None = None
        # statistics
        self.sent = 0
        self.late = 0  # sent later than the tolerance (note-offs, controllers)
        self.dropped_late = 0  # note-ons dropped for lateness
        self.cancelled = 0
        self.dropped_polyphony = 0  # note-ons dropped: max_polyphony notes were sounding
        self.unclosed = 0
        self.output_blocked = False  # a send did not return within send_wait_s  # notes whose note-off could not be sent (the output failed or blocked)
        self.faults = 0  # exceptions the thread survived
        self.errors_s: deque[float] = deque(maxlen=200_000)  # sent - due, seconds

    # -- queue -------------------------------------------------------------
    def schedule(self, due_s: float, msg: mido.Message) -> None:
        with self._cond:
            heapq.heappush(self._heap, (due_s, next(self._seq), msg))
            self._cond.notify()

    def pending(self) -> int:
        with self._cond:
            return len(self._heap)

    def next_due(self) -> float | None:
        """When the scheduler next has something to do: a queued message or a note's length deadline."""
        with self._cond:
            return self._next_deadline()

    def cancel_after(self, t_s: float) -> int:
        """Drop every queued message due after t_s; open notes stay open (the caller resamples)."""
        with self._cond:
            keep = [e for e in self._heap if e[0] <= t_s]
            n = len(self._heap) - len(keep)
            heapq.heapify(keep)
            self._heap = keep
            self.cancelled += n
            self._cond.notify()
            return n

    @property
    def open_notes(self) -> set[tuple[int, int]]:
        with self._cond:
            return set(self._open)

    # -- sending ------------------------------------------------------------
    def _prepare(self, msg: mido.Message) -> mido.Message:
        if msg.type == "note_on" and msg.velocity > 0:
            v = min(127, max(1, round(msg.velocity * self.velocity_scale)))
            return msg.copy(channel=self.channel, velocity=v)
        if msg.type in ("note_on", "note_off"):
            return mido.Message("note_off", channel=self.channel, note=msg.note, velocity=0)
        return msg

    def _send(self, msg: mido.Message, due_s: float) -> None:
        """Hooks, output.send, hooks: with _send_lock held and _cond NOT held."""
        for h in self.sending_hooks:
            h(msg, self.clock.now())
        self.output.send(msg)
        sent_s = self.clock.now()
        self.sent += 1
        self.errors_s.append(sent_s - due_s)
        for h in self.hooks:
            h(msg, due_s, sent_s)

    def _deliver(self, due_s: float, msg: mido.Message) -> list[mido.Message]:
        """The open-note bookkeeping for one due message (under _cond); returns what to send."""
        msg = self._prepare(msg)
        lateness = self.clock.now() - due_s
        key = (getattr(msg, "channel", 0), getattr(msg, "note", -1))
        if msg.type == "note_on":
            if lateness > self.late_tolerance_s:
                self.dropped_late += 1
                log.warning("dropped note-on %d, %.1f ms late", msg.note, lateness * 1e3)
                return []
            if key in self._open:  # re-strike: close it first so offs and ons pair up
                self._guard(key, due_s)
                return [mido.Message("note_off", channel=key[0], note=key[1]), msg]
            if 0 < self.max_polyphony <= len(self._open):
                self.dropped_polyphony += 1
                return []
            self._open.add(key)
            self._guard(key, due_s)
            self.channels_used.add(key[0])
            return [msg]
        if msg.type == "note_off":
            if lateness > self.late_tolerance_s:
                self.late += 1
            if key not in self._open:
                return []  # its note-on was dropped or already cut: nothing sounds
            self._open.discard(key)
        elif lateness > self.late_tolerance_s:
            self.late += 1
        return [msg]

    def _guard(self, key: tuple[int, int], due_s: float) -> None:
        """A note starts at due_s (under _cond): it may sound max_note_s() at most."""
        self._open_since[key] = due_s
        if self.max_note_s is not None:
            longest = self.max_note_s()
            deadline = due_s + max(longest - BACKSTOP_MARGIN_S, longest / 2)
            heapq.heappush(self._guards, (deadline, key, due_s))

    def _pop_due(self, now: float):
        """The earliest due entry (under _cond): (due_s, messages to send), or None if nothing is due.
        A note's deadline comes before a message due at the same time."""
        heap, guards = self._heap, self._guards
        while guards and guards[0][0] <= now and (not heap or guards[0][0] <= heap[0][0]):
            deadline, key, on_due = heapq.heappop(guards)
            if key in self._open and self._open_since.get(key) == on_due:  # that very note, still sounding
                self._open.discard(key)
                self.limited += 1
                return deadline, [mido.Message("note_off", channel=key[0], note=key[1])]
        if not heap or heap[0][0] > now:
            return None
        due, _, msg = heapq.heappop(heap)
        return due, self._deliver(due, msg)

    def _next_deadline(self) -> float | None:
        """When the thread must wake next (under _cond): the earliest message or note deadline."""
        heads = [h[0][0] for h in (self._heap, self._guards) if h]
        return min(heads) if heads else None

    def _send_offs(self, keys: list[tuple[int, int]]) -> list[int]:
        """Note-offs for keys (with _send_lock held); a failing output loses none of the others."""
        closed = []
        now = self.clock.now()
        for ch, note in keys:
            try:
                self._send(mido.Message("note_off", channel=ch, note=note), now)
            except Exception as exc:  # a lost port: nothing more we can do for it
                self.unclosed += 1
                log.error("note-off %d could not be sent: %s", note, exc)
            closed.append(note)
        return closed

    def pump(self, now_s: float | None = None) -> int:
        """Send every message due by now_s (default: the clock's now). Returns how many."""
        n = 0
        with self._send_lock:
            while True:
                with self._cond:  # pop under the lock, send outside it
                    now = self.clock.now() if now_s is None else now_s
                    popped = self._pop_due(now)
                    if popped is None:
                        return n
                    due, out = popped
                for m in out:
                    try:
                        self._send(m, due)
                    except Exception:
                        self._unsent(m)
                        raise
                n += 1

    def _unsent(self, msg: mido.Message) -> None:
        """A send failed: a note-on did not sound; a note-off left its note sounding (counted)."""
        with self._cond:
            if msg.type == "note_on" and msg.velocity > 0:
                self._open.discard((msg.channel, msg.note))
            elif msg.type in ("note_on", "note_off"):
                self.unclosed += 1

    def _take_all(self) -> list[tuple[int, int]]:
        """Drop the queue and forget the open notes (under _cond); returns them, sorted."""
        with self._cond:
            self.cancelled += len(self._heap)
            self._heap.clear()
            self._guards.clear()
            keys = sorted(self._open)
            self._open.clear()
            self._cond.notify()
            return keys

    def cut(self) -> list[int]:
        """Drop the queue and close every open note now. Returns the pitches closed.

        If a send in progress does not return within send_wait_s, the output
        is taken as blocked: the queue is still dropped, the notes counted in
        `unclosed`, and cut() returns [] rather than hang."""
        if not self._send_lock.acquire(timeout=0.0 if self.output_blocked else self.send_wait_s):
            self.output_blocked = True  # known now: later calls do not wait for it again
            keys = self._take_all()
            self.unclosed += len(keys)
            log.error("output blocked: %d note(s) could not be closed", len(keys))
            return []
        try:
            return self._send_offs(self._take_all())
        finally:
            self._send_lock.release()

    def panic(self) -> None:
        """cut(), then all-notes-off (CC123) and all-sound-off (CC120) on all 16 channels."""
        self.cut()
        if not self._send_lock.acquire(timeout=0.0 if self.output_blocked else self.send_wait_s):
            log.error("output blocked: panic could not send")
            return
        try:
            now = self.clock.now()
            for ch in range(16):
                for cc in (123, 120):
                    self._send(mido.Message("control_change", channel=ch, control=cc, value=0), now)
        except Exception as exc:
            log.error("panic could not send: %s", exc)
        finally:
            self._send_lock.release()

    # -- thread ------------------------------------------------------------
    def start(self) -> "Scheduler":
        self._running = True
        self._thread = threading.Thread(target=self._run, name="antiphon-scheduler", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> list[int]:
        """Stop the thread and close every open note (queued messages are dropped).

        Returns within about JOIN_S + send_wait_s even if a send never returns."""
        with self._cond:
            self._running = False
            self._cond.notify()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=0.0 if self.output_blocked else JOIN_S)
        closed = self.cut()
        if self.channels_used and not self.output_blocked:
            self.all_notes_off(sorted(self.channels_used))
            time.sleep(REPEAT_S)
            self.all_notes_off(sorted(self.channels_used))
        return closed

    def all_notes_off(self, channels: list[int]) -> None:
        """All-notes-off (CC123) on each channel: what a synth does for notes whose note-off was lost."""
        if not self._send_lock.acquire(timeout=0.0 if self.output_blocked else self.send_wait_s):
            return
        try:
            for ch in channels:
                self._send(mido.Message("control_change", channel=ch, control=123, value=0), self.clock.now())
        except Exception as exc:  # the port is gone: the note-offs were already counted
            log.error("all-notes-off could not be sent: %s", exc)
        finally:
            self._send_lock.release()

    def _realtime(self) -> None:
        """SCHED_FIFO for this thread only, if allowed: it then wakes on time on a busy
        machine. It sleeps or spins at most spin_s per message, so it cannot starve others."""
        if self.rt_priority <= 0 or not hasattr(os, "sched_setscheduler"):
            return
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(self.rt_priority))  # 0: this thread
            self.rt_granted = True
        except (OSError, PermissionError) as exc:
            log.info("no real-time priority for the scheduler thread (%s); running at normal priority", exc)

    def _wait_and_send(self) -> bool:
        """Sleep until the earliest message is due, then send what is due. False: stopped."""
        with self._cond:
            if not self._running:
                return False
            due = self._next_deadline()
            if due is None:
                self._cond.wait()
                return True
            wait = due - self.clock.now() - self.spin_s
            if wait > 0:
                self._cond.wait(timeout=wait)
                return True  # re-check: an earlier message may have arrived
        # spin without the lock, so schedule() and cut() are never held up
        while self.clock.now() < due:
            pass
        self.pump()
        return True

    def _run(self) -> None:
        self._realtime()
        while True:
            try:
                if not self._wait_and_send():
                    return
            except Exception as exc:  # a bug or a failing send: close what we can; go on unless it repeats
                self.faults += 1
                if isinstance(exc, PortLost) and self.on_port_lost is not None:
                    log.warning("scheduler: %s", exc)
                    self.on_port_lost(exc)  # the watcher mutes the output and reconnects it
                    continue
                fatal = isinstance(exc, PortLost) or self.fuse.blow(self.clock.now())
                log.error("scheduler: %s: %s%s", type(exc).__name__, exc, "; stopping" if fatal else "; notes cut, going on")
                try:
                    self.cut()
                except Exception as exc2:
                    log.error("scheduler: closing notes failed too: %s", exc2)
                if fatal:
                    self.error = exc
                    if self.on_error:
                        self.on_error(exc)
                    return
