"""scripts/bench_train.py: both schemes train the same model on real chorales and count targets right.

No assertion here depends on speed (the ratio itself is recorded in BENCHMARKS.md).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from agent.training import data as dataset
from agent.training import throughput as bench
from agent.music.tokens import Vocab, encode
from agent.music.notes import notes_from_music21

VOCAB = Vocab()


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    from music21 import corpus

    pieces = [np.asarray(encode(notes_from_music21(corpus.parse(name)), VOCAB))
              for name in ("bach/bwv66.6", "bach/bwv10.7", "bach/bwv11.6", "bach/bwv13.6")]
    d = tmp_path_factory.mktemp("prepared")
    dataset.write_split(d, "train", pieces)
    dataset.write_manifest(d, {"vocab": VOCAB.to_dict()})
    return d


def test_quick_run_writes_the_contract_keys_and_counts_targets(tmp_path, data_dir):
    out = tmp_path / "bench.json"
    rc = bench.main(["--quick", "--data", str(data_dir), "--model", str(tmp_path / "no-model"), "--json", str(out),
                     "--layers", "1", "--hidden", "32", "--embedding", "16", "--batch", "4", "--chunk", "50",
                     "--rounds", "2", "--steps", "3", "--threads", "1"])
    assert rc == 0
    r = json.loads(out.read_text())
    for key in ("ours_targets_per_s", "window_targets_per_s", "ratio"):
        assert r[key] > 0
    assert r["ratio"] == pytest.approx(r["ours_targets_per_s"] / r["window_targets_per_s"], rel=0.01)
    # every position is a target in ours; one per 100-token window in theirs
    assert r["ours"]["targets"] == 2 * 3 * 4 * 50 and r["ours"]["tokens"] == r["ours"]["targets"]
    assert r["window"]["targets"] == 2 * 3 * 4 and r["window"]["tokens"] == 2 * 3 * 4 * 100
    assert r["model_args"]["hidden"] == 32 and r["model_args"]["vocab_size"] == VOCAB.size


def test_both_schemes_learn(data_dir):
    """The steps are real training steps: a few of each lower the loss on what they train on."""
    import torch

    pieces = dataset.load_split(data_dir, "train")
    margs = {"vocab_size": VOCAB.size, "embedding": 16, "hidden": 32, "layers": 1, "dropout": 0.0}
    tr = bench.Trainer(margs, pieces, batch=4, chunk=40, window=100, seed=0)
    tr.ours_step()  # the first chunk of an epoch of whole pieces: from a zero state
    x, y, mask, fresh = first = tr.chunks[-1]  # the next one: the same pieces, 40 tokens on

    def loss() -> float:
        with torch.no_grad():
            logits, _ = tr.model(x)
            nll = torch.nn.functional.cross_entropy(logits.reshape(-1, VOCAB.size), y.reshape(-1), reduction="none")
            return float((nll * mask.reshape(-1)).sum() / mask.sum())

    before = loss()
    for _ in range(30):
        tr.chunks.append(first)
        targets, tokens = tr.ours_step()
    assert loss() < before - 0.2
    assert targets == int(mask.sum()) and tokens == x.numel()  # the padding after an END is no target
    assert tr.state[0].shape == (1, x.shape[0], 32)  # state carried to the next chunk of those pieces
    assert tr.window_step() == (4, 400)


def test_model_size_comes_from_the_checkpoint(tmp_path):
    import torch

    from agent.model.net import LSTMModel, ModelArgs

    m = LSTMModel(ModelArgs(VOCAB.size, embedding=24, hidden=40, layers=3))
    (tmp_path / "m").mkdir()
    torch.save({"model_args": m.model_args(), "vocab": VOCAB.to_dict(), "config": {}, "model": m.state_dict()},
               tmp_path / "m" / "checkpoint.pt")
    args, source, config = bench.model_args_for(str(tmp_path / "m"), VOCAB.size, {"layers": None, "hidden": None})
    assert (args["embedding"], args["hidden"], args["layers"]) == (24, 40, 3) and "checkpoint.pt" in source
    assert config == {}
    args, _, _ = bench.model_args_for(str(tmp_path / "none"), VOCAB.size, {"hidden": 64})
    assert args["hidden"] == 64 and args["layers"] == bench.TRAIN_DEFAULTS["layers"]


def test_quick_run_needs_no_prepared_data(tmp_path):
    out = tmp_path / "bench.json"
    rc = bench.main(["--quick", "--data", str(tmp_path / "no-prepared-data"), "--model", str(tmp_path / "no-model"),
                     "--json", str(out), "--layers", "1", "--hidden", "32", "--embedding", "16", "--batch", "4",
                     "--chunk", "50", "--rounds", "1", "--steps", "2", "--threads", "1"])
    assert rc == 0
    r = json.loads(out.read_text())
    assert Path(r["data"]).name == "quick" and r["data_tokens"] > 10_000 and r["ours"]["targets"] > 0


def test_ours_runs_whole_epochs_as_rows_leave_their_batch(data_dir):
    """Pieces of different lengths: a batch narrows as its shorter pieces end, and the carried state with it."""
    pieces = dataset.load_split(data_dir, "train")
    assert len({len(p) for p in pieces}) > 1
    margs = {"vocab_size": VOCAB.size, "embedding": 16, "hidden": 32, "layers": 1, "dropout": 0.0}
    tr = bench.Trainer(margs, pieces, batch=4, chunk=40, window=100, seed=0)
    tr.ours_step()
    rows = [len(c[0]) for c in tr.chunks]
    assert min(rows) < 4  # some chunk of this epoch holds fewer rows than its batch began with
    targets = 0
    while tr.chunks:
        targets += tr.ours_step()[0]
    assert targets > 0 and tr.state[0].shape[1] <= 4
