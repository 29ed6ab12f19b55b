"""Beat tracker benchmark: real tunes from music21's corpus in every metre, played plain and with rubato.

    python scripts/bench_beat.py [--quick] [--json OUT] [--seed N]

Tunes (agent/training/beat_corpus.py, cached under data/): Bach chorale melodies
(4/4), Ryan's Mammoth reels and hornpipes (4/4 and 2/2; the 4/4 ones also
swung, ratio 1.5-2.5), jigs (6/8), slip jigs (9/8), 12/8 tunes, 2/4 tunes,
3/4 airs (Aird's Airs, Essen). Each is rendered to note-ons at a felt tempo
drawn from its kind's range within 56-180 felt beats a minute:
- plain: the score's times, constant velocity, chords and grace notes as written
  (a grace 45 ms before its note, a chord's notes spread over 20 ms);
- rubato: a tempo curve drifting +-10 % within each phrase, phrase-final
  lengthening (the last beat of a phrase up to 50 % slower), onset jitter
  (sd 15 ms), velocities varied (sd 12, downbeats louder by 8).
Phrase ends are the written ones (fermatas, rests, the tune's end) and, in
folk tunes, every fourth bar line.

Scored at every event after the tune's first phrase (the first 16 events),
and at the 12th event ("first phrase": how soon it locks):
- tempo: the felt bpm within 8 % of the truth (the felt beat: the quarter in
  x/4, the dotted quarter in x/8, the half in 2/2). 2/2 versus 4/4 cannot be
  told from onsets (the same notes, a different bar line); for 2/2 tunes the
  half and the quarter are both counted right, and the 2/2 row says so;
- phase: the reported beat within 10 % of a beat of a true beat (tempo right too);
- metre: duple (2 or 4 beats a bar) or triple (3) and the division (2 or 3)
  both right; `bpb` is the exact count (4/4 read as 2 beats a bar is wrong there);
- division: 2 or 3 right; swing: mean absolute error of the ratio (swung tunes);
- downbeat: a reported bar line within 10 % of a beat of a true one (tempo right too);
- calibration: per confidence bin, how often tempo and phase were right;
- cost: per-event time of `onset()`, p50 and p99, in ms.
With --no-bars a row 'no-bars' is the tracker without its bar scorer (bars=False: the beat scorer's
winner, read as bars by the accent template, as before metre_weights.json).
The baseline row is the tracker of commit 4730ef6 (agent/tempo.py, read with
`git show`): it knows only 4/4, so its metre is 4 beats, division 2, straight,
and it reports no downbeat.
"""
from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import math
import random
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from agent.config import ROOT
from agent.training import beat_corpus

from agent.music.beat import WEIGHTS, BeatTracker
from agent.training import beat_data

BASELINE_COMMIT = "4730ef6"
# felt bpm range by kind (within 56-180): what players play
RANGES = beat_data.RANGES
FIRST_PHRASE = 16
EARLY = 12
BINS = (0.0, 0.2, 0.4, 0.6, 0.8, 1.01)


