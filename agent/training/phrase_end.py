"""Train and evaluate the phrase-end classifier (agent/music/phrase_end.py) on the corpus' real phrase ends.

    python scripts/train_phrase_end.py [--quick] [--out models/default/phrase_end.json] [--json REPORT]

Data: agent/training/phrase_data.py (chorale fermatas, Essen phrase lines, O'Neill's 4-bar structure).
Split by piece, grouped by melodic fingerprint (the same chorale tune harmonised twice, an Essen
variant, a transposition: agent/training/fingerprint.py's rule) and hashed with a fixed seed, so a
held-out test piece and its twins are never seen in training. Trained on chorales and Essen (each source weighted alike); O'Neill's bar-structure
labels are only evaluated (a weak, different label).

Evaluation on the test pieces, per source, each piece's last note left out (every rule finds it):
precision, recall, F1 of
- the classifier's "note_on" head (decided at the onset) and "note_off" head (at the release),
  run as the live agent would: the phrase so far starts after its own previous decision;
- the silence rule: a rest of >= 1.5 beats follows the note (decided 1.5 beats after the release);
- the held-note rule: the note lasts >= 2 beats (decided 2 beats after its onset);
and when each decides, in beats after the note's written end (negative: before it ends), and how
many of its correct decisions come by the first bar line at or after that end (the next phrase slot).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np

from agent.music import phrase_end as pe
from agent.training import fingerprint, phrase_data
from agent.training.splits import split_of

ROOT = Path(__file__).resolve().parents[2]
TRAIN_SOURCES = ("chorales", "essen")
SILENCE_BEATS, HELD_BEATS = 1.5, 2.0
# the classifier's heads with the phrase so far starting after their own last decision (the player plays on),
# the same with the call's start known (call and response: the call starts after the agent's answer), baselines
METHODS = ("note_on", "note_off", "note_on_call", "note_off_call", "silence", "held")
QUICK_LIMITS = {"chorales": 60, "essen": 160, "oneills": 40}


def group_digest(piece: dict, head: int = 12) -> str:
    """A transposition-invariant key of the melody's opening (repeated pitches merged)."""
    line = [n[2] for n in piece["notes"]]
    line = [p for k, p in enumerate(line) if k == 0 or p != line[k - 1]]
    iv = np.diff(line)[:head]
    return hashlib.sha1(np.asarray(iv, dtype=np.int16).tobytes()).hexdigest()


def melody_fingerprint(piece: dict) -> fingerprint.Fingerprint:
    """The project's melodic fingerprint (agent/training/fingerprint.py) of the melody itself."""
    line = [n[2] for n in piece["notes"]]
    line = [p for k, p in enumerate(line) if k == 0 or p != line[k - 1]]
    code = np.clip(np.diff(line) + 128, 1, 255).astype(np.uint64)
    n = fingerprint.NGRAM
    shingles = np.zeros(0, dtype=np.uint64)
    if len(code) >= n:
        windows = np.lib.stride_tricks.sliding_window_view(code, n)
        shingles = np.unique(np.bitwise_or.reduce(windows << (np.arange(n, dtype=np.uint64) * np.uint64(8)), axis=1))
    head = code[:fingerprint.HEAD_INTERVALS].astype(np.uint8).tobytes() if len(code) >= fingerprint.HEAD_INTERVALS else None
    return fingerprint.Fingerprint(head, shingles)


