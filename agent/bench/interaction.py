"""Interaction benchmark: does the agent answer in the player's time, on the player's beat?

    python scripts/bench_interaction.py [--json OUT] [--quick] [--model DIR] [--tempos 60,80,...]

Over real JACK ports (its own dummy server), three processes as in
bench_realtime: this one runs the engine (the default config: it is not
told the tempo); a player process plays the keyboard's part; a reader
process stamps what the agent sends. perf_counter is CLOCK_MONOTONIC on
Linux, so the stamps of the three compare directly.

The player: soprano phrases of Bach chorales from the music21 corpus
(4/4; a phrase ends at a fermata, whose note is held for at least two
beats), one per period of whole bars with room for a one-bar answer, at
each tempo. Inside every phrase the longest note of its middle is cut short
by half a beat: a breath. Timing is humanised: onsets and releases jittered
by N(0, 2 % of a beat), notes held 92 % of their length.

Per tempo and overall:
- tempo_error_pct: |the engine's tempo when it answers - the player's| / the player's, mean;
- delay_p50/p90_beats: from the phrase's last release (as the player sent it) to the answer's
  first note-on (as the reader got it), in the player's beats;
- false_trigger_rate: phrases in which an agent note-on arrived during the breath (from its release
  to a quarter beat after the player goes on); `early_rate`: phrases with any agent note-on before
  the phrase's last release (an answer to a long note inside the phrase counts here);
- grid_adherence: fraction of the agent's note-ons within 0.06 beat of the player's (unjittered)
  eighth-note grid.
The same figures for the baseline (`jam.turn = "silence"`, 600 ms, fixed 100 bpm, no
alignment: the old defaults) are under "baseline", from the same run.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import random
import signal
import sys
import time

from agent.bench import harness  # JackServer, Child (the reader process is realtime's)
from agent.bench import realtime as RT  # play_script, pct


CHORALES = ["bach/bwv347", "bach/bwv253", "bach/bwv437"]  # 4/4, phrases of 2-3 bars
TEMPOS, QUICK_TEMPOS = [60.0, 80.0, 100.0, 120.0, 140.0], [72.0, 132.0]
JITTER_BEATS, HOLD = 0.02, 0.92
GRID_TOL_BEATS = 0.06
BASELINE = ['jam.turn="silence"', "jam.silence_beats=0.0", "jam.silence_ms=600.0", 'jam.align="none"',
            'timing.source="fixed"', "timing.bpm=100.0", "jam.grid_strength=0.0"]


# -- the player's material --------------------------------------------------------
def chorale_phrases(names=CHORALES, min_notes: int = 6, max_beats: float = 12.0) -> list[dict]:
    """Soprano phrases split at fermatas: {"notes": [(pitch, beat, length)], "breath": index}, beats from
    the phrase's bar line (so pickups stay pickups)."""
    from music21 import corpus, expressions

    out = []
    for name in names:
        part = corpus.parse(name).parts[0].stripTies(inPlace=False).flatten().notes
        cur = []
        for n in part:
            cur.append((int(n.pitch.midi), float(n.offset), float(n.quarterLength)))
            if any(isinstance(e, expressions.Fermata) for e in n.expressions):
                bar = math.floor(cur[0][1] / 4) * 4
                notes = [(p, b - bar, d) for p, b, d in cur]
                notes[-1] = (notes[-1][0], notes[-1][1], max(notes[-1][2], 2.0))  # the fermata held
                middle = [i for i in range(2, len(notes) - 2) if notes[i][2] >= 1.0]
                span = notes[-1][1] + notes[-1][2] - notes[0][1]
                if len(notes) >= min_notes and middle and span <= max_beats:
                    breath = max(middle, key=lambda i: (notes[i][2], -abs(i - len(notes) / 2)))
                    out.append({"notes": notes, "breath": breath, "source": name})
                cur = []
    return out


def schedule(phrases: list[dict], bpm: float, start_s: float, seed: int) -> tuple[list, list[dict]]:
    """(events [(t_s, bytes)], per-phrase facts) for the player; each phrase in its own period of bars."""
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


# -- processes ---------------------------------------------------------------------
def role_player(name: str) -> None:
    import mido

    out = mido.open_output(name, virtual=True)
    print("ready", flush=True)
    events = json.loads(sys.stdin.readline())
    log = RT.play_script(lambda d: out.send(mido.Message.from_bytes(d)), [(t, d) for t, d in events])
    print(json.dumps(log), flush=True)
    sys.stdin.readline()
    out.close()


