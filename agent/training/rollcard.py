"""A trained roll model's ONNX export and card: what scripts/train.py --kind roll writes at the end.

    python scripts/roll_report.py models/roll-jsb --data ../shared/data/poly_music/JSB_Chorales.mat

NLL is the polyphonic benchmark's (Bai, Kolter & Koltun 2018, Table 1): per
piece, inputs frames 1..T-1 and targets 2..T from a zero state; a frame's
loss is the sum over the 88 keys of binary cross-entropy (sigmoid head) or
the exact joint NLL (nade head); summed over pieces, divided by the number
of predicted frames. valid_nll and test_nll come from the checkpoint in
torch; onnx_test_nll is recomputed from model.onnx alone (agent/model/roll.py) and
must agree.
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

from agent.model import roll
from agent.model.net import LSTMModel, load_checkpoint, score_rolls

OPSET = 17
PROTOCOL = ("frame-level NLL in nats: per piece from a zero state, inputs frames 1..T-1, targets 2..T; "
            "a frame's loss is the sum over 88 keys of binary cross-entropy (nade: the exact joint NLL); "
            "sum over all pieces / number of predicted frames")
# frames per beat of each benchmark set (Boulanger-Lewandowski et al. 2012 sampled the rolls on a
# fixed grid: JSB Chorales at quarter notes; Nottingham, read from its note lengths, at eighth notes)
FRAMES_PER_BEAT = {"JSB_Chorales": 1.0, "Nottingham": 2.0}
# MIDI pitch of key 0. Nottingham's roll is A0-based (its melodies' median top key, 53, is D5). JSB's is
# an octave up: its frames' top key averages 62 and bottom key 42, which A0-based would put the soprano
# at B5; music21's chorales average a soprano of 70 (B-flat 4) and a bass of 51, i.e. key + 9 (both
# sets were moved to C by their authors, which shifts single pieces but not the average).
LOWEST_PITCH = {"JSB_Chorales": 9, "Nottingham": 21}


class _Step(torch.nn.Module):
    """LSTMModel.step with the roll inputs by name: x, h, c (and v for the nade head)."""

    def __init__(self, model: LSTMModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, x, h, c, v=None):
        return self.model.step(x, h, c, v)


def export_roll_onnx(model: LSTMModel, out_dir: str | Path) -> Path:
    """Write out_dir/model.onnx: one step with explicit state (see agent/model/roll.py for the signature)."""
    path = Path(out_dir) / "model.onnx"
    model = copy.deepcopy(model).eval().cpu()
    model.lstm.dropout = 0.0  # the TorchScript exporter keeps it in the graph otherwise (see export_onnx.py)
    keys = model.args.vocab_size
    x = torch.zeros(1, keys)
    h, c = model.initial_state(1)
    nade = model.args.head == "nade"
    inputs = (x, h, c, torch.zeros(1, keys)) if nade else (x, h, c)
    names = ["x", "h", "c", "v"] if nade else ["x", "h", "c"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # batch-size advice for LSTM: ours is fixed at 1, state explicit
        torch.onnx.export(_Step(model), inputs, str(path), input_names=names,
                          output_names=["logits", "h_out", "c_out"], opset_version=OPSET, dynamo=False,
                          do_constant_folding=True)
    return path


def parity(model: LSTMModel, onnx_path: Path, piece: np.ndarray) -> float:
    """Largest |logit difference| between torch and onnxruntime along one real piece, state carried."""
    om = roll.RollModel.load(onnx_path)
    model = model.eval()
    h, c = model.initial_state(1)
    hn, cn = om.zero_state()
    worst = 0.0
    with torch.inference_mode():
        for t in range(len(piece) - 1):
            x = torch.as_tensor(piece[t:t + 1], dtype=torch.float32)
            v = torch.as_tensor(piece[t + 1:t + 2], dtype=torch.float32)
            lt, h, c = model.step(x, h, c, v if om.nade else None)
            ln, hn, cn = om.step(piece[t], hn, cn, piece[t + 1])
            worst = max(worst, float(np.abs(lt[0].numpy() - ln).max()))
    return worst


def write_roll_card(out_dir: str | Path, data: str | Path, stop_reason: str = "") -> dict:
    """Score the best checkpoint on valid and test, export model.onnx, rescore test from it, write card.json."""
    out_dir = Path(out_dir)
    model, ck = load_checkpoint(out_dir / "checkpoint.pt")
    splits = roll.load_mat(data)
    nll = {}
    for split in ("valid", "test"):
        per_piece = score_rolls(model, splits[split])
        n = sum(len(p) for p in per_piece)
        nll[split] = (float(sum(p.sum() for p in per_piece)) / n, n)
    onnx_path = export_roll_onnx(model, out_dir)
    diff = parity(model, onnx_path, splits["test"][0])
    onnx_nll, onnx_n = roll.onnx_test_nll(roll.RollModel.load(onnx_path), splits["test"])
    metrics = json.loads((out_dir / "metrics.json").read_text()) if (out_dir / "metrics.json").exists() else {}
    epochs = metrics.get("epochs", [])
    a = ck["model_args"]
    cfg = ck["config"]
    data_name = Path(data).stem
    card = {
        "name": out_dir.name,
        "kind": "roll",
        "head": a["head"],
        "description": (f"{a['layers']}x{a['hidden']} LSTM over 88-key piano-roll frames, "
                        f"{'RNN-NADE joint' if a['head'] == 'nade' else 'independent sigmoid'} head, "
                        f"trained on {data_name} (train split; model chosen on valid)"),
        "data": {"file": data_name + ".mat", "splits": {k: len(v) for k, v in splits.items()},
                 "transpose_semitones": cfg.get("transpose"), "transpose_p": cfg.get("transpose_p", 1.0)},
        "frames_per_beat": FRAMES_PER_BEAT.get(data_name, 1.0),
        "lowest_pitch": LOWEST_PITCH.get(data_name, roll.LOWEST),
        "model_args": a,
        "params": model.num_params(),
        "training": {
            "train_s": round(ck.get("train_s", metrics.get("train_s", 0.0)), 1),
            "total_train_s": metrics.get("train_s"),
            "epochs_run": len(epochs), "best_epoch": ck["best_epoch"], "steps": metrics.get("steps"),
            "stop_reason": stop_reason, "max_minutes": cfg.get("max_minutes"), "epochs": cfg.get("epochs"),
            "patience": cfg.get("patience"),
            **{k: cfg.get(k) for k in ("chunk", "batch", "lr", "min_lr", "weight_decay", "clip", "dropout",
                                      "input_dropout", "weight_drop", "ema", "transpose", "transpose_p", "seed",
                                      "threads", "world_size")},
        },
        "valid_nll": round(nll["valid"][0], 4),
        "test_nll": round(nll["test"][0], 4),
        "test_frames": nll["test"][1],
        "onnx_test_nll": round(onnx_nll, 4),
        "onnx_parity_max_abs_logit_diff": diff,
        "nll_unit": PROTOCOL,
    }
    if onnx_n != nll["test"][1]:
        raise SystemExit(f"ONNX scored {onnx_n} test frames, torch {nll['test'][1]}")
    (out_dir / "card.json").write_text(json.dumps(card, indent=1) + "\n")
    return card


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="export and (re)write a trained roll model's card.json")
    ap.add_argument("model", help="model folder with checkpoint.pt")
    ap.add_argument("--data", required=True, help="the benchmark .mat file it was trained on")
    args = ap.parse_args(argv)
    card = write_roll_card(args.model, args.data)
    print(json.dumps({k: card[k] for k in ("params", "valid_nll", "test_nll", "onnx_test_nll")}, indent=1))
    return 0
