"""The REPL's words: every command's usage, the short names of settings, and each setting
command's parser, one line's words -> the changes it asks for ({"section.key": value}).

Nothing here touches the engine: a parser only reads its words, and `check`
validates changes against a config by the config file's own rules (naming
the value and the allowed range). commands.py applies what comes back,
now or on a line.
"""
from __future__ import annotations

from agent.config import ConfigError, parse_value, set_value, setting
from agent.errors import AntiphonError
from agent.live.controls import TEMPERATURE_CC_RANGE, is_live

# short names for the settings a live-coder reaches for most (cc, set and their completion use them)
ALIASES = {
    "temp": "sampling.temperature", "adaptive": "sampling.adaptive", "top-p": "sampling.top_p", "top-k": "sampling.top_k",
    "tempo": "timing.bpm", "velocity": "midi.velocity_scale", "channel": "midi.channel",
    "silence": "jam.silence_ms", "length": "jam.response_bars", "lookahead": "jam.lookahead_ms",
    "key-strength": "sampling.key_strength", "repeat-penalty": "sampling.repeat_penalty",
    "rest-bias": "sampling.rest_bias", "echo": "jam.echo", "form": "jam.form",
}
MODES = ["call", "accompany", "solo", "off"]
TEMPO_SOURCES = {"follow": "player", "clock": "clock", "fixed": "fixed", "link": "link"}
KEYS = ["auto", "none"] + [f"{n} {m}" for n in ("C", "C#", "Db", "D", "Eb", "E", "F", "F#", "Gb", "G", "Ab", "A",
                                                 "Bb", "B") for m in ("major", "minor")]

HELP: dict[str, tuple[str, str]] = {  # name -> (usage, what it does)
    "temp": ("temp 0.9", "sampling temperature (lower is safer, higher is wilder)"),
    "top-p": ("top-p 0.95", "nucleus sampling; 1 = off"),
    "top-k": ("top-k 40", "keep only the k likeliest tokens; 0 = off"),
    "adaptive": ("adaptive on|off", "entropy-adaptive temperature"),
    "mode": ("mode call|accompany|solo|off", "how the agent plays; off = silent until another mode"),
    "tempo": ("tempo 96 | tempo follow|clock|fixed|link", "tempo in bpm, or where it comes from"),
    "key": ("key D minor|auto|none", "keep the agent in a key, estimate it, or not"),
    "length": ("length 4 bars|same", "length of an answer; same = as long as your phrase"),
    "silence": ("silence 1.5 beats|600 ms", "the pause that ends your phrase"),
    "range": ("range 48 84", "the agent's lowest and highest MIDI note"),
    "channel": ("channel 2", "the agent's output channel (1..16)"),
    "velocity": ("velocity 0.8", "scale the agent's velocities"),
    "echo": ("echo 0.6", "how much answers build on what you played (0 = off, 1 = most)"),
    "form": ("form continue|echo|vary|contrast", "what an answer makes of your call (with echo above 0)"),
    "set": ("set section.key value", "any live setting of config.toml"),
    "cc": ("cc [NAME CC [LO HI] | learn NAME [LO HI] | off CC]",
           "map a controller to a live setting; learn: the next CC moved; no arguments: list"),
    "ports": ("ports", "list MIDI ports"),
    "connect": ("connect in|out NAME", "switch the input or output port without stopping"),
    "load": ("load MODEL", "load a model in the background; it takes over between answers (in solo, at once)"),
    "record": ("record start|stop [FILE]", "record the session (needs the recording module)"),
    "panic": ("panic", "all notes off; the agent stays silent until you play or give a mode"),
    "reset": ("reset", "clear the model state"),
    "status": ("status", "settings, what is pending, mappings, figures"),
    "save": ("save FILE", "write the live settings as a config file (--config reads it back)"),
    "source": ("source FILE", "run a file of commands (a set list)"),
    "help": ("help [command]", "this list, or one command"),
    "quit": ("quit", "stop: every note closed, ports closed"),
}
NO_ARGS = {"ports", "panic", "reset", "status", "quit"}  # a word after these is a mistake, never dropped
AT_ALLOWED = {"temp", "top-p", "top-k", "adaptive", "mode", "tempo", "key", "length", "silence", "range",
              "channel", "velocity", "echo", "form", "set", "panic", "reset"}


class CommandError(AntiphonError):
    """A command line that cannot run; the message is the one line the user sees."""


def field_of(key: str):
    """(dataclasses.Field, type) of a setting "section.key"; CommandError names an unknown one."""
    try:
        return setting(key)
    except ConfigError as exc:
        raise CommandError(str(exc)) from None


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


