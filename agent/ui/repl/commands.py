"""The REPL's commands: one line in, a change through the engine's one setter, a line out.

`Commands(engine, say=print).run(line)` parses and runs one command; it
returns False for `quit`. A bad value prints one line naming the value and
the allowed range, and changes nothing (every change is validated whole
before any of it is applied). Any setting command can be prefixed `at bar`
or `at beat`: it is validated now and applied on the next bar (beat) line.

No model work happens here: loading a model runs on its own thread and the
engine swaps it in at the next silence; everything that touches the
predictor runs on the engine thread (`engine.on_engine_thread`).
"""
from __future__ import annotations

import threading
import time
from dataclasses import fields
from pathlib import Path

from agent.config import ROOT, SECTIONS, _section_types, parse_value, set_value, to_toml
from agent.live.engine import LIVE_KEYS, LIVE_SECTIONS, TEMPERATURE_CC_RANGE
from agent.errors import AntiphonError
from agent.live.controls import CCMapping
from agent.ui.repl.toolbar import status_lines

# short names for the settings a live-coder reaches for most (cc, set and their completion use them)
ALIASES = {
    "temp": "sampling.temperature", "adaptive": "sampling.adaptive", "top-p": "sampling.top_p", "top-k": "sampling.top_k",
    "tempo": "timing.bpm", "velocity": "midi.velocity_scale", "channel": "midi.channel",
    "silence": "jam.silence_ms", "length": "jam.response_bars", "lookahead": "jam.lookahead_ms",
    "key-strength": "sampling.key_strength", "repeat-penalty": "sampling.repeat_penalty",
    "rest-bias": "sampling.rest_bias",
}
MODES = ["call", "accompany", "solo", "off"]
TEMPO_SOURCES = {"follow": "player", "clock": "clock", "fixed": "fixed"}
KEYS = ["auto", "none"] + [f"{n} {m}" for n in ("C", "C#", "Db", "D", "Eb", "E", "F", "F#", "Gb", "G", "Ab", "A",
                                                 "Bb", "B") for m in ("major", "minor")]

HELP: dict[str, tuple[str, str]] = {  # name -> (usage, what it does)
    "temp": ("temp 0.9", "sampling temperature (lower is safer, higher is wilder)"),
    "top-p": ("top-p 0.95", "nucleus sampling; 1 = off"),
    "top-k": ("top-k 40", "keep only the k likeliest tokens; 0 = off"),
    "adaptive": ("adaptive on|off", "entropy-adaptive temperature"),
    "mode": ("mode call|accompany|solo|off", "how the agent plays; off = silent until another mode"),
    "tempo": ("tempo 96 | tempo follow|clock|fixed", "tempo in bpm, or where it comes from"),
    "key": ("key D minor|auto|none", "keep the agent in a key, estimate it, or not"),
    "length": ("length 4 bars|same", "length of an answer; same = as long as your phrase"),
    "silence": ("silence 1.5 beats|600 ms", "the pause that ends your phrase"),
    "range": ("range 48 84", "the agent's lowest and highest MIDI note"),
    "channel": ("channel 2", "the agent's output channel (1..16)"),
    "velocity": ("velocity 0.8", "scale the agent's velocities"),
    "set": ("set section.key value", "any live setting of config.toml"),
    "cc": ("cc [NAME CC [LO HI] | learn NAME [LO HI] | off CC]",
           "map a controller to a live setting; learn: the next CC moved; no arguments: list"),
    "ports": ("ports", "list MIDI ports"),
    "connect": ("connect in|out NAME", "switch the input or output port without stopping"),
    "load": ("load MODEL", "load a model in the background; it takes over at the next silence"),
    "record": ("record start|stop [FILE]", "record the session (needs the recording module)"),
    "panic": ("panic", "all notes off; the agent stays silent until you play or give a mode"),
    "reset": ("reset", "clear the model state"),
    "status": ("status", "settings, what is pending, mappings, figures"),
    "save": ("save FILE", "write the live settings as a config file (--config reads it back)"),
    "source": ("source FILE", "run a file of commands (a set list)"),
    "help": ("help [command]", "this list, or one command"),
    "quit": ("quit", "stop: every note closed, ports closed"),
}
AT_ALLOWED = {"temp", "top-p", "top-k", "adaptive", "mode", "tempo", "key", "length", "silence", "range",
              "channel", "velocity", "set", "panic", "reset"}