def baseline_class():
    """The old tracker, read from its commit into a temporary module."""
    src = subprocess.run(["git", "show", f"{BASELINE_COMMIT}:agent/tempo.py"], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    path = Path(tempfile.mkdtemp()) / "old_tempo.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("old_tempo", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["old_tempo"] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod.BeatTracker


# -- rendering: shared with the scorer's training (agent/training/beat_data.py) ---------------
phrase_end_offsets, render = beat_data.phrase_end_offsets, beat_data.render


# -- scoring ---------------------------------------------------------------------------
def near_grid(t: float, origin_q: float, every_q: float, time_of, beat_s: float) -> bool:
    """Is t within 10 % of a beat of a grid point origin + k * every (quarters, through the tempo curve)?"""
    # search the grid points near t by bisection in quarters
    lo, hi = -4.0 * every_q, 1e4
    while hi - lo > 1e-3:
        mid = (lo + hi) / 2
        if time_of(max(0.0, mid)) < t:
            lo = mid
        else:
            hi = mid
    k = round((lo - origin_q) / every_q)
    for kk in (k - 1, k, k + 1):
        q = origin_q + kk * every_q
        if q >= 0 and abs(time_of(q) - t) < 0.1 * beat_s:
            return True
    return False


def score_one(tracker_cls, tune: dict, felt: float, rubato: bool, swing: float, seed: int, new: bool) -> dict:
    rng = random.Random(seed)
    events, time_of = render(tune, felt, rubato, swing, rng)
    tr = tracker_cls(100.0)
    beat_q, spb = tune["beat_q"], 60.0 / felt
    rows, costs = [], []
    n_events = 0
    last_t = -1.0
    for t, pitch, vel in events:
        t0 = time.perf_counter()
        tr.onset(t, pitch=pitch, velocity=vel) if new else tr.onset(t)
        costs.append(time.perf_counter() - t0)
        if t - last_t >= 0.05:
            n_events += 1
        last_t = t
        if n_events < EARLY or (n_events >= FIRST_PHRASE and n_events % 2):
            if n_events != EARLY - 1:
                continue
        e = tr.estimate
        r = {"early": n_events < FIRST_PHRASE, "conf": 0.0 if e is None else e.confidence}
        if e is None:
            r.update(tempo=False, phase=False, metre=False, bpb=False, division=False, downbeat=False, swing=None)
        else:
            ratio = e.bpm / felt
            ok = abs(math.log(ratio)) < math.log(1.08)
            if tune["metre"] == "2/2":
                ok = ok or abs(math.log(ratio / 2.0)) < math.log(1.08)
            unit_q = beat_q if abs(math.log(ratio)) < 0.3 else beat_q / 2.0
            r["tempo"] = ok
            r["phase"] = ok and near_grid(e.beat_s, tune["bar0_q"], unit_q, time_of, spb)
            div = getattr(e, "division", 2)
            bpb = getattr(e, "beats_per_bar", 4)
            triple_true = tune["bpb"] == 3
            r["division"] = div == tune["division"]
            r["metre"] = r["division"] and ((bpb == 3) == triple_true)
            true_bpb = tune["bpb"] if not (tune["metre"] == "2/2" and unit_q < beat_q) else 4
            r["bpb"] = r["division"] and bpb == true_bpb
            db = getattr(e, "downbeat_s", None)
            r["downbeat"] = bool(ok and db is not None and near_grid(db, tune["bar0_q"], tune["bar_q"], time_of, spb))
            r["swing"] = abs(getattr(e, "swing", 1.0) - max(1.0, swing)) if tune["division"] == 2 else None
        rows.append(r)
    return {"rows": rows, "costs": costs}


def plan(tunes: list[dict], quick: bool, seed: int) -> list[tuple]:
    """(tune, felt bpm, rubato, swing, seed) runs: every tune plain and rubato; 4/4 and 2/4 folk tunes swung too."""
    rng = random.Random(seed)
    by = defaultdict(list)
    for t in tunes:
        key = "chorale" if t["kind"] == "chorale" else t["metre"]
        by[key].append(t)
    runs = []
    for key, ts in sorted(by.items()):
        ts = ts[:4] if quick else ts
        for i, t in enumerate(ts):
            lo, hi = RANGES[key]
            for rubato in (False, True):
                felt = rng.uniform(lo, hi)
                runs.append((key, t, felt, rubato, 1.0, rng.randrange(1 << 30)))
                if key in ("4/4", "2/4") and (not quick or i < 2):
                    runs.append((key + " swung", t, felt, rubato, rng.uniform(1.5, 2.5), rng.randrange(1 << 30)))
    return runs


def summarise(results: list[tuple]) -> dict:
    """Per (group, variant, tracker): rates over the events scored."""
    table = defaultdict(lambda: defaultdict(list))
    cal = defaultdict(lambda: [[0, 0] for _ in BINS[:-1]])
    costs = defaultdict(list)
    for key, rubato, name, res in results:
        g = table[(key, "rubato" if rubato else "plain", name)]
        costs[name] += res["costs"]
        for r in res["rows"]:
            part = "early" if r["early"] else "late"
            for m in ("tempo", "phase", "metre", "bpb", "division", "downbeat"):
                g[f"{part}_{m}"].append(float(r[m]))
            if r["swing"] is not None and "swung" in key and not r["early"]:
                g["swing_err"].append(r["swing"])
            if not r["early"]:
                b = min(len(BINS) - 2, int(np.searchsorted(BINS, r["conf"], side="right") - 1))
                cal[name][b][0] += 1
                cal[name][b][1] += int(r["tempo"] and r["phase"])
    out = {"rows": {}, "calibration": {}, "cost_ms": {}}
    for (key, var, name), g in sorted(table.items()):
        out["rows"][f"{key}|{var}|{name}"] = {m: round(float(np.mean(v)), 3) for m, v in g.items() if v}
    for name, bins in cal.items():
        out["calibration"][name] = [{"conf": f"{BINS[i]:.1f}-{min(1.0, BINS[i + 1]):.1f}", "n": n,
                                     "right": round(k / n, 3) if n else None} for i, (n, k) in enumerate(bins)]
    for name, c in costs.items():
        c = np.array(c) * 1e3
        out["cost_ms"][name] = {"p50": round(float(np.percentile(c, 50)), 3),
                                "p99": round(float(np.percentile(c, 99)), 3)}
    return out


def print_table(s: dict) -> None:
    cols = ("late_tempo", "late_phase", "late_metre", "late_bpb", "late_division", "late_downbeat",
            "early_tempo", "early_metre", "early_downbeat", "swing_err")
    print(f"{'metre':13} {'variant':7} {'tracker':8} " + " ".join(f"{c.replace('late_', ''):>9}" for c in cols))
    for k, row in s["rows"].items():
        key, var, name = k.split("|")
        print(f"{key:13} {var:7} {name:8} " + " ".join(
            f"{row[c]:9.2f}" if c in row else f"{'-':>9}" for c in cols))
    for name, bins in s["calibration"].items():
        print(f"calibration {name}: " + ", ".join(f"{b['conf']}: {b['right']} (n={b['n']})" for b in bins))
    for name, c in s["cost_ms"].items():
        print(f"per-onset cost {name}: p50 {c['p50']} ms, p99 {c['p99']} ms")


def split_note(tunes: list[dict]) -> str:
    """Which tunes the new tracker's scorer was trained on, and that none of them is scored here."""
    w = json.loads(WEIGHTS.read_text()).get("trained", {}) if WEIGHTS.exists() else {}
    train = beat_corpus.load_train() if beat_corpus.TRAIN_CACHE.exists() else None
    test = {beat_corpus.tune_key(t) for t in tunes}
    overlap = "?" if train is None else sum(beat_corpus.tune_key(t) in test for t in train)
    return (f"split by tune: {len(tunes)} test tunes ({beat_corpus.CACHE.name}); the scorer "
            f"({WEIGHTS.name}) trained on {w.get('tunes', '?')} tunes (+{w.get('validation_tunes', '?')} "
            f"validation) of beat_corpus.load_train(); test tunes among them: {overlap}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="4 tunes a metre (CI: under a minute)")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--seed", type=int, default=20)
    ap.add_argument("--no-baseline", action="store_true")
    ap.add_argument("--no-bars", action="store_true", help="also the tracker without its bar scorer (row 'no-bars': "
                    "the beat scorer's winner read as bars by accents, as before metre_weights.json)")
    ap.add_argument("--only", default="", help="comma-separated groups, e.g. 6/8,3/4")
    ap.add_argument("--tunes", choices=("test", "train"), default="test",
                    help="train: score the training tunes instead (for tuning by hand without the test set)")
    a = ap.parse_args(argv)
    tunes = beat_corpus.load() if a.tunes == "test" else beat_corpus.load_train()
    trackers = [("new", BeatTracker, True)]
    if a.no_bars:
        trackers.append(("no-bars", functools.partial(BeatTracker, bars=False), True))
    if not a.no_baseline:
        trackers.append(("baseline", baseline_class(), False))
    results = []
    started = time.perf_counter()
    for key, tune, felt, rubato, swing, seed in plan(tunes, a.quick, a.seed):
        if a.only and key not in a.only.split(","):
            continue
        for name, cls, new in trackers:
            results.append((key, rubato, name, score_one(cls, tune, felt, rubato, swing, seed, new)))
    s = summarise(results)
    s["split"] = split_note(tunes)
    s["command"] = ("python scripts/bench_beat.py" + (" --quick" if a.quick else "")
                    + (" --no-bars" if a.no_bars else ""))
    s["seconds"] = round(time.perf_counter() - started, 1)
    print(s["split"])
    print_table(s)
    print(f"{s['seconds']} s")
    if a.json:
        a.json.write_text(json.dumps(s, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
