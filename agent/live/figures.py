"""Live extras around the engine's controls: CC mappings, changes pending on a bar line,
and rolling figures for the REPL's toolbar.

None of these does model work. `Pending` has its own small thread that
sleeps to an absolute deadline (the next beat or bar line) and then calls
the engine's one setter; `Figures` is fed from the scheduler's sent-hook and
from timed predictor steps, and read (as copies) by the REPL.
"""
from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class CCMapping:
    control: int
    key: str  # section.key of a live setting
    lo: float
    hi: float
    integer: bool = False

    def value(self, cc_value: int):
        v = self.lo + (self.hi - self.lo) * cc_value / 127
        return round(v) if self.integer else round(v, 4)

    def describe(self) -> str:
        return f"CC{self.control} -> {self.key} [{self.lo:g} {self.hi:g}]"


class CCMap:
    """Controller number -> live setting, and `learn`: the next CC moved is mapped.

    Read on the engine thread (every CC message), written by the REPL: both
    swap whole objects, so no lock is needed beyond the learn hand-over."""

    def __init__(self) -> None:
        self.maps: dict[int, CCMapping] = {}
        self._learn: tuple[str, float, float, bool] | None = None
        self._lock = threading.Lock()

    def add(self, m: CCMapping) -> None:
        maps = dict(self.maps)
        maps[m.control] = m
        self.maps = maps

    def remove(self, control: int) -> bool:
        maps = dict(self.maps)
        found = maps.pop(control, None) is not None
        self.maps = maps
        return found

    def learn(self, key: str, lo: float, hi: float, integer: bool = False) -> None:
        with self._lock:
            self._learn = (key, lo, hi, integer)

    @property
    def learning(self) -> str | None:
        learn = self._learn
        return learn[0] if learn else None

    def on_cc(self, control: int, value: int) -> tuple[CCMapping | None, bool]:
        """(the mapping that applies, whether it was learnt just now)."""
        if self._learn is not None:
            with self._lock:
                learn, self._learn = self._learn, None
            if learn is not None:
                m = CCMapping(control, *learn)
                self.add(m)
                return m, True
        return self.maps.get(control), False


class Pending:
    """Changes due at a time (seconds, perf_counter): one thread sleeps to the earliest."""

    def __init__(self, clock) -> None:
        self.clock = clock
        self._heap: list[tuple[float, int, str, Callable[[], None], float]] = []
        self.done: deque[tuple[float, str, float]] = deque(maxlen=100)  # (line_s, label, applied_s)
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._running = False
        self.on_error: Callable[[str, Exception], None] = lambda label, exc: None

    def add(self, due_s: float, label: str, fn: Callable[[], None], line_s: float | None = None) -> None:
        """fn() at due_s; `line_s` is the musical line it belongs to (due_s may be a little before it)."""
        with self._cond:
            heapq.heappush(self._heap, (due_s, next(self._seq), label, fn, due_s if line_s is None else line_s))
            self._cond.notify()
        if self._thread is None:
            self._running = True
            self._thread = threading.Thread(target=self._run, name="antiphon-pending", daemon=True)
            self._thread.start()

    def items(self) -> list[tuple[float, str]]:
        """(line_s, label) of what is pending, soonest first."""
        with self._cond:
            return sorted((line, label) for _, _, label, _, line in self._heap)

    def clear(self) -> int:
        with self._cond:
            n = len(self._heap)
            self._heap.clear()
            return n

    def stop(self) -> None:
        with self._cond:
            self._running = False
            self._heap.clear()
            self._cond.notify()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2.0)

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._running and (not self._heap or self._heap[0][0] - self.clock.now() > 0.002):
                    wait = 0.05 if not self._heap else min(0.05, self._heap[0][0] - self.clock.now() - 0.001)
                    self._cond.wait(max(wait, 0.0))
                if not self._running:
                    return
                due, _, label, fn, line = heapq.heappop(self._heap)
            while self.clock.now() < due:  # the last ms: spin, the change lands on the line
                time.sleep(0)
            self.done.append((line, label, self.clock.now()))
            try:
                fn()
            except Exception as exc:  # a pending change that no longer validates: say so, go on
                self.on_error(label, exc)


def pct(xs, q: float):
    xs = sorted(xs)
    return None if not xs else xs[min(len(xs) - 1, int(round(q / 100 * (len(xs) - 1))))]


class Figures:
    """Model step times and scheduling errors over the last `window_s` seconds, for the toolbar."""

    def __init__(self, window_s: float = 10.0) -> None:
        self.window_s = window_s
        self.steps: deque[tuple[float, float]] = deque(maxlen=20_000)  # (t_s, step seconds)
        self.errors: deque[tuple[float, float]] = deque(maxlen=20_000)  # (sent_s, sent - due seconds)

    def on_sent(self, msg, due_s: float, sent_s: float) -> None:  # a scheduler hook
        if msg.type in ("note_on", "note_off"):
            self.errors.append((sent_s, sent_s - due_s))

    def timed(self, fn):
        """fn wrapped so each call's duration is kept (one model step: feed, or sample + feed)."""
        steps, clock = self.steps, time.perf_counter

        def run(*a, **kw):
            t0 = clock()
            r = fn(*a, **kw)
            t1 = clock()
            steps.append((t1, t1 - t0))
            return r

        run.__wrapped__ = fn
        return run

    def p99_ms(self, which: str, now_s: float | None = None) -> float | None:
        now_s = time.perf_counter() if now_s is None else now_s
        data = list(getattr(self, which))  # a copy: the engine's threads go on appending
        xs = [v for t, v in data if now_s - t <= self.window_s]
        p = pct(xs, 99)
        return None if p is None else p * 1e3
