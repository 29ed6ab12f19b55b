"""Train the beat tracker's scorers (agent/music/beat_weights.json, metre_weights.json) on the corpus' bar lines.

    python scripts/train_beat.py [--seed N] [--per-run N] [--out PATH]
    python scripts/train_beat.py --bars       # the bar scorer (metre.py), over the beat scorer as shipped

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
from collections import Counter

import numpy as np
from pathlib import Path

from agent.config import ROOT
from agent.training import beat_corpus

from agent.music import metre
from agent.music.beat import BeatTracker
from agent.training import beat_data


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--per-run", type=int, default=24, help="sampled events per rendered tune")
    ap.add_argument("--out", type=Path, default=None, help="default agent/music/beat_weights.json "
                    "(--bars: metre_weights.json)")
    ap.add_argument("--bars", action="store_true", help="train the bar scorer (metre, division, downbeat)")
    ap.add_argument("--cache", type=Path, default=None, help="save/load the collected features (npz)")
    ap.add_argument("--l2", type=float, default=1e-3)
    a = ap.parse_args(argv)
    a.out = a.out or ROOT / "agent" / "music" / ("metre_weights.json" if a.bars else "beat_weights.json")
    kw = {"tracker_factory": lambda: BeatTracker(100.0, bars=False), "sample": beat_data.bar_sample} \
        if a.bars else {}
    names = metre.BAR_NAMES if a.bars else beat_data.NAMES
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
        Xt, Yt, Xv, Yv = z["Xt"], z["Yt"], z["Xv"], z["Yv"]
        mt, mv = list(map(tuple, z["mt"])), list(map(tuple, z["mv"]))
    else:
        Xt, Yt, mt = beat_data.collect(train, seed=a.seed, per_run=a.per_run, **kw)
        Xv, Yv, mv = beat_data.collect(val, seed=a.seed + 1, per_run=a.per_run, **kw)
        if a.cache is not None:
            np.savez(a.cache, Xt=Xt, Yt=Yt, Xv=Xv, Yv=Yv, mt=np.array(mt, dtype=object),
                     mv=np.array(mv, dtype=object))
    print(f"collected {len(Xt)} train / {len(Xv)} validation events from {len(train)} / {len(val)} tunes "
          f"({time.perf_counter() - started:.0f} s)")
    # the bar scorer: each metre weighs the same (4/4 tunes and chorales are half of the tunes)
    groups = Counter(m[0] for m in mt)
    weight = [1.0 / groups[m[0]] for m in mt] if a.bars else None
    model = beat_data.fit(Xt, Yt, l2=a.l2, names=names, weight=weight)
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
