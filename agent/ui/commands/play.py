"""antiphon play: run the engine; with a terminal, a REPL changes it live (agent/ui/repl/app.py).

With no terminal on standard input (or --headless) it runs until Ctrl-C or
SIGTERM (both close every note). With one, a prompt_toolkit REPL runs on the
main thread while the engine plays in its own threads; Ctrl-C there silences
the agent, Ctrl-D or `quit` stops it.
"""
from __future__ import annotations

import contextlib
import signal
import sys
import threading
import time
from pathlib import Path

from agent.ui.cli import common_options
from agent.config import load_config, set_value
from agent.errors import AntiphonError
from agent.model.folder import ModelDir

HELP = "play along live: listen on a MIDI input, answer on a virtual or named output"


def add_arguments(p) -> None:
    inp = p.add_mutually_exclusive_group()
    inp.add_argument("--in", dest="inp", metavar="NAME", help="input port (part of its name; default: the first input)")
    inp.add_argument("--virtual-in", metavar="NAME", help="create a virtual input port with this name to play into")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--out", metavar="NAME", help="send to this existing output port (part of its name)")
    out.add_argument("--virtual", metavar="NAME", help="create a virtual output port with this name")
    p.add_argument("--mode", choices=["call", "accompany", "solo"], help="jam mode (default: [jam] mode)")
    p.add_argument("--model", metavar="DIR", help="model folder (default: [model] path)")
    p.add_argument("--backend", help="MIDI backend: auto | alsa | jack | coremidi | winmm | loopback")
    p.add_argument("--seconds", type=float, help="stop by itself after this many seconds")
    p.add_argument("--record", metavar="FILE.mid", help="record the session to FILE.mid (+ .musicxml and .png at the "
                                                        "end); an existing file is never overwritten (FILE-1.mid...)")
    p.add_argument("--feed", metavar="FILE.mid", help="loopback backend only: play this MIDI file into the input in "
                                                      "real time, as a scripted player (for tests and trials)")
    p.add_argument("--headless", action="store_true", help="no REPL even on a terminal: run until Ctrl-C")
    common_options(p)


def configure(args):
    """The Config for this run: the file, --set, then the command's own options."""
    cfg = load_config(args.config, args.overrides)
    if getattr(args, "mode", None):
        cfg = set_value(cfg, "jam", "mode", args.mode, "--mode")
    if getattr(args, "model", None):
        cfg = set_value(cfg, "model", "path", args.model, "--model")
    if getattr(args, "backend", None):
        cfg = set_value(cfg, "midi", "backend", args.backend, "--backend")
    return cfg


def load_predictor(cfg):
    md = ModelDir.resolve(cfg.model_dir())
    if cfg.model.backend in ("auto", "onnx"):
        md.require(md.onnx_file(cfg.model.quantized))
    from agent.model.predictor import Predictor  # loads onnxruntime: only once the model is known to be there

    return Predictor.from_config(cfg)


@contextlib.contextmanager
def _sigint_ignored():
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


def run_until_stopped(engine, seconds: float | None = None, banner: str | None = None) -> int:
    """Wait for Ctrl-C, SIGTERM, the time limit or an engine failure; always stop the engine.

    Call it straight after engine.start(): `banner` is printed inside, so a
    Ctrl-C at any moment still reaches the stop. A second Ctrl-C while the
    engine stops is ignored, so the note-offs always go out.
    """
    done = threading.Event()
    old = signal.signal(signal.SIGTERM, lambda *_: done.set())
    try:
        if banner:
            print(banner, flush=True)
        limit = threading.Timer(seconds, done.set) if seconds else None
        if limit:
            limit.daemon = True
            limit.start()
        while not done.is_set() and not engine.stopped.is_set():
            done.wait(0.1)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, old)
        stop_and_report(engine)
    if engine.error is not None:
        raise AntiphonError(f"the engine stopped: {type(engine.error).__name__}: {engine.error}")
    return 0


def record_path(cfg, explicit: str | None = None):
    """Where this session is recorded (None: not recorded): --record, else [record] when enabled.

    The folder is created and proven writable here, before the session starts; an existing file
    (or its .musicxml/.png) is never overwritten: the name gets -1, -2..."""
    from agent.session.storage import check_writable, free_path

    if explicit:
        path = Path(explicit)
    elif cfg.record.enabled:
        path = Path(cfg.record.folder) / time.strftime(cfg.record.name)
    else:
        return None
    check_writable(path.parent)
    return free_path(path)


def start_recording(engine, path: str | Path) -> Path:
    """Record the engine from now to `path` (a .mid; .musicxml and .png beside it at the end).

    Never overwrites: returns the path actually used (FILE-1.mid if FILE.mid exists). A folder
    that cannot be written, or a recording already running, raises AntiphonError and changes nothing."""
    from agent.session.recorder import Recorder
    from agent.session.storage import check_writable, free_path

    path = free_path(path)
    check_writable(path.parent)
    return engine.record(path, lambda: Recorder(
        engine.tempo.bpm, beats_per_bar=engine.tempo.beats_per_bar, resolution=engine.predictor.vocab.resolution,
        clock=engine.clock, flush_s=engine.cfg.record.flush_s, report=engine.report))


