#!/usr/bin/env python
"""Token models side by side on one prepared data set: NLL per source, clean and humanised.

    python scripts/compare_models.py --model old=/tmp/old_default --model new=models/default \\
        --data data/full --on nottingham,palestrina --json runs/compare.json

For every model: NLL (nats/token, each piece from a zero state, START not a target) on the test
split as a whole and per source, on the test split's humanised copy (agent/training/humanise.py, the
evaluation seed), and, with `--on C`, on every piece of collection C in all three splits (the set
a leave-one-collection-out model is tested on; a model trained on this data's train split has
seen C's train pieces, so only a model that never saw C is held out there). Prints a table and
writes JSON; scripts/evaluate.py has the baselines, scripts/held_out.py the held-out models.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from agent.config import ROOT
from agent.training import data as dataset
from agent.errors import AntiphonError
from agent.music.tokens import Vocab
from agent.training.held_out import piece_table
from agent.training.humanise import EVAL_SEED, humanised_copy
from agent.training.scoring import nll_by_group


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", action="append", default=[], metavar="LABEL=DIR", help="a model (repeatable)")
    ap.add_argument("--data", default=str(ROOT / dataset.DEFAULT_DATA_DIR), help="prepared data folder")
    ap.add_argument("--on", default="", help="comma-separated collections to score whole (all splits)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    ap.add_argument("--json", metavar="OUT")
    args = ap.parse_args(argv)
    import torch

    from agent.model.net import load_checkpoint

    try:
        models = []
        for spec in args.model:
            label, _, path = spec.partition("=")
            if not path or not (Path(path) / "checkpoint.pt").is_file():
                raise AntiphonError(f"--model {spec!r}: expected LABEL=DIR with DIR/checkpoint.pt")
            models.append((label, Path(path)))
        if not models:
            raise AntiphonError("give at least one --model LABEL=DIR")
        data = Path(args.data)
        vocab = dataset.vocab_of(data)
        table = piece_table(data)
        known = {r[2] for s in table.values() for r in s}
        on = [c for c in args.on.split(",") if c]
        for c in on:
            if c not in known:
                raise AntiphonError(f"--on {c}: not a source of {data} (it has {', '.join(sorted(known))})")
    except (AntiphonError, dataset.DataError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    test = table["test"]
    sets = {"test": ([r[0] for r in test], [r[2] for r in test])}
    sets["test humanised"] = (humanised_copy(sets["test"][0], vocab, EVAL_SEED), sets["test"][1])
    for c in on:
        rows = [r for s in dataset.SPLITS for r in table[s] if r[2] == c]
        sets[f"all of {c}"] = ([r[0] for r in rows], [c] * len(rows))
        sets[f"all of {c}, humanised"] = (humanised_copy(sets[f"all of {c}"][0], vocab, EVAL_SEED), [c] * len(rows))
    report = {"data": str(data), "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
              "nll_unit": "nats per token, each piece from a zero state, START not a target", "models": {}}
    for label, mdir in models:
        model, ck = load_checkpoint(mdir / "checkpoint.pt")
        Vocab.from_dict(ck["vocab"]).check_same(vocab, f"{mdir} vs {data}")
        t = time.perf_counter()
        report["models"][label] = {"dir": str(mdir), "params": model.num_params(),
                                   **{name: nll_by_group(model, p, g, vocab) for name, (p, g) in sets.items()}}
        print(f"{label}: scored in {time.perf_counter() - t:.0f} s", file=sys.stderr)
    labels = [m[0] for m in models]
    print(f"{'set':<34} {'source':<14}" + "".join(f"{lb:>12}" for lb in labels) + f"{'targets':>11}")
    first = report["models"][labels[0]]
    for name in sets:
        for g, cell in first[name].items():
            vals = "".join(f"{report['models'][lb][name][g]['nll']:>12.4f}" for lb in labels)
            print(f"{name:<34} {g:<14}{vals}{cell['targets']:>11}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
    return 0
