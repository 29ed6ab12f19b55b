"""The live engine: ports + listener thread (owns predictor and jam) + scheduler thread.

`Engine(cfg, predictor, ports=...)` wires the pieces; `start()` opens the
ports and the threads, `stop()` closes every note and the ports, whatever
ended the session (Ctrl-C, SIGTERM, an exception, a lost port).
`engine.controls` is the one object a REPL drives: `controls.set(key, value)`
validates like the config file does and takes effect at the next step.
"""
from __future__ import annotations

import logging
import sys
import threading
from pathlib import Path

from agent.music.tempomap import RealClock, TempoMap
from agent.config import Config, parse_value, set_value
from agent.live.engine_live import LiveEngine
from agent.errors import AntiphonError
from agent.live.jam.policy import Jam
from agent.live.listener import EchoFilter, Listener
from agent.midi.watch import PortWatcher
from agent.model.sampler import SamplingControls
from agent.live.scheduler import Scheduler
from agent.music.beat import BeatTracker, TempoFollower

log = logging.getLogger(__name__)
# what may change while playing; the rest (ports, model, vocabulary) needs a restart
LIVE_SECTIONS = {"sampling", "jam"}
LIVE_KEYS = {"timing.bpm", "timing.beats_per_bar", "timing.source", "midi.velocity_scale", "midi.channel"}
TEMPERATURE_CC_RANGE = (0.1, 2.0)  # CC value 0..127 maps linearly onto this temperature range


class LiveControls:
    """The engine's live settings: one validated setter, read at every step.

    `cfg` and `sampling` are immutable objects swapped whole, so a reader on
    another thread always sees a consistent set. A bad value raises
    AntiphonError and changes nothing.
    """

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.sampling = SamplingControls.from_config(cfg.sampling)
        self.listeners: list = []  # fn(key, value) after a change
        self._lock = threading.Lock()

    def get(self, key: str):
        sec, _, name = key.partition(".")
        try:
            return getattr(getattr(self.cfg, sec), name)
        except AttributeError:
            raise AntiphonError(f"unknown setting {key!r}") from None

    def set(self, key: str, value) -> None:
        self.set_many({key: value})

    def set_many(self, changes: dict) -> None:
        """Several settings at once (e.g. a range's two ends): all validated first, then one swap."""
        for key in changes:
            sec = key.partition(".")[0]
            if sec not in LIVE_SECTIONS and key not in LIVE_KEYS:
                raise AntiphonError(f"{key} cannot change while playing (live: {', '.join(sorted(LIVE_SECTIONS))}"
                                    f".*, {', '.join(sorted(LIVE_KEYS))})")
        with self._lock:
            new = self.cfg
            for key, value in changes.items():
                sec, _, name = key.partition(".")
                if isinstance(value, str):
                    value = parse_value(value)
                new = set_value(new, sec, name, value, source="live")
            sampling = (SamplingControls.from_config(new.sampling)
                        if any(k.startswith("sampling.") for k in changes) else self.sampling)
            self.cfg, self.sampling = new, sampling
        for key in changes:
            for fn in list(self.listeners):
                fn(key, self.get(key))

    def temperature_from_cc(self, value: int) -> None:
        lo, hi = TEMPERATURE_CC_RANGE
        self.set("sampling.temperature", round(lo + (hi - lo) * value / 127, 3))


class Tee:
    """One output that sends to several (e.g. loopback + a real virtual port)."""

    def __init__(self, *outputs) -> None:
        self.outputs = outputs
        self.name = " + ".join(o.name for o in outputs)

    def send(self, msg) -> None:
        """Every output gets msg even if one fails (a note-off must still reach the others); then it raises."""
        self._each(lambda o: o.send(msg))

    def close(self) -> None:
        self._each(lambda o: o.close())

    def _each(self, fn) -> None:
        error = None
        for o in self.outputs:
            try:
                fn(o)
            except Exception as exc:
                error = error or exc
        if error is not None:
            raise error


