"""scripts/export_onnx.py: names, one file, and parity with torch (state carried)."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import tiny  # noqa: E402
from helpers import ROOT  # noqa: E402

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A 2x128 random model (the planned shape, smaller) exported with int8 too."""
    d = tmp_path_factory.mktemp("model")
    model, vocab = tiny.make_checkpoint(d / "checkpoint.pt", hidden=128, embedding=64, seed=3)
    tiny.export_module().export_model(model, vocab, d, int8=True)
    return model, vocab, d


def test_graph_names_types_and_shapes(exported):
    model, vocab, d = exported
    s = ort.InferenceSession(str(d / "model.onnx"), providers=["CPUExecutionProvider"])
    ins = {i.name: (i.type, i.shape) for i in s.get_inputs()}
    outs = {o.name: (o.type, o.shape) for o in s.get_outputs()}
    assert ins == {"token": ("tensor(int64)", [1]), "h": ("tensor(float)", [2, 1, 128]),
                   "c": ("tensor(float)", [2, 1, 128])}
    assert outs == {"logits": ("tensor(float)", [1, vocab.size]), "h_out": ("tensor(float)", [2, 1, 128]),
                    "c_out": ("tensor(float)", [2, 1, 128])}


def test_one_file_no_external_data_and_vocab_beside_it(exported):
    import onnx

    _, vocab, d = exported
    assert sorted(p.name for p in d.iterdir()) == ["checkpoint.pt", "model.int8.onnx", "model.onnx", "vocab.json"]
    m = onnx.load(str(d / "model.onnx"), load_external_data=False)
    assert all(t.data_location != onnx.TensorProto.EXTERNAL for t in m.graph.initializer)
    from agent.music.tokens import Vocab

    assert Vocab.load(d / "vocab.json") == vocab


def test_onnx_matches_torch_over_200_carried_steps(exported):
    model, _, d = exported
    assert tiny.export_module().parity(model, d / "model.onnx", steps=200, seed=1) <= 1e-4


def test_100_carried_steps_equal_one_100_token_forward_pass(exported, chorale):
    """Real tokens (a Bach chorale): stepping with the state carried == one teacher-forced pass."""
    from agent.music.tokens import encode
    from agent.music.notes import notes_from_music21

    model, vocab, d = exported
    ids = encode(notes_from_music21(chorale), vocab)[:100]
    assert len(ids) == 100
    with torch.inference_mode():
        full, _ = model(torch.tensor([ids]))
        h, c = model.initial_state(1)
        steps = []
        for t in ids:
            logits, h, c = model.step(torch.tensor([t]), h, c)
            steps.append(logits[0])
    torch.testing.assert_close(torch.stack(steps), full[0], atol=1e-5, rtol=1e-5)
    s = ort.InferenceSession(str(d / "model.onnx"), providers=["CPUExecutionProvider"])
    hn = np.zeros((2, 1, 128), np.float32)
    cn = hn.copy()
    onnx_steps = []
    for t in ids:
        logits, hn, cn = s.run(None, {"token": np.array([t], np.int64), "h": hn, "c": cn})
        onnx_steps.append(logits[0])
    assert np.abs(np.stack(onnx_steps) - full[0].numpy()).max() <= 1e-4


def test_int8_model_runs_and_stays_close(exported):
    """Dynamic int8 changes the logits a little, not the model: small KL to the float model per step."""
    model, _, d = exported
    f32 = ort.InferenceSession(str(d / "model.onnx"), providers=["CPUExecutionProvider"])
    q = ort.InferenceSession(str(d / "model.int8.onnx"), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    z = np.zeros((2, 1, 128), np.float32)
    a, b = (z, z.copy()), (z.copy(), z.copy())
    kls = []
    for t in rng.integers(0, model.args.vocab_size, 100):
        feed = {"token": np.array([t], np.int64)}
        la, *a = f32.run(None, {**feed, "h": a[0], "c": a[1]})
        lb, *b = q.run(None, {**feed, "h": b[0], "c": b[1]})
        pa, pb = np.exp(la - la.max()), np.exp(lb - lb.max())
        pa, pb = pa / pa.sum(), pb / pb.sum()
        kls.append(float((pa * np.log(pa / pb)).sum()))
        assert np.abs(la - lb).max() < 0.5
    assert np.mean(kls) < 0.01, np.mean(kls)


def test_cli_writes_folder_and_reports_parity(tmp_path, capsys):
    import json

    tiny.make_checkpoint(tmp_path / "ck" / "checkpoint.pt", hidden=32)
    rc = tiny.export_module().main([str(tmp_path / "ck" / "checkpoint.pt"), "--out", str(tmp_path / "out")])
    assert rc == 0
    report = json.loads(capsys.readouterr().out)
    assert report["parity_max_abs_diff_200_steps"] <= 1e-4
    assert (tmp_path / "out" / "model.onnx").exists() and (tmp_path / "out" / "vocab.json").exists()


DEFAULT = ROOT / "models" / "default"


@pytest.mark.skipif(not (DEFAULT / "model.onnx").exists() or not (DEFAULT / "checkpoint.pt").exists(),
                    reason="models/default has no checkpoint.pt + model.onnx")
def test_shipped_default_export_matches_its_checkpoint():
    from agent.music.tokens import Vocab
    from agent.model.net import load_checkpoint

    model, ckpt = load_checkpoint(DEFAULT / "checkpoint.pt")
    assert Vocab.load(DEFAULT / "vocab.json") == Vocab.from_dict(ckpt["vocab"])
    assert tiny.export_module().parity(model, DEFAULT / "model.onnx", steps=200, seed=2) <= 1e-4


def test_quantized_runs_the_int8_file_where_there_is_one(exported, tmp_path):
    """[model] quantized: model.int8.onnx when the folder has it, else model.onnx; never a missing file."""
    import shutil

    from agent.model.predictor import Predictor

    _, _, d = exported
    assert Predictor.load(d, backend="onnx", quantized=True).backend.describe()["model"] == "model.int8.onnx"
    assert Predictor.load(d, backend="onnx", quantized=False).backend.describe()["model"] == "model.onnx"
    plain = tmp_path / "plain"
    shutil.copytree(d, plain, ignore=shutil.ignore_patterns("model.int8.onnx"))
    assert Predictor.load(plain, backend="onnx", quantized=True).backend.describe()["model"] == "model.onnx"
