"""The REPL's commands: one line in, a change through the engine's one setter, a line out.

`Commands(engine, say=print).run(line)` parses and runs one command; it
returns False for `quit`. A bad value prints one line naming the value and
the allowed range, and changes nothing (every change is validated whole
before any of it is applied). Any setting command can be prefixed `at bar`
or `at beat`: it is validated now and applied on the next bar (beat) line.
The words (usage, aliases) and the setting commands' parsers are parse.py's;
the actions (mode, cc, ports, load, record, ...) are the methods here.

No model work happens here: loading a model runs on its own thread and the
jam primes it beside the live model and swaps it in (Jam.begin_swap); everything that touches the
predictor runs on the engine thread (`engine.on_engine_thread`).
"""
from __future__ import annotations

import threading
import time
from dataclasses import fields
from pathlib import Path

from agent.config import ROOT, to_toml
from agent.errors import AntiphonError
from agent.live.controls import CCMapping
from agent.ui.repl.parse import AT_ALLOWED, HELP, MODES, NO_ARGS, SETTINGS, CommandError, cc_target, check, number
from agent.ui.repl.toolbar import status_lines


class Commands:
    """Runs REPL lines against an Engine. `say` prints one line (above the prompt in the REPL)."""

    def __init__(self, engine, say=print) -> None:
        self.engine = engine
        self.say = say
        self.port_names: tuple[list[str], list[str]] = ([], [])  # cached for completion (listing can be slow)
        self._sourcing = 0

    # -- entry ---------------------------------------------------------------
    def run(self, line: str) -> bool:
        """Run one line; False when it asks to quit. Errors are printed, never raised."""
        line = line.strip()
        if not line or line.startswith("#"):
            return True
        try:
            return self._run(line)
        except AntiphonError as exc:
            self.say(f"error: {exc}")
            return True

    def _run(self, line: str) -> bool:
        words = line.split()
        at = None
        if words[0] == "at":
            if len(words) < 3 or words[1] not in ("bar", "beat"):
                raise CommandError(f"{line}: say `at bar COMMAND` or `at beat COMMAND`")
            at, words = words[1], words[2:]
            if words[0] == "at":
                raise CommandError(f"{line}: one `at` a line: say `at bar COMMAND` or `at beat COMMAND`")
        name, args = words[0].lower(), words[1:]
        if name in ("exit",):
            name = "quit"
        handler = SETTINGS.get(name) or getattr(self, "cmd_" + name.replace("-", "_"), None)
        if handler is None or name not in HELP:
            raise CommandError(f"unknown command {words[0]!r} (try `help`)")
        if args and name in NO_ARGS:  # `panic reset` must not panic and drop "reset"
            raise CommandError(f"{' '.join(words)}: {name} takes no arguments (say `{name}`); nothing done")
        if at is not None and name not in AT_ALLOWED:
            raise CommandError(f"`at {at}` works with settings, mode, panic and reset, not {name}")
        result = handler(args, " ".join(words))
        if isinstance(result, dict):  # a change of settings: validated whole, then applied (now or on the line)
            check(self.engine.controls.cfg, result, " ".join(words))
            self._apply(result, at, " ".join(words))
        elif callable(result):  # an action
            if at is None:
                return result() is not False
            else:
                t = self.engine.controls.at(at, lambda line_s: result(), " ".join(words), replaces=name)
                self.say(f"at the next {at} (in {1e3 * (t - self.engine.clock.now()):.0f} ms): {' '.join(words)}")
        return result is not False

    def _apply(self, changes: dict, at: str | None, what: str) -> None:
        controls = self.engine.controls
        if at is None:
            controls.set_many(changes)
            self.say(", ".join(f"{k} = {controls.get(k)!r}" for k in changes))
            return
        early = all(k.startswith("sampling.") or k in ("timing.bpm", "jam.echo", "jam.form") for k in changes)
        t = controls.at(at, lambda line_s: controls.set_many(changes, at_s=line_s), what, early=early,
                        replaces=tuple(sorted(changes)))  # a later change of these settings on this line wins
        self.say(f"at the next {at} (in {1e3 * (t - controls.clock.now()):.0f} ms): {what}")

    # -- settings that are actions ----------------------------------------------
    def cmd_mode(self, args, what):
        if len(args) != 1 or args[0] not in MODES:
            raise CommandError(f"{what}: {' '.join(args)!r} is not a mode (allowed: one of {', '.join(MODES)})")
        eng, mode = self.engine, args[0]

        def act():
            if mode == "off":
                eng.silence(until="mode")
                self.say("mode off: silent until you give a mode")
            else:
                eng.controls.set("jam.mode", mode)
                eng.resume()
                self.say(f"jam.mode = {mode!r}")
        return act

    # -- controllers -------------------------------------------------------------
    def cmd_cc(self, args, what):
        eng, ccmap = self.engine, self.engine.controls.ccmap
        args = [a for a in " ".join(args).replace("[", " ").replace("]", " ").split()]
        if not args:
            maps = ccmap.maps
            lines = [m.describe() for m in sorted(maps.values(), key=lambda m: m.control)]
            if ccmap.learning:
                lines.append(f"learning: the next CC moved maps to {ccmap.learning}")
            t = eng.controls.cfg.jam.temperature_cc
            if t >= 0 and t not in maps:
                lines.append(f"CC{t} -> sampling.temperature (jam.temperature_cc)")
            return lambda: self.say("\n".join(lines) if lines else "no controller mappings")
        if args[0] == "learn":
            if len(args) < 2:
                raise CommandError(f"{what}: say which setting, e.g. `cc learn temp`")
            key, lo, hi, integer = cc_target(eng.controls.cfg, args[1], args[2:], what)
            return lambda: (ccmap.learn(key, lo, hi, integer),
                            self.say(f"move a controller: it will set {key} [{lo:g} {hi:g}]"))
        if args[0] == "off":
            if len(args) != 2:
                raise CommandError(f"{what}: say which controller, e.g. `cc off 74`")
            cc = number(args[1], what, "jam.temperature_cc", integer=True)
            return lambda: self.say(f"CC{cc} unmapped" if ccmap.remove(cc) else f"CC{cc} was not mapped")
        if len(args) < 2:
            raise CommandError(f"{what}: say `cc SETTING CC [LO HI]`, e.g. `cc temp 74 [0.2 1.5]`")
        cc = number(args[1], what, "jam.temperature_cc", integer=True)
        if not 0 <= cc <= 127:
            raise CommandError(f"{what}: controller {cc} is out of range (allowed: 0 to 127)")
        key, lo, hi, integer = cc_target(eng.controls.cfg, args[0], args[2:], what)
        m = CCMapping(cc, key, lo, hi, integer)
        return lambda: (ccmap.add(m), self.say(f"mapped {m.describe()}"))

    # -- ports and models ------------------------------------------------------------
    def refresh_ports(self) -> tuple[list[str], list[str]]:
        p = self.engine.ports
        self.port_names = (p.input_names(), p.output_names())
        return self.port_names

    def cmd_ports(self, args, what):
        def act():
            ins, outs = self.refresh_ports()
            eng = self.engine
            self.say(f"backend {eng.ports.name}; listening on {eng.input.name!r}, playing on {eng.output.name!r}")
            self.say("inputs:  " + (", ".join(map(repr, ins)) or "none"))
            self.say("outputs: " + (", ".join(map(repr, outs)) or "none"))
        return act

    def cmd_connect(self, args, what):
        if len(args) < 2 or args[0] not in ("in", "out"):
            raise CommandError(f"{what}: say `connect in NAME` or `connect out NAME`")
        name, eng = " ".join(args[1:]), self.engine

        def act():
            if args[0] == "in":
                self.say(f"listening on {eng.connect_input(name)!r}")
            else:
                self.say(f"playing on {eng.connect_output(name)!r}")
        return act

    def cmd_load(self, args, what):
        from agent.model.folder import ModelDir

        if len(args) != 1:
            raise CommandError(f"{what}: say `load MODEL` (a model folder, or a name under models/)")
        eng, arg = self.engine, args[0]
        path = Path(arg).expanduser()
        if not path.is_dir() and (ROOT / "models" / arg).is_dir():
            path = ROOT / "models" / arg
        try:
            md = ModelDir.resolve(path)
        except AntiphonError as exc:
            raise CommandError(f"load {arg}: {exc}") from None
        have = eng.predictor.vocab
        try:
            vocab = md.vocab()
        except (AntiphonError, ValueError, OSError) as exc:
            raise CommandError(f"load {arg}: refused: {exc}") from None
        if vocab != have:
            diff = ", ".join(f"{f.name} {getattr(vocab, f.name)} (playing: {getattr(have, f.name)})"
                             for f in fields(have) if getattr(vocab, f.name) != getattr(have, f.name))
            raise CommandError(f"load {arg}: refused: its vocabulary differs from the playing model's: {diff}")
        cfg = eng.controls.cfg
        if cfg.model.backend in ("auto", "onnx"):
            md.require(md.onnx_file(cfg.model.quantized))
        if eng.loading:
            raise CommandError(f"load {arg}: {eng.loading} is still loading")

        def load():
            try:
                from agent.model.predictor import Predictor

                seed = cfg.sampling.seed
                new = Predictor.load(md.path, backend=cfg.model.backend, threads=cfg.model.threads,
                                     quantized=cfg.model.quantized, seed=None if seed < 0 else seed,
                                     context_tokens=cfg.jam.context_tokens)
            except Exception as exc:  # a broken file: the session goes on with the old model
                eng.loading = None
                self.say(f"error: load {arg}: {exc}")
                return
            eng.swap_predictor(new, str(md.path))

        def act():
            eng.loading = str(md.path)
            threading.Thread(target=load, name="antiphon-load", daemon=True).start()
            self.say(f"loading {md.path} in the background; it takes over between answers (in solo, at once)")
        return act

    def cmd_record(self, args, what):
        """`record start [FILE]` (default: [record] folder and name), `record stop`, `record` (where to)."""
        from agent.ui.commands.play import start_recording

        eng = self.engine
        if not args:
            rec = eng.recorder
            where = rec.path if rec is not None else None
            return lambda: self.say(f"recording to {where}" if where else "not recording (say `record start [FILE]`)")
        if args[0] == "start" and len(args) <= 2:
            if len(args) == 2:
                path = Path(args[1]).expanduser()
                if path.suffix.lower() not in (".mid", ".midi"):
                    path = path.with_name(path.name + ".mid")
            else:
                rc = eng.controls.cfg.record
                path = Path(rc.folder).expanduser() / time.strftime(rc.name)

            def start():
                try:
                    used = start_recording(eng, path)
                except AntiphonError as exc:
                    self.say(f"error: {what}: {exc}")
                    return
                self.say(f"recording to {used} (saved every {eng.controls.cfg.record.flush_s:g} s)")
            return start
        if args == ["stop"]:
            def stop():
                files = eng.stop_recording()
                self.say("wrote " + ", ".join(map(str, files)) if files else "not recording")
            return stop
        raise CommandError(f"{what}: say `record start [FILE]`, `record stop` or `record`")

    # -- actions -------------------------------------------------------------------
    def cmd_panic(self, args, what):
        return lambda: (self.engine.panic(), self.say("panic: all notes off; silent until you play or give a mode"))

    def cmd_reset(self, args, what):
        return lambda: (self.engine.reset_model(), self.say("model state cleared"))

    def cmd_status(self, args, what):
        return lambda: self.say("\n".join(status_lines(self.engine)))

    def cmd_save(self, args, what):
        if len(args) != 1:
            raise CommandError(f"{what}: say `save FILE`")
        path = Path(args[0]).expanduser()
        if not path.parent.is_dir():  # a mistyped folder is an error, not folders made at the root
            raise CommandError(f"{what}: no folder {str(path.parent)!r}; nothing written")

        def act():
            try:
                path.write_text(to_toml(self.engine.controls.cfg))
            except OSError as exc:
                raise CommandError(f"{what}: cannot write it: {exc}") from None
            self.say(f"saved the live settings to {path} (antiphon play --config {path})")
        return act

    def cmd_source(self, args, what):
        if len(args) != 1:
            raise CommandError(f"{what}: say `source FILE`")
        path = Path(args[0]).expanduser()
        try:
            lines = path.read_text().splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise CommandError(f"{what}: cannot read it: {exc}") from None
        if self._sourcing > 8:
            raise CommandError(f"{what}: files source each other too deeply")

        def act():
            self._sourcing += 1
            try:
                for i, line in enumerate(lines, 1):
                    if line.strip() and not line.strip().startswith("#"):
                        self.say(f"{path.name}:{i}> {line.strip()}")
                    if not self.run(line):
                        return False
            finally:
                self._sourcing -= 1
            return True
        return act

    def cmd_help(self, args, what):
        if len(args) > 1:
            raise CommandError(f"{what}: say `help` or `help COMMAND` (one command)")
        if args:
            name = args[0].lower()
            if name not in HELP:
                raise CommandError(f"help: unknown command {args[0]!r} (try `help`)")
            usage, text = HELP[name]
            return lambda: self.say(f"{usage}\n  {text}" + ("\n  (can be prefixed `at bar` or `at beat`)"
                                                            if name in AT_ALLOWED else ""))
        width = max(len(u) for u, _ in HELP.values())
        lines = [f"{u:<{width}}  {t}" for u, t in HELP.values()]
        lines.append("`at bar CMD` / `at beat CMD`: apply on the next bar (beat) line. "
                     "Ctrl-C: silence; Ctrl-D or quit: stop.")
        return lambda: self.say("\n".join(lines))

    def cmd_quit(self, args, what):
        return False
