"""The output thread: an absolute-time queue of MIDI messages, and every open note.

Messages are queued with an absolute due time (perf_counter seconds). The
thread waits on a condition until `spin_s` before the earliest one (so a new,
earlier message can wake it), then spins to the deadline and sends.

Late policy (written down because it is a choice): a message later than its
due time by at most `late_tolerance_s` is sent as is; a *note-on* later than
that is dropped and counted (a burst of stale notes sounds worse than a
gap), while note-offs and controllers are always sent, however late, so no
note is left hanging. Nothing is ever sent early.

The scheduler owns every open note of the agent: `cut()` (stop, mode change,
barge-in), `panic()`, `stop()` and a failing port all send the matching
note-offs. A note-on for a pitch already sounding first sends its note-off,
so one note-off always closes one note.

Tests drive it without the thread: `pump(now_s)` sends whatever is due.
"""
from __future__ import annotations

import heapq
import itertools
import logging
import os
import threading
from collections import deque
from typing import Callable

import mido

log = logging.getLogger(__name__)
SentHook = Callable[[mido.Message, float, float], None]  # (message, due_s, sent_s)
SendingHook = Callable[[mido.Message, float], None]  # (message, now_s), just before it goes out


class Scheduler:
    def __init__(self, output, clock, *, channel: int = 0, velocity_scale: float = 1.0,
                 late_tolerance_s: float = 0.020, spin_s: float = 0.001, rt_priority: int = 0,
                 on_error: Callable[[Exception], None] | None = None) -> None:
        """`channel` is 0-based (mido's); velocities are scaled then clipped to 1..127."""
        self.output = output
        self.clock = clock
        self.channel = channel
        self.velocity_scale = velocity_scale
        self.late_tolerance_s = late_tolerance_s
        self.spin_s = spin_s
        self.on_error = on_error
        self.rt_priority = rt_priority  # > 0: ask for SCHED_FIFO at this priority (Linux), else keep normal
        self.rt_granted = False
        self.hooks: list[SentHook] = []
        # told before the send: a loop back to our input (loopback, a DAW) can deliver the message
        # before output.send returns, so whoever must recognise it (the echo filter) has to know first
        self.sending_hooks: list[SendingHook] = []
        self._heap: list[tuple[float, int, mido.Message]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()  # guards the heap, open notes AND sending
        self._open: set[tuple[int, int]] = set()  # (channel, note) sounding now
        self._thread: threading.Thread | None = None
        self._running = False
        self.error: Exception | None = None
        # statistics
        self.sent = 0
        self.late = 0  # sent later than the tolerance (note-offs, controllers)
        self.dropped_late = 0  # note-ons dropped for lateness
        self.cancelled = 0
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
        with self._cond:
            return self._heap[0][0] if self._heap else None

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

    # -- sending (always under self._cond) ---------------------------------
    def _prepare(self, msg: mido.Message) -> mido.Message:
        if msg.type == "note_on" and msg.velocity > 0:
            v = min(127, max(1, round(msg.velocity * self.velocity_scale)))
            return msg.copy(channel=self.channel, velocity=v)
        if msg.type in ("note_on", "note_off"):
            return mido.Message("note_off", channel=self.channel, note=msg.note, velocity=0)
        return msg

    def _send(self, msg: mido.Message, due_s: float) -> None:
        for h in self.sending_hooks:
            h(msg, self.clock.now())
        self.output.send(msg)
        sent_s = self.clock.now()
        self.sent += 1
        self.errors_s.append(sent_s - due_s)
        for h in self.hooks:
            h(msg, due_s, sent_s)

    def _deliver(self, due_s: float, msg: mido.Message) -> None:
        msg = self._prepare(msg)
        lateness = self.clock.now() - due_s
        key = (getattr(msg, "channel", 0), getattr(msg, "note", -1))
        if msg.type == "note_on":
            if lateness > self.late_tolerance_s:
                self.dropped_late += 1
                log.warning("dropped note-on %d, %.1f ms late", msg.note, lateness * 1e3)
                return
            if key in self._open:  # re-strike: close it first so offs and ons pair up
                self._send(mido.Message("note_off", channel=key[0], note=key[1]), due_s)
            self._open.add(key)
        elif msg.type == "note_off":
            if lateness > self.late_tolerance_s:
                self.late += 1
            if key not in self._open:
                return  # its note-on was dropped or already cut: nothing sounds
            self._open.discard(key)
        elif lateness > self.late_tolerance_s:
            self.late += 1
        self._send(msg, due_s)

    def _close_open(self) -> list[int]:
        closed = []
        now = self.clock.now()
        for ch, note in sorted(self._open):
            try:
                self._send(mido.Message("note_off", channel=ch, note=note), now)
            except Exception as exc:  # a lost port: nothing more we can do for it
                log.error("note-off %d could not be sent: %s", note, exc)
            closed.append(note)
        self._open.clear()
        return closed

    def pump(self, now_s: float | None = None) -> int:
        """Send every message due by now_s (default: the clock's now). Returns how many."""
        n = 0
        with self._cond:
            now = self.clock.now() if now_s is None else now_s
            while self._heap and self._heap[0][0] <= now:
                due, _, msg = heapq.heappop(self._heap)
                self._deliver(due, msg)
                n += 1
        return n

    def cut(self) -> list[int]:
        """Drop the queue and close every open note now. Returns the pitches closed."""
        with self._cond:
            self.cancelled += len(self._heap)
            self._heap.clear()
            return self._close_open()

    def panic(self) -> None:
        """cut(), then all-notes-off (CC123) and all-sound-off (CC120) on all 16 channels."""
        with self._cond:
            self.cut()
            now = self.clock.now()
            for ch in range(16):
                for cc in (123, 120):
                    try:
                        self._send(mido.Message("control_change", channel=ch, control=cc, value=0), now)
                    except Exception as exc:
                        log.error("panic could not send: %s", exc)
                        return

    # -- thread ------------------------------------------------------------
    def start(self) -> "Scheduler":
        self._running = True
        self._thread = threading.Thread(target=self._run, name="antiphon-scheduler", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> list[int]:
        """Stop the thread and close every open note (queued messages are dropped)."""
        with self._cond:
            self._running = False
            self._cond.notify()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2.0)
        return self.cut()

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

    def _run(self) -> None:
        self._realtime()
        try:
            while True:
                with self._cond:
                    if not self._running:
                        return
                    if not self._heap:
                        self._cond.wait()
                        continue
                    due = self._heap[0][0]
                    wait = due - self.clock.now() - self.spin_s
                    if wait > 0:
                        self._cond.wait(timeout=wait)
                        continue  # re-check: an earlier message may have arrived
                # spin without the lock, so schedule() and cut() are never held up
                while self.clock.now() < due:
                    pass
                self.pump()
        except Exception as exc:  # a lost port or a bug: close what we can, tell the engine
            self.error = exc
            log.error("scheduler stopped: %s", exc)
            with self._cond:
                self._heap.clear()
                self._close_open()
            if self.on_error:
                self.on_error(exc)
