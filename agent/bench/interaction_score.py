"""The interaction benchmark's figures: each call scored from what a listener heard and the engine's tempo map.

Per call (its facts from agent/bench/interaction_calls.py; x = a time in the
player's beats: (t - ref_s) / period_s, bar lines at multiples of bpb):
- tempo octave: the engine's tempo at the call's written end within a factor sqrt(3/2) of the
  player's felt tempo (nearer it than 2/3 or 3/2 of it: the felt beat's level, not a half or a double);
- metre: the tempo map's division the tune's (3 in 6/8 and 9/8) and its bar duple or triple as the
  tune's (2/4 read as 4 beats is duple: the bar lines still fall on the player's); `bpb` the exact count;
- downbeat: the tempo map's next bar line after the written end within 0.1 beat of one of the
  player's (and the tempo octave right);
- false trigger: any agent note-on heard from the call's first note-on to its written end (an
  answer withdrawn at once counts: a listener heard it);
- the answer (agent note-ons from the written end to the next call): delay of its first note from
  the written end (beats and bars), that note on one of the player's beats, on a downbeat, and
  every note-on on the player's subdivision (halves, thirds in 6/8 and 9/8, the swung eighth in a
  swung reel); within 0.06 beat plus one JACK period.
Tempo, metre and downbeat are rated on the calls after each tune's first (the first call is how the
tracker hears the tune); the rest on every call.
"""
from __future__ import annotations

import math

from agent.live.figures import pct  # nearest-rank, as the live figures

OCTAVE = 0.5 * math.log(1.5)
GRID_TOL_BEATS = 0.06
DOWNBEAT_TOL_BEATS = 0.1
DELAY_TOL = 0.02  # beats or bars: the delay targets' slack (JACK periods, the scheduler's lead)
TARGETS = {"tempo_octave": 0.95, "metre": 0.90, "grid_min_group": 0.90, "first_on_beat": 0.95,
           "first_on_downbeat": 0.80, "false_rate": 0.02}  # delay p90: <= 1 bar, <= 1 beat with align = "beat"


def snapshot(tempo, f: dict) -> dict:
    """What the engine's tempo map says just after a call's written end."""
    return {"bpm": tempo.bpm, "bpb": tempo.beats_per_bar, "division": tempo.division, "swing": tempo.swing,
            "bar_s": tempo.next_bar(f["end_s"])}


def beats(f: dict, t: float) -> float:
    return (t - f["ref_s"]) / f["period_s"]


def on_grid(x: float, sub: list[float], tol: float) -> bool:
    frac = x - math.floor(x)
    return min(abs(frac - s) for s in [*sub, 1.0]) <= tol


def score_call(f: dict, snap: dict, ons: list[float], slack_s: float) -> dict:
    """One call's figures: f its facts, snap the tempo map's `snapshot`, ons every agent note-on the
    reader heard (seconds), slack_s one JACK period."""
    tol = GRID_TOL_BEATS + slack_s / f["period_s"]
    during = [t for t in ons if f["start_s"] - slack_s <= t < f["end_s"] - slack_s]
    after = [t for t in ons if f["end_s"] - slack_s <= t < f["next_s"]]
    ratio = snap["bpm"] / f["felt_bpm"]
    octave = abs(math.log(ratio)) < OCTAVE
    xb = beats(f, snap["bar_s"])
    r = {"felt_bpm": round(f["felt_bpm"], 2), "tempo_bpm": round(snap["bpm"], 2), "octave": octave,
         "tempo_err_pct": abs(ratio - 1) * 100,
         "metre": snap["division"] == f["division"] and (snap["bpb"] == 3) == (f["bpb"] == 3),
         "bpb": snap["bpb"] == f["bpb"], "bpb_est": snap["bpb"], "division_est": snap["division"],
         "downbeat": octave and abs(xb - round(xb)) <= DOWNBEAT_TOL_BEATS and round(xb) % f["bpb"] == 0,
         "bar_x": round(xb, 3), "end_x": round(beats(f, f["end_s"]), 3),
         "swing_err": abs(snap["swing"] - f["swing"]) if f["swing"] > 1 else None,
         "false": bool(during), "answered": bool(after), "during_x": [round(beats(f, t), 2) for t in during],
         "start_x": round(beats(f, f["start_s"]), 3),
         "grid_on": sum(on_grid(beats(f, t), f["sub"], tol) for t in after), "grid_n": len(after)}
    if after:
        x = beats(f, after[0])
        delay = (after[0] - f["end_s"]) / f["period_s"]
        r.update(delay_beats=delay, delay_bars=delay / f["bpb"], first_x=round(x, 3),
                 first_on_beat=abs(x - round(x)) <= tol,
                 first_on_downbeat=abs(x - round(x)) <= tol and round(x) % f["bpb"] == 0)
    return r


