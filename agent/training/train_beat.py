"""Train the beat tracker's hypothesis scorer (agent/music/beat_weights.json) on the corpus' bar lines.

    python scripts/train_beat.py [--seed N] [--per-run N] [--out PATH]

Training tunes: agent/training/beat_corpus.py `load_train()` (music21's corpus read further than the benchmark's
set, every benchmark tune left out: no tune is in both). See agent/training/beat_data.py for the method.
The weights are shipped as package data beside the tracker (agent/music/beat_weights.json): the live
engine has no model directory of its own for the beat, the file is ~2 kB and versioned with the features
it was trained for (beat_features.NAMES, checked on load).
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import time

import numpy as np
from pathlib import Path

from agent.config import ROOT
from agent.training import beat_corpus

from agent.training import beat_data


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--per-run", type=int, default=24, help="sampled events per rendered tune")
    ap.add_argument("--out", type=Path, default=ROOT / "agent" / "music" / "beat_weights.json")
    ap.add_argument("--cache", type=Path, default=None, help="save/load the collected features (npz)")
    ap.add_argument("--l2", type=float, default=1e-3)
    a = ap.parse_args(argv)
    started = time.perf_counter()
    tunes = beat_corpus.load_train()
    test = {beat_corpus.tune_key(t) for t in beat_corpus.load()}
    assert not any(beat_corpus.tune_key(t) in test for t in tunes), "a benchmark tune is in the training set"
    rng = random.Random(a.seed)
    rng.shuffle(tunes)
    n_val = len(tunes) // 5
    val, train = tunes[:n_val], tunes[n_val:]
    if a.cache is not None and a.cache.exists():
        z = np.load(a.cache, allow_pickle=True)
        Xt, Yt, Xv, Yv, mv = z["Xt"], z["Yt"], z["Xv"], z["Yv"], list(map(tuple, z["mv"]))
    else:
        Xt, Yt, _ = beat_data.collect(train, seed=a.seed, per_run=a.per_run)
        Xv, Yv, mv = beat_data.collect(val, seed=a.seed + 1, per_run=a.per_run)
        if a.cache is not None:
            np.savez(a.cache, Xt=Xt, Yt=Yt, Xv=Xv, Yv=Yv, mv=np.array(mv, dtype=object))
    print(f"collected {len(Xt)} train / {len(Xv)} validation events from {len(train)} / {len(val)} tunes "
          f"({time.perf_counter() - started:.0f} s)")
    model = beat_data.fit(Xt, Yt, l2=a.l2)
    print(f"train loss {model['loss']:.3f}, top agent right {model['accuracy']}")
    print("validation, top agent right:", json.dumps(beat_data.accuracy(Xv, Yv, model, mv)))
    for name, w in sorted(zip(model["names"], model["w"]), key=lambda x: -abs(x[1])):
        print(f"  {name:22} {w:+.3f}")
    out = {k: model[k] for k in ("names", "mean", "std", "w")}
    out["trained"] = {"tunes": len(train), "validation_tunes": len(val), "events": int(len(Xt)),
                      "split": "by tune: beat_corpus.load_train() (bench tunes left out); 1/5 held for validation",
                      "validation_accuracy": beat_data.accuracy(Xv, Yv, model), "seed": a.seed}
    a.out.write_text(json.dumps(out, indent=1))
    print(f"-> {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
