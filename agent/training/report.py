"""What scripts/train.py reports: per-piece NLL, the loss curve, and the model card.

    python scripts/train_report.py models/default --data data/prepared   # (re)write card.json

NLL here is per token in nats: each piece is run from a zero state, starting
at its START token, and every following token (through END) is a target.
That is the number card.json's `valid_nll`/`test_nll` mean; `test_nll_humanised`
is the same on a humanised copy of the test split (agent/training/humanise.py, fixed
seed). The card also takes the baselines from `eval.json` (scripts/evaluate.py)
and the leave-one-collection-out figures from `held_out.json`
(scripts/held_out.py) when they exist.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from agent.config import ROOT
from agent.training import data as dataset
from agent.music.tokens import Vocab
from agent.training.humanise import EVAL_SEED, humanised_copy
from agent.model.net import load_checkpoint
from agent.training.scoring import piece_nll
from agent.training.cells import size_match


def plot_losses(history: list[dict], path: Path) -> None:
    """Train and valid loss (nats/token) per epoch as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not history:
        return
    ep = [h["epoch"] for h in history]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(ep, [h["train_loss"] for h in history], "o-", label="train (whole pieces, humanised and transposed)")
    ax.plot(ep, [h["valid_loss"] for h in history], "s-", label="valid (per piece)")
    ax.set_xlabel("epoch")
    ax.set_ylabel("NLL (nats/token)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _from_eval(eval_json: Path) -> tuple[dict | None, dict | None]:
    """(baselines, model's own eval figures) from scripts/evaluate.py's report, if there is one."""
    if not eval_json.exists():
        return None, None
    rep = json.loads(eval_json.read_text())
    keep = ("test_nll", "test_nll_per_note", "pitch_accuracy", "order", "smoothing")
    base = {k: {f: v[f] for f in keep if f in v} for k, v in (rep.get("baselines") or {}).items()
            if isinstance(v, dict) and "test_nll" in v}
    own = {k: rep[k] for k in ("test_nll", "test_nll_per_note", "pitch_accuracy", "collapse_rate", "silent_rate",
                               "in_key_ratio", "note_density", "distinct_pitches", "polyphony", "pitch_class_distance",
                               "sampling") if k in rep}
    if "data_reference" in rep:  # the same statistics of the test pieces' real continuations
        own["data_reference"] = {k: v for k, v in rep["data_reference"].items() if k != "pitch_class_histogram"}
    human = (rep.get("humanised") or {}).get("baselines") or {}
    human = {k: {f: v[f] for f in keep if f in v} for k, v in human.items() if isinstance(v, dict) and "test_nll" in v}
    if human:
        own["humanised_baselines"] = human
    return base or None, own or None


def data_section(manifest: dict, ck: dict) -> dict:
    """The card's "data": sources, splits, filters and grouping from the prepared data's manifest."""
    return {
        "sources": {k: {"pieces": v["pieces"], "tokens": v["tokens"], "files": v["files"],
                        "skipped_files": v["skipped_files"],
                        **{f: x for f, x in manifest.get("sources", {}).get(k, {}).items()
                           if f in ("style", "polyphony", "skipped")}}
                    for k, v in manifest["counts"]["sources"].items()},
        "splits": manifest["counts"]["splits"],
        "split_seed": manifest["seed"],
        "filtered": manifest.get("filtered", {}),
        "transpose_semitones": ck["config"].get("transpose"),
        "grouping": manifest.get("grouping"),
    }


def training_section(out_dir: Path, ck: dict, metrics: dict, stop_reason: str) -> dict:
    """The card's "training": time, epochs, why it stopped, and the options that shaped it."""
    epochs = metrics.get("epochs", [])
    return {
        "train_s": round(ck.get("train_s", metrics.get("train_s", 0.0)), 1),
        "total_train_s": metrics.get("train_s"),
        "epochs_run": len(epochs), "best_epoch": ck["best_epoch"], "steps": metrics.get("steps"),
        "stop_reason": stop_reason or (json.loads((out_dir / "card.json").read_text()).get("training", {})
                                       .get("stop_reason", "") if (out_dir / "card.json").exists() else ""),
        "chunk": ck["config"].get("chunk"), "batch": ck["config"].get("batch"),
        "lr": ck["config"].get("lr"), "world_size": ck["config"].get("world_size"),
        "threads": ck["config"].get("threads"),
        "humanise": ({"p": ck["config"].get("humanise_p")} if ck["config"].get("humanise") else False),
        "state": ("zero at every piece's START" if "humanise" in ck["config"]
                  else "carried from piece to piece (pieces laid end to end)"),
    }


def write_card(out_dir: str | Path, data_dir: str | Path, stop_reason: str = "") -> dict:
    """Evaluate the best checkpoint on valid and test; write card.json beside it."""
    out_dir = Path(out_dir)
    model, ck = load_checkpoint(out_dir / "checkpoint.pt")
    manifest = dataset.load_manifest(data_dir)
    metrics = json.loads((out_dir / "metrics.json").read_text()) if (out_dir / "metrics.json").exists() else {}
    nll = {}
    for split in ("valid", "test"):
        pieces = dataset.load_split(data_dir, split)
        s, n = piece_nll(model, pieces)
        nll[split] = (s / max(n, 1), n)
    s, n = piece_nll(model, humanised_copy(pieces, Vocab.from_dict(ck["vocab"]), EVAL_SEED))
    nll["test_humanised"] = (s / max(n, 1), n)
    epochs = metrics.get("epochs", [])
    speeds = [e["tokens_per_s"] for e in epochs]
    card = {
        "name": out_dir.name,
        "description": (f"{ck['model_args']['layers']}x{ck['model_args']['hidden']} stateful "
                        f"{ck['model_args'].get('cell', 'lstm').upper()} over Antiphon's "
                        f"performance tokens, trained on {', '.join(manifest['counts']['sources'])}"),
        "data": data_section(manifest, ck),
        "vocab": ck["vocab"],
        "model_args": ck["model_args"],
        "cell": ck["model_args"].get("cell", "lstm"),
        "params": model.num_params(),
        "training": training_section(out_dir, ck, metrics, stop_reason),
        "tokens_per_s": round(float(np.mean(speeds)), 1) if speeds else None,
        "valid_nll": round(nll["valid"][0], 4),
        "test_nll": round(nll["test"][0], 4),
        "test_targets": nll["test"][1],
        "test_nll_humanised": round(nll["test_humanised"][0], 4),
        "humanised_seed": EVAL_SEED,
        "nll_unit": "nats per token, each piece from a zero state, START excluded as a target",
    }
    matched = size_match(ck["model_args"], ck.get("config") or {})
    if matched:
        card["size_matched_to_lstm"] = matched
    baselines, own = _from_eval(out_dir / "eval.json")
    if baselines:
        card["baselines"] = baselines
        card["baselines_from"] = "eval.json (scripts/evaluate.py, same test split)"
        card["test_nll_below_baseline"] = {k: round(v["test_nll"] - card["test_nll"], 4) for k, v in baselines.items()}
    human = (own or {}).pop("humanised_baselines", None)
    if human:  # the same baselines on the humanised copy of the test split
        card["baselines_humanised"] = human
        card["test_nll_humanised_below_baseline"] = {k: round(v["test_nll"] - card["test_nll_humanised"], 4)
                                                     for k, v in human.items()}
    if own:
        card["eval"] = own
    held_out = out_dir / "held_out.json"
    if held_out.exists():
        card["held_out_collections"] = json.loads(held_out.read_text())["collections"]
        card["held_out_from"] = "held_out.json (scripts/held_out.py: a model trained without each collection)"
    (out_dir / "card.json").write_text(json.dumps(card, indent=1) + "\n")
    return card


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="(re)write a trained model's card.json")
    ap.add_argument("model", help="model folder with checkpoint.pt")
    ap.add_argument("--data", default=str(ROOT / dataset.DEFAULT_DATA_DIR))
    args = ap.parse_args(argv)
    card = write_card(args.model, args.data)
    print(json.dumps({k: card.get(k) for k in ("params", "tokens_per_s", "valid_nll", "test_nll", "baselines")},
                     indent=1))
    return 0
