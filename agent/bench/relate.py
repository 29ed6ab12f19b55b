"""Relatedness benchmark: do the agent's answers build on their calls? (issue 22, items 1-3)

    python scripts/bench_relate.py [--quick] [--json OUT] [--seed N] [--model DIR] [--forms echo,vary] [--echoes 0.5,1]

On a fake clock (no ports, no sleeping), the jam as the engine wires it over
the real default model answers real tunes from music21's corpus
(agent/training/beat_corpus.py) in six metres (4/4, 2/2, 2/4, 3/4, 6/8, 9/8):
the player plays CALL_BARS bars of a tune, rests REST_BARS bars (the agent
answers), plays the next CALL_BARS bars, rests again: CALLS_PER_TUNE calls a
tune, TUNES_PER_METRE tunes a metre (36 calls; --quick: 12). The tempo map is
told the player's tempo, beat and bar; turn-taking is the plain silence rule
and answers land on the beat, so every row hears the same calls at the
same times. Rows: echo 0 (today's agent), then echo 0.5 and 1 for each
answer form (continue, echo, vary, contrast), the same seeds, one run.

Per row, over the answers (the agent's notes between a call's end and the next call):
- pc_related: the cosine of the answer's pitch-class histogram with its own call's minus its mean
  cosine with the other calls' (issue 22's measure; 0 = no closer to its call than to any other);
- rhythm_related: the same over inter-onset histograms (in ticks, 1/12 beat);
- interval_3gram: the fraction of the answer's interval trigrams (three successive intervals,
  transposition-invariant) found in its call; longest_run: the longest run of intervals it shares
  with its call (mean); verbatim: the longest run of notes copied as they were (same pitches, same
  inter-onset times; mean);
- in_key: the fraction of the answer's notes in its call's key (music/keys.py's estimate);
- in_register: the fraction of the answer's notes within its call's range (2 semitones either side);
  velocity_gap: |the answer's mean velocity - its call's| (the player plays a soft call, then a loud one);
- notes: the answer's notes (mean); answered: the fraction of calls answered with 2+ notes.
Cost (the memory on the engine thread, measured inside these runs): hear_us (one onset into the
memory) and echo_us (one sampling step's expectation and logit offset), p50/p99 in microseconds, and
sample_us (a whole sampling step, model included) p50/p99 per row beside echo 0's; and the same costs
alone (`step_costs`: no jam, no model), where the jam's threads do not blur them.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

from agent.bench.fakerun import ListOut, run_jam_until
from agent.config import ROOT, load_config
from agent.live.controls import LiveControls
from agent.live.jam.policy import Jam
from agent.live.scheduler import Scheduler
from agent.model.predictor import Predictor
from agent.music.keys import estimate_key, scale_pitch_classes
from agent.music.tempomap import FakeClock, TempoMap

DEFAULT_MODEL = ROOT / "models" / "default"

METRES = ("4/4", "2/2", "2/4", "3/4", "6/8", "9/8")
TUNES_PER_METRE, QUICK_TUNES = 3, 1
CALLS_PER_TUNE = 2
CALL_BARS, REST_BARS = 2, 3
HOLD = 0.9  # a note sounds this much of its written length
FORMS = ("continue", "echo", "vary", "contrast")
ECHOES = (0.5, 1.0)
VELOCITIES = (52, 100)  # the player's velocity: a soft call, then a loud one
RIG = ['jam.turn="silence"', 'jam.align="beat"', "jam.silence_beats=1.0", "jam.response_bars=0.0"]


# -- the jam on a fake clock ---------------------------------------------------------

class Rig:
    """The jam, its scheduler and the model on a fake clock, wired as the engine wires them; `run_until`
    wakes them when they ask, `note` is a player's event."""

    def __init__(self, *, bpm: float, seed: int, model: Path = DEFAULT_MODEL, overrides=()) -> None:
        cfg = load_config(overrides=['jam.mode="call"', 'timing.source="fixed"', f"timing.bpm={bpm}", *overrides])
        self.clock = FakeClock(100.0)
        self.out = ListOut(self.clock)
        self.sched = Scheduler(self.out, self.clock)
        self.tempo = TempoMap(bpm, self.clock.now(), cfg.timing.beats_per_bar)
        pred = Predictor.load(model, backend="onnx", seed=seed, context_tokens=cfg.jam.context_tokens)
        self.jam = Jam(pred, self.sched, self.tempo, LiveControls(cfg), self.clock, pred.vocab)
        self.wake = self.jam.tick(self.clock.now())

    def run_until(self, t_s: float) -> None:
        self.wake = run_jam_until(self.clock, self.sched, self.jam, self.wake, t_s)

    def note(self, pitch: int, on: bool, t_s: float, velocity: int = 80) -> None:
        self.run_until(t_s)
        self.jam.player_note(pitch, velocity if on else 0, on, t_s)
        self.wake = self.jam.tick(self.clock.now())


