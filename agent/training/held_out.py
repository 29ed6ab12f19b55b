#!/usr/bin/env python
"""Leave-one-collection-out: train without a whole collection, test on all of it, against n-grams.

    python scripts/held_out.py --data data/prepared --hold-out essen,bach --out runs/held_out \\
        --card models/default -- --max-minutes 20 --threads 1

For each held-out collection C (a source name of the prepared data, e.g.
essen, bach, oneills, or a --midi-dir source):

- test is every piece of C, from all three splits;
- train and valid are the other sources' pieces of the train and valid
  splits, less any piece in a fingerprint group (prepare_data's near-duplicate
  grouping) that holds a piece of C: the same tune printed in another book
  must not teach the model the held-out collection;
- scripts/train.py trains a model on that (the arguments after `--` go to it
  unchanged, e.g. its size and time budget), and the model's NLL on C is set
  against a unigram and an interpolated Kneser-Ney n-gram (scripts/evaluate.py's
  baselines) fitted on the same training pieces and scored on the same targets.
  The humanised copy of C (agent/training/humanise.py) is scored too.

Writes OUT/held_out.json and, with --card DIR, DIR/held_out.json, and adds
`held_out_collections` to DIR/card.json: {C: {"test_nll", "ngram_test_nll",
...}} (nats per token, every token after a piece's START a target). These
figures are for the models trained without each collection, not for the model
in DIR: the closest thing to music a model has never seen.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from agent.config import ROOT
from agent.training import data as dataset

from agent.training import metrics
from agent.errors import AntiphonError
from agent.training.humanise import EVAL_SEED, humanised_copy
from agent.training.scoring import nll_by_group, score_counts, summarize


def piece_table(data_dir: Path) -> dict[str, list[tuple[np.ndarray, str, str, str]]]:
    """{split: [(ids, name, source, group)]} from a prepared folder's splits and manifest.

    A manifest from before grouping has no piece_sources/piece_groups: the source is then the
    name's first path part (prepare_data names pieces "source/file...") and each piece is its own group.
    """
    m = dataset.load_manifest(data_dir)
    table = {}
    for split in dataset.SPLITS:
        pieces = dataset.load_split(data_dir, split)
        names = m.get("pieces", {}).get(split, [])
        if len(names) != len(pieces):
            raise dataset.DataError(f"{data_dir}: manifest names {len(names)} {split} pieces, the split holds "
                                    f"{len(pieces)} (prepare the data again)")
        sources = m.get("piece_sources", {}).get(split) or [n.split("/")[0] for n in names]
        groups = m.get("piece_groups", {}).get(split) or [f"{split}:{i}" for i in range(len(names))]
        table[split] = list(zip(pieces, names, sources, groups))
    return table


def without(table: dict, held: str, out: Path, vocab_d: dict) -> dict:
    """Write the prepared folder for `held` held out; returns its summary."""
    test = [r for s in dataset.SPLITS for r in table[s] if r[2] == held]
    held_groups = {r[3] for r in test}
    keep, dropped = {}, 0
    for split in ("train", "valid"):
        rows = [r for r in table[split] if r[2] != held]
        keep[split] = [r for r in rows if r[3] not in held_groups]
        dropped += len(rows) - len(keep[split])
    moved = 0
    if not keep["valid"] and len(keep["train"]) > 1:  # every valid piece was C's: take a few train groups
        groups = sorted({r[3] for r in keep["train"]})
        take = set(groups[:max(1, len(groups) // 20)])
        keep["valid"] = [r for r in keep["train"] if r[3] in take]
        keep["train"] = [r for r in keep["train"] if r[3] not in take]
        moved = len(keep["valid"])
    splits = {"train": keep["train"], "valid": keep["valid"], "test": test}
    for split, rows in splits.items():
        dataset.write_split(out, split, [r[0] for r in rows])
    summary = {"held_out": held, "pieces": {s: len(r) for s, r in splits.items()},
               "dropped_near_duplicates": dropped, "valid_taken_from_train": moved,
               "train_sources": sorted({r[2] for r in keep["train"]})}
    dataset.write_manifest(out, {"vocab": vocab_d, **summary,
                                 "pieces": {s: [r[1] for r in rows] for s, rows in splits.items()},
                                 "piece_sources": {s: [r[2] for r in rows] for s, rows in splits.items()},
                                 "piece_groups": {s: [r[3] for r in rows] for s, rows in splits.items()}})
    return summary


def train(data: Path, model_dir: Path, train_args: list[str], log) -> None:
    cmd = [sys.executable, str(ROOT / "scripts/train.py"), "--data", str(data), "--out", str(model_dir),
           "--run-dir", str(model_dir / "run"), "--no-test", *train_args]
    log("$ " + " ".join(cmd))
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=dict(os.environ))
    if r.returncode != 0:
        tail = (r.stderr or r.stdout).strip().splitlines()[-1:] or ["no output"]
        raise AntiphonError(f"training without {data.parent.name} failed: {tail[0]}")


def score(model_dir: Path, data: Path, ngram_order: int) -> dict:
    """The trained model and the two count baselines on the held-out collection (the folder's test split)."""
    from agent.model.net import load_checkpoint

    model, ck = load_checkpoint(model_dir / "checkpoint.pt")
    vocab = dataset.vocab_of(data)
    test, train_pieces = dataset.load_split(data, "test"), dataset.load_split(data, "train")
    whole = ["all"] * len(test)
    lstm = nll_by_group(model, test, whole, vocab)["all"]
    lstm_h = nll_by_group(model, humanised_copy(test, vocab, EVAL_SEED), whole, vocab)["all"]
    out = {"test_nll": lstm["nll"], "test_nll_humanised": lstm_h["nll"]}
    for name, bl in (("ngram", metrics.KneserNeyModel(vocab.size, ngram_order, pad=vocab.START)),
                     ("unigram", metrics.UnigramModel(vocab.size))):
        bl.fit(train_pieces)
        out[f"{name}_test_nll"] = round(summarize(*score_counts(bl, test, vocab), vocab)["test_nll"], 4)
    out.update(ngram_order=ngram_order, pitch_accuracy=lstm["pitch_accuracy"],
               ngram_smoothing="interpolated Kneser-Ney", targets=int(sum(len(p) - 1 for p in test)),
               model_args=ck["model_args"], best_epoch=ck.get("best_epoch"), steps=ck.get("step"),
               train_s=round(float(ck.get("train_s", 0.0)), 1))
    return out


def write_to_card(card_dir: Path, report: dict) -> None:
    """held_out.json beside a model's card, and its figures in card.json."""
    (card_dir / "held_out.json").write_text(json.dumps(report, indent=1) + "\n")
    card_path = card_dir / "card.json"
    if card_path.exists():
        card = json.loads(card_path.read_text())
        card["held_out_collections"] = report["collections"]
        card["held_out_from"] = "held_out.json (scripts/held_out.py: a model trained without each collection)"
        card_path.write_text(json.dumps(card, indent=1) + "\n")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    train_args = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[:argv.index("--")] if "--" in argv else argv
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 usage="%(prog)s --hold-out A,B [options] [-- train.py options]")
    ap.add_argument("--data", default=str(ROOT / dataset.DEFAULT_DATA_DIR), help="prepared data folder")
    ap.add_argument("--hold-out", required=True, help="comma-separated sources to hold out, one model each")
    ap.add_argument("--out", default=str(ROOT / "runs/held_out"), help="work folder (data, models, held_out.json)")
    ap.add_argument("--card", help="model folder whose card.json gets held_out_collections")
    ap.add_argument("--ngram-order", type=int, default=4, help="order of the n-gram baseline (default %(default)s)")
    args = ap.parse_args(argv)
    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    try:
        data, out = Path(args.data), Path(args.out)
        manifest = dataset.load_manifest(data)
        table = piece_table(data)
        known = sorted({r[2] for s in dataset.SPLITS for r in table[s]})
        wanted = [c.strip() for c in args.hold_out.split(",") if c.strip()]
        unknown = [c for c in wanted if c not in known]
        if not wanted or unknown:
            raise AntiphonError(f"--hold-out {args.hold_out!r}: unknown collection(s) "
                                f"{', '.join(unknown) or '(none given)'} (known: {', '.join(known)})")
        if args.card and not Path(args.card).is_dir():
            raise AntiphonError(f"--card {args.card}: not a model folder")
        results, details = {}, {}
        for c in wanted:
            t0 = time.perf_counter()
            work = out / f"without-{c}"
            summary = without(table, c, work / "data", manifest["vocab"])
            if not summary["pieces"]["train"] or not summary["pieces"]["valid"]:
                raise AntiphonError(f"holding out {c} leaves no pieces to train or validate on ({summary['pieces']})")
            log(f"{c}: test {summary['pieces']['test']} pieces; train {summary['pieces']['train']}, valid "
                f"{summary['pieces']['valid']}; {summary['dropped_near_duplicates']} near-duplicates of {c} dropped")
            train(work / "data", work / "model", train_args, log)
            results[c] = {**score(work / "model", work / "data", args.ngram_order), **summary,
                          "seconds": round(time.perf_counter() - t0, 1)}
            r = results[c]
            log(f"{c}: lstm {r['test_nll']:.4f}  {args.ngram_order}-gram {r['ngram_test_nll']:.4f}  "
                f"unigram {r['unigram_test_nll']:.4f} nats/token (humanised: lstm {r['test_nll_humanised']:.4f})")
        report = {"data": str(data), "train_args": train_args, "nll_unit": "nats per token, START excluded",
                  "collections": results}
        out.mkdir(parents=True, exist_ok=True)
        (out / "held_out.json").write_text(json.dumps(report, indent=1) + "\n")
        if args.card:
            write_to_card(Path(args.card), report)
    except AntiphonError as exc:
        print(f"held_out: error: {exc}", file=sys.stderr)
        return 2
    print(f"{'held out':>12} {'pieces':>7} {'lstm':>8} {'ngram':>8} {'unigram':>8} {'lstm hum':>9}")
    for c, r in results.items():
        print(f"{c:>12} {r['pieces']['test']:7d} {r['test_nll']:8.4f} {r['ngram_test_nll']:8.4f} "
              f"{r['unigram_test_nll']:8.4f} {r['test_nll_humanised']:9.4f}")
    return 0
