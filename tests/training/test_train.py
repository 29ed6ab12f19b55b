"""scripts/train.py on tiny real data: loss falls, checkpoint reloads without pickle, resume, torchrun."""
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from agent.training import data as dataset
from agent.music.tokens import Vocab

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--hidden", "48", "--embedding", "24", "--layers", "2", "--batch", "4", "--chunk", "32",
        "--lr", "1e-2", "--warmup", "10", "--quiet", "--threads", "1"]


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    """~30 real tunes from Ryan's Mammoth, prepared by scripts/prepare_data.py."""
    d = tmp_path_factory.mktemp("data")
    cmd = [sys.executable, str(ROOT / "scripts/prepare_data.py"), "--corpus", "ryans", "--limit", "30",
           "--out", str(d / "prepared"), "--cache", str(d / "cache"), "--workers", "1",
           "--valid", "0.15", "--test", "0.15"]
    subprocess.run(cmd, check=True, capture_output=True, cwd=ROOT)
    assert len(dataset.load_split(d / "prepared", "valid")) >= 1
    return d / "prepared"


def train(data, out, *extra, launcher=(sys.executable,)):
    cmd = [*launcher, str(ROOT / "scripts/train.py"), "--data", str(data), "--out", str(out),
           "--run-dir", str(out / "run"), *TINY, *extra]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return r


def test_train_loss_falls_checkpoint_reloads_and_resume_continues(tiny_data, tmp_path):
    out = tmp_path / "model"
    train(tiny_data, out, "--epochs", "3", "--patience", "10")
    metrics = json.loads((out / "metrics.json").read_text())
    hist = metrics["epochs"]
    assert [h["epoch"] for h in hist] == [1, 2, 3]
    assert hist[-1]["train_loss"] < hist[0]["train_loss"]
    assert hist[-1]["valid_loss"] < math.log(Vocab().size) - 1.0  # well below a uniform guess
    assert all(h["tokens_per_s"] > 0 for h in hist)
    assert (out / "loss.png").stat().st_size > 1000

    # the best checkpoint: plain types only, so weights_only=True loads it
    raw = torch.load(out / "checkpoint.pt", weights_only=True)
    assert {"model", "model_args", "vocab", "config", "epoch", "best_valid"} <= set(raw)
    assert "optimizer" not in raw  # the shipped file stays small; last.pt has the optimizer
    from agent.model.net import load_checkpoint

    model, ck = load_checkpoint(out / "checkpoint.pt")
    assert ck["model_args"]["hidden"] == 48 and ck["best_valid"] == metrics["best_valid"]
    assert Vocab.load(out / "vocab.json") == Vocab.from_dict(ck["vocab"]) == dataset.vocab_of(tiny_data)
    logits, _ = model(torch.tensor([[0, 5, 9]]))
    assert logits.shape == (1, 3, Vocab().size)

    card = json.loads((out / "card.json").read_text())
    assert card["params"] == model.num_params() and card["test_nll"] > 0 and card["valid_nll"] > 0
    assert card["tokens_per_s"] > 0 and card["data"]["split_seed"] == 1234
    assert "baselines" not in card  # no eval.json yet
    # trained as it is used: the card says so, and scores a humanised copy of the test split too
    assert card["training"]["humanise"] == {"p": 0.5} and "zero" in card["training"]["state"]
    assert card["test_nll_humanised"] > 0 and card["test_nll_humanised"] != card["test_nll"]
    g = card["data"]["grouping"]
    assert g["groups"] <= sum(v["pieces"] for v in card["data"]["sources"].values()) and "Jaccard" in g["method"]

    # with scripts/evaluate.py's report beside it, the card takes the baselines from there
    (out / "eval.json").write_text(json.dumps({
        "test_nll": card["test_nll"], "collapse_rate": 0.0, "polyphony": 2.5,
        "data_reference": {"polyphony": 3.1, "pitch_class_histogram": [0.1] * 12},
        "humanised": {"baselines": {"ngram": {"test_nll": 6.0, "order": 4}}},
        "baselines": {"unigram": {"test_nll": 3.5}, "ngram": {"test_nll": 2.0, "order": 4}}}))
    (out / "held_out.json").write_text(json.dumps({"collections": {"essen": {"test_nll": 2.5, "ngram_test_nll": 3.0}}}))
    r = subprocess.run([sys.executable, str(ROOT / "scripts/train_report.py"), str(out), "--data", str(tiny_data)],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    card = json.loads((out / "card.json").read_text())
    assert card["baselines"]["ngram"] == {"test_nll": 2.0, "order": 4}
    assert card["test_nll_below_baseline"]["unigram"] == round(3.5 - card["test_nll"], 4)
    assert card["eval"]["collapse_rate"] == 0.0
    # sample statistics beside the data's; the baselines on the humanised copy beside the model's figure there
    assert card["eval"]["polyphony"] == 2.5 and card["eval"]["data_reference"] == {"polyphony": 3.1}
    assert card["baselines_humanised"] == {"ngram": {"test_nll": 6.0, "order": 4}}
    assert card["test_nll_humanised_below_baseline"]["ngram"] == round(6.0 - card["test_nll_humanised"], 4)
    assert "humanised_baselines" not in card["eval"]
    assert card["held_out_collections"] == {"essen": {"test_nll": 2.5, "ngram_test_nll": 3.0}}

    # resume: two more epochs on top of the three, same step count going on
    steps_before = metrics["steps"]
    r = train(tiny_data, out, "--epochs", "5", "--patience", "10", "--resume")
    assert "resumed from" in r.stderr
    hist2 = json.loads((out / "metrics.json").read_text())["epochs"]
    assert [h["epoch"] for h in hist2] == [1, 2, 3, 4, 5]
    assert hist2[:3] == hist and hist2[3]["steps"] > steps_before


def test_time_and_step_budgets_stop_the_run(tiny_data, tmp_path):
    out = tmp_path / "model"
    train(tiny_data, out, "--epochs", "50", "--max-steps", "7", "--warmup", "2", "--min-lr", "1e-4", "--no-test")
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["steps"] == 7 and len(metrics["epochs"]) == 1
    # the cosine schedule is planned over the step budget, so it has run (nearly) down by the last step
    assert metrics["epochs"][-1]["lr"] < 0.1 * 1e-2
    assert (out / "checkpoint.pt").exists() and not (out / "card.json").exists()


@pytest.mark.slow
def test_torchrun_two_processes(tiny_data, tmp_path):
    out = tmp_path / "ddp"
    launcher = (sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2")
    # --max-minutes (far off) so the ranks also agree on the re-planned LR schedule
    train(tiny_data, out, "--epochs", "2", "--patience", "10", "--max-minutes", "30", launcher=launcher)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["config"]["world_size"] == 2 and len(metrics["epochs"]) == 2
    assert metrics["epochs"][-1]["train_loss"] < metrics["epochs"][0]["train_loss"]
    from agent.model.net import load_checkpoint

    model, ck = load_checkpoint(out / "checkpoint.pt")
    assert ck["config"]["world_size"] == 2
    assert not any(k.startswith("module.") for k in ck["model"])  # saved from the unwrapped model