class CommandError(AntiphonError):
    """A command line that cannot run; the message is the one line the user sees."""


def live_keys() -> list[str]:
    out = []
    for sec, cls in _section_types().items():
        for f in fields(cls):
            key = f"{sec}.{f.name}"
            if sec in LIVE_SECTIONS or key in LIVE_KEYS:
                out.append(key)
    return out


def field_of(key: str):
    sec, _, name = key.partition(".")
    cls = _section_types().get(sec)
    if cls is None:
        raise CommandError(f"unknown setting {key!r} (sections: {', '.join(SECTIONS)})")
    for f in fields(cls):
        if f.name == name:
            return f, cls.__annotations__.get(name)
    raise CommandError(f"unknown setting {key!r}")


def allowed(key: str) -> str:
    """'0.01 to 10.0', 'one of call, accompany, solo', '' — for error lines."""
    try:
        f, _ = field_of(key)
    except CommandError:
        return ""
    m = f.metadata
    if m.get("choices"):
        return "one of " + ", ".join(m["choices"])
    lo, hi = m.get("min"), m.get("max")
    if lo is not None and hi is not None:
        return f"{lo} to {hi}"
    if lo is not None:
        return f"at least {lo}"
    return ""


def number(text: str, what: str, key: str, integer: bool = False):
    try:
        return int(text) if integer else float(text)
    except ValueError:
        rng = allowed(key)
        raise CommandError(f"{what}: {text!r} is not {'a whole number' if integer else 'a number'}"
                           + (f" (allowed: {rng})" if rng else "")) from None


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
        name, args = words[0].lower(), words[1:]
        if name in ("exit",):
            name = "quit"
        handler = getattr(self, "cmd_" + name.replace("-", "_"), None)
        if handler is None or name not in HELP:
            raise CommandError(f"unknown command {words[0]!r} (try `help`)")
        if at is not None and name not in AT_ALLOWED:
            raise CommandError(f"`at {at}` works with settings, mode, panic and reset, not {name}")
        result = handler(args, " ".join(words))
        if isinstance(result, dict):  # a change of settings: validated whole, then applied (now or on the line)
            self._check(result, " ".join(words))
            self._apply(result, at, " ".join(words))
        elif callable(result):  # an action
            if at is None:
                return result() is not False
            else:
                t = self.engine.at(at, lambda line_s: result(), " ".join(words))
                self.say(f"at the next {at} (in {1e3 * (t - self.engine.clock.now()):.0f} ms): {' '.join(words)}")
        return result is not False

    def _check(self, changes: dict, what: str) -> None:
        cfg = self.engine.controls.cfg
        for key, value in changes.items():
            sec, _, name = key.partition(".")
            if sec not in LIVE_SECTIONS and key not in LIVE_KEYS:
                raise CommandError(f"{what}: {key} cannot change while playing")
            try:
                cfg = set_value(cfg, sec, name, value, source=what)
            except AntiphonError as exc:  # the config's own message names the value; add the range
                rng = allowed(key)
                raise CommandError(f"{exc}" + (f" (allowed: {rng})" if rng and "one of" not in rng else "")
                                   + "; nothing changed") from None

    def _apply(self, changes: dict, at: str | None, what: str) -> None:
        eng = self.engine
        if at is None:
            eng.set_many(changes)
            self.say(", ".join(f"{k} = {eng.controls.get(k)!r}" for k in changes))
            return
        early = all(k.startswith("sampling.") or k == "timing.bpm" for k in changes)
        t = eng.at(at, lambda line_s: eng.set_many(changes, at_s=line_s), what, early=early)
        self.say(f"at the next {at} (in {1e3 * (t - eng.clock.now()):.0f} ms): {what}")

    # -- settings --------------------------------------------------------------
    def _one(self, args, what, key, integer=False):
        if len(args) != 1:
            raise CommandError(f"{what}: give one value, e.g. `{HELP[what.split()[0]][0]}`")
        return {key: number(args[0], what, key, integer)}

    def cmd_temp(self, args, what):
        return self._one(args, what, "sampling.temperature")

    def cmd_top_p(self, args, what):
        return self._one(args, what, "sampling.top_p")

    def cmd_top_k(self, args, what):
        return self._one(args, what, "sampling.top_k", integer=True)

    def cmd_velocity(self, args, what):
        return self._one(args, what, "midi.velocity_scale")

    def cmd_channel(self, args, what):
        return self._one(args, what, "midi.channel", integer=True)

    def cmd_adaptive(self, args, what):
        if args not in (["on"], ["off"]):
            raise CommandError(f"{what}: say `adaptive on` or `adaptive off`")
        return {"sampling.adaptive": args[0] == "on"}

    def cmd_tempo(self, args, what):
        if len(args) == 1 and args[0] in TEMPO_SOURCES:
            return {"timing.source": TEMPO_SOURCES[args[0]]}
        return {**self._one(args, what, "timing.bpm"), "timing.source": "fixed"}  # a tempo given is kept

    def cmd_key(self, args, what):
        if not args:
            raise CommandError(f"{what}: give a key, e.g. `key D minor`, `key auto` or `key none`")
        return {"sampling.key": " ".join(args)}

    def cmd_length(self, args, what):
        if args == ["same"]:
            return {"jam.response_bars": 0.0}
        if len(args) in (1, 2) and (len(args) == 1 or args[1] in ("bar", "bars")):
            bars = number(args[0], what, "jam.response_bars")
            if bars <= 0:
                raise CommandError(f"{what}: {bars:g} bars is not a length (allowed: above 0 to 64, or `same`)")
            return {"jam.response_bars": bars}
        raise CommandError(f"{what}: say e.g. `length 4 bars` or `length same`")

    def cmd_silence(self, args, what):
        text = "".join(args).lower()
        for unit, key in (("beats", "jam.silence_beats"), ("beat", "jam.silence_beats"), ("ms", "jam.silence_ms")):
            if text.endswith(unit) and text[:-len(unit)]:
                v = number(text[:-len(unit)], what, key)
                if key == "jam.silence_beats":
                    if v <= 0:
                        raise CommandError(f"{what}: {v:g} beats is not a pause (allowed: above 0 to 64)")
                    return {key: v}
                return {key: v, "jam.silence_beats": 0.0}  # beats, when set, override ms
        raise CommandError(f"{what}: say e.g. `silence 1.5 beats` or `silence 600 ms`")

    def cmd_range(self, args, what):
        if len(args) != 2:
            raise CommandError(f"{what}: give the lowest and highest MIDI note, e.g. `range 48 84`")
        lo, hi = (number(a, what, "sampling.pitch_min", integer=True) for a in args)
        if not (0 <= lo <= hi <= 127):
            raise CommandError(f"{what}: {lo} {hi} is not a range (allowed: 0 to 127, lowest first); nothing changed")
        return {"sampling.pitch_min": lo, "sampling.pitch_max": hi}

    def cmd_set(self, args, what):
        if len(args) < 2:
            raise CommandError(f"{what}: say `set section.key value`, e.g. `set jam.lookahead_ms 150`")
        key = ALIASES.get(args[0], args[0])
        field_of(key)
        return {key: parse_value(" ".join(args[1:]))}

    def cmd_mode(self, args, what):
        if len(args) != 1 or args[0] not in MODES:
            raise CommandError(f"{what}: {' '.join(args)!r} is not a mode (allowed: one of {', '.join(MODES)})")
        eng, mode = self.engine, args[0]

        def act():
            if mode == "off":
                eng.silence(until="mode")
                self.say("mode off: silent until you give a mode")
            else:
                eng.set("jam.mode", mode)
                eng.resume()
                self.say(f"jam.mode = {mode!r}")
        return act

    # -- controllers -------------------------------------------------------------
    def _cc_target(self, name: str, rng: list[str], what: str) -> tuple[str, float, float, bool]:
        key = ALIASES.get(name, name)
        f, typ = field_of(key)
        sec = key.partition(".")[0]
        if sec not in LIVE_SECTIONS and key not in LIVE_KEYS:
            raise CommandError(f"{what}: {key} cannot change while playing")
        if typ not in ("float", "int", float, int):
            raise CommandError(f"{what}: {key} is not a number a controller can sweep")
        integer = typ in ("int", int)
        if rng:
            if len(rng) != 2:
                raise CommandError(f"{what}: give a range as two numbers, e.g. [0.2 1.5]")
            lo, hi = (number(x, what, key) for x in rng)
        elif key == "sampling.temperature":
            lo, hi = TEMPERATURE_CC_RANGE
        else:
            lo, hi = f.metadata.get("min"), f.metadata.get("max")
            if lo is None or hi is None or hi - lo > 10_000:
                raise CommandError(f"{what}: give a range for {key}, e.g. `cc {name} 74 [LO HI]`")
        self._check({key: int(lo) if integer else lo}, what)
        self._check({key: int(hi) if integer else hi}, what)
        return key, float(lo), float(hi), integer

    def cmd_cc(self, args, what):
        eng = self.engine
        args = [a for a in " ".join(args).replace("[", " ").replace("]", " ").split()]
        if not args:
            maps = eng.ccmap.maps
            lines = [m.describe() for m in sorted(maps.values(), key=lambda m: m.control)]
            if eng.ccmap.learning:
                lines.append(f"learning: the next CC moved maps to {eng.ccmap.learning}")
            t = eng.controls.cfg.jam.temperature_cc
            if t >= 0 and t not in maps:
                lines.append(f"CC{t} -> sampling.temperature (jam.temperature_cc)")
            return lambda: self.say("\n".join(lines) if lines else "no controller mappings")
        if args[0] == "learn":
            if len(args) < 2:
                raise CommandError(f"{what}: say which setting, e.g. `cc learn temp`")
            key, lo, hi, integer = self._cc_target(args[1], args[2:], what)
            return lambda: (eng.ccmap.learn(key, lo, hi, integer),
                            self.say(f"move a controller: it will set {key} [{lo:g} {hi:g}]"))
        if args[0] == "off":
            if len(args) != 2:
                raise CommandError(f"{what}: say which controller, e.g. `cc off 74`")
            cc = number(args[1], what, "jam.temperature_cc", integer=True)
            return lambda: self.say(f"CC{cc} unmapped" if eng.ccmap.remove(cc) else f"CC{cc} was not mapped")
        if len(args) < 2:
            raise CommandError(f"{what}: say `cc SETTING CC [LO HI]`, e.g. `cc temp 74 [0.2 1.5]`")
        cc = number(args[1], what, "jam.temperature_cc", integer=True)
        if not 0 <= cc <= 127:
            raise CommandError(f"{what}: controller {cc} is out of range (allowed: 0 to 127)")
        key, lo, hi, integer = self._cc_target(args[0], args[2:], what)
        m = CCMapping(cc, key, lo, hi, integer)
        return lambda: (eng.ccmap.add(m), self.say(f"mapped {m.describe()}"))

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
            self.say(f"loading {md.path} in the background; it takes over at the next silence")
        return act

    def cmd_record(self, args, what):
        """`record start [FILE]` (default: [record] folder and name), `record stop`, `record` (where to)."""
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
                    used = eng.start_recording(path)
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

        def act():
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
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
