"""The live engine: ports + listener thread (owns predictor and jam) + scheduler thread.

`Engine(cfg, predictor, ports=...)` wires the pieces; `start()` opens the ports and threads, `stop()`
closes every note and the ports, whatever ended the session (Ctrl-C, SIGTERM, an exception, a lost
port). Settings change through `engine.controls` (controls.py, the one setter); the live operations
(silence, switching ports or models while playing) are methods here. What touches the jam or the
predictor runs on the engine thread (`on_engine_thread`), their one owner; others post work there.
"""
from __future__ import annotations

import logging
import sys
import threading
from collections import deque
from pathlib import Path

from agent.music.tempomap import RealClock, TempoMap
from agent.config import Config
from agent.errors import AntiphonError
from agent.live.controls import LiveControls
from agent.live.figures import Figures
from agent.live.jam.policy import Jam
from agent.live.listener import EchoFilter, Listener
from agent.midi.clockin import ClockSync
from agent.midi.clockout import start_clock_out
from agent.midi.ports import port_part
from agent.midi.tee import Tee
from agent.midi.watch import PortWatcher
from agent.live.scheduler import Scheduler
from agent.live.sync import start_sync, stop_sync
from agent.music.beat import BeatTracker, TempoFollower

log = logging.getLogger(__name__)


def reseed(predictor, seed: int) -> None:
    """The predictor's generators restarted from `seed` (-1: unseeded); a stand-in without them keeps none."""
    if hasattr(predictor, "reseed"):
        predictor.reseed(seed)


