"""Piano-roll model kind: frames <-> notes, exact NLL of both heads, train.py --kind roll, ONNX, generate."""
from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import mido
import numpy as np
import pytest

from agent.model import roll
from agent.ui.cli import main
from agent.music.tokens import Note
from agent.music.notes import notes_from_music21, read_midi

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--kind", "roll", "--layers", "1", "--hidden", "24", "--batch", "4", "--chunk", "16", "--lr", "1e-2",
        "--warmup", "5", "--quiet", "--threads", "1", "--patience", "10"]


def chorale_frames(name: str) -> np.ndarray:
    """A real Bach chorale from music21's corpus as quarter-note frames."""
    from music21 import corpus

    return roll.notes_to_frames(notes_from_music21(corpus.parse(name)), 1.0)


@pytest.fixture(scope="module")
def tiny_mat(tmp_path_factory):
    """A benchmark-shaped .mat of 8 real chorales (5 train, 2 valid, 1 test), quarter-note frames."""
    from scipy.io import savemat

    names = ["bach/bwv66.6", "bach/bwv7.7", "bach/bwv10.7", "bach/bwv11.6", "bach/bwv13.6", "bach/bwv14.5",
             "bach/bwv17.7", "bach/bwv18.5-lz"]
    pieces = [chorale_frames(n) for n in names]

    def cell(ps):
        arr = np.empty((1, len(ps)), dtype=object)
        for i, p in enumerate(ps):
            arr[0, i] = p.astype(np.float64)  # as the published files store them
        return arr

    path = tmp_path_factory.mktemp("mat") / "Tiny.mat"
    savemat(str(path), {"traindata": cell(pieces[:5]), "validdata": cell(pieces[5:7]), "testdata": cell(pieces[7:])})
    return path


# -- data and frames ------------------------------------------------------------------
def test_load_mat_reads_splits_and_rejects_bad_files(tiny_mat, tmp_path):
    splits = roll.load_mat(tiny_mat)
    assert [len(splits[s]) for s in ("train", "valid", "test")] == [5, 2, 1]
    assert all(p.dtype == np.uint8 and p.shape[1] == 88 for p in splits["train"])
    assert np.array_equal(splits["train"][0], chorale_frames("bach/bwv66.6"))
    with pytest.raises(roll.RollError, match="no such"):
        roll.load_mat(tmp_path / "missing.mat")
    (tmp_path / "junk.mat").write_text("not a mat file")
    with pytest.raises(roll.RollError, match="junk.mat"):
        roll.load_mat(tmp_path / "junk.mat")


def test_frames_and_notes_round_trip_on_a_real_chorale(chorale):
    notes = notes_from_music21(chorale)
    frames = roll.notes_to_frames(notes, 2.0)
    back = roll.frames_to_notes(frames, 2.0)
    assert roll.notes_to_frames(back, 2.0).tolist() == frames.tolist()
    # every frame's sounding pitches are the chorale's at that frame's start
    for t in range(0, len(frames), 3):
        beat = t / 2.0
        sounding = {n.pitch for n in notes if n.start <= beat < n.end}
        assert set(np.flatnonzero(frames[t]) + roll.LOWEST) == sounding
    # a held key is one note; a gap splits it
    f = np.zeros((5, 88), np.uint8)
    f[0:3, 39] = 1
    f[4, 39] = 1
    assert roll.frames_to_notes(f, 1.0, start_beat=8) == [Note(60, 8.0, 11.0, 80), Note(60, 12.0, 13.0, 80)]


def test_transpose_stays_on_the_keyboard():
    p = np.zeros((3, 88), np.uint8)
    p[0, 2] = p[1, 85] = 1
    shifts = roll.allowed_shifts(p, 6)
    assert shifts.tolist() == [-2, -1, 0, 1, 2]
    up = roll.transpose(p, 2)
    assert up[0, 4] == 1 and up[1, 87] == 1 and up.sum() == 2
    assert roll.transpose(roll.transpose(p, -2), 2).tolist() == p.tolist()


