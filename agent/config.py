"""config.toml -> typed, validated dataclasses; `--set section.key=value` overrides.

Every default lives in config.toml at the project root; the dataclasses below
mirror it with the same defaults so that a missing file or section still gives
a working config. Unknown keys, wrong types and out-of-range values raise
ConfigError naming the key, the value and the file.

Each field may carry metadata: `min`, `max` (inclusive) and `choices`.
"""
from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from functools import cache
from typing import Any, get_type_hints as _get_type_hints

from agent.errors import AntiphonError

ROOT = Path(__file__).resolve().parent.parent
# A class's hints, evaluated once: with string annotations each call compiles every one of them
# (~0.5 ms a section), and set_value (every live change: REPL, CC, OSC) asked twice per change.
get_type_hints = cache(_get_type_hints)
DEFAULT_CONFIG = ROOT / "config.toml"


class ConfigError(AntiphonError, ValueError):
    """Bad configuration: the message names the key, the value and the file."""


def _f(default, *, min=None, max=None, choices=None, doc=""):  # noqa: A002 - mirrors TOML vocabulary
    meta = {"min": min, "max": max, "choices": choices, "doc": doc}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class MidiConfig:
    backend: str = _f("auto", choices=["auto", "alsa", "jack", "coremidi", "winmm", "loopback"])
    input: str = _f("")  # substring of the input port name; "" = the first input
    output: str = _f("")  # substring of an output port name; "" = a virtual port
    virtual_name: str = _f("Antiphon")
    channel: int = _f(1, min=1, max=16)  # output channel, 1-based as musicians count
    velocity_scale: float = _f(1.0, min=0.0, max=4.0)
    echo_filter: bool = _f(True)
    echo_window_ms: float = _f(20.0, min=0.0, max=2000.0)  # an input this soon after our own send is its echo
    port_check_s: float = _f(2.0, min=0.0, max=3600.0)  # look for a lost input port this often; 0 = never


@dataclass(frozen=True)
class TimingConfig:
    bpm: float = _f(100.0, min=20.0, max=400.0)
    beats_per_bar: int = _f(4, min=1, max=32)
    source: str = _f("player", choices=["player", "clock", "fixed", "link"])  # where the tempo and beat come from


@dataclass(frozen=True)
class ModelConfig:
    path: str = _f("models/default")  # relative paths are from the project root
    backend: str = _f("auto", choices=["auto", "onnx", "torch-cpu", "torch-cuda"])
    threads: int = _f(1, min=1, max=64)  # intra-op threads for the CPU backends
    quantized: bool = _f(True)  # run model.int8.onnx where the model folder has one (onnx backend), else model.onnx


@dataclass(frozen=True)
class SamplingConfig:
    temperature: float = _f(1.0, min=0.01, max=10.0)
    top_k: int = _f(0, min=0, max=100000)  # 0 = off
    top_p: float = _f(1.0, min=0.0001, max=1.0)  # 1.0 = off
    adaptive: bool = _f(False)  # entropy-adaptive temperature
    adaptive_min: float = _f(0.6, min=0.01, max=10.0)
    adaptive_max: float = _f(1.5, min=0.01, max=10.0)
    key: str = _f("auto")  # "none", "auto" (estimate from context) or e.g. "D minor"
    key_strength: float = _f(2.0, min=0.0, max=100.0)  # logit penalty off-scale; inf-like = hard mask
    pitch_min: int = _f(21, min=0, max=127)
    pitch_max: int = _f(108, min=0, max=127)
    max_polyphony: int = _f(8, min=1, max=88)
    repeat_penalty: float = _f(0.0, min=0.0, max=100.0)
    repeat_window: int = _f(16, min=1, max=256)  # the predictor keeps the last 256 note-ons
    rest_bias: float = _f(0.0, min=-20.0, max=20.0)  # added to long-SHIFT logits
    max_note_beats: float = _f(4.0, min=0.25, max=64.0)  # an agent note is closed after this long
    seed: int = _f(-1, min=-1)  # -1 = not seeded


