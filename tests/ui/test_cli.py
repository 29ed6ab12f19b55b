"""The `antiphon` command as a user runs it (subprocesses, real files)."""
from __future__ import annotations

import subprocess
import sys

import mido

from agent.config import DEFAULT_CONFIG
from agent.music.tokens import Vocab, quantize
from agent.music.notes import read_midi


def antiphon(*args, check=True):
    r = subprocess.run([sys.executable, "-m", "agent", *args], capture_output=True, text=True, timeout=300)
    if check:
        assert r.returncode == 0, r.stderr
    return r


def test_help_lists_commands_and_version():
    out = antiphon("--help").stdout
    assert "config" in out and "tokens" in out
    assert antiphon("--version").stdout.startswith("antiphon ")


def test_config_check_ok_and_bad(tmp_path):
    assert "[sampling]" in antiphon("config", "--check", str(DEFAULT_CONFIG)).stdout
    bad = tmp_path / "bad.toml"
    bad.write_text("[midi]\nchanel = 3\n")
    r = antiphon("config", "--check", str(bad), check=False)
    assert r.returncode == 2 and "midi.chanel" in r.stderr and "bad.toml" in r.stderr and "Traceback" not in r.stderr
    bad.write_text("[timing]\nbpm = \"fast\"\n")
    r = antiphon("config", "--check", str(bad), check=False)
    assert r.returncode == 2 and "bpm" in r.stderr and "'fast'" in r.stderr


def test_unknown_command_exits_2():
    r = antiphon("jam-harder", check=False)
    assert r.returncode == 2 and "unknown command" in r.stderr


def test_tokens_on_a_real_file_and_round_trip(music21_midi_dir, tmp_path):
    src = music21_midi_dir / "test03.mid"
    text = antiphon("tokens", str(src)).stdout
    assert text.startswith("START ") and "NOTE_ON(" in text and "SHIFT(" in text and text.strip().endswith("END")
    ids = antiphon("tokens", str(src), "--ids").stdout.split()
    assert len(ids) == len(text.split()) and all(i.isdigit() for i in ids)
    out = tmp_path / "rt.mid"
    antiphon("tokens", str(src), "--roundtrip", str(out))
    v = Vocab()
    q = lambda ns: sorted((a, b, p, v.velocity_bin(x)) for a, b, p, x in quantize(ns, v.resolution))  # noqa: E731
    assert q(read_midi(out).notes) == q(read_midi(src).notes)
    assert len(mido.MidiFile(out).tracks) >= 2


def test_round_trip_reports_notes_outside_the_pitch_range(music21_midi_dir, tmp_path):
    # test04.mid: 18 tracks, two notes at MIDI pitch 11, below the piano's A0 (21)
    src, out = music21_midi_dir / "test04.mid", tmp_path / "rt.mid"
    msg = antiphon("tokens", str(src), "--roundtrip", str(out)).stdout
    assert "2 outside the pitch range 21..108 left out" in msg
    v = Vocab()
    q = lambda ns: sorted((a, b, p, v.velocity_bin(x)) for a, b, p, x in quantize(ns, v.resolution)  # noqa: E731
                          if v.in_range(p))
    assert q(read_midi(out).notes) == q(read_midi(src).notes)


def test_tokens_bad_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "garbage.mid"
    bad.write_bytes(b"not midi at all")
    r = antiphon("tokens", str(bad), check=False)
    assert r.returncode == 2 and "garbage.mid" in r.stderr and "Traceback" not in r.stderr


def test_import_and_help_do_not_import_torch():
    # every module of the live agent (all but the offline rooms, training and bench, and the two torch
    # modules of the model room), imported in one fresh interpreter: none may pull in torch
    code = ("import sys, pkgutil, importlib, contextlib, io, agent\n"
            "skip = ('agent.model.net', 'agent.model.runtime.torch', 'agent.training', 'agent.bench')\n"
            "for m in pkgutil.walk_packages(agent.__path__, 'agent.'):\n"
            "    if not m.name.startswith(skip) and m.name != 'agent.__main__':\n"
            "        importlib.import_module(m.name)\n"
            "from agent.ui.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()): main(['--help'])\n"
            "bad = [k for k in sys.modules if k == 'torch' or k.startswith('torch.')]\n"
            "assert not bad, f'torch was imported: {bad[:3]}'\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
