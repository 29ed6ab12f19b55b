#!/usr/bin/env python
"""Antiphon's roll models on the published polyphonic benchmark (JSB Chorales, Nottingham).

    python scripts/bench_polyphonic.py                       # score the committed models from model.onnx alone
    python scripts/bench_polyphonic.py --train jsb-sigmoid   # (re)train a row with its recorded settings first
    python scripts/bench_polyphonic.py --json bench.json

Protocol (Bai, Kolter & Koltun 2018, Table 1; ../shared/data/poly_music/README.md):
frame-level NLL in nats: for each test piece, inputs frames 1..T-1 and
targets 2..T from a zero state; a frame's loss is the sum over the 88 keys of
binary cross-entropy (sigmoid head) or the exact joint NLL (nade head); sum
over all test pieces, divide by the number of predicted frames. The model is
chosen on validation loss only (train.py keeps the best-valid checkpoint);
test is computed once, at the end.

The test NLL printed here is recomputed from each folder's model.onnx with
numpy + onnxruntime (agent/model/roll.py), not read from the card; the card's own
figure (torch, from checkpoint.pt) must agree within 0.05. Prints a table
beside the published rows and JSON (stdout, or --json FILE).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from agent.config import ROOT
from agent.model import roll

# ../shared/data/poly_music beside the checkout (a worktree under wt/ has it one level further up)
DATA = next((p for p in (ROOT.parent / "shared/data/poly_music", ROOT.parent.parent / "shared/data/poly_music")
             if p.is_dir()), ROOT.parent / "shared/data/poly_music")
TOLERANCE = 0.05  # |ONNX test NLL - card test NLL| allowed

# Each row: model folder, data set, and the exact train.py settings that made the committed model
# (a row's own options come after COMMON, so they win where both set one).
COMMON = ["--kind", "roll", "--chunk", "128", "--warmup", "50", "--threads", "1", "--quiet"]
ROWS = {
    "jsb-sigmoid": {
        "folder": "models/roll-jsb", "set": "JSB_Chorales", "target": 8.10, "target_row": "TCN (Bai et al. 2018)",
        "args": ["--head", "sigmoid", "--layers", "1", "--hidden", "220", "--dropout", "0.4", "--input-dropout", "0.2",
                 "--weight-drop", "0.5", "--ema", "0.99", "--weight-decay", "0.1", "--batch", "8", "--lr", "3e-3",
                 "--epochs", "500", "--patience", "60", "--transpose", "6", "--transpose-p", "0.3"],
    },
    "nottingham-sigmoid": {
        "folder": "models/roll-nottingham", "set": "Nottingham", "target": 3.07, "target_row": "TCN (Bai et al. 2018)",
        "args": ["--head", "sigmoid", "--layers", "1", "--hidden", "450", "--dropout", "0.4", "--input-dropout", "0.1",
                 "--weight-drop", "0.3", "--ema", "0.998", "--batch", "8", "--chunk", "64", "--lr", "2e-3",
                 "--warmup", "100", "--epochs", "80", "--max-minutes", "55", "--patience", "10", "--transpose", "6",
                 "--transpose-p", "0.2"],
    },
    "jsb-nade": {
        "folder": "models/roll-jsb-nade", "set": "JSB_Chorales", "target": 5.6, "target_row": "RNN-NADE (2012)",
        "args": ["--head", "nade", "--nade-hidden", "100", "--layers", "1", "--hidden", "200", "--dropout", "0.4",
                 "--input-dropout", "0.2", "--weight-drop", "0.5", "--ema", "0.99", "--weight-decay", "0.1", "--batch",
                 "8", "--lr", "3e-3", "--epochs", "500", "--patience", "60", "--transpose", "6", "--transpose-p", "0.3"],
    },
    "nottingham-nade": {
        "folder": "models/roll-nottingham-nade", "set": "Nottingham", "target": 2.4, "target_row": "RNN-NADE (2012)",
        "args": ["--head", "nade", "--nade-hidden", "64", "--layers", "1", "--hidden", "440", "--dropout", "0.4",
                 "--input-dropout", "0.1", "--weight-drop", "0.3", "--ema", "0.998", "--batch", "8", "--chunk", "64",
                 "--lr", "2e-3", "--warmup", "100", "--epochs", "80", "--max-minutes", "50", "--patience", "10",
                 "--transpose", "6", "--transpose-p", "0.2"],
    },
}

# Published test NLL (nats per frame). Bai et al. 2018, Table 1 (their protocol, above).
# RNN-NADE: Boulanger-Lewandowski, Bengio & Vincent 2012, as later papers cite it (log-likelihood per
# time step; the averaging of that paper's evaluation is not guaranteed to be the one above).
PUBLISHED = [
    {"model": "LSTM", "source": "Bai et al. 2018", "JSB_Chorales": 8.45, "Nottingham": 3.29},
    {"model": "GRU", "source": "Bai et al. 2018", "JSB_Chorales": 8.43, "Nottingham": 3.46},
    {"model": "TCN", "source": "Bai et al. 2018", "JSB_Chorales": 8.10, "Nottingham": 3.07},
    {"model": "RNN-NADE", "source": "Boulanger-Lewandowski et al. 2012 (as cited)", "JSB_Chorales": 5.56,
     "Nottingham": 2.31},
]


def train_row(name: str, data_dir: Path) -> None:
    row = ROWS[name]
    cmd = [sys.executable, str(ROOT / "scripts/train.py"), "--data", str(data_dir / f"{row['set']}.mat"),
           "--out", str(ROOT / row["folder"]), "--run-dir", str(ROOT / "runs" / Path(row["folder"]).name),
           *COMMON, *row["args"]]
    print("$ " + " ".join(cmd), file=sys.stderr, flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT, env=dict(os.environ, OMP_NUM_THREADS="1"))


def score_row(name: str, data_dir: Path) -> dict:
    """The row's figures: test NLL from model.onnx alone, and the card's for comparison."""
    row = ROWS[name]
    folder = ROOT / row["folder"]
    card = json.loads((folder / "card.json").read_text())
    splits = roll.load_mat(data_dir / f"{row['set']}.mat")
    model = roll.RollModel.load(folder / "model.onnx")
    t0 = time.perf_counter()
    nll, frames = roll.onnx_test_nll(model, splits["test"])
    return {
        "row": name, "folder": row["folder"], "set": row["set"], "head": card["head"], "params": card["params"],
        "train_s": card["training"]["train_s"], "epochs_run": card["training"]["epochs_run"],
        "best_epoch": card["training"]["best_epoch"], "valid_nll": card["valid_nll"],
        "card_test_nll": card["test_nll"], "onnx_test_nll": round(nll, 4), "test_frames": frames,
        "onnx_matches_card": abs(nll - card["test_nll"]) <= TOLERANCE,
        "target": row["target"], "target_row": row["target_row"], "meets_target": nll <= row["target"],
        "score_s": round(time.perf_counter() - t0, 1),
        "train_command": "python scripts/train.py --data ../shared/data/poly_music/" + row["set"] + ".mat --out "
                         + row["folder"] + " " + " ".join(COMMON + row["args"]),
    }


def table(rows: list[dict]) -> str:
    lines = ["| model | params | JSB Chorales | Nottingham | train time | source |",
             "|---|---|---|---|---|---|"]
    for p in PUBLISHED:
        lines.append(f"| {p['model']} | ~ (see paper) | {p['JSB_Chorales']:.2f} | {p['Nottingham']:.2f} | | "
                     f"{p['source']} |")
    for r in rows:
        jsb = f"**{r['onnx_test_nll']:.2f}**" if r["set"] == "JSB_Chorales" else ""
        nott = f"**{r['onnx_test_nll']:.2f}**" if r["set"] == "Nottingham" else ""
        lines.append(f"| Antiphon LSTM + {r['head']} head ({r['folder']}) | {r['params']:,} | {jsb} | {nott} | "
                     f"{r['train_s'] / 60:.0f} min (1 CPU thread) | this repo, ONNX |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", default=str(DATA), help="folder with JSB_Chorales.mat and Nottingham.mat")
    ap.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated rows to score (of {', '.join(ROWS)})")
    ap.add_argument("--train", default="", help="comma-separated rows to train first (writes their model folders)")
    ap.add_argument("--json", metavar="FILE", help="write the JSON report here (default: stdout)")
    args = ap.parse_args(argv)
    data_dir = Path(args.data_dir)
    wanted = [r for r in args.rows.split(",") if r]
    bad = [r for r in wanted + [t for t in args.train.split(",") if t] if r not in ROWS]
    if bad:
        print(f"bench_polyphonic: unknown row {bad[0]!r} (known: {', '.join(ROWS)})", file=sys.stderr)
        return 2
    for name in [t for t in args.train.split(",") if t]:
        train_row(name, data_dir)
    try:
        rows = [score_row(n, data_dir) for n in wanted if (ROOT / ROWS[n]["folder"] / "model.onnx").exists()]
    except roll.RollError as exc:
        print(f"bench_polyphonic: {exc}", file=sys.stderr)
        return 2
    missing = [n for n in wanted if not (ROOT / ROWS[n]["folder"] / "model.onnx").exists()]
    report = {"protocol": "frame-level NLL in nats, test split, sum over predicted frames (2..T of each piece, "
                          "zero state per piece) / their number; model chosen on valid",
              "published": PUBLISHED, "rows": rows, "missing": missing}
    text = json.dumps(report, indent=1)
    if args.json:
        Path(args.json).write_text(text + "\n")
    else:
        print(text)
    print("\n" + table(rows), file=sys.stderr)
    for r in rows:
        gap = r["onnx_test_nll"] - r["target"]
        verdict = "met" if r["meets_target"] else f"missed by {gap:.2f}"
        match = "match" if r["onnx_matches_card"] else "MISMATCH"
        print(f"{r['row']}: ONNX {r['onnx_test_nll']:.4f} vs card {r['card_test_nll']:.4f} ({match}), "
              f"target <= {r['target']} ({verdict})", file=sys.stderr)
    return 0 if all(r["onnx_matches_card"] for r in rows) else 1