class Player(harness.Child):
    """This module's player role in its own process (bench_realtime's Child plumbing)."""

    def __init__(self, port: str, env: dict) -> None:
        super().__init__("player", port, env, module=__name__)


# -- one run -----------------------------------------------------------------------
def run_tempo(bpm: float, phrases: list[dict], model: str, env: dict, sets=(), seed: int = 1) -> dict:
    """Play the phrases at bpm into a fresh engine over JACK; the raw facts for `score`."""
    from agent.config import load_config
    from agent.live.engine import Engine
    from agent.midi.ports import Ports
    from agent.model.predictor import Predictor

    cfg = load_config(overrides=["jam.response_bars=1.0", "sampling.seed=7", f'model.path="{model}"', *sets])
    pred = Predictor.from_config(cfg)
    os.environ.update(env)
    player = Player("BenchKeyboard", env)
    eng = Engine(cfg, pred, ports=Ports("jack"), input_name="BenchKeyboard", virtual_name="Antiphon",
                 report=lambda s: None)
    eng.start()
    sends = []
    eng.scheduler.hooks.append(lambda m, d, s: sends.append(m.bytes()))
    reader = harness.Child("reader", "Antiphon", env)
    grid0 = time.perf_counter() + 0.5  # the player's beat 0 (a bar line)
    events, facts = schedule(phrases, bpm, grid0, seed)
    try:
        player.say(json.dumps(events))
        played = player.result()
        time.sleep(max(0.0, facts[-1]["next_s"] - time.perf_counter()))
    finally:
        eng.stop()
        reader.say(f"stop {sum(1 for b in sends if b[0] & 0xF0 in (0x80, 0x90))}")
        got = reader.result()
        player.say("quit")
        for c in (player, reader):
            c.p.wait(timeout=10)
    return {"bpm": bpm, "events": events, "facts": facts, "played": played, "got": got,
            "responses": list(eng.jam.responses),
            "grid0_s": grid0, "tempo": eng.tempo_status()}


def score(run: dict) -> dict:
    """The figures of one tempo's run (see the module docstring)."""
    bpm, spb = run["bpm"], 60.0 / run["bpm"]
    facts = run["facts"]
    grid0 = run["grid0_s"]  # the player's unjittered grid: every phrase sits on whole bars from here
    ons = [t for t, b in run["got"] if b[0] & 0xF0 == 0x90 and b[2] > 0]
    delays, false, early, answered = [], 0, 0, 0
    for f in facts:
        during = [t for t in ons if f["start_s"] < t < f["end_s"]]
        early += bool(during)
        # the breath: from its release until a quarter beat after the player goes on (an answer
        # planned on the beat the player resumes on still sounds, however briefly)
        false += any(f["breath_s"] < t < f["resume_s"] + 0.25 * spb for t in during)
        after = [t for t in ons if f["end_s"] <= t < f["next_s"]]
        if after:
            answered += 1
            delays.append((after[0] - f["end_s"]) / spb)
    pos = [(t - grid0) / spb for t in ons]  # the agent's note-ons in the player's beats
    on_grid = [abs(2 * x - round(2 * x)) / 2 <= GRID_TOL_BEATS for x in pos]
    est = [r["bpm"] for r in run["responses"] if r.get("bpm")]
    errs = [abs(e - bpm) / bpm * 100 for e in est]
    n = len(facts)
    return {"bpm": bpm, "phrases": n, "answered": answered,
            "delay_p50_beats": RT.pct(delays, 50), "delay_p90_beats": RT.pct(delays, 90),
            "delay_max_beats": max(delays, default=None),
            "false_trigger_rate": false / n, "early_rate": early / n,
            "grid_adherence": (sum(on_grid) / len(on_grid)) if on_grid else None, "agent_note_ons": len(ons),
            "tempo_error_pct": (sum(errs) / len(errs)) if errs else None, "tempo_est_bpm": est,
            "off_grid_at_beats": [round(x, 3) for x, ok in zip(pos, on_grid) if not ok], "_delays": delays}