def beats(piece: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(onsets, ends, pitches) in the metre's beats, a bar line at 0."""
    a = np.asarray(piece["notes"], dtype=float)
    on = (a[:, 0] - piece["bar0_q"]) / piece["beat_q"]
    return on, on + a[:, 1] / piece["beat_q"], a[:, 2].astype(int)


def piece_features(piece: dict, model: pe.PhraseEndModel | None = None) -> dict:
    """Both stages' features for every note, the labels, the baselines' inputs and the start of the
    phrase so far: after the previous labelled end (model None: a call-and-response player's call
    starts after the agent's answer), or after the model's own previous decision at that stage
    (the player plays on, and the agent has only its own guesses; "pred_on"/"pred_off" then hold them)."""
    on, en, pitch = beats(piece)
    n, ends = len(on), set(piece["ends"])
    bpb = piece["bpb"]
    x = {k: np.zeros((n, len(pe.FEATURE_NAMES))) for k in ("on", "off")}
    pred = {k: np.zeros(n, bool) for k in ("on", "off")}
    start, last = {"on": 0, "off": 0}, {"on": None, "off": None}
    for i in range(n):
        for k, stage in (("on", "note_on"), ("off", "note_off")):
            x[k][i] = pe.features(on, en, pitch, i, bpb, start[k], released=k == "off", last_start=last[k])
            if model is not None:
                pred[k][i] = model.is_end(stage, x[k][i])
            if (pred[k][i] if model is not None else i in ends):
                last[k], start[k] = start[k], i + 1
    y = np.array([i in ends for i in range(n)], dtype=float)
    gap_after = np.append(on[1:] - en[:-1], np.inf)
    return {"on": x["on"], "off": x["off"], "y": y, "dur": en - on, "gap_after": gap_after,
            "pred_on": pred["on"], "pred_off": pred["off"]}


def played(piece: dict, rng: np.random.Generator, jitter_beats: float = 0.03,
           legato: tuple[float, float] = (0.75, 0.98)) -> dict:
    """The piece as a player might play it: onsets jittered (sd `jitter_beats`), each note released
    early (its length times U(legato)), as keyboard players detach; labels unchanged."""
    bq = piece["beat_q"]
    notes, prev = [], -np.inf
    for on, length, pitch in piece["notes"]:
        t = max(prev + 0.01, on + rng.normal(0, jitter_beats * bq))
        notes.append([t, max(0.05 * bq, length * rng.uniform(*legato)), pitch])
        prev = t
    return {**piece, "notes": notes}


def shifted(piece: dict, beats: float = 1.0) -> dict:
    """The piece with its downbeat misplaced by `beats` (a beat tracker that got the bar wrong)."""
    return {**piece, "bar0_q": piece["bar0_q"] + beats * piece["beat_q"]}


# -- the classifier -------------------------------------------------------------
def fit_head(x, y, w, *, hidden: int, epochs: int, seed: int, lr: float = 3e-3, l2: float = 1e-4,
             batch: int = 512) -> pe.Head:
    """Weighted logistic loss, Adam, minibatches; a tanh hidden layer when hidden > 0."""
    rng = np.random.default_rng(seed)
    mean, std = x.mean(0), x.std(0)
    std[std < 1e-6] = 1.0
    z = (x - mean) / std
    f = x.shape[1]
    params = {"w2": rng.normal(0, 0.1, hidden or f), "b2": np.zeros(1)}
    if hidden:
        params.update(w1=rng.normal(0, 1 / np.sqrt(f), (f, hidden)), b1=np.zeros(hidden))
    m = {k: np.zeros_like(v) for k, v in params.items()}
    v2 = {k: np.zeros_like(v) for k, v in params.items()}
    step = 0
    for _ in range(epochs):
        order = rng.permutation(len(z))
        for a in range(0, len(z), batch):
            idx = order[a:a + batch]
            zb, yb, wb = z[idx], y[idx], w[idx] / w[idx].sum()
            h = np.tanh(zb @ params["w1"] + params["b1"]) if hidden else zb
            p = 1 / (1 + np.exp(-(h @ params["w2"] + params["b2"][0])))
            g = (p - yb) * wb  # d loss / d logit
            grads = {"w2": h.T @ g + l2 * params["w2"], "b2": np.array([g.sum()])}
            if hidden:
                gh = np.outer(g, params["w2"]) * (1 - h * h)
                grads.update(w1=zb.T @ gh + l2 * params["w1"], b1=gh.sum(0))
            step += 1
            for k in params:
                m[k] = 0.9 * m[k] + 0.1 * grads[k]
                v2[k] = 0.999 * v2[k] + 0.001 * grads[k] ** 2
                params[k] -= lr * (m[k] / (1 - 0.9 ** step)) / (np.sqrt(v2[k] / (1 - 0.999 ** step)) + 1e-8)
    return pe.Head(mean, std, params.get("w1"), params.get("b1"), params["w2"], float(params["b2"][0]), 0.5)


def best_threshold(sets: list[tuple[np.ndarray, np.ndarray]]) -> float:
    """The threshold with the best mean F1 over these (validation) sets of (p, y), one a source,
    so that the many Essen notes do not choose it for the chorales alone."""
    best = (0.0, 0.5)
    for t in np.arange(0.05, 0.96, 0.01):
        best = max(best, (float(np.mean([prf(p >= t, y)["f1"] for p, y in sets])), round(float(t), 2)))
    return best[1]


def prf(pred, y) -> dict:
    pred, y = np.asarray(pred, bool), np.asarray(y, bool)
    tp, fp, fn = int(np.sum(pred & y)), int(np.sum(pred & ~y)), int(np.sum(~pred & y))
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return {"precision": round(p, 3), "recall": round(r, 3), "f1": round(2 * p * r / (p + r), 3) if p + r else 0.0,
            "tp": tp, "fp": fp, "fn": fn}


# -- evaluation -------------------------------------------------------------------
def evaluate(model: pe.PhraseEndModel, pieces: list[dict]) -> dict:
    """P/R/F1 and decision timing of the heads and the baselines on these pieces (last notes left out)."""
    rows = {k: {"pred": [], "y": [], "when": [], "slack": []} for k in METHODS}
    for piece in pieces:
        gold, own = piece_features(piece), piece_features(piece, model)
        _, end, _ = beats(piece)
        bpb = piece["bpb"]
        slack = (np.ceil(end / bpb - 1e-6) * bpb - end)[:-1]  # beats from the note's end to the next bar line
        y, dur, gap = gold["y"][:-1], gold["dur"][:-1], gold["gap_after"][:-1]
        preds = {"note_on": own["pred_on"][:-1], "note_off": own["pred_off"][:-1],
                 "note_on_call": model.probability("note_on", gold["on"][:-1]) >= model.heads["note_on"].threshold,
                 "note_off_call": model.probability("note_off", gold["off"][:-1]) >= model.heads["note_off"].threshold,
                 "silence": gap >= SILENCE_BEATS - 1e-6, "held": dur >= HELD_BEATS - 1e-6}
        when = {"note_on": -dur, "note_off": 0 * dur, "note_on_call": -dur, "note_off_call": 0 * dur,
                "silence": 0 * dur + SILENCE_BEATS, "held": HELD_BEATS - dur}
        for k, p in preds.items():
            rows[k]["pred"].append(p)
            rows[k]["y"].append(y)
            rows[k]["when"].append(when[k][p & (y > 0)])
            rows[k]["slack"].append(slack[p & (y > 0)])
    out = {}
    for k, r in rows.items():
        res = prf(np.concatenate(r["pred"]), np.concatenate(r["y"]))
        w = np.concatenate(r["when"])
        res["decided_beats_after_end_p50"] = round(float(np.median(w)), 2) if len(w) else None
        # the answer can start on the bar line at or after the call's end only if decided by then
        lead = np.concatenate(r["slack"]) - w  # beats from the decision to that bar line
        res["in_time_for_next_bar"] = round(float(np.mean(lead >= -1e-6)), 3) if len(w) else None
        res["lead_to_next_bar_p50"] = round(float(np.median(lead)), 2) if len(w) else None
        out[k] = res
    out["notes"] = int(sum(len(p["notes"]) - 1 for p in pieces))
    out["phrase_ends"] = int(sum(len(p["ends"]) - 1 for p in pieces))
    return out


# -- the command ---------------------------------------------------------------------
def split_pieces(data: dict, seed: int, valid: float, test: float) -> dict:
    """{source: {split: pieces}}: near-duplicate melodies (fingerprint.group: interval 5-grams with
    Jaccard >= 0.5, or the same first 16 intervals; across sources too) form a group, and a group
    takes the split of a hash of its smallest opening digest, so a tune's other harmonisations,
    variants and transpositions go where it goes."""
    flat = [(src, p) for src, pieces in data.items() for p in pieces]
    groups = fingerprint.group([melody_fingerprint(p) for _, p in flat])
    digest: dict[int, str] = {}
    for (_, p), g in zip(flat, groups):
        digest[g] = min(group_digest(p), digest.get(g, group_digest(p)))
    out = {s: {"train": [], "valid": [], "test": []} for s in data}
    for (src, p), g in zip(flat, groups):
        out[src][split_of(digest[g], seed, valid, test)].append(p)
    return out


def stack(pieces: list[dict], model: pe.PhraseEndModel | None = None) -> dict:
    feats = [piece_features(p, model) for p in pieces]
    return {k: np.concatenate([f[k] for f in feats]) for k in ("on", "off", "y")}


def train_model(train: dict, valid: dict, *, hidden: int, epochs: int, seed: int, log=print) -> pe.PhraseEndModel:
    """Fit both heads on {source: pieces} (each source weighted alike, half the pieces `played`);
    thresholds at the best mean F1 over the sources' validation pieces ({source: pieces}).

    Two rounds: the first with the phrase so far starting after each labelled end; the second adds
    the same notes with the phrase starting after the first model's own decisions, so the heads
    learn to live with their own mistakes (as they run live when the player plays on)."""
    rng = np.random.default_rng(seed)
    train = {src: [played(p, rng) if rng.random() < 0.5 else p for p in ps] for src, ps in train.items()}
    model = None
    rows = []
    for rnd in range(2):
        for pieces in train.values():
            s = stack(pieces, model)
            rows.append((s, np.full(len(s["y"]), 1.0 / len(s["y"]))))
        x = {k: np.concatenate([r[0][k] for r in rows]) for k in ("on", "off", "y")}
        w = np.concatenate([r[1] for r in rows])
        w *= len(w) / w.sum()
        va = [stack(pieces, model) for pieces in valid.values()]
        heads = {}
        for stage, key in (("note_on", "on"), ("note_off", "off")):
            h = fit_head(x[key], x["y"], w, hidden=hidden, epochs=epochs, seed=seed)
            t = best_threshold([(h.probability(v[key]), v["y"]) for v in va])
            heads[stage] = pe.Head(h.mean, h.std, h.w1, h.b1, h.w2, h.b2, t)
        model = pe.PhraseEndModel(heads)
        log(f"round {rnd + 1}: {len(x['y'])} notes ({x['y'].mean():.1%} phrase ends), thresholds "
            + ", ".join(f"{st} {h.threshold}" for st, h in heads.items()))
    return model


def load_splits(args, fractions: dict, log) -> tuple[dict, dict, dict]:
    """Every source's pieces split by piece (grouped, fixed seed): (splits, skipped, training pieces
    with at most args.max_train_pieces a source)."""
    data, skipped = {}, {}
    for src in phrase_data.SOURCES:
        d = phrase_data.load(src, ROOT, QUICK_LIMITS[src] if args.quick else None, log=log)
        data[src], skipped[src] = d["pieces"], d["skipped"]
    splits = split_pieces(data, args.seed, fractions["valid"], fractions["test"])
    rng = np.random.default_rng(args.seed)
    train = {}
    for src in TRAIN_SOURCES:
        ps = splits[src]["train"]
        if len(ps) > args.max_train_pieces:
            ps = [ps[k] for k in sorted(rng.choice(len(ps), args.max_train_pieces, replace=False))]
        train[src] = ps
    return splits, skipped, train


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="a few pieces a source, few epochs (CI: under 60 s)")
    ap.add_argument("--out", help="weights JSON (default models/default/phrase_end.json; --quick writes none)")
    ap.add_argument("--json", help="write the report here")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--hidden", type=int, default=16, help="hidden units (0: logistic regression)")
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--max-train-pieces", type=int, default=2500, help="per source (Essen has ~8000)")
    args = ap.parse_args(argv)
    out = args.out or (None if args.quick else str(ROOT / "models" / "default" / "phrase_end.json"))
    epochs = args.epochs or (3 if args.quick else 8)
    t0 = time.perf_counter()
    log = lambda *a: print(*a, file=sys.stderr, flush=True)  # noqa: E731

    fractions = {"valid": 0.1, "test": 0.25 if args.quick else 0.15}
    splits, skipped, train = load_splits(args, fractions, log)
    valid = {src: splits[src]["valid"] for src in TRAIN_SOURCES}
    model = train_model(train, valid, hidden=args.hidden, epochs=epochs, seed=args.seed, log=log)
    heads = model.heads
    log(f"trained in {time.perf_counter() - t0:.0f} s")

    report = {"command": "python scripts/train_phrase_end.py" + (" --quick" if args.quick else ""),
              "seed": args.seed, "split": fractions, "hidden": args.hidden, "epochs": epochs,
              "label_sources": {"chorales": "soprano notes with a fermata (music21 expressions.Fermata)",
                                "essen": "the last note of each line of the Essen ABC (EsAC's phrase lines)",
                                "oneills": "the note sounding at the downbeat of every 4th full bar (bar structure; not trained on)"},
              "pieces": {src: {k: len(v) for k, v in sp.items()} for src, sp in splits.items()},
              "skipped": skipped, "thresholds": {s: h.threshold for s, h in heads.items()},
              "test": {src: evaluate(model, sp["test"]) for src, sp in splits.items()},
              "test_played": {src: evaluate(model, [played(p, np.random.default_rng(k)) for k, p in enumerate(sp["test"])])
                              for src, sp in splits.items() if src in TRAIN_SOURCES},
              "test_downbeat_off_by_a_beat": {src: evaluate(model, [shifted(p) for p in sp["test"]])
                                              for src, sp in splits.items() if src in TRAIN_SOURCES},
              "test_pieces": {src: [p["name"] for p in sp["test"]] for src, sp in splits.items()}}
    report["seconds"] = round(time.perf_counter() - t0, 1)
    print_table(report["test"])
    print("played (onsets jittered, notes released early):")
    print_table(report["test_played"])
    print("downbeat off by a beat:")
    print_table(report["test_downbeat_off_by_a_beat"])
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        card = {k: report[k] for k in ("command", "seed", "split", "hidden", "epochs", "label_sources", "pieces",
                                       "thresholds", "test", "test_played", "test_downbeat_off_by_a_beat")}
        card["test_chorales"] = report["test_pieces"]["chorales"]
        Path(out).write_text(json.dumps(model.to_dict(card), indent=1) + "\n")
        log(f"weights written to {out}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
    return 0


def print_table(test: dict, file=None) -> None:
    file = file or sys.stdout
    print(f"{'source':>9} {'method':>13} {'P':>6} {'R':>6} {'F1':>6}  decided (beats after the note's end, p50)"
          "  in time for the next bar line (share, p50 lead in beats)", file=file)
    for src, r in test.items():
        for k in METHODS:
            x = r[k]
            print(f"{src:>9} {k:>13} {x['precision']:6.3f} {x['recall']:6.3f} {x['f1']:6.3f}  "
                  f"{x['decided_beats_after_end_p50']!s:>8}  {x['in_time_for_next_bar']} {x['lead_to_next_bar_p50']}", file=file)
