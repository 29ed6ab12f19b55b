"""The engine's live side: silence and resume, the one setter with changes on a bar line, switching
ports and models while playing, the toolbar's figures. A mixin of `engine.Engine`, kept apart so
the wiring in engine.py stays short.

Everything that touches the jam or the predictor runs on the engine thread (`on_engine_thread`),
the one thread that owns them; the REPL's thread only posts work there and reads copies.
"""
from __future__ import annotations

import logging
import math
import threading
from collections import deque

from agent.live.controls import CCMap, Figures, Pending

log = logging.getLogger(__name__)


def reseed(predictor, seed: int) -> None:
    """The sampler's generator (and a device sampler's) restarted from `seed` (-1: unseeded)."""
    import numpy as np

    s = None if seed < 0 else int(seed)
    sampler = getattr(predictor, "sampler", None)
    if sampler is not None:
        sampler.seed, sampler.rng = s, np.random.default_rng(s)
    gen = getattr(getattr(predictor, "backend", None), "_gen", None)
    if gen is not None and s is not None:
        gen.manual_seed(s)


class LiveEngine:
    """Mixed into Engine: needs its clock, controls, tempo, jam, listener, scheduler, ports, report."""

    def _init_live(self) -> None:
        self.ccmap = CCMap()
        self.pending = Pending(self.clock)
        self.pending.on_error = lambda label, exc: self.report(f"pending '{label}' not applied: {exc}")
        self.figures: Figures | None = None  # see measure()
        self.model_name = str(self.cfg.model.path)
        self.loading: str | None = None  # a model loading in the background
        self._set_lock = threading.Lock()
        self._change_at: float | None = None  # the time a pending change is due (its bar line)

    def silence(self, panic: bool = False, until: str = "play") -> None:
        """Cut the agent's notes and hold it silent: `until` "play" (the player's next note or
        `resume()`) or "mode" (only `resume()`: the REPL's `mode off`)."""
        def on_engine_thread() -> None:
            self.jam.cut(self.clock.now())
            self.jam.hold(until)
            if panic:
                self.scheduler.panic()

        if self.listener is not None and self.listener.alive:
            self.listener.call(on_engine_thread)
        elif self.scheduler is not None:
            self.scheduler.cut()
            if panic:
                self.scheduler.panic()

    def resume(self) -> None:
        """End a silence (panic, Ctrl-C, `mode off`): the jam plays again by its mode."""
        if self.listener is not None and self.listener.alive:
            self.listener.call(lambda: self.jam.hold(None))

    def on_engine_thread(self, fn) -> None:
        """fn() on the engine thread (the predictor's owner), or here if that thread is not running."""
        if self.listener is not None and self.listener.alive:
            self.listener.call(fn)
        else:
            fn()

    # -- live changes ------------------------------------------------------------
    def set(self, key: str, value, at_s: float | None = None) -> None:
        """The one setter: `controls.set`, with a tempo change anchored at `at_s` (a bar line) if given."""
        with self._set_lock:
            self._change_at = at_s
            try:
                self.controls.set(key, value)
            finally:
                self._change_at = None

    def set_many(self, changes: dict, at_s: float | None = None) -> None:
        with self._set_lock:
            self._change_at = at_s
            try:
                self.controls.set_many(changes)
            finally:
                self._change_at = None

    def at(self, what: str, fn, label: str, early: bool = False) -> float:
        """Run fn(line_s) on the next beat or bar line ("beat" | "bar"); returns that line's time.

        `early` (sampling and tempo changes): it runs `lookahead_ms` before the line, as
        what the jam samples then is due on the line, so the change lands on the music,
        not after the notes already queued. Anything else (a mode, panic) runs on it."""
        now = self.clock.now()
        soon = now + 1e-3  # a line this close is gone: the next one
        line = (self.tempo.next_bar(soon) if what == "bar"
                else self.tempo.time(math.floor(self.tempo.beat(soon)) + 1))
        ahead = min(self.controls.cfg.jam.lookahead_ms / 1000.0, max(0.0, line - now)) if early else 0.0
        self.pending.add(line - ahead, label, lambda: fn(line), line)
        return line

    def measure(self) -> Figures:
        """Start keeping the toolbar's figures (step times, scheduling errors); idempotent."""
        if self.figures is None:
            self.figures = Figures()
            if self.scheduler is not None:
                self.scheduler.hooks.append(self.figures.on_sent)
            self._time_steps(self.predictor)
        return self.figures

    def _time_steps(self, predictor) -> None:
        if self.figures is not None and not hasattr(predictor.feed, "__wrapped__"):
            predictor.feed = self.figures.timed(predictor.feed)

    def connect_input(self, name: str) -> str:
        """Listen on another input port (part of its name) without stopping; returns its full name."""
        new = self.ports.open_input(name, self.listener.receive, clock=self.clock)
        with self._port_lock:
            old, self.input = self.input, new
            self.input_name, self.virtual_input = new.name, False
            self.watcher.input_name, self.watcher.input_lost = new.name, False  # reconnects to this one now
        if old is not None:
            old.close()
        self._watch()
        return new.name

    def _watch(self) -> None:
        """A port connected by name can go away: watch it (a session begun on virtual ports was not)."""
        if self.cfg.midi.port_check_s > 0 and self.watcher is not None:
            self.watcher.start()
            if self.output_name:
                self.scheduler.on_port_lost = self.watcher.output_failed

    def connect_output(self, name: str) -> str:
        """Play on another output port without stopping: the agent's notes close on the old one first."""
        new = self.ports.open_output(name)
        done = threading.Event()

        def on_engine_thread() -> None:  # the jam's owner cuts; nothing is queued for the old port after
            try:
                self.jam.cut(self.clock.now())
                with self._port_lock:
                    old = self.main_output
                    self.set_main_output(new)
                    self.output_name = new.name
                    self.watcher.output_name, self.watcher.output_lost = new.name, False
                self._watch()
                try:
                    old.close()
                except Exception as exc:
                    log.error("closing %s: %s", getattr(old, "name", old), exc)
            finally:
                done.set()

        self.on_engine_thread(on_engine_thread)
        done.wait(2.0)
        return new.name

    def reset_model(self) -> None:
        """Clear the model state (zero state, START), the agent's notes closed first."""
        def on_engine_thread() -> None:
            self.jam.cut(self.clock.now())
            self.predictor.reset()

        self.on_engine_thread(on_engine_thread)

    def swap_predictor(self, new, name: str, retry_s: float = 0.05) -> None:
        """Swap in a loaded predictor at the next silence, re-primed from the rolling context."""
        def on_engine_thread() -> None:
            j = self.jam
            if self.stopped.is_set():
                return
            if j.gen is not None or j.enc.sounding or j.agent_sounding:  # not silent yet: look again soon
                t = threading.Timer(retry_s, lambda: self.on_engine_thread(on_engine_thread))
                t.daemon = True
                t.start()
                return
            old = self.predictor
            new.history = deque(maxlen=self.controls.cfg.jam.context_tokens)
            context = list(getattr(old, "history", ()))
            new.prime(context)
            self._time_steps(new)
            self.predictor = j.predictor = new
            self.model_name, self.loading = name, None
            self.report(f"model {name} loaded ({len(context)} tokens of context re-primed)")

        self.on_engine_thread(on_engine_thread)

    def _apply_live(self, key: str, value) -> None:
        """A live setting the jam does not read by itself at each step: make it take effect."""
        if key == "midi.channel" and self.scheduler:
            def channel() -> None:  # the agent's notes close on the old channel before it changes
                self.jam.cut(self.clock.now())
                self.scheduler.channel = self.jam.channel = value - 1
            self.on_engine_thread(channel)
        elif key == "jam.end_phrase_cc" and self.listener:
            self.listener.end_phrase_cc = value
        elif key == "jam.context_tokens" and self.listener:
            def context() -> None:  # keeps the newest tokens that fit
                if hasattr(self.predictor, "history"):
                    self.predictor.history = deque(self.predictor.history, maxlen=value)
            self.on_engine_thread(context)
        elif key == "sampling.seed" and self.listener:
            self.on_engine_thread(lambda: reseed(self.predictor, value))
