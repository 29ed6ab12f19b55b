"""Bad files: each reader meets malformed input with one clear line naming the file and what was wrong,
exit status 2, no traceback, nothing written. The files are made in tests/support/badfiles.py."""
from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

import badfiles  # noqa: E402

from agent.ui.cli import main
from agent.errors import AntiphonError
from agent.model.folder import ModelDir

ROOT = Path(__file__).resolve().parent.parent
HAVE_MODEL = (badfiles.DEFAULT_MODEL / "model.onnx").exists()


def one_clear_line(capsys, rc, path: Path, want: str) -> str:
    err = capsys.readouterr().err.strip()
    assert rc == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert str(path) in err and want in err, err
    return err


@pytest.mark.parametrize("kind", list(badfiles.MIDI_KINDS))
def test_a_bad_midi_file_is_refused_with_one_clear_line(kind, tmp_path, capsys):
    path = badfiles.write_midi_kind(kind, tmp_path)
    out = tmp_path / "roundtrip.mid"
    rc = main(["tokens", str(path), "--roundtrip", str(out)])
    one_clear_line(capsys, rc, path, badfiles.MIDI_KINDS[kind][1])
    assert not out.exists()  # nothing half-written


@pytest.mark.skipif(not HAVE_MODEL, reason="models/default has no model.onnx")
@pytest.mark.parametrize("kind", list(badfiles.MODEL_KINDS))
def test_a_bad_model_folder_is_refused_with_one_clear_line(kind, tmp_path, capsys):
    make, backend, want = badfiles.MODEL_KINDS[kind]
    if backend.startswith("torch") or kind == "another shape":
        pytest.importorskip("torch" if backend.startswith("torch") else "onnx")
    folder = make(tmp_path)
    out = tmp_path / "out.mid"
    rc = main(["generate", "--model", str(folder), "--backend", backend, "--bars", "1", "--out", str(out)])
    err = one_clear_line(capsys, rc, folder, want)
    assert not out.exists()
    if kind == "pickle with code":
        assert "refused" in err and "nothing in it ran" in err


def test_a_bad_model_card_is_refused_with_one_clear_line(tmp_path):
    folder = badfiles.MODEL_KINDS["bad card.json"][0](tmp_path)
    with pytest.raises(AntiphonError, match=re.escape(str(folder / "card.json")) + ".*not a readable model card"):
        ModelDir(folder).card()


def test_a_bad_config_file_is_refused_with_one_clear_line(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text("[sampling]\ntemperature = \"hot\"\n")
    rc = main(["config", "--check", str(bad)])
    one_clear_line(capsys, rc, bad, "sampling.temperature")


def test_every_torch_load_is_weights_only():
    """No pickle runs anywhere: every torch.load in the package and the scripts says weights_only=True."""
    calls = []
    for f in [*ROOT.glob("agent/**/*.py"), *ROOT.glob("scripts/*.py")]:
        for m in re.finditer(r"torch\.load\(([^)]*)\)", f.read_text()):
            calls.append((f.name, m.group(1)))
    assert calls and all("weights_only=True" in args for _, args in calls), calls