def check(cfg, changes: dict, what: str) -> None:
    """Every change valid on top of `cfg` and live, or CommandError naming the value and its range."""
    for key, value in changes.items():
        sec, _, name = key.partition(".")
        if not is_live(key):
            raise CommandError(f"{what}: {key} cannot change while playing")
        try:
            cfg = set_value(cfg, sec, name, value, source=what)
        except AntiphonError as exc:  # the config's own message names the value; add the range
            rng = allowed(key)
            raise CommandError(f"{exc}" + (f" (allowed: {rng})" if rng and "one of" not in rng else "")
                               + "; nothing changed") from None


def cc_target(cfg, name: str, rng: list[str], what: str) -> tuple[str, float, float, bool]:
    """What `cc NAME CC [LO HI]` maps: (section.key, lo, hi, whole numbers?), the range checked on `cfg`."""
    key = ALIASES.get(name, name)
    f, typ = field_of(key)
    if not is_live(key):
        raise CommandError(f"{what}: {key} cannot change while playing")
    if typ not in (float, int):
        raise CommandError(f"{what}: {key} is not a number a controller can sweep")
    integer = typ is int
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
    check(cfg, {key: int(lo) if integer else lo}, what)
    check(cfg, {key: int(hi) if integer else hi}, what)
    return key, float(lo), float(hi), integer


# -- the setting commands: (args, the line) -> changes ------------------------------------

def one(args, what, key, integer=False):
    if len(args) != 1:
        raise CommandError(f"{what}: give one value, e.g. `{HELP[what.split()[0]][0]}`")
    return {key: number(args[0], what, key, integer)}


def cmd_temp(args, what):
    return one(args, what, "sampling.temperature")


def cmd_top_p(args, what):
    return one(args, what, "sampling.top_p")


def cmd_top_k(args, what):
    return one(args, what, "sampling.top_k", integer=True)


def cmd_velocity(args, what):
    return one(args, what, "midi.velocity_scale")


def cmd_echo(args, what):
    return one(args, what, "jam.echo")


def cmd_form(args, what):
    forms = field_of("jam.form")[0].metadata["choices"]
    if len(args) != 1 or args[0] not in forms:
        raise CommandError(f"{what}: {' '.join(args)!r} is not an answer form (allowed: one of {', '.join(forms)})")
    return {"jam.form": args[0]}


def cmd_channel(args, what):
    return one(args, what, "midi.channel", integer=True)


def cmd_adaptive(args, what):
    if args not in (["on"], ["off"]):
        raise CommandError(f"{what}: say `adaptive on` or `adaptive off`")
    return {"sampling.adaptive": args[0] == "on"}


def cmd_tempo(args, what):
    if len(args) == 1 and args[0] in TEMPO_SOURCES:
        return {"timing.source": TEMPO_SOURCES[args[0]]}
    return {**one(args, what, "timing.bpm"), "timing.source": "fixed"}  # a tempo given is kept


def cmd_key(args, what):
    if not args:
        raise CommandError(f"{what}: give a key, e.g. `key D minor`, `key auto` or `key none`")
    return {"sampling.key": " ".join(args)}


def cmd_length(args, what):
    if args == ["same"]:
        return {"jam.response_bars": 0.0}
    if len(args) in (1, 2) and (len(args) == 1 or args[1] in ("bar", "bars")):
        bars = number(args[0], what, "jam.response_bars")
        if bars <= 0:
            raise CommandError(f"{what}: {bars:g} bars is not a length (allowed: above 0 to 64, or `same`)")
        return {"jam.response_bars": bars}
    raise CommandError(f"{what}: say e.g. `length 4 bars` or `length same`")


def cmd_silence(args, what):
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


def cmd_range(args, what):
    if len(args) != 2:
        raise CommandError(f"{what}: give the lowest and highest MIDI note, e.g. `range 48 84`")
    lo, hi = (number(a, what, "sampling.pitch_min", integer=True) for a in args)
    if not (0 <= lo <= hi <= 127):
        raise CommandError(f"{what}: {lo} {hi} is not a range (allowed: 0 to 127, lowest first); nothing changed")
    return {"sampling.pitch_min": lo, "sampling.pitch_max": hi}


def cmd_set(args, what):
    if len(args) < 2:
        raise CommandError(f"{what}: say `set section.key value`, e.g. `set jam.lookahead_ms 150`")
    key = ALIASES.get(args[0], args[0])
    field_of(key)
    return {key: parse_value(" ".join(args[1:]))}


SETTINGS = {"temp": cmd_temp, "top-p": cmd_top_p, "top-k": cmd_top_k, "velocity": cmd_velocity,
            "channel": cmd_channel, "adaptive": cmd_adaptive, "tempo": cmd_tempo, "key": cmd_key,
            "length": cmd_length, "silence": cmd_silence, "range": cmd_range, "set": cmd_set,
            "echo": cmd_echo, "form": cmd_form}  # command -> parser