def read_feed(path: str) -> list:
    """A MIDI file's channel messages, each with its delay after the one before in seconds (tempo map applied)."""
    import mido

    from agent.music.notes import MidiReadError

    try:
        return [m for m in mido.MidiFile(path) if not m.is_meta]
    except Exception as exc:
        raise MidiReadError(f"{path}: not a readable MIDI file ({type(exc).__name__}: {exc})") from None


def feed(send, msgs: list, start_s: float, clock) -> threading.Thread:
    """Send `msgs` (from read_feed) through `send` on absolute deadlines from start_s, on a daemon thread."""
    def run() -> None:
        t = start_s
        for m in msgs:
            t += m.time
            clock.sleep_until(t)
            send(m.copy(time=0))

    th = threading.Thread(target=run, name="antiphon-feed", daemon=True)
    th.start()
    return th
def stop_and_report(engine) -> None:
    """Stop the engine (a second Ctrl-C meanwhile is ignored, so the note-offs go out) and say how it ended."""
    with _sigint_ignored():
        closed = engine.stop()
    st = engine.stats()
    print(f"stopped: {st['phrases']} phrases heard, {st['answers']} answers, {st['sent']} messages sent, "
          f"{st['dropped_late']} late note-ons dropped, {len(closed)} notes closed at stop, "
          f"{st['open_notes']} left open", flush=True)


def run_with_repl(engine, banner: str, seconds: float | None = None) -> int:
    """The REPL on this thread while the engine plays; always stops the engine."""
    from agent.ui.repl.app import Repl

    done = threading.Event()
    old = signal.signal(signal.SIGTERM, lambda *_: (done.set(), engine.stopped.set()))
    limit = threading.Timer(seconds, engine.stopped.set) if seconds else None
    try:
        print(banner + " Type `help`; Ctrl-C silences, Ctrl-D or `quit` stops.", flush=True)
        if limit:
            limit.daemon = True
            limit.start()
        Repl(engine).run()
    except KeyboardInterrupt:
        pass
    finally:
        if limit:
            limit.cancel()
        signal.signal(signal.SIGTERM, old)
        stop_and_report(engine)
    if engine.error is not None:
        raise AntiphonError(f"the engine stopped: {type(engine.error).__name__}: {engine.error}")
    return 0


def use_repl(args) -> bool:
    """A REPL when standard input and output are a terminal and --headless is not given."""
    return not getattr(args, "headless", False) and sys.stdin.isatty() and sys.stdout.isatty()


def run(args) -> int:
    from agent.music.tempomap import RealClock
    from agent.live.engine import Engine
    from agent.midi.ports import Ports
    from agent.ui.osc import osc_control

    cfg = configure(args)
    rec_path = record_path(cfg, args.record)  # an unwritable folder fails here, before anything starts
    predictor = load_predictor(cfg)
    ports = Ports(cfg.midi.backend)
    if args.feed and not ports.is_loopback:
        raise AntiphonError("--feed plays into a loopback input: use it with --backend loopback")
    fed = read_feed(args.feed) if args.feed else None
    inp = args.inp if args.inp is not None else (args.virtual_in or cfg.midi.input)
    if not inp and not ports.is_loopback:
        names = ports.input_names()
        if not names:
            raise AntiphonError(f"no MIDI input ports on {ports.name}; plug in a keyboard or give --in NAME")
        inp = names[0]
        print(f"no --in given: using the first input, {inp!r}")
    out = args.out if args.out is not None else cfg.midi.output
    virtual = None if out else (args.virtual or cfg.midi.virtual_name)
    engine = Engine(cfg, predictor, ports=ports, input_name=inp, output_name=out or "", virtual_name=virtual,
                    virtual_input=bool(args.virtual_in))
    engine.start()
    note = ""
    try:
        osc = osc_control(engine)  # [osc] port: every REPL command as an OSC address (agent/ui/osc.py)
        if osc is not None:
            engine.synced.append(osc)  # stopped with the engine
            note += f" OSC control on {osc.address[0]}:{osc.address[1]}."
        if rec_path is not None:
            note += f" Recording to {start_recording(engine, rec_path)} (saved every {cfg.record.flush_s:g} s)."
        if fed is not None:
            keyboard = ports.open_output(inp or "keyboard")
            feed(keyboard.send, fed, RealClock().now() + 0.2, RealClock())
    except BaseException:
        engine.stop()
        raise
    banner = (f"listening on {engine.input.name!r}, playing on {engine.output.name!r} ({ports.name}); "
              f"mode {cfg.jam.mode}, {tempo_words(cfg)}.{note}")
    if use_repl(args):
        return run_with_repl(engine, banner, args.seconds)
    return run_until_stopped(engine, args.seconds, banner + " Ctrl-C to stop.")


def tempo_words(cfg) -> str:
    t = cfg.timing
    if t.source == "clock":
        return f"tempo from MIDI clock ({t.bpm:g} bpm until it comes)"
    if t.source == "player":
        return f"tempo followed from your playing ({t.bpm:g} bpm until it is heard)"
    return f"{t.bpm:g} bpm"