@dataclass(frozen=True)
class JamConfig:
    mode: str = _f("call", choices=["call", "accompany", "solo"])
    silence_ms: float = _f(600.0, min=10.0, max=60000.0)
    silence_beats: float = _f(1.5, min=0.0, max=64.0)  # >0 overrides silence_ms
    response_bars: float = _f(0.0, min=0.0, max=64.0)  # 0 = as long as the call
    align: str = _f("phrase", choices=["phrase", "beat", "bar", "none"])  # where an answer's first note lands
    turn: str = _f("phrase", choices=["phrase", "model", "silence"])  # how the end of a phrase is decided
    grid_strength: float = _f(3.0, min=0.0, max=100.0)  # logit penalty on time shifts off the player's subdivision grid
    lookahead_ms: float = _f(200.0, min=0.0, max=5000.0)
    prepare_ms: float = _f(50.0, min=0.0, max=5000.0)  # compose an answer's start this long before the pause ends
    rollback_guard_ms: float = _f(30.0, min=0.0, max=1000.0)  # accompany: output due this soon is kept on a rollback
    end_phrase_cc: int = _f(-1, min=-1, max=127)  # -1 = none
    temperature_cc: int = _f(-1, min=-1, max=127)  # -1 = none
    context_tokens: int = _f(512, min=16, max=100000)
    reprime_tokens: int = _f(1024, min=0, max=1000000)  # re-prime the state from the context this often; 0 = never
    held_note_timeout_s: float = _f(10.0, min=0.5, max=3600.0)  # a player's note held longer leaves the context
    echo: float = _f(0.0, min=0.0, max=1.0)  # how much an answer takes from the session memory; 0 = off
    form: str = _f("continue", choices=["continue", "echo", "vary", "contrast"])  # what it makes of the call


@dataclass(frozen=True)
class SchedulerConfig:
    late_tolerance_ms: float = _f(20.0, min=0.0, max=10000.0)
    spin_ms: float = _f(1.0, min=0.0, max=100.0)
    lead_ms: float = _f(2.0, min=0.0, max=1000.0)  # an answer's first note is due this long after it is sampled
    gil_switch_ms: float = _f(0.5, min=0.05, max=100.0)  # sys.setswitchinterval while the engine runs
    rt_priority: int = _f(10, min=0, max=99)  # SCHED_FIFO priority for the output thread if allowed; 0 = never


@dataclass(frozen=True)
class LatencyConfig:
    step_budget_ms: float = _f(2.0, min=0.01, max=1000.0)  # one feed or sample; a p99 above it is flagged


@dataclass(frozen=True)
class TokensConfig:
    resolution: int = _f(12, min=1, max=96)
    max_shift: int = _f(48, min=1, max=1000)
    pitch_lo: int = _f(21, min=0, max=127)
    pitch_hi: int = _f(108, min=0, max=127)
    velocity_bins: int = _f(16, min=1, max=128)


@dataclass(frozen=True)
class RecordConfig:
    enabled: bool = _f(False)  # record every `antiphon play` session
    folder: str = _f("recordings")  # relative paths are from the current directory
    name: str = _f("antiphon-%Y-%m-%d-%H%M%S.mid")  # strftime pattern; an existing name gets -1, -2...
    flush_s: float = _f(5.0, min=0.5, max=3600.0)  # rewrite the MIDI file this often while playing


@dataclass(frozen=True)
class SyncConfig:
    link: bool = _f(False)  # join an Ableton Link session (the [link] extra): publish the tempo, or follow it
    clock_out: str = _f("")  # send 24 ppq MIDI clock: "" = off, "virtual" = a port "<virtual_name> Clock", else a port name


@dataclass(frozen=True)
class OscConfig:
    port: int = _f(0, min=0, max=65535)  # OSC control in on this UDP port; 0 = off
    host: str = _f("127.0.0.1")  # the address it listens on ("0.0.0.0": every interface)
    send_to: str = _f("")  # "HOST:PORT": the agent's state goes there as OSC; "" = nowhere
    state_cc: int = _f(-1, min=-1, max=127)  # the state also as this CC on the agent's output; -1 = off
    state_channel: int = _f(16, min=1, max=16)  # the channel of that CC


