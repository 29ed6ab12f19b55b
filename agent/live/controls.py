"""The one setter: every live change of a setting goes through `LiveControls`, whoever makes it
(the REPL, a MIDI controller, a change pending on a beat or bar line, later OSC).

`LiveControls` holds what the engine's threads read at each step (`cfg` and
`sampling`, immutable objects swapped whole), the controller mappings
(`ccmap`) and the changes pending on a line (`pending`: one small thread that
sleeps to an absolute deadline, then calls the setter). It does no model
work: what a change must do to the running engine (re-anchor the tempo on
the line, close the agent's notes on the old channel) is the engine's
`apply` callback, called with the time the change belongs to.
"""
from __future__ import annotations

import heapq
import itertools
import logging
import math
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable

from agent.config import Config, parse_value, set_value, setting_keys
from agent.errors import AntiphonError
from agent.model.sampler import SamplingControls
from agent.music.tempomap import RealClock

log = logging.getLogger(__name__)
# what may change while playing; the rest (ports, model, vocabulary) needs a restart
LIVE_SECTIONS = {"sampling", "jam"}
LIVE_KEYS = {"timing.bpm", "timing.beats_per_bar", "timing.source", "midi.velocity_scale", "midi.channel"}
SAMPLED_JAM_KEYS = {"jam.echo", "jam.form"}  # jam settings the sampler reads (in LiveControls.sampling)
TEMPERATURE_CC_RANGE = (0.1, 2.0)  # CC value 0..127 maps linearly onto this temperature range


def is_live(key: str) -> bool:
    """Whether "section.key" may change while playing."""
    return key.partition(".")[0] in LIVE_SECTIONS or key in LIVE_KEYS


def live_keys() -> list[str]:
    """Every setting that may change while playing, as "section.key", in file order."""
    return [key for key in setting_keys() if is_live(key)]


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
    """Changes due at a time (seconds, the clock's): one thread sleeps to the earliest."""

    def __init__(self, clock) -> None:
        self.clock = clock
        self._heap: list[tuple[float, int, str, Callable[[], None], float, object]] = []
        self.done: deque[tuple[float, str, float]] = deque(maxlen=100)  # (line_s, label, applied_s)
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._running = False
        self.on_error: Callable[[str, Exception], None] = lambda label, exc: None

    def add(self, due_s: float, label: str, fn: Callable[[], None], line_s: float | None = None,
            replaces=None) -> None:
        """fn() at due_s; `line_s` is the musical line it belongs to (due_s may be a little before it).
        `replaces` (e.g. the settings it changes): what is pending on the same line with the same
        `replaces` is dropped, as this one would undo it there (a set list that says it twice)."""
        line = due_s if line_s is None else line_s
        with self._cond:
            if replaces is not None:
                kept = [item for item in self._heap if not (item[4] == line and item[5] == replaces)]
                if len(kept) != len(self._heap):
                    self._heap[:] = kept
                    heapq.heapify(self._heap)
            heapq.heappush(self._heap, (due_s, next(self._seq), label, fn, line, replaces))
            self._cond.notify()
        if self._thread is None:
            self._running = True
            self._thread = threading.Thread(target=self._run, name="antiphon-pending", daemon=True)
            self._thread.start()

    def items(self) -> list[tuple[float, str]]:
        """(line_s, label) of what is pending, soonest first."""
        with self._cond:
            return sorted((line, label) for _, _, label, _, line, _ in self._heap)

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
                due, _, label, fn, line, _ = heapq.heappop(self._heap)
            while self.clock.now() < due:  # the last ms: spin, the change lands on the line
                time.sleep(0)
            self.done.append((line, label, self.clock.now()))
            try:
                fn()
            except Exception as exc:  # a pending change that no longer validates: say so, go on
                self.on_error(label, exc)