def overall(rows: list[dict]) -> dict:
    delays = [d for r in rows for d in r.pop("_delays", [])]
    n = sum(r["phrases"] for r in rows)
    notes = sum(r["agent_note_ons"] for r in rows)
    errs = [r["tempo_error_pct"] for r in rows if r["tempo_error_pct"] is not None]
    return {"phrases": n, "answered": sum(r["answered"] for r in rows),
            "delay_p50_beats": RT.pct(delays, 50), "delay_p90_beats": RT.pct(delays, 90),
            "delay_p90_beats_worst_tempo": max((r["delay_p90_beats"] or 0.0) for r in rows),
            "false_trigger_rate": sum(r["false_trigger_rate"] * r["phrases"] for r in rows) / n,
            "early_rate": sum(r["early_rate"] * r["phrases"] for r in rows) / n,
            "grid_adherence": (sum((r["grid_adherence"] or 0.0) * r["agent_note_ons"] for r in rows) / notes
                               if notes else None),
            "tempo_error_pct": sum(errs) / len(errs) if errs else None}


def run_row(tempos, phrases, model, env, sets, per_tempo: int) -> tuple[dict, list[dict]]:
    rows = []
    for i, bpm in enumerate(tempos):
        chosen = [phrases[(i * per_tempo + k) % len(phrases)] for k in range(per_tempo)]
        run = run_tempo(bpm, chosen, model, env, sets, seed=i + 1)
        row = score(run)
        rows.append(row)
        print(f"  {bpm:5.0f} bpm: delay p90 {fmt(row['delay_p90_beats'])} beats, false {row['false_trigger_rate']:.2f}, "
              f"grid {fmt(row['grid_adherence'])}, tempo err {fmt(row['tempo_error_pct'])} %", file=sys.stderr)
    return overall(rows), rows


def fmt(v):
    return "-" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", metavar="OUT", help="also write the results as JSON here")
    ap.add_argument("--quick", action="store_true", help="two tempos, two phrases each")
    ap.add_argument("--tempos", help="comma-separated bpm (default 60,80,100,120,140; --quick 72,132)")
    ap.add_argument("--phrases", type=int, help="phrases per tempo (default 6, --quick 2)")
    ap.add_argument("--model", default="models/default", help="model folder (default models/default)")
    ap.add_argument("--no-baseline", action="store_true", help="skip the baseline row")
    a, done = harness.parse_jack_bench(ap, argv, {"player": role_player}, "bench_interaction")
    if done is not None:
        return done
    tempos = [float(x) for x in a.tempos.split(",")] if a.tempos else (QUICK_TEMPOS if a.quick else TEMPOS)
    per_tempo = a.phrases or (2 if a.quick else 6)
    phrases = chorale_phrases()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # so the finally below stops our jackd
    server = harness.JackServer().start()
    env = {**os.environ, **server.env, "MIDO_BACKEND": harness.JACK_BACKEND}
    try:
        print("followed (default config):", file=sys.stderr)
        ours, rows = run_row(tempos, phrases, a.model, env, [], per_tempo)
        base, base_rows = (None, [])
        if not a.no_baseline:
            print("baseline (silence 600 ms, fixed 100 bpm, no alignment):", file=sys.stderr)
            base, base_rows = run_row(tempos, phrases, a.model, env, BASELINE, per_tempo)
    finally:
        server.stop()
    res = {"date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()), "loadavg": os.getloadavg(),
           "transport": "jack", "model": a.model, "tempos": tempos, "phrases_per_tempo": per_tempo,
           "jitter_beats": JITTER_BEATS, "grid_tol_beats": GRID_TOL_BEATS, **ours, "per_tempo": rows}
    if base is not None:
        res["baseline"] = {**base, "per_tempo": base_rows, "sets": BASELINE}
    keys = ("delay_p50_beats", "delay_p90_beats", "false_trigger_rate", "early_rate", "grid_adherence",
            "tempo_error_pct")
    print(f"{'':>7} " + " ".join(f"{k:>20}" for k in keys))
    for label, rs in (("ours", rows), ("base", base_rows)):
        for r in rs:
            print(f"{label} {r['bpm']:4.0f} " + " ".join(f"{fmt(r[k]):>20}" for k in keys))
    print("overall " + " ".join(f"{fmt(ours[k]):>20}" for k in keys))
    if base is not None:
        print("baseline" + " ".join(f"{fmt(base[k]):>20}" for k in keys))
    harness.write_results(res, a.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