def _mean(xs):
    xs = [float(x) for x in xs]
    return sum(xs) / len(xs) if xs else None


def aggregate(calls: list[dict]) -> dict:
    """Rates over calls (each a `score_call` with "call": its index in its tune)."""
    later = [c for c in calls if c["call"] > 0]
    ans = [c for c in calls if c["answered"]]
    n_grid = sum(c["grid_n"] for c in calls)
    swing = [c["swing_err"] for c in later if c["swing_err"] is not None]
    return {"calls": len(calls), "answered": len(ans),
            "tempo_octave": _mean(c["octave"] for c in later), "metre": _mean(c["metre"] for c in later),
            "bpb": _mean(c["bpb"] for c in later), "downbeat": _mean(c["downbeat"] for c in later),
            "tempo_err_pct": _mean(c["tempo_err_pct"] for c in later if c["octave"]),
            "swing_err": _mean(swing),
            "grid": sum(c["grid_on"] for c in calls) / n_grid if n_grid else None, "agent_note_ons": n_grid,
            "first_on_beat": _mean(c["first_on_beat"] for c in ans),
            "first_on_downbeat": _mean(c["first_on_downbeat"] for c in ans),
            "delay_p50_beats": pct([c["delay_beats"] for c in ans], 50),
            "delay_p90_beats": pct([c["delay_beats"] for c in ans], 90),
            "delay_p90_bars": pct([c["delay_bars"] for c in ans], 90),
            "false_rate": _mean(c["false"] for c in calls)}


def summarise(calls: list[dict]) -> dict:
    """Overall, per group (metre and feel) and per variant (plain, rubato)."""
    by = lambda key: {k: aggregate([c for c in calls if c[key] == k])  # noqa: E731
                      for k in sorted({c[key] for c in calls})}
    return {"overall": aggregate(calls), "groups": by("group"), "variants": by("variant")}


def targets(summary: dict, align_beat: bool) -> dict:
    """Each target of issue 20 for one row: {name: {"value", "target", "met"}} (None: no figure)."""
    o = summary["overall"]
    grids = [g["grid"] for g in summary["groups"].values() if g["grid"] is not None]
    values = {**{k: o[k] for k in ("tempo_octave", "metre", "first_on_beat", "first_on_downbeat", "false_rate")},
              "grid_min_group": min(grids) if grids else None}
    out = {}
    for k, v in values.items():
        bound = TARGETS[k]
        met = None if v is None else (v <= bound if k == "false_rate" else v >= bound)
        out[k] = {"value": v, "target": ("<= " if k == "false_rate" else ">= ") + f"{bound:g}", "met": met}
    key = "delay_p90_beats" if align_beat else "delay_p90_bars"
    v = o[key]  # an answer on the beat (or bar line) after the end is within it, to the grid's tolerance
    out[key] = {"value": v, "target": "<= 1", "met": None if v is None else v <= 1.0 + DELAY_TOL}
    return out