# -- the heads: exact likelihoods -----------------------------------------------------
@pytest.mark.parametrize("head", ["sigmoid", "nade"])
def test_each_head_is_a_normalised_distribution_over_frames(head):
    """Over all 2^6 frames of a 6-key model, the head's probabilities sum to 1 (so its NLL is exact)."""
    import torch

    from agent.model.net import LSTMModel, ModelArgs, roll_nll

    torch.manual_seed(0)
    keys = 6
    model = LSTMModel(ModelArgs(keys, embedding=0, hidden=8, layers=2, kind="roll", head=head,
                                nade_hidden=5 if head == "nade" else 0)).eval()
    if head == "nade":
        with torch.no_grad():
            model.head.w.mul_(40.0)  # strong coupling between keys, so the joint is far from independent
    frames = torch.tensor(list(itertools.product([0.0, 1.0], repeat=keys)))
    prev = (torch.rand(1, 3, keys) < 0.5).float()
    with torch.no_grad():
        _, state = model(prev, None, prev)
        x = torch.ones(len(frames), 1, keys)  # the same input and state for every candidate frame
        st = tuple(s.expand(-1, len(frames), -1).contiguous() for s in state)
        logits, _ = model(x, st, frames.unsqueeze(1))
        nll = roll_nll(logits, frames.unsqueeze(1))[:, 0]
    assert float(torch.exp(-nll.double()).sum()) == pytest.approx(1.0, abs=1e-5)
    if head == "nade":  # key k's conditional ignores keys >= k of the frame it is given
        s = torch.randn(2, 8)
        v = torch.zeros(2, keys)
        w = v.clone()
        w[:, 3:] = 1.0
        assert torch.allclose(model.head(s, v)[:, :4], model.head(s, w)[:, :4])
        assert not torch.allclose(model.head(s, v)[:, 4:], model.head(s, w)[:, 4:])


# -- train.py --kind roll, the card, the ONNX file ------------------------------------
def train(mat, out, *extra):
    cmd = [sys.executable, str(ROOT / "scripts/train.py"), "--data", str(mat), "--out", str(out),
           "--run-dir", str(out / "run"), *TINY, *extra]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=dict(os.environ, OMP_NUM_THREADS="1"),
                       timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return r


@pytest.fixture(scope="module", params=["sigmoid", "nade"])
def trained(request, tiny_mat, tmp_path_factory):
    out = tmp_path_factory.mktemp(f"roll-{request.param}")
    train(tiny_mat, out, "--epochs", "8", "--batch", "2", "--head", request.param, "--nade-hidden", "8")
    return request.param, out


def test_training_lowers_the_loss_and_the_card_matches_the_onnx_file(trained, tiny_mat):
    import torch

    from agent.model.net import load_checkpoint

    head, out = trained
    hist = json.loads((out / "metrics.json").read_text())["epochs"]
    assert hist[-1]["train_loss"] < hist[0]["train_loss"]
    assert min(h["valid_loss"] for h in hist[1:]) < hist[0]["valid_loss"]
    assert hist[-1]["valid_loss"] < 88 * np.log(2) / 2  # far below a coin per key
    raw = torch.load(out / "checkpoint.pt", weights_only=True)
    assert raw["model_args"]["kind"] == "roll" and raw["model_args"]["head"] == head
    model, _ = load_checkpoint(out / "checkpoint.pt")
    card = json.loads((out / "card.json").read_text())
    assert card["kind"] == "roll" and card["head"] == head and card["params"] == model.num_params()
    # test NLL recomputed here from model.onnx alone, with the benchmark protocol
    onnx_model = roll.RollModel.load(out / "model.onnx")
    assert onnx_model.nade == (head == "nade")
    test = roll.load_mat(tiny_mat)["test"]
    nll, frames = roll.onnx_test_nll(onnx_model, test)
    assert frames == sum(len(p) - 1 for p in test) == card["test_frames"]
    assert nll == pytest.approx(card["test_nll"], abs=1e-3)
    assert card["onnx_parity_max_abs_logit_diff"] < 1e-4


def test_roll_resume_continues(tiny_mat, tmp_path):
    out = tmp_path / "m"
    train(tiny_mat, out, "--epochs", "2")
    train(tiny_mat, out, "--epochs", "3", "--resume")
    hist = json.loads((out / "metrics.json").read_text())["epochs"]
    assert [h["epoch"] for h in hist] == [1, 2, 3]