@dataclass(frozen=True)
class Config:
    midi: MidiConfig = field(default_factory=MidiConfig)
    timing: TimingConfig = field(default_factory=TimingConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    jam: JamConfig = field(default_factory=JamConfig)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    latency: LatencyConfig = field(default_factory=LatencyConfig)
    tokens: TokensConfig = field(default_factory=TokensConfig)
    record: RecordConfig = field(default_factory=RecordConfig)
    sync: SyncConfig = field(default_factory=SyncConfig)
    osc: OscConfig = field(default_factory=OscConfig)
    source: str = "<defaults>"  # the file it came from

    def vocab(self):
        from agent.music.tokens import Vocab

        t = self.tokens
        return Vocab(t.resolution, t.max_shift, t.pitch_lo, t.pitch_hi, t.velocity_bins)

    def model_dir(self) -> Path:
        p = Path(self.model.path)
        return p if p.is_absolute() else ROOT / p


SECTIONS = [f.name for f in fields(Config) if f.name != "source"]
# keys that once were and what says the same now: an old config that sets one is told, not ignored
REMOVED = {"timing.midi_clock_in": 'timing.source = "clock"', "jam.align_to_bar": 'jam.align = "bar"'}


def _refuse_removed(source: str, key: str) -> None:
    if key in REMOVED:
        raise ConfigError(f"{source}: {key} was removed: say {REMOVED[key]} instead")


def section_types() -> dict[str, type]:
    """Each section's name -> its dataclass (in file order)."""
    hints = get_type_hints(Config)
    return {name: hints[name] for name in SECTIONS}


def setting_keys() -> list[str]:
    """Every setting as "section.key", in file order."""
    return [f"{sec}.{f.name}" for sec, cls in section_types().items() for f in fields(cls)]


def setting(key: str):
    """(dataclasses.Field, type) of "section.key": the field's metadata holds its min, max and choices.

    An unknown section or key raises ConfigError naming it."""
    sec, _, name = key.partition(".")
    cls = section_types().get(sec)
    if cls is None:
        raise ConfigError(f"unknown setting {key!r} (sections: {', '.join(SECTIONS)})")
    for f in fields(cls):
        if f.name == name:
            return f, get_type_hints(cls)[name]
    _refuse_removed("set", key)
    raise ConfigError(f"unknown setting {key!r}")


def _check_value(cls: type, name: str, value: Any, source: str, section: str) -> Any:
    """`value` converted to the field's type, or a ConfigError naming the file, section.key and value."""
    f = {f.name: f for f in fields(cls)}[name]
    want = get_type_hints(cls)[name]
    key = f"{section}.{name}"
    if want is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if want is int and isinstance(value, bool) or not isinstance(value, want):
        raise ConfigError(f"{source}: {key} = {value!r} should be {want.__name__}, not {type(value).__name__}")
    if want is float and not math.isfinite(value):  # TOML has nan and inf; no range check would catch nan
        raise ConfigError(f"{source}: {key} = {value!r} should be a finite number")
    m = f.metadata
    if m.get("choices") is not None and value not in m["choices"]:
        raise ConfigError(f"{source}: {key} = {value!r} is not one of {', '.join(map(repr, m['choices']))}")
    if m.get("min") is not None and value < m["min"]:
        raise ConfigError(f"{source}: {key} = {value!r} is below the minimum {m['min']}")
    if m.get("max") is not None and value > m["max"]:
        raise ConfigError(f"{source}: {key} = {value!r} is above the maximum {m['max']}")
    return value


def _build(data: dict, source: str) -> Config:
    types = section_types()
    sections = {}
    for sec, table in data.items():
        if sec not in types:
            raise ConfigError(f"{source}: unknown section [{sec}] (known: {', '.join(types)})")
        if not isinstance(table, dict):
            raise ConfigError(f"{source}: {sec} should be a table [{sec}], not {type(table).__name__}")
        cls = types[sec]
        known = {f.name for f in fields(cls)}
        vals = {}
        for key, value in table.items():
            if key not in known:
                _refuse_removed(source, f"{sec}.{key}")
                raise ConfigError(f"{source}: unknown key {sec}.{key} (known in [{sec}]: {', '.join(sorted(known))})")
            vals[key] = _check_value(cls, key, value, source, sec)
        sections[sec] = cls(**vals)
    cfg = Config(**sections, source=source)
    _check_cross(cfg)
    return cfg


def _check_cross(cfg: Config) -> None:
    s = cfg.sampling
    if s.pitch_min > s.pitch_max:
        raise ConfigError(f"{cfg.source}: sampling.pitch_min = {s.pitch_min} is above sampling.pitch_max = {s.pitch_max}")
    if s.adaptive_min > s.adaptive_max:
        raise ConfigError(f"{cfg.source}: sampling.adaptive_min = {s.adaptive_min} is above sampling.adaptive_max = {s.adaptive_max}")
    if cfg.tokens.pitch_lo > cfg.tokens.pitch_hi:
        raise ConfigError(f"{cfg.source}: tokens.pitch_lo = {cfg.tokens.pitch_lo} is above tokens.pitch_hi = {cfg.tokens.pitch_hi}")
    if cfg.osc.send_to and host_port(cfg.osc.send_to) is None:
        raise ConfigError(f"{cfg.source}: osc.send_to = {cfg.osc.send_to!r} should be HOST:PORT, e.g. \"127.0.0.1:9001\"")
    from agent.music.keys import KeyNameError, parse_key  # here, not at the top: keys is numpy's, config is not

    try:
        parse_key(s.key)
    except KeyNameError as exc:  # "key 'H major': expected ..."
        raise ConfigError(f"{cfg.source}: sampling.{exc}") from None


def host_port(text: str) -> tuple[str, int] | None:
    """("127.0.0.1", 9001) from "127.0.0.1:9001"; None if it is not HOST:PORT with a port 1..65535."""
    host, colon, port = text.rpartition(":")
    if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
        return None
    return host, int(port)


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Read a config file (default: config.toml at the root) and apply overrides."""
    p = Path(path) if path else DEFAULT_CONFIG
    if path is None and not p.exists():
        data, source = {}, "<defaults>"
    else:
        try:
            data = tomllib.loads(p.read_text())
        except FileNotFoundError:
            raise ConfigError(f"{p}: no such config file") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{p}: not valid TOML: {exc}") from None
        except (OSError, UnicodeDecodeError) as exc:  # a folder, no permission, a binary file
            raise ConfigError(f"{p}: cannot read it: {exc}") from None
        source = str(p)
    cfg = _build(data, source)
    return apply_overrides(cfg, overrides or [])


def parse_value(text: str) -> Any:
    """A --set value: TOML syntax (1, 0.5, true, "x"), else a bare string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_overrides(cfg: Config, overrides: list[str], source: str = "--set") -> Config:
    for item in overrides:
        key, eq, text = item.partition("=")
        sec, dot, name = key.strip().partition(".")
        if not eq or not dot:
            raise ConfigError(f"{source}: {item!r} should look like section.key=value")
        cfg = set_value(cfg, sec, name, parse_value(text.strip()), source)
    return cfg


def set_value(cfg: Config, section: str, name: str, value: Any, source: str = "set") -> Config:
    """A new Config with one value changed, validated like the file is."""
    types = section_types()
    if section not in types:
        raise ConfigError(f"{source}: unknown section {section!r} (known: {', '.join(types)})")
    cls = types[section]
    if name not in {f.name for f in fields(cls)}:
        _refuse_removed(source, f"{section}.{name}")
        raise ConfigError(f"{source}: unknown key {section}.{name}")
    value = _check_value(cls, name, value, source, section)
    new = replace(cfg, **{section: replace(getattr(cfg, section), **{name: value})})
    _check_cross(replace(new, source=source))
    return new


def to_toml(cfg: Config) -> str:
    """The effective config as TOML text."""
    lines = [f"# effective config (from {cfg.source})"]
    for sec in SECTIONS:
        lines.append(f"\n[{sec}]")
        obj = getattr(cfg, sec)
        for f in fields(obj):
            v = getattr(obj, f.name)
            if isinstance(v, bool):
                text = "true" if v else "false"
            elif isinstance(v, str):
                text = '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
            else:
                text = repr(v)
            lines.append(f"{f.name} = {text}")
    return "\n".join(lines) + "\n"


__all__ = ["Config", "ConfigError", "load_config", "apply_overrides", "set_value", "to_toml", "DEFAULT_CONFIG"]