# -- the player's material ---------------------------------------------------------
def pick_tunes(n: int) -> list[dict]:
    """The first n tunes of each metre whose first CALLS_PER_TUNE calls each have 5+ single notes."""
    from agent.training import beat_corpus

    out, per = [], Counter()
    for t in beat_corpus.load():
        if t["metre"] in METRES and per[t["metre"]] < n:
            parts = [c for c in tune_calls(t) if len(c) >= 5]
            if len(parts) == CALLS_PER_TUNE:
                out.append(t)
                per[t["metre"]] += 1
    return out


def tune_calls(t: dict) -> list[list[tuple[float, float, int]]]:
    """The tune's calls: [(onset beat, length beats, pitch)] from each call's bar line, in felt beats."""
    bq, bar_q, bar0 = t["beat_q"], t["bar_q"], t["bar0_q"]
    out = []
    for j in range(CALLS_PER_TUNE):
        lo = bar0 + j * CALL_BARS * bar_q
        hi = lo + CALL_BARS * bar_q
        notes = [((off - lo) / bq, min(length, hi - off) / bq, int(p)) for off, length, p, _chord, grace in t["notes"]
                 if not grace and lo - 1e-9 <= off < hi - 1e-9]
        out.append(notes)
    return out


# -- the measures ---------------------------------------------------------------------
def cosine(a: Counter, b: Counter) -> float:
    na, nb = math.sqrt(sum(x * x for x in a.values())), math.sqrt(sum(x * x for x in b.values()))
    return sum(a[k] * b[k] for k in a) / (na * nb) if na and nb else 0.0


def pc_hist(pitches) -> Counter:
    return Counter(p % 12 for p in pitches)


def ioi_hist(onsets) -> Counter:
    return Counter(round(b - a) for a, b in zip(onsets, onsets[1:]) if b > a)


def related(own: Counter, others: list[Counter], answer: Counter) -> float:
    """cos(answer, own call) minus the mean cos(answer, other call)."""
    return cosine(answer, own) - float(np.mean([cosine(answer, o) for o in others]))


def intervals(pitches) -> list[int]:
    return [b - a for a, b in zip(pitches, pitches[1:])]


def ngram_overlap(answer: list[int], call: list[int], n: int = 3) -> float | None:
    """The fraction of the answer's interval n-grams found in the call's (None: the answer has none)."""
    grams = [tuple(answer[i:i + n]) for i in range(len(answer) - n + 1)]
    have = {tuple(call[i:i + n]) for i in range(len(call) - n + 1)}
    return sum(g in have for g in grams) / len(grams) if grams else None


def longest_run(answer: list[int], call: list[int]) -> int:
    """The longest run of successive intervals the answer shares with the call."""
    best = 0
    for i in range(len(answer)):
        for j in range(len(call)):
            k = 0
            while i + k < len(answer) and j + k < len(call) and answer[i + k] == call[j + k]:
                k += 1
            best = max(best, k)
    return best


def verbatim(answer: list[tuple[int, int]], call: list[tuple[int, int]]) -> int:
    """The longest run of notes the answer copies from the call as they were: the same pitches at the
    same inter-onset times ((tick, pitch) lists; a single shared note counts 1)."""
    def steps(notes):
        return [(p, b[0] - a[0]) for a, b, p in zip(notes, notes[1:], (n[1] for n in notes))]

    a, c = steps(answer), steps(call)
    best = 1 if {p for _, p in answer} & {p for _, p in call} else 0
    for i in range(len(a)):
        for j in range(len(c)):
            k = 0
            while i + k < len(a) and j + k < len(c) and a[i + k] == c[j + k]:
                k += 1
            if k:  # k steps alike: k notes and the one after the last step, if its pitch is the same too
                last = i + k < len(answer) and j + k < len(call) and answer[i + k][1] == call[j + k][1]
                best = max(best, k + last)
    return best


def in_key(answer_pitches, call_pitches) -> float | None:
    key = estimate_key(list(call_pitches))
    if key is None or not answer_pitches:
        return None
    pcs = scale_pitch_classes(key)
    return sum(p % 12 in pcs for p in answer_pitches) / len(answer_pitches)


# -- one session ----------------------------------------------------------------------
class Timed:
    """Times calls of one method of an object (perf_counter, microseconds) into a list."""

    def __init__(self, obj, name: str, into: list) -> None:
        fn = getattr(obj, name)

        def timed(*a, **k):
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                into.append((time.perf_counter() - t) * 1e6)

        setattr(obj, name, timed)