def test_weight_drop_masks_the_recurrent_weights_while_training_only():
    import torch

    from agent.model.net import LSTMModel, ModelArgs

    torch.manual_seed(0)
    model = LSTMModel(ModelArgs(88, embedding=0, hidden=16, layers=2, dropout=0.0, kind="roll", weight_drop=0.5))
    kept = {k: v.clone() for k, v in model.state_dict().items()}
    x = (torch.rand(2, 12, 88) > 0.9).float()
    a, _ = model.train()(x)
    b, _ = model(x)
    assert not torch.allclose(a, b)  # a new DropConnect mask each block
    a.sum().backward()
    assert all(getattr(model.lstm, f"weight_hh_l{i}").grad.abs().sum() > 0 for i in range(2))
    assert all(torch.equal(kept[k], v) for k, v in model.state_dict().items())  # the stored weights untouched
    model.eval()
    c, _ = model(x)
    plain = LSTMModel(ModelArgs(88, embedding=0, hidden=16, layers=2, dropout=0.0, kind="roll")).eval()
    plain.load_state_dict(kept)
    assert torch.equal(c, model(x)[0]) and torch.allclose(c, plain(x)[0])  # evaluation: the plain LSTM


def test_ema_validates_and_keeps_the_averaged_weights(tiny_mat, tmp_path):
    import torch

    from agent.model.net import LSTMModel, ModelArgs, score_rolls

    out = tmp_path / "m"
    train(tiny_mat, out, "--epochs", "3", "--ema", "0.9", "--weight-drop", "0.3")
    hist = json.loads((out / "metrics.json").read_text())["epochs"]
    last = torch.load(out / "run" / "last.pt", weights_only=True)
    valid = roll.load_mat(tiny_mat)["valid"]

    def valid_nll(weights) -> float:
        model = LSTMModel(ModelArgs(**last["model_args"]))
        model.load_state_dict(weights)
        nll = score_rolls(model, valid)
        return float(sum(v.sum() for v in nll) / sum(len(v) for v in nll))

    assert last["model_args"]["weight_drop"] == 0.3
    assert valid_nll(last["ema"]) == pytest.approx(hist[-1]["valid_loss"], abs=1e-4)  # the average is validated
    assert abs(valid_nll(last["model"]) - hist[-1]["valid_loss"]) > 1e-3  # ... not the live weights
    best = torch.load(out / "checkpoint.pt", weights_only=True)
    assert valid_nll(best["model"]) == pytest.approx(min(h["valid_loss"] for h in hist), abs=1e-4)
    train(tiny_mat, out, "--epochs", "4", "--ema", "0.9", "--weight-drop", "0.3", "--resume")
    resumed = torch.load(out / "run" / "last.pt", weights_only=True)
    assert resumed["epoch"] == 4 and not torch.equal(resumed["ema"]["head.bias"], last["ema"]["head.bias"])


def test_bad_roll_data_is_one_line(tmp_path):
    r = subprocess.run([sys.executable, str(ROOT / "scripts/train.py"), "--data", str(tmp_path / "nope.mat"),
                        "--out", str(tmp_path / "m"), *TINY], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 1 and r.stderr.strip().endswith("nope.mat: no such piano-roll data file")
    assert "Traceback" not in r.stderr


# -- generation ---------------------------------------------------------------------
def test_generate_from_a_roll_model_writes_midi_and_pianoroll(trained, tmp_path, chorale):
    from agent.music.notes import write_midi

    head, model_dir = trained
    primer = write_midi(notes_from_music21(chorale), tmp_path / "primer.mid", bpm=80)
    out, png, xml = tmp_path / "roll.mid", tmp_path / "roll.png", tmp_path / "roll.musicxml"
    args = ["generate", "--model", str(model_dir), "--prime", str(primer), "--prime-bars", "2", "--bars", "2",
            "--seed", "3", "--out", str(out), "--pianoroll", str(png), "--temp", "1.0"]
    assert main(args + ["--musicxml", str(xml)]) == 0
    mid = mido.MidiFile(out)
    assert [t.name for t in mid.tracks][1:] == ["primer", "generated"]
    piece = read_midi(out)
    new = [n for n in piece.notes if n.start >= 8.0]
    assert new and max(n.end for n in new) <= 16.0 + 1e-6  # two 4/4 bars of quarter-note frames after the primer
    assert all(abs(n.start * 1.0 - round(n.start)) < 1e-6 for n in new)  # on the frame grid
    assert png.stat().st_size > 1000 and xml.stat().st_size > 1000
    again = tmp_path / "again.mid"
    assert main(args[:-8] + ["--seed", "3", "--out", str(again), "--temp", "1.0"]) == 0
    assert read_midi(again).notes == piece.notes  # same seed, same music