class Engine(LiveEngine):
    """Listener + jam + scheduler over one input and one output port."""

    def __init__(self, cfg: Config, predictor, *, ports, input_name: str = "", output_name: str = "",
                 virtual_name: str | None = None, virtual_input: bool = False, extra_outputs=(), clock=None,
                 report=print, recorder=None) -> None:
        self.cfg = cfg
        self.controls = LiveControls(cfg)
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
        self.controls.listeners.append(self._on_control_change)
        self.recorder = recorder  # a record.Recorder: attached when the threads exist, final files written at stop
        self.recorded: list[Path] = []  # the files the last recording wrote
        self._init_live()

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
        self.listener = Listener(self.jam, self.clock, echo=echo, end_phrase_cc=cfg.jam.end_phrase_cc,
                                 on_control=self._on_cc, on_tempo=self._on_midi_tempo,
                                 on_transport=self._on_transport, on_error=self._fail,
                                 on_fault=lambda exc: self.report(f"error, notes cut, playing on: {type(exc).__name__}: {exc}"))
        if self.recorder is not None:
            self.recorder.attach(self)
        self.scheduler.start()
        self.input = self.ports.open_input(self.input_name, self.listener.receive, virtual=self.virtual_input,
                                          clock=self.clock)
        self.listener.start()
        if cfg.midi.port_check_s > 0 and (not self.virtual_input or self.output_name):  # ours cannot go away
            self.watcher.start()
            if self.output_name:  # a port we send to may come back; losing our own is the end
                self.scheduler.on_port_lost = self.watcher.output_failed

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
        self.pending.stop()
        if self.listener is not None:
            self.listener.stop()
            if not self.listener.alive and self.jam is not None:  # its thread is gone: we own the jam now
                try:
                    closed += self.jam.cut(self.clock.now())
                except Exception as exc:  # a failing predictor must not keep notes open
                    log.error("while stopping: %s", exc)
        if self.scheduler is not None:
            closed += self.scheduler.stop()  # its last note-offs reach the recorder too
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
    def start_recording(self, path: str | Path) -> Path:
        """Record from now to `path` (a .mid; .musicxml and .png beside it at the end).

        Never overwrites: returns the path actually used (FILE-1.mid if FILE.mid exists). A folder
        that cannot be written raises AntiphonError and changes nothing."""
        from agent.session.recorder import Recorder, check_writable, free_path

        if self.recorder is not None and self.recorder.path is not None:
            raise AntiphonError(f"already recording to {self.recorder.path}: stop that recording first")
        path = free_path(path)
        check_writable(path.parent)
        if self.recorder is None:
            self.recorder = Recorder(self.tempo.bpm, beats_per_bar=self.tempo.beats_per_bar,
                                     resolution=self.predictor.vocab.resolution, clock=self.clock,
                                     flush_s=self.cfg.record.flush_s, report=self.report)
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
        """All notes off now: the jam stops generating, the scheduler sends CC123/CC120 on 16 channels.

        The agent then stays silent (solo included) until the player plays or a mode is given."""
        self.silence(panic=True)

    # -- events from the threads ------------------------------------------------
    def _fail(self, exc: Exception) -> None:
        self.error = exc
        self.report(f"stopping: {type(exc).__name__}: {exc}")
        self.stopped.set()

    def _on_cc(self, control: int, value: int, t_s: float) -> None:
        mapping, learnt = self.ccmap.on_cc(control, value)
        if learnt:
            self.report(f"learnt: {mapping.describe()}")
        if mapping is not None:
            try:
                self.set(mapping.key, mapping.value(value))
            except AntiphonError as exc:  # e.g. a range that crosses another setting: say so, go on
                log.warning("CC%d: %s", control, exc)
            return
        if control == self.controls.cfg.jam.temperature_cc:
            self.controls.temperature_from_cc(value)

    def _follows_clock(self) -> bool:
        t = self.controls.cfg.timing
        return t.source == "clock" or t.midi_clock_in

    def _on_midi_tempo(self, bpm: float, t_s: float) -> None:
        if self._follows_clock():
            self.tempo.set_bpm(min(max(bpm, 20.0), 400.0), t_s)

    def _on_transport(self, kind: str, t_s: float) -> None:
        if not self._follows_clock():
            return
        if kind == "start":
            self.tempo.restart(t_s)
        elif kind == "stop" and self.jam is not None:
            self.jam.cut(t_s)  # on the listener thread: the jam's owner

    def _on_control_change(self, key: str, value) -> None:
        at = self.clock.now() if self._change_at is None else self._change_at  # now, or on the bar line
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
        else:
            self._apply_live(key, value)
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