class LiveControls:
    """The live settings and their one validated setter, read at every step.

    `cfg` and `sampling` are immutable objects swapped whole, so a reader on
    another thread always sees a consistent set. A bad value raises
    AntiphonError and changes nothing. `clock` and `tempo` are the engine's:
    pending changes fall on its beat and bar lines (`at`). `apply(key, value,
    at_s)` is what the engine does about a change that took effect at `at_s`
    (seconds, the clock's); `listeners` hear `fn(key, value)` after it.
    """

    def __init__(self, cfg: Config, *, clock=None, tempo=None,
                 apply: Callable[[str, object, float], None] | None = None) -> None:
        self.cfg = cfg
        self.sampling = SamplingControls.from_config(cfg.sampling, cfg.jam)  # with jam.echo and jam.form
        self.clock = clock or RealClock()
        self.tempo = tempo  # a TempoMap: where the beat and bar lines fall
        self.apply = apply
        self.listeners: list = []  # fn(key, value) after a change (a trace, a log)
        self.ccmap = CCMap()
        self.pending = Pending(self.clock)
        self._lock = threading.RLock()  # one change at a time, applied in the order it was made

    def get(self, key: str):
        sec, _, name = key.partition(".")
        try:
            return getattr(getattr(self.cfg, sec), name)
        except AttributeError:
            raise AntiphonError(f"unknown setting {key!r}") from None

    def set(self, key: str, value, at_s: float | None = None) -> None:
        """One setting; `at_s` (seconds) is the line it belongs to (a tempo is anchored there), None: now."""
        self.set_many({key: value}, at_s)

    def set_many(self, changes: dict, at_s: float | None = None) -> None:
        """Several settings at once (e.g. a range's two ends): all validated first, then one swap."""
        for key in changes:
            if not is_live(key):
                raise AntiphonError(f"{key} cannot change while playing (live: {', '.join(sorted(LIVE_SECTIONS))}"
                                    f".*, {', '.join(sorted(LIVE_KEYS))})")
        with self._lock:
            new = self.cfg
            for key, value in changes.items():
                sec, _, name = key.partition(".")
                if isinstance(value, str):
                    value = parse_value(value)
                new = set_value(new, sec, name, value, source="live")
            sampling = (SamplingControls.from_config(new.sampling, new.jam)
                        if any(k.startswith("sampling.") or k in SAMPLED_JAM_KEYS for k in changes)
                        else self.sampling)
            self.cfg, self.sampling = new, sampling
            at = self.clock.now() if at_s is None else at_s
            for key in changes:
                value = self.get(key)
                if self.apply is not None:
                    self.apply(key, value, at)
                for fn in list(self.listeners):
                    fn(key, value)

    def temperature_from_cc(self, value: int) -> None:
        lo, hi = TEMPERATURE_CC_RANGE
        self.set("sampling.temperature", round(lo + (hi - lo) * value / 127, 3))

    def on_cc(self, control: int, value: int) -> CCMapping | None:
        """A controller moved (value 0..127): its mapping, else jam.temperature_cc, sets its setting.

        Returns the mapping if `learn` made it just now. A value the mapping's range makes invalid
        (e.g. crossing another setting) is logged and changes nothing."""
        mapping, learnt = self.ccmap.on_cc(control, value)
        if mapping is not None:
            try:
                self.set(mapping.key, mapping.value(value))
            except AntiphonError as exc:
                log.warning("CC%d: %s", control, exc)
        elif control == self.cfg.jam.temperature_cc:
            self.temperature_from_cc(value)
        return mapping if learnt else None

    def at(self, what: str, fn: Callable[[float], None], label: str, early: bool = False, replaces=None) -> float:
        """Run fn(line_s) on the next beat or bar line ("beat" | "bar"); returns that line's time (seconds).

        `early` (sampling and tempo changes): it runs `lookahead_ms` before the line, as
        what the jam samples then is due on the line, so the change lands on the music,
        not after the notes already queued. Anything else (a mode, panic) runs on it. `replaces`:
        see Pending.add (what pends on that line with the same `replaces` is dropped)."""
        if self.tempo is None:
            raise AntiphonError("no tempo map: a change on a beat or bar line needs the engine's")
        now = self.clock.now()
        soon = now + 1e-3  # a line this close is gone: the next one
        line = (self.tempo.next_bar(soon) if what == "bar"
                else self.tempo.time(math.floor(self.tempo.beat(soon)) + 1))
        ahead = min(self.cfg.jam.lookahead_ms / 1000.0, max(0.0, line - now)) if early else 0.0
        self.pending.add(line - ahead, label, lambda: fn(line), line, replaces=replaces)
        return line