class Engine:
    """Listener + jam + scheduler over one input and one output port."""

    def __init__(self, cfg: Config, predictor, *, ports, input_name: str = "", output_name: str = "",
                 virtual_name: str | None = None, virtual_input: bool = False, extra_outputs=(), clock=None,
                 report=print, recorder=None) -> None:
        self.cfg = cfg
        self.predictor = predictor
        self.ports = ports
        self.input_name, self.output_name, self.virtual_name = input_name, output_name, virtual_name
        self.virtual_input = virtual_input  # input_name is then a virtual port to create
        self.extra_outputs = list(extra_outputs)
        self.clock = clock or RealClock()
        self.report = report
        self.stopped = threading.Event()
        self._port_lock = threading.Lock()  # the port watcher never looks at a port being closed
        self._closing = False
        self.error: Exception | None = None
        self.input = self.output = self.main_output = None
        self.watcher: PortWatcher | None = None
        self.scheduler: Scheduler | None = None
        self.listener: Listener | None = None
        self.jam: Jam | None = None
        self.tempo = TempoMap(cfg.timing.bpm, self.clock.now(), cfg.timing.beats_per_bar)
        self.beat = BeatTracker(cfg.timing.bpm)  # the player's tempo (timing.source = "player")
        self.clock_sync = ClockSync(self.tempo, self._follows_clock)  # MIDI clock in ("clock"), and out ([sync])
        self.controls = LiveControls(cfg, clock=self.clock, tempo=self.tempo, apply=self._on_control_change)
        self.controls.pending.on_error = lambda label, exc: self.report(f"pending '{label}' not applied: {exc}")
        self.figures: Figures | None = None  # see measure()
        self.model_name = str(cfg.model.path)
        self.loading: str | None = None  # a model loading in the background
        self.recorder = recorder  # a session recorder: attached when the threads exist, final files written at stop
        self.recorded: list[Path] = []  # the files the last recording wrote
        self.synced: list = []  # Link, the state out ([sync], [osc]; agent/live/sync.py): stopped first

    # -- wiring --------------------------------------------------------------
    def start(self) -> "Engine":
        cfg = self.cfg
        # The sampling thread holds the GIL for up to one switch interval (5 ms by
        # default) before the scheduler thread may send: shorten it while we play.
        self._old_switch = sys.getswitchinterval()
        sys.setswitchinterval(cfg.scheduler.gil_switch_ms / 1000)
        try:
            self._open(cfg)
        except BaseException:  # undo what was done (threads, ports, the switch interval), then say why
            self.stop()
            raise
        return self

    def _open(self, cfg: Config) -> None:
        self.main_output = self.ports.open_output(self.output_name, virtual_name=self.virtual_name)
        self.output = Tee(self.main_output, *self.extra_outputs) if self.extra_outputs else self.main_output
        s = cfg.scheduler
        self.scheduler = Scheduler(self.output, self.clock, channel=cfg.midi.channel - 1,
                                   velocity_scale=cfg.midi.velocity_scale,
                                   late_tolerance_s=s.late_tolerance_ms / 1000, spin_s=s.spin_ms / 1000,
                                   rt_priority=s.rt_priority, on_error=self._fail,
                                   max_polyphony=cfg.sampling.max_polyphony)
        self.scheduler.max_note_s = lambda: self.controls.cfg.sampling.max_note_beats * self.tempo.seconds_per_beat()
        self.watcher = PortWatcher(self, cfg.midi.port_check_s)
        self.jam = Jam(self.predictor, self.scheduler, self.tempo, self.controls, self.clock,
                       self.predictor.vocab, lead_s=s.lead_ms / 1000, channel=cfg.midi.channel - 1,
                       report=self.report, follow=TempoFollower(self.tempo, self.beat))
        echo = EchoFilter(cfg.midi.echo_window_ms / 1000) if cfg.midi.echo_filter else None
        if echo:
            self.scheduler.sending_hooks.append(echo.sending)
        self.clock_sync.on_stop = self.jam.cut  # a DAW's stop cuts the agent's notes (on the listener thread)
        self.listener = Listener(self.jam, self.clock, echo=echo, end_phrase_cc=cfg.jam.end_phrase_cc,
                                 on_control=self._on_cc, on_tempo=self._on_midi_tempo,
                                 on_transport=self._on_transport, on_error=self._fail,
                                 on_pulse=self.clock_sync.pulse, midi_clock=self.clock_sync.clock_in,
                                 on_fault=lambda exc: self.report(f"error, notes cut, playing on: {type(exc).__name__}: {exc}"))
        if self.recorder is not None:
            self.recorder.attach(self)
        self.scheduler.start()
        name = self.input_name  # kept as given: the watcher finds a port that comes back by it
        if name and not self.virtual_input and not self.ports.is_loopback:
            name = self._port_named(name, "input")
        self.input = self.ports.open_input(name, self.listener.receive, virtual=self.virtual_input, clock=self.clock)
        self.listener.start()
        if not self.virtual_input or self.output_name:  # ours cannot go away
            self._watch()
        if cfg.sync.clock_out:
            self.clock_sync.out = start_clock_out(self, cfg)
        self.synced = start_sync(self, cfg)

    def set_main_output(self, port) -> None:
        """Swap the output the agent plays on (the port watcher: lost, then back)."""
        self.main_output = port
        self.output = Tee(port, *self.extra_outputs) if self.extra_outputs else port
        self.scheduler.output = self.output

    def stop(self) -> list[int]:
        """Stop the threads, close every open note, close the ports. Safe to call twice."""
        closed: list[int] = []
        with self._port_lock:
            self._closing = True
        stop_sync(self.synced)
        self.controls.pending.stop()
        if self.listener is not None:
            self.listener.stop()
            if not self.listener.alive and self.jam is not None:  # its thread is gone: we own the jam now
                try:
                    closed += self.jam.cut(self.clock.now())
                except Exception as exc:  # a failing predictor must not keep notes open
                    log.error("while stopping: %s", exc)
        if self.scheduler is not None:
            closed += self.scheduler.stop()  # its last note-offs reach the recorder too
        if self.clock_sync.out is not None:
            self.clock_sync.out.close()  # Stop sent, its port closed
        for port in (self.input, self.output):
            if port is not None:
                try:
                    port.close()
                except Exception as exc:
                    log.error("closing %s: %s", getattr(port, "name", port), exc)
        self.input = self.output = None
        if getattr(self, "_old_switch", None):
            sys.setswitchinterval(self._old_switch)
        if self.recorder is not None:  # last: the ports are free while the final files are written
            self.stop_recording()
        self.stopped.set()
        return closed

    # -- recording ----------------------------------------------------------------
    def record(self, path: str | Path, make) -> Path:
        """Record to `path` with the attached recorder, or with `make()`'s (a session recorder, built
        by the caller: it attaches through the engine's hooks) hooked in now. Returns the path its
        start() used. Refused (AntiphonError) while another recording runs."""
        if self.recorder is not None and self.recorder.path is not None:
            raise AntiphonError(f"already recording to {self.recorder.path}: stop that recording first")
        if self.recorder is None:
            self.recorder = make()
            if self.listener is not None:  # already playing: hook in now (else _open does)
                self.recorder.attach(self)
        return self.recorder.start(path)

    def stop_recording(self) -> list[Path]:
        """Stop recording; write and return the final files (MIDI, MusicXML, PNG). [] if none."""
        rec, self.recorder = self.recorder, None
        if rec is None:
            return []
        rec.detach()
        self.recorded = rec.stop()
        for path in self.recorded:
            self.report(f"recorded {path}")
        return self.recorded

    def wait(self, timeout_s: float | None = None) -> bool:
        """Block until the engine stops by itself (an error, a lost port). True if it did."""
        return self.stopped.wait(timeout_s)

    def panic(self) -> None:
        """All notes off now: the jam stops generating, the scheduler sends CC123/CC120 on 16 channels;
        the agent then stays silent (solo included) until the player plays or a mode is given."""
        self.silence(panic=True)

    # -- events from the threads ------------------------------------------------
    def _fail(self, exc: Exception) -> None:
        self.error = exc
        self.report(f"stopping: {type(exc).__name__}: {exc}")
        self.stopped.set()

    def _on_cc(self, control: int, value: int, t_s: float) -> None:
        learnt = self.controls.on_cc(control, value)
        if learnt is not None:
            self.report(f"learnt: {learnt.describe()}")

    def _follows_clock(self) -> bool:
        return self.controls.cfg.timing.source == "clock"

    def _on_midi_tempo(self, bpm: float, t_s: float) -> None:
        self.clock_sync.tempo_in(bpm, t_s)

    def _on_transport(self, kind: str, t_s: float) -> None:
        self.clock_sync.transport(kind, t_s)  # start, continue, song position, stop (agent/midi/clockin.py)

    def _on_control_change(self, key: str, value, at: float) -> None:
        """A live setting changed at `at` (seconds: now, or the line it was pending for): what the jam
        does not read by itself at each step is made to take effect here."""
        if key == "timing.bpm":
            self.tempo.set_bpm(value, at)
        elif key == "timing.source" and value == "fixed":
            self.tempo.set_bpm(self.controls.cfg.timing.bpm, at)
        elif key == "timing.beats_per_bar":
            self.tempo.beats_per_bar = value
        elif key == "midi.velocity_scale" and self.scheduler:
            self.scheduler.velocity_scale = value
        elif key == "sampling.max_polyphony" and self.scheduler:
            self.scheduler.max_polyphony = value
        elif key == "midi.channel" and self.scheduler:
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
        if self.listener:
            self.listener.wake()

    def stats(self) -> dict:
        s, j, li = self.scheduler, self.jam, self.listener
        return {"sent": s.sent, "late": s.late, "dropped_late": s.dropped_late, "open_notes": len(s.open_notes) + s.unclosed,
                "received": li.received, "player_notes": li.notes_in, "ignored": dict(li.ignored),
                "echoes": li.echo.echoes if li.echo else 0, "phrases": j.phrases,
                "answers": j.answers, "rollbacks": j.rollbacks, **self.tempo_status()}

    def tempo_status(self) -> dict:
        """The tempo in use and where it comes from, for a status line or toolbar."""
        src = "clock" if self._follows_clock() else self.controls.cfg.timing.source
        return {"bpm": round(self.tempo.bpm, 2), "tempo_source": src,
                "tempo_confidence": round(self.beat.confidence, 3) if src == "player" else None}

    # -- live operations ---------------------------------------------------------
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

    def measure(self) -> Figures:
        """Start keeping the toolbar's figures (step times, scheduling errors, onsets); idempotent."""
        if self.figures is None:
            self.figures = Figures(self.clock)
            if self.scheduler is not None:
                self.scheduler.hooks.append(self.figures.on_sent)
                self.jam.observers.append(self.figures.on_answer)
            self._time_steps(self.predictor)
        return self.figures

    def _time_steps(self, predictor) -> None:
        if self.figures is not None and not hasattr(predictor.feed, "__wrapped__"):
            predictor.feed = self.figures.timed(predictor.feed)

    def _port_named(self, part: str, kind: str) -> str:
        """The full name of the `kind` port ("input" | "output") whose name contains `part`, among the
        ports others have: our own virtual ports are listed as the other kind (our output is an input
        others open) and are never the player's (listening on our output feeds the agent itself).
        PortError names the part and the ports there are; on loopback no bus is made by asking."""
        ours = set()
        if self.virtual_name and not self.output_name:
            ours.add(self.virtual_name)
        if self.virtual_input:
            ours.add(self.input_name)
        listed = self.ports.input_names() if kind == "input" else self.ports.output_names()
        return self.ports.match([n for n in listed if port_part(n) not in ours], part, kind)

    def connect_input(self, name: str) -> str:
        """Listen on another input port (part of its name) without stopping; returns its full name."""
        new = self.ports.open_input(self._port_named(name, "input"), self.listener.receive, clock=self.clock)
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
            if self.output_name:  # a port we send to may come back; losing our own is the end
                self.scheduler.on_port_lost = self.watcher.output_failed

    def connect_output(self, name: str) -> str:
        """Play on another output port without stopping: the agent's notes close on the old one first."""
        new = self.ports.open_output(self._port_named(name, "output"))
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

    def swap_predictor(self, new, name: str) -> None:
        """Swap in a loaded predictor: primed from the rolling context beside the live one, in slices in
        the engine thread's idle time, it takes over between answers, or at once in a solo (Jam.begin_swap)."""
        def done(new) -> None:
            self._time_steps(new)
            self.predictor = new
            self.model_name, self.loading = name, None
            self.report(f"model {name} loaded ({len(new.history)} tokens of context primed)")

        def on_engine_thread() -> None:
            if self.stopped.is_set():
                return
            new.history = deque(maxlen=self.controls.cfg.jam.context_tokens)
            self.jam.begin_swap(new, done)

        self.on_engine_thread(on_engine_thread)
