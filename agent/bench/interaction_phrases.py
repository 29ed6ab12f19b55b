"""Hand-written phrases for the interaction benchmark's engine run (tests/realmidi/test_tempo_follow.py plays
them): the player's schedule and the old per-tempo figures. The benchmark itself plays real tunes
(agent/bench/interaction_calls.py)."""
from __future__ import annotations

import math
import random

from agent.live.figures import pct

JITTER_BEATS, HOLD = 0.02, 0.92
GRID_TOL_BEATS = 0.06


def schedule(phrases: list[dict], bpm: float, start_s: float, seed: int) -> tuple[list, list[dict]]:
    """(events [(t_s, bytes)], per-phrase facts) for phrases {"notes": [(pitch, beat, length)], "breath":
    index}: each in its own period of 4/4 bars, onsets and releases jittered by N(0, 2 % of a beat), notes
    held 92 %, the breath note cut short by half a beat."""
    rng = random.Random(seed)
    spb = 60.0 / bpm
    jit = lambda: max(-2.5, min(2.5, rng.gauss(0.0, 1.0))) * JITTER_BEATS  # noqa: E731
    events, facts, bar = [], [], 0
    for ph in phrases:
        notes = ph["notes"]
        end_beat = max(b + d for _, b, d in notes)
        period = 4 * math.ceil((end_beat + 1 + 4 + 2) / 4)  # the phrase, a beat of turn, a bar of answer, room
        base = bar * 4
        offs, ons = [], []
        for i, (p, b, d) in enumerate(notes):
            held = (d - 0.5) if i == ph["breath"] else d * HOLD
            on = base + b + jit()
            off = base + b + held + jit()
            events.append((start_s + on * spb, [0x90, p, 80]))
            events.append((start_s + off * spb, [0x80, p, 0]))
            offs.append(off)
            ons.append(on)
        facts.append({"start_s": start_s + (base + notes[0][1]) * spb, "breath_s": start_s + offs[ph["breath"]] * spb,
                      "resume_s": start_s + ons[ph["breath"] + 1] * spb,
                      "end_s": start_s + max(offs) * spb, "next_s": start_s + (base + period) * spb})
        bar += period // 4
    return sorted(events), facts


def score(run: dict) -> dict:
    """One tempo's figures: delay from the last release (beats), breath triggers, note-ons during the
    phrase, the agent's note-ons on the eighth grid, the tempo error of the answers."""
    bpm, spb = run["bpm"], 60.0 / run["bpm"]
    facts = run["facts"]
    grid0 = run["grid0_s"]  # the player's unjittered grid: every phrase sits on whole bars from here
    ons = [t for t, b in run["got"] if b[0] & 0xF0 == 0x90 and b[2] > 0]
    delays, false, early, answered = [], 0, 0, 0
    for f in facts:
        during = [t for t in ons if f["start_s"] < t < f["end_s"]]
        early += bool(during)
        false += any(f["breath_s"] < t < f["resume_s"] + 0.25 * spb for t in during)
        after = [t for t in ons if f["end_s"] <= t < f["next_s"]]
        if after:
            answered += 1
            delays.append((after[0] - f["end_s"]) / spb)
    pos = [(t - grid0) / spb for t in ons]
    on_grid = [abs(2 * x - round(2 * x)) / 2 <= GRID_TOL_BEATS for x in pos]
    est = [r["bpm"] for r in run["responses"] if r.get("bpm")]
    errs = [abs(e - bpm) / bpm * 100 for e in est]
    n = len(facts)
    return {"bpm": bpm, "phrases": n, "answered": answered,
            "delay_p50_beats": pct(delays, 50), "delay_p90_beats": pct(delays, 90),
            "delay_max_beats": max(delays, default=None),
            "false_trigger_rate": false / n, "early_rate": early / n,
            "grid_adherence": (sum(on_grid) / len(on_grid)) if on_grid else None, "agent_note_ons": len(ons),
            "tempo_error_pct": (sum(errs) / len(errs)) if errs else None, "tempo_est_bpm": est,
            "off_grid_at_beats": [round(x, 3) for x, ok in zip(pos, on_grid) if not ok]}
