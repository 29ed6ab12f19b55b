"""The GRU model kind (issue 24 item 4): equal size to the LSTM, trains, exports, ONNX matches torch."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from agent.model.net import LSTMModel, ModelArgs, count_params, load_checkpoint, matched_hidden
from agent.music.tokens import Vocab
from agent.training import data as dataset

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--hidden", "48", "--embedding", "24", "--layers", "2", "--batch", "4", "--chunk", "32",
        "--lr", "1e-2", "--warmup", "2", "--quiet", "--threads", "1"]


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    """A dozen real tunes from Ryan's Mammoth, prepared by scripts/prepare_data.py."""
    d = tmp_path_factory.mktemp("data")
    cmd = [sys.executable, str(ROOT / "scripts/prepare_data.py"), "--corpus", "ryans", "--limit", "16",
           "--out", str(d / "prepared"), "--cache", str(d / "cache"), "--workers", "1",
           "--valid", "0.2", "--test", "0.2"]
    subprocess.run(cmd, check=True, capture_output=True, cwd=ROOT)
    assert len(dataset.load_split(d / "prepared", "test")) >= 1
    return d / "prepared"


@pytest.fixture(scope="module")
def trained(tiny_data, tmp_path_factory):
    """A tiny GRU trained a few steps by scripts/train.py --cell gru, size matched to a 2x48 LSTM."""
    out = tmp_path_factory.mktemp("gru") / "model"
    cmd = [sys.executable, str(ROOT / "scripts/train.py"), "--data", str(tiny_data), "--out", str(out),
           "--run-dir", str(out / "run"), *TINY, "--cell", "gru", "--max-steps", "6", "--epochs", "2"]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=dict(os.environ, OMP_NUM_THREADS="1"),
                       timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def exported(trained):
    """scripts/export_onnx.py --int8 over the trained GRU; its JSON report."""
    r = subprocess.run([sys.executable, str(ROOT / "scripts/export_onnx.py"), str(trained / "checkpoint.pt"),
                        "--int8"], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout)


def test_the_gru_gets_the_hidden_size_of_the_lstms_parameter_count():
    lstm = ModelArgs(vocab_size=242)  # the shipped default: 2x256, embedding 128
    assert count_params(lstm) == LSTMModel(lstm).num_params() == 1_014_770
    hidden = matched_hidden(lstm, "gru")
    assert hidden == 297  # 3 gates to the LSTM's 4: a wider state at the same size
    gru = ModelArgs(vocab_size=242, hidden=hidden, cell="gru")
    assert count_params(gru) == LSTMModel(gru).num_params()
    assert count_params(gru) / count_params(lstm) == pytest.approx(1.0, abs=1e-3)


def test_a_checkpoint_without_a_cell_reads_as_an_lstm(tmp_path):
    model = LSTMModel(ModelArgs(vocab_size=Vocab().size, embedding=8, hidden=12))
    args = model.model_args()
    del args["cell"]  # as written before the GRU kind existed
    torch.save({"model_args": args, "vocab": Vocab().to_dict(), "config": {}, "model": model.state_dict()},
               tmp_path / "checkpoint.pt")
    loaded, _ = load_checkpoint(tmp_path / "checkpoint.pt")
    assert isinstance(loaded.lstm, torch.nn.LSTM)
    assert loaded.args.cell == "lstm"


def test_a_roll_model_refuses_the_gru_cell():
    with pytest.raises(ValueError, match="gru: token models only"):
        LSTMModel(ModelArgs(vocab_size=88, kind="roll", cell="gru"))


def test_train_cell_gru_writes_a_gru_checkpoint_and_a_card_that_says_its_size_match(trained, tiny_data):
    model, ck = load_checkpoint(trained / "checkpoint.pt")
    vocab = dataset.vocab_of(tiny_data)
    lstm = ModelArgs(vocab_size=vocab.size, embedding=24, hidden=48, layers=2)
    assert isinstance(model.lstm, torch.nn.GRU)
    assert ck["model_args"]["hidden"] == matched_hidden(lstm, "gru")
    card = json.loads((trained / "card.json").read_text())
    assert card["cell"] == "gru"
    assert card["size_matched_to_lstm"]["lstm_hidden"] == 48
    assert card["size_matched_to_lstm"]["params"] == model.num_params()
    assert card["size_matched_to_lstm"]["lstm_params"] == count_params(lstm)
    assert "GRU" in card["description"]


def test_the_exported_gru_single_step_matches_torch_over_a_real_piece(trained, exported, tiny_data):
    assert exported["parity_max_abs_diff_200_steps"] == pytest.approx(0.0, abs=1e-4)
    graph = onnx.load(str(trained / "model.onnx")).graph
    assert [i.name for i in graph.input] == ["token", "h"]
    assert [o.name for o in graph.output] == ["logits", "h_out"]
    model, _ = load_checkpoint(trained / "checkpoint.pt")
    sess = ort.InferenceSession(str(trained / "model.onnx"), providers=["CPUExecutionProvider"])
    piece = dataset.load_split(tiny_data, "test")[0][:300]  # a real tune's tokens, state carried
    (h,) = model.initial_state(1)
    hn, worst = h.numpy(), 0.0
    with torch.inference_mode():
        for t in piece:
            lt, (h,) = model.step_state(torch.tensor([int(t)]), (h,))
            ln, hn = sess.run(["logits", "h_out"], {"token": np.array([t], np.int64), "h": hn})
            worst = max(worst, float(np.abs(lt.numpy() - ln).max()), float(np.abs(h.numpy() - hn).max()))
    assert worst == pytest.approx(0.0, abs=1e-4)


def test_the_int8_gru_quantises_its_cell_and_stays_close(trained, exported, tiny_data):
    """The quantiser has no GRU op: the export's MatMuls are what it quantises (the cell's and the head's)."""
    q = onnx.load(str(trained / "model.int8.onnx")).graph
    ops = [n.op_type for n in q.node]
    assert ops.count("MatMulInteger") == 2 * 2 + 1  # input and recurrent weights of 2 layers, and the head
    assert ops.count("MatMul") == 0
    f32 = ort.InferenceSession(str(trained / "model.onnx"), providers=["CPUExecutionProvider"])
    i8 = ort.InferenceSession(str(trained / "model.int8.onnx"), providers=["CPUExecutionProvider"])
    hidden = load_checkpoint(trained / "checkpoint.pt")[1]["model_args"]["hidden"]
    a = b = np.zeros((2, 1, hidden), np.float32)
    kls = []
    for t in dataset.load_split(tiny_data, "test")[0][:200]:
        feed = {"token": np.array([t], np.int64)}
        la, a = f32.run(None, {**feed, "h": a})
        lb, b = i8.run(None, {**feed, "h": b})
        pa, pb = np.exp(la - la.max()), np.exp(lb - lb.max())
        pa, pb = pa / pa.sum(), pb / pb.sum()
        kls.append(float((pa * np.log(pa / pb)).sum()))
    assert np.mean(kls) == pytest.approx(0.0, abs=0.01)
