"""Feel benchmark: do the agent's answers keep to the player's subdivision, swung or in thirds?

    python scripts/bench_feel.py [--quick] [--json OUT] [--seed N] [--model DIR] [--mode accompany]
                                 [--follow] [--set jam.grid_strength=6.0 ...]

On a fake clock (no ports, no sleeping), the jam as the engine wires it over
the real default model answers real tunes from music21's corpus
(agent/training/beat_corpus.py): the player plays two bars of a tune, rests
two bars (the agent answers), and goes on with the next two bars. Feels:
- straight: reels in running eighths (2/2 and 4/4, felt at the quarter);
- swung: the same reels with the off-beat eighths swung at ratio 2.0 (within
  each beat, music/feel.py's warp: the player's swung grid);
- 6/8: jigs felt at the dotted quarter, each beat in thirds.
The answer comes in on the beat after 1.5 beats of silence (TURN). The
tempo map is told the player's tempo, beat, division and swing (what the
beat tracker reports when it is right: `--follow` lets the tracker find them
instead, as the engine does), so the figure is about the agent's own timing.
`--mode accompany`: the agent plays along while the player plays (rolled
back at every player event) and all its note-ons are scored.

Per feel, two rows from the same run:
- before: the tempo map left at division 2, swing 1.0 (what the jam did before
  issue 20 item 4: it kept to straight eighths whatever the player played; in
  call mode note for note the jam of 7523173^, in accompany with this jam's
  move of a loose anchor onto the grid in both rows);
- after: the player's division and swing.
grid_adherence: the fraction of the agent's note-ons within GRID_TOL_BEATS of
the player's own grid (thirds in 6/8, swung eighths when swung, eighths when
straight); `onsets` how many were scored.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

from agent.bench.fakerun import ListOut, run_jam_until
from agent.config import ROOT, load_config
from agent.live.controls import LiveControls
from agent.live.jam.policy import Jam
from agent.live.scheduler import Scheduler
from agent.model.predictor import Predictor
from agent.music.feel import grid_distance, warp
from agent.music.tempomap import FakeClock, TempoMap

GRID_TOL_BEATS = 0.06
DEFAULT_MODEL = ROOT / "models" / "default"
CALL_BARS, REST_BARS = 2, 2
HOLD = 0.9  # a note sounds this much of its written length (a short gap before the next)
# the plainest turn-taking: an answer 1.5 beats after the call, on the next beat (what is measured is the
# answer's own rhythm, not when it comes in: bench_interaction measures that)
TURN = ['jam.turn="silence"', "jam.silence_beats=1.5", 'jam.align="beat"']

@dataclass(frozen=True)
class Feel:
    metres: tuple  # the corpus metres its tunes come from
    kind: str  # the corpus kind ("reel", "jig")
    division: int  # the player's subdivision of the felt beat
    swing: float  # the player's long/short eighth ratio
    bpm: float  # felt beats a minute
    beat_q: float  # the felt beat in quarters (a reel's quarter, a jig's dotted quarter)


FEELS = {"straight": Feel(("2/2", "4/4"), "reel", 2, 1.0, 100.0, 1.0),
         "swung": Feel(("2/2", "4/4"), "reel", 2, 2.0, 100.0, 1.0),
         "6/8": Feel(("6/8",), "jig", 3, 1.0, 96.0, 1.5)}


@dataclass
class FeelRig:
    """The jam, its scheduler and the model on a fake clock; `run_until` wakes them as they ask."""

    clock: FakeClock
    out: ListOut
    sched: Scheduler
    tempo: TempoMap
    jam: Jam
    wake: float = 0.0
    player: list = field(default_factory=list)  # (t_s, pitch, on) as played

    def run_until(self, t_s: float) -> None:
        self.wake = run_jam_until(self.clock, self.sched, self.jam, self.wake, t_s)

    def note(self, pitch: int, on: bool, t_s: float) -> None:
        self.run_until(t_s)
        self.jam.player_note(pitch, 80 if on else 0, on, t_s)
        self.player.append((t_s, pitch, on))
        self.wake = self.jam.tick(self.clock.now())

    def agent_onsets(self) -> list[float]:
        return [t for t, m in self.out.sent if m.type == "note_on" and m.velocity > 0]


def build_rig(*, bpm: float, seed: int, model: Path = DEFAULT_MODEL, mode: str = "call", overrides=()) -> FeelRig:
    """The jam in `mode` at `bpm` (the tempo map's, timing.source "fixed" unless overridden) over `model`."""
    cfg = load_config(overrides=[f'jam.mode="{mode}"', 'timing.source="fixed"', f"timing.bpm={bpm}", *TURN, *overrides])
    clock = FakeClock(100.0)
    out = ListOut(clock)
    sched = Scheduler(out, clock)
    tempo = TempoMap(bpm, clock.now(), cfg.timing.beats_per_bar)
    pred = Predictor.load(model, backend="onnx", seed=seed, context_tokens=cfg.jam.context_tokens)
    jam = Jam(pred, sched, tempo, LiveControls(cfg), clock, pred.vocab)
    rig = FeelRig(clock, out, sched, tempo, jam)
    rig.wake = jam.tick(clock.now())
    return rig


def calls(tune: dict, feel: Feel, n_calls: int) -> list[tuple[float, float, int]]:
    """(onset beat, release beat, pitch) of the player's part in felt beats from its first bar line: CALL_BARS
    of the tune, REST_BARS of rest, the next CALL_BARS... The player's swing is the warp of music/feel.py
    (its off-beat eighths at s / (1 + s) of the beat); grace notes are left out, a chord is its top note."""
    bq, bar_q, bar0, swing = feel.beat_q, tune["bar_q"], tune["bar0_q"], feel.swing
    bar_beats = bar_q / bq
    out = []
    for j in range(n_calls):
        lo = bar0 + j * CALL_BARS * bar_q
        hi = lo + CALL_BARS * bar_q
        start = j * (CALL_BARS + REST_BARS) * bar_beats
        for off, length, pitch, _chord, grace in tune["notes"]:
            if grace or not lo - 1e-9 <= off < hi - 1e-9:
                continue
            b = start + (off - lo) / bq
            end = b + min(length, hi - off) / bq
            out.append((warp(b, swing), warp(end, swing) - (1.0 - HOLD) * min(1.0, length / bq), int(pitch)))
    return out


def play(rig: FeelRig, part, t0: float, spb: float) -> float:
    """Play `part` (beats) from t0 (seconds, the player's beat 0) at spb seconds a beat; returns the last release."""
    events = []
    for on_b, off_b, pitch in part:
        events.append((t0 + on_b * spb, 1, pitch))
        events.append((max(t0 + off_b * spb, t0 + on_b * spb + 0.03), 0, pitch))
    for t, on, pitch in sorted(events):
        rig.note(pitch, bool(on), t)
    return max(t for t, on, _ in events if not on)


def run_tune(tune: dict, feel: str, after: bool, seed: int, n_calls: int = 4, model: Path = DEFAULT_MODEL,
             follow: bool = False, overrides=(), mode: str = "call") -> dict:
    """One tune in one feel: the agent's onsets (call: in the rests) and how many keep to the player's grid."""
    f = FEELS[feel]
    bpm, division, swing = f.bpm, f.division, f.swing
    rig = build_rig(bpm=bpm, seed=seed, model=model, mode=mode,
                    overrides=[*overrides, *(['timing.source="player"'] if follow else [])])
    spb = 60.0 / bpm
    t0 = rig.clock.now() + 0.5
    if follow:
        from agent.music.beat import BeatTracker, TempoFollower

        rig.jam.follow = (TempoFollower if after else StraightFollower)(rig.tempo, BeatTracker(100.0))
    else:
        rig.tempo.align(bpm, t0, downbeat_s=t0, division=division if after else 2, swing=swing if after else 1.0)
    part = calls(tune, f, n_calls)
    last = play(rig, part, t0, spb)
    bar_beats = tune["bar_q"] / f.beat_q
    rig.run_until(last + (REST_BARS + 1) * bar_beats * spb)
    rest_from = [t0 + (j * (CALL_BARS + REST_BARS) + CALL_BARS) * bar_beats * spb for j in range(n_calls)]
    beats = [(t - t0) / spb for t in rig.agent_onsets() if mode != "call" or any(
        r <= t < r + REST_BARS * bar_beats * spb for r in rest_from)]
    near = [grid_distance(b, division, swing) <= GRID_TOL_BEATS for b in beats]
    return {"tune": tune["name"], "feel": feel, "after": after, "onsets": len(near), "on_grid": sum(near)}


class StraightFollower:
    """A TempoFollower that keeps the tempo map straight (division 2, swing 1.0): the jam before item 4."""

    def __init__(self, tempo_map, tracker) -> None:
        from agent.music.beat import TempoFollower

        self.inner = TempoFollower(tempo_map, tracker)
        self.tempo = tempo_map

    def onset(self, t_s: float, pitch=None, velocity=None) -> bool:
        moved = self.inner.onset(t_s, pitch=pitch, velocity=velocity)
        self.tempo.division, self.tempo.swing = 2, 1.0
        return moved


def pick_tunes(feel: str, n: int) -> list[dict]:
    """The first n tunes of the feel's metres and kind that run in eighths (most notes an eighth long, on
    the beat's eighths), with at least 8 bars."""
    from agent.training import beat_corpus

    f = FEELS[feel]
    out = []
    for t in beat_corpus.load():
        notes = t["notes"]
        if t["metre"] not in f.metres or t["kind"] != f.kind or notes[-1][0] < t["bar0_q"] + 8 * t["bar_q"]:
            continue
        eighths = sum(abs(n[1] - 0.5) < 1e-6 and abs((n[0] - t["bar0_q"]) % 0.5) < 1e-6 for n in notes)
        if eighths >= 0.7 * len(notes):
            out.append(t)
    return out[:n]


def summary(results: list[dict]) -> dict:
    rows = {}
    for r in results:
        key = f"{r['feel']} {'after' if r['after'] else 'before'}"
        g = rows.setdefault(key, {"tunes": 0, "onsets": 0, "on_grid": 0})
        g["tunes"] += 1
        g["onsets"] += r["onsets"]
        g["on_grid"] += r["on_grid"]
    for g in rows.values():
        g["grid_adherence"] = round(g["on_grid"] / g["onsets"], 3) if g["onsets"] else math.nan
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="two tunes a feel instead of six")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    ap.add_argument("--follow", action="store_true", help="the beat tracker finds tempo, division and swing")
    ap.add_argument("--mode", choices=["call", "accompany"], default="call")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a config override")
    ap.add_argument("--json", type=Path, help="write the results here")
    a = ap.parse_args(argv)
    results = []
    for feel in FEELS:
        for i, tune in enumerate(pick_tunes(feel, 2 if a.quick else 6)):
            for after in (False, True):
                results.append(run_tune(tune, feel, after, a.seed + i, model=a.model, follow=a.follow,
                                        overrides=a.set, mode=a.mode))
    rows = summary(results)
    out = {"grid_tol_beats": GRID_TOL_BEATS, "follow": a.follow, "mode": a.mode, "set": a.set, "rows": rows,
           "runs": results}
    print(json.dumps(out, indent=1))
    print(f"\n{'feel':<18}{'tunes':>6}{'onsets':>8}{'grid adherence':>16}")
    for key, g in rows.items():
        print(f"{key:<18}{g['tunes']:>6}{g['onsets']:>8}{g['grid_adherence']:>16.3f}")
    if a.json:
        a.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