def run_tune(t: dict, echo: float, form: str, seed: int, model: Path, costs: dict) -> list[dict]:
    """One tune as a session: its calls and the agent's answers [{"call": [...], "answer": [...]}] in ticks."""
    bq = t["beat_q"]
    bpm = 100.0 if bq == 1.0 else 80.0 if bq == 1.5 else 60.0
    rig = Rig(bpm=bpm, seed=seed, model=model,
              overrides=[*RIG, f"timing.beats_per_bar={t['bpb']}", f"jam.echo={echo}", f'jam.form="{form}"'])
    Timed(rig.jam.memory, "hear", costs.setdefault("hear_us", []))
    Timed(rig.jam.predictor.sampler, "_echo_offset", costs.setdefault("echo_us", []))  # expectation + offset
    Timed(rig.jam.predictor, "sample", costs.setdefault("sample_us", []))
    spb = 60.0 / bpm
    bar = t["bpb"]
    t0 = rig.clock.now() + 0.5
    rig.tempo.align(bpm, t0, downbeat_s=t0, division=t["division"], swing=1.0)
    windows, calls = [], []
    for j, call in enumerate(tune_calls(t)):
        start = j * (CALL_BARS + REST_BARS) * bar
        events = []
        for on_b, length, pitch in call:
            events.append((t0 + (start + on_b) * spb, 1, pitch))
            events.append((t0 + (start + on_b + max(length * HOLD, 0.05)) * spb, 0, pitch))
        velocity = VELOCITIES[j % len(VELOCITIES)]
        for when, on, pitch in sorted(events):
            rig.note(pitch, bool(on), when, velocity)
        calls.append(([(round((start + on_b) * 12), p) for on_b, _, p in call], velocity))
        windows.append((t0 + (start + CALL_BARS * bar) * spb, t0 + (start + (CALL_BARS + REST_BARS) * bar) * spb))
    rig.run_until(windows[-1][1])
    sent = [(tm, m.note, m.velocity) for tm, m in rig.out.sent if m.type == "note_on" and m.velocity > 0]
    out = []
    for (call, velocity), (lo, hi) in zip(calls, windows):
        mine = [(tm, p, v) for tm, p, v in sent if lo - 0.25 * spb <= tm < hi]
        out.append({"call": call, "call_velocity": velocity, "answer_velocities": [v for _, _, v in mine],
                    "answer": [(round((tm - t0) / spb * 12), p) for tm, p, _ in mine]})
    return out


def score(pairs: list[dict]) -> dict:
    """The row's figures over every (call, answer) pair of the run (see the module's docstring)."""
    pcs = [pc_hist(p for _, p in x["call"]) for x in pairs]
    iois = [ioi_hist([t for t, _ in x["call"]]) for x in pairs]
    rows = {"pc_related": [], "rhythm_related": [], "interval_3gram": [], "longest_run": [], "verbatim": [],
            "in_key": [], "in_register": [], "velocity_gap": [], "notes": []}
    answered = 0
    for i, x in enumerate(pairs):
        ans = x["answer"]
        rows["notes"].append(len(ans))
        if len(ans) < 2:
            continue
        answered += 1
        others = [j for j in range(len(pairs)) if j != i]
        ap, cp = [p for _, p in ans], [p for _, p in x["call"]]
        rows["pc_related"].append(related(pcs[i], [pcs[j] for j in others], pc_hist(ap)))
        rows["rhythm_related"].append(related(iois[i], [iois[j] for j in others], ioi_hist([t for t, _ in ans])))
        rows["interval_3gram"].append(ngram_overlap(intervals(ap), intervals(cp)))
        rows["longest_run"].append(longest_run(intervals(ap), intervals(cp)))
        rows["verbatim"].append(verbatim(ans, x["call"]))
        rows["in_key"].append(in_key(ap, cp))
        lo, hi = min(cp) - 2, max(cp) + 2
        rows["in_register"].append(sum(lo <= p <= hi for p in ap) / len(ap))
        rows["velocity_gap"].append(abs(float(np.mean(x["answer_velocities"])) - x["call_velocity"]))
    out = {k: round(float(np.mean([v for v in vs if v is not None])), 3) if any(v is not None for v in vs)
           else math.nan for k, vs in rows.items()}
    out["verbatim_p95"] = pct(rows["verbatim"], 95)  # issue 22 item 6 asks <= 4 notes in 95 % of answers
    out["answered"] = round(answered / len(pairs), 3)
    out["calls"] = len(pairs)
    return out


def pct(xs, q) -> float:
    return round(float(np.percentile(xs, q)), 1) if xs else math.nan


