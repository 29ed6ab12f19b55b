"""config.toml parsing, validation and overrides."""
from __future__ import annotations

import dataclasses

import pytest

from agent.config import DEFAULT_CONFIG, Config, ConfigError, load_config, set_value, to_toml


def test_shipped_config_parses_and_matches_the_dataclass_defaults():
    cfg = load_config(DEFAULT_CONFIG)
    assert dataclasses.replace(cfg, source="<defaults>") == Config()  # config.toml and config.py agree


def test_every_dataclass_field_is_in_config_toml():
    import tomllib

    data = tomllib.loads(DEFAULT_CONFIG.read_text())
    for sec in dataclasses.fields(Config):
        if sec.name == "source":
            continue
        names = {f.name for f in dataclasses.fields(getattr(Config(), sec.name))}
        assert set(data[sec.name]) == names, f"[{sec.name}] in config.toml differs from the dataclass"


@pytest.mark.parametrize("text, match", [
    ("[midi]\nchanel = 2\n", r"unknown key midi\.chanel"),
    ("[mdi]\nchannel = 2\n", r"unknown section \[mdi\]"),
    ("[sampling]\ntemperature = \"hot\"\n", r"sampling.temperature = 'hot' should be float"),
    ("[midi]\nchannel = 17\n", r"midi.channel = 17 is above the maximum 16"),
    ("[jam]\nmode = \"jazz\"\n", r"jam.mode = 'jazz' is not one of"),
    ("[sampling]\nkey = \"H major\"\n", r"sampling.key 'H major': expected 'none', 'auto'"),
    ("[sampling]\nrepeat_window = 300\n", r"sampling.repeat_window = 300 is above the maximum 256"),
    ("[midi]\nchannel = true\n", r"channel = True should be int"),
    ("[sampling]\npitch_min = 90\npitch_max = 80\n", r"pitch_min = 90 is above sampling.pitch_max"),
    ("[midi\n", r"not valid TOML"),
])
def test_bad_files_name_the_key_value_and_file(tmp_path, text, match):
    p = tmp_path / "bad.toml"
    p.write_text(text)
    with pytest.raises(ConfigError, match=match) as info:
        load_config(p)
    assert "bad.toml" in str(info.value)


def test_overrides_are_typed_and_validated():
    cfg = load_config(None, ["sampling.temperature=0.7", "jam.mode=accompany", "midi.echo_filter=false"])
    assert cfg.sampling.temperature == 0.7 and cfg.jam.mode == "accompany" and cfg.midi.echo_filter is False
    assert load_config(None, ["timing.bpm=90"]).timing.bpm == 90.0  # an int where a float is wanted is fine
    with pytest.raises(ConfigError, match="top_p = 2.0 is above"):
        load_config(None, ["sampling.top_p=2"])
    with pytest.raises(ConfigError, match="section.key=value"):
        load_config(None, ["temperature=0.5"])
    with pytest.raises(ConfigError, match="unknown key sampling.temp"):
        set_value(Config(), "sampling", "temp", 1.0)


def test_effective_config_text_parses_back(tmp_path):
    cfg = load_config(None, ["midi.virtual_name=My \"Port\""])
    p = tmp_path / "eff.toml"
    p.write_text(to_toml(cfg))
    assert dataclasses.replace(load_config(p), source="x") == dataclasses.replace(cfg, source="x")


def test_missing_file_is_an_error():
    with pytest.raises(ConfigError, match="no such config file"):
        load_config("/nonexistent/antiphon.toml")


def test_nan_and_inf_are_refused_by_name(tmp_path):
    with pytest.raises(ConfigError, match="timing.bpm = nan should be a finite number"):
        load_config(None, ["timing.bpm=nan"])
    p = tmp_path / "inf.toml"
    p.write_text("[jam]\nsilence_ms = inf\n")
    with pytest.raises(ConfigError, match="inf.toml: jam.silence_ms = inf"):
        load_config(p)


def test_unreadable_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read it"):
        load_config(tmp_path)  # a folder
    p = tmp_path / "binary.toml"
    p.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ConfigError, match="binary.toml"):
        load_config(p)


@pytest.mark.parametrize("section, key, value, instead", [
    ("timing", "midi_clock_in", "true", 'timing.source = "clock"'),
    ("jam", "align_to_bar", "true", 'jam.align = "bar"'),
])
def test_a_removed_key_is_an_error_that_names_what_replaced_it(tmp_path, section, key, value, instead):
    """Issue 21 item 15: keys that only duplicated another are gone; an old config that sets one
    is told, in one line, what says it now (a file, --set, the REPL's `set`)."""
    p = tmp_path / "old.toml"
    p.write_text(f"[{section}]\n{key} = {value}\n")
    with pytest.raises(ConfigError) as info:
        load_config(p)
    text = str(info.value)
    assert "old.toml" in text and f"{section}.{key}" in text and "removed" in text and instead in text
    assert "\n" not in text
    with pytest.raises(ConfigError, match=f"removed.*{instead}"):
        load_config(None, [f"{section}.{key}={value}"])
    assert f"{section}.{key}" not in to_toml(Config())


def test_the_shipped_comments_say_what_the_code_does():
    """Issue 21 item 15: config.toml said an unplugged port means "stop, close notes"; it reconnects."""
    text = DEFAULT_CONFIG.read_text()
    line = next(line for line in text.splitlines() if line.startswith("port_check_s"))
    assert "stop" not in line and "reconnect" in line