def run(tunes: list[dict], seed: int, model: Path, forms=FORMS, echoes=ECHOES) -> dict:
    rows = {}
    for echo, form in [(0.0, "continue")] + [(e, f) for f in forms for e in echoes]:
        name = "echo 0 (today)" if echo == 0 else f"{form} {echo:g}"
        costs: dict = {}
        pairs = []
        for i, t in enumerate(tunes):
            pairs += run_tune(t, echo, form, seed + i, model, costs)
        row = score(pairs)
        for k in ("hear_us", "echo_us", "sample_us"):
            row[f"{k}_p50"], row[f"{k}_p99"] = pct(costs.get(k, []), 50), pct(costs.get(k, []), 99)
        rows[name] = row
    return rows


def step_costs(tunes: list[dict], reps: int = 2000) -> dict:
    """The memory's costs alone, microseconds p50/p99 (no jam, no model): one onset heard (the player's,
    then the agent's), and one sampling step's weights at echo 0 and 0.6 per form (the sampler's numpy
    over the vocabulary, the expectation and offset included), on this run's calls as one session."""
    from types import SimpleNamespace

    from agent.live.jam.memory import SessionMemory
    from agent.model.sampler import Sampler, SamplingContext, SamplingControls
    from agent.music.tokens import Vocab

    v = Vocab()
    mem, tick, hear = SessionMemory(v), 0, {"player": [], "agent": []}
    for t in tunes:
        for call in tune_calls(t):
            for b, _, p in call:
                t0 = time.perf_counter()
                mem.hear(p, tick + round(b * 12), 80, "player")
                hear["player"].append((time.perf_counter() - t0) * 1e6)
            tick += 5 * 48
            for k, (b, _, p) in enumerate(call):
                t0 = time.perf_counter()
                mem.hear(p + 7, tick + round(b * 12), 80, "agent")
                hear["agent"].append((time.perf_counter() - t0) * 1e6)
    out = {f"hear_{part}_us": [pct(xs, 50), pct(xs, 99)] for part, xs in hear.items()}
    s = Sampler(v, 1)
    s.parts = SimpleNamespace(enc=SimpleNamespace(tick=tick, velocity_bin=8), player_pitches=(), agent_sounding=set())
    s.memory = mem
    z = np.random.default_rng(0).normal(0, 2, v.size).astype(np.float32)
    ctx = SamplingContext((60, 62, 64), frozenset())
    for echo, form in [(0.0, "continue")] + [(0.6, f) for f in FORMS]:
        c = SamplingControls(key="auto", key_strength=2.0, echo=echo, form=form)
        xs = []
        for i in range(reps):
            s.parts.enc.tick = tick + i % 12  # time moves on: the wait expected changes every step
            t0 = time.perf_counter()
            s._weights(z, c, ctx)
            xs.append((time.perf_counter() - t0) * 1e6)
        out[f"weights_{form if echo else 'echo0'}_us"] = [pct(xs, 50), pct(xs, 99)]
    return out


COLUMNS = ("pc_related", "rhythm_related", "interval_3gram", "longest_run", "verbatim", "verbatim_p95",
           "in_key", "in_register", "velocity_gap",
           "notes", "answered",
           "hear_us_p50", "hear_us_p99", "echo_us_p50", "echo_us_p99", "sample_us_p50", "sample_us_p99")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help=f"{QUICK_TUNES} tune a metre instead of {TUNES_PER_METRE}")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    ap.add_argument("--forms", default=",".join(FORMS), help="answer forms to run, comma-separated")
    ap.add_argument("--echoes", default=",".join(f"{e:g}" for e in ECHOES), help="echo values above 0 to run")
    ap.add_argument("--json", type=Path, help="write the results here")
    a = ap.parse_args(argv)
    forms = [f for f in a.forms.split(",") if f]
    bad = [f for f in forms if f not in FORMS]
    if bad:
        ap.error(f"--forms: {', '.join(bad)} not an answer form (one of {', '.join(FORMS)})")
    echoes = [float(e) for e in a.echoes.split(",") if e]
    if any(not 0 < e <= 1 for e in echoes):
        ap.error(f"--echoes: {a.echoes} must be values in (0, 1] (echo 0 is always the first row)")
    tunes = pick_tunes(QUICK_TUNES if a.quick else TUNES_PER_METRE)
    rows = run(tunes, a.seed, a.model, forms, echoes)
    costs = step_costs(tunes)
    out = {"tunes": [t["name"] + " " + t["metre"] for t in tunes], "rows": rows, "step_costs_us_p50_p99": costs}
    print(json.dumps(out, indent=1))
    print(f"\n{'row':<16}" + "".join(f"{c:>16}" for c in COLUMNS))
    for name, r in rows.items():
        print(f"{name:<16}" + "".join(f"{r[c]:>16}" for c in COLUMNS))
    print("\nthe memory alone, us p50 / p99: " + ", ".join(f"{k[:-3]} {a} / {b}" for k, (a, b) in costs.items()))
    if a.json:
        a.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
