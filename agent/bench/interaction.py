"""Interaction benchmark: real tunes in every metre and feel; does the agent answer in the player's time?

    python scripts/bench_interaction.py [--quick] [--json OUT] [--per-group N] [--calls N] [--rows ...]

Over real JACK ports: per tune, a JACK dummy server of its own and, for
each row (a config), a process running a fresh engine (not told the tempo),
a player process that plays the keyboard's part and a reader process that
stamps what the agent sends (what a listener hears). The rows hear each
tune side by side, each on its own ports. perf_counter is CLOCK_MONOTONIC on
Linux, so the processes' stamps compare directly.

The player (agent/bench/interaction_calls.py): tunes from music21's corpus
(beat_corpus) - Bach chorale phrases (the last note at its written length),
4/4 reels and hornpipes straight and swung (1.5-2.5), 2/4 polkas and
hornpipes, 3/4 airs and waltzes, 6/8 jigs, 9/8 slip jigs - alternately plain
and rubato, at a felt tempo of 56-180 bpm; each tune's first `--calls`
phrases are calls, with a bar's answer (jam.response_bars = 1) and room
after each. A fresh engine hears each tune. The figures are
agent/bench/interaction_score.py's, per metre and overall, with issue 20's
targets met or missed per row.

Rows: "default" (the config as shipped), "baseline" (the settings before
issue 20: jam.align = "beat", jam.turn = "model"), "align-beat" (the default
with jam.align = "beat": its delay target is p90 <= 1 beat).
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time

from agent.bench import harness
from agent.bench import interaction_calls as C
from agent.bench import interaction_score as S
from agent.bench.interaction_phrases import schedule, score  # noqa: F401  (the tier's hand-written phrases)
from agent.bench.realtime import play_script

ROWS = {"default": [], "baseline": ['jam.align="beat"', 'jam.turn="model"'], "align-beat": ['jam.align="beat"']}
COMMON = [f"jam.response_bars={C.ANSWER_BARS}", "sampling.seed=7"]
MODULE = "agent.bench.interaction"  # the roles run as `python -m MODULE --role ...`
JACK_PERIOD = 256  # frames (5.3 ms): the real-MIDI tier's; at 64 a loaded machine's xruns drop MIDI (conftest.py)
JACK_NAME = "antiphon-interaction"  # one name, run after run: JACK's registry has 8 slots a machine, and a server
# killed uncleanly keeps its slot until a server of the same name starts (a name with a pid in it leaks it for good)
LEAD_S = 0.5  # from the engine's start to the first call's bar line


# -- the player process ------------------------------------------------------------
def role_player(name: str) -> None:
    import mido

    out = mido.open_output(name, virtual=True)
    print("ready", flush=True)
    events = json.loads(sys.stdin.readline())
    log = play_script(lambda d: out.send(mido.Message.from_bytes(d)), [(t, d) for t, d in events])
    print(json.dumps(log), flush=True)
    sys.stdin.readline()
    out.close()


class Player(harness.Child):
    """This module's player role in its own process."""

    def __init__(self, port: str, env: dict) -> None:
        super().__init__("player", port, env, module=MODULE)


# -- one engine run ----------------------------------------------------------------
def play(make, model: str, env: dict, sets=(), ports=("BenchKeyboard", "Antiphon")) -> dict:
    """A fresh engine over JACK hears the player play `make(start_s) -> (events, facts)`; the raw run:
    what was played and heard, the engine's answers and its tempo map just after each call's end."""
    from agent.config import load_config
    from agent.live.engine import Engine
    from agent.midi.ports import Ports
    from agent.model.predictor import Predictor

    cfg = load_config(overrides=[*COMMON, f'model.path="{model}"', *sets])
    os.environ.update(env)
    kbd, agent = ports
    player = Player(kbd, env)
    eng = Engine(cfg, Predictor.from_config(cfg), ports=Ports("jack"), input_name=kbd, virtual_name=agent,
                 report=lambda s: None)
    eng.start()
    reader = harness.Child("reader", agent, env)
    start = time.perf_counter() + LEAD_S
    events, facts = make(start)
    snaps: list[dict] = []

    def watch() -> None:  # the tempo map as the answer will use it: read just after each written end
        for f in facts:
            eng.clock.sleep_until(f["end_s"] + 0.05)
            snaps.append(S.snapshot(eng.tempo, f))

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        player.say(json.dumps(events))
        played = player.result()
        time.sleep(max(0.0, facts[-1]["next_s"] - time.perf_counter()))
    finally:
        eng.stop()
        reader.say("stop")
        got = reader.result()
        player.say("quit")
        for c in (player, reader):
            c.p.wait(timeout=10)
    watcher.join(timeout=5)
    return {"events": events, "facts": facts, "played": played, "got": got, "snaps": snaps,
            "responses": list(eng.jam.responses), "grid0_s": start, "tempo": eng.tempo_status()}


def run_tempo(bpm: float, phrases: list[dict], model: str, env: dict, sets=(), seed: int = 1) -> dict:
    """Hand-written phrases (interaction_phrases.schedule) at bpm; scored by `score`."""
    return {"bpm": bpm, **play(lambda s: schedule(phrases, bpm, s, seed), model, env, sets)}


def run_tune(run: dict, n_calls: int, model: str, env: dict, sets=(), ports=("BenchKeyboard", "Antiphon"),
             slack_s: float = 0.0) -> list[dict]:
    """One planned tune (interaction_calls.plan) into a fresh engine: each call's figures."""
    raw = play(lambda s: C.render_calls(run, n_calls, s), model, env, sets, ports)
    ons = [t for t, b in raw["got"] if b[0] & 0xF0 == 0x90 and b[2] > 0]
    out = []
    for i, (f, snap) in enumerate(zip(raw["facts"], raw["snaps"])):
        out.append({"group": run["group"], "variant": "rubato" if run["rubato"] else "plain",
                    "tune": run["tune"]["name"], "call": i, "swing": run["swing"], **S.score_call(f, snap, ons, slack_s)})
    return out


# -- a tune: every row's engine at once, on a JACK server of the tune's own ----------------
def role_tune(arg: str) -> None:
    """Read {"sets", "run", "calls", "model", "index"} (run: the tune's index in `plan`'s runs, planned with
    "per_group", "seed", "groups"); answer that tune's calls under this row's config. Our stdout is the
    parent's channel: everything else goes to stderr."""
    from agent.training import beat_corpus

    channel, sys.stdout = sys.stdout, sys.stderr
    print("ready", file=channel, flush=True)
    p = json.loads(sys.stdin.readline())
    run = C.plan(beat_corpus.load(), p["per_group"], p["seed"], p["groups"], p["calls"])[p["run"]]
    ports = (f"BenchKbd{p['index']}", f"BenchAgent{p['index']}")
    try:
        got = run_tune(run, p["calls"], p["model"], {**os.environ}, p["sets"], ports, JACK_PERIOD / 48000)
        print(json.dumps({"calls": got}), file=channel, flush=True)
    except Exception as exc:  # the tune failed under this row: say why, the run goes on
        print(json.dumps({"failed": f"{type(exc).__name__}: {exc}"[:300]}), file=channel, flush=True)


def start_server(name: str, tries: int = 12):
    """A started JackServer, or why not: JACK serves a few servers a machine (its shm registry), and on a
    shared machine other benchmarks and test tiers hold some for a while, so wait and try again."""
    why = ""
    for _ in range(tries):
        try:
            return harness.JackServer(name=name, period=JACK_PERIOD).start()
        except (RuntimeError, OSError) as exc:
            why = " ".join(line for line in str(exc).splitlines() if "server" in line.lower())[:200]
            time.sleep(5.0)
    return why or "jackd did not start"


def run_one_tune(k: int, run: dict, rows: dict, params: dict) -> tuple[dict, int]:
    """({row: {"calls"} or {"failed"}}, JACK xruns) for planned tune k: a JACK server of its own, each row's
    engine in its own process on it at once (each on its own ports). A watchdog stops the server a
    minute past the tune's length: a wedged server then fails its clients' calls instead of holding
    the run (seen once with every row blocked in a JACK socket read for 8 minutes)."""
    server = start_server(JACK_NAME)
    if isinstance(server, str):
        return {name: {"failed": server} for name in rows}, 0
    env = {**os.environ, **server.env, "MIDO_BACKEND": harness.JACK_BACKEND}
    watchdog = threading.Timer(C.render_calls(run, params["calls"], 0.0)[1][-1]["next_s"] + 60.0, server.stop)
    watchdog.start()
    out, kids = {}, {}
    try:
        for i, (name, sets) in enumerate(rows.items()):
            kids[name] = harness.Child("tune", name, env, module=MODULE)
            kids[name].say(json.dumps({**params, "sets": sets, "run": k, "index": i}))
        for name, kid in kids.items():
            line = kid.p.stdout.readline()
            out[name] = json.loads(line) if line.strip() else {"failed": "the tune's process ended without a word"}
    finally:
        watchdog.cancel()
        for kid in kids.values():
            if kid.p.poll() is None:
                kid.p.terminate()
            kid.p.wait(timeout=30)
        xruns = server.xruns()
        server.stop()
    return out, xruns


def run_rows(rows: dict, params: dict) -> tuple[dict, int]:
    """({row: {"calls": [call figures], "failed": [tunes whose run failed]}}, JACK xruns) over every planned tune."""
    from agent.training import beat_corpus

    runs = C.plan(beat_corpus.load(), params["per_group"], params["seed"], params["groups"], params["calls"])
    res, xruns = {name: {"calls": [], "failed": []} for name in rows}, 0
    for k, run in enumerate(runs):
        got, x = run_one_tune(k, run, rows, params)
        xruns += x
        for name, r in got.items():
            if "failed" in r:
                res[name]["failed"].append(f"{run['group']} {run['tune']['name']}: {r['failed']}")
                print(f"  [{name}] FAILED {res[name]['failed'][-1]}", file=sys.stderr, flush=True)
                continue
            res[name]["calls"] += r["calls"]
            print(f"  [{name}] {run['group']:15} {run['tune']['name'][:28]:28} {run['felt_bpm']:5.1f} bpm "
                  f"{'rubato' if run['rubato'] else 'plain':6}: " + " ".join(_brief(c) for c in r["calls"]),
                  file=sys.stderr, flush=True)
    return res, xruns


def _brief(c: dict) -> str:
    d = c.get("delay_beats")
    return (f"[{c['tempo_bpm']:.0f}{'' if c['octave'] else '!'} {c['bpb_est']}/{c['division_est']} "
            f"{'db' if c['downbeat'] else '--'} {'-' if d is None else f'{d:+.2f}b'}"
            f"{' FALSE' if c['false'] else ''} grid {c['grid_on']}/{c['grid_n']}]")


def aligns_on_beat(sets) -> bool:
    """Does this row's config answer on the next beat (jam.align = "beat"): its delay target is 1 beat."""
    from agent.config import load_config

    return load_config(overrides=list(sets)).jam.align == "beat"


# -- the report ----------------------------------------------------------------------
COLS = ("calls", "tempo_octave", "metre", "bpb", "downbeat", "grid", "first_on_beat", "first_on_downbeat",
        "delay_p50_beats", "delay_p90_beats", "delay_p90_bars", "false_rate")


def fmt(v) -> str:
    return "-" if v is None else (f"{v:.2f}" if isinstance(v, float) else str(v))


def print_table(res: dict) -> None:
    print(f"{'row':11} {'metre / feel':16} " + " ".join(f"{c[:10]:>10}" for c in COLS))
    for row, r in res["rows"].items():
        lines = [*r["summary"]["groups"].items(), *r["summary"]["variants"].items(), ("ALL", r["summary"]["overall"])]
        for key, agg in lines:
            print(f"{row:11} {key:16} " + " ".join(f"{fmt(agg[c]):>10}" for c in COLS))
    print("targets (issue 20):")
    for row, r in res["rows"].items():
        print(f"  {row:11} " + "; ".join(
            f"{k} {fmt(t['value'])} {t['target']}: {'-' if t['met'] is None else ('met' if t['met'] else 'MISSED')}"
            for k, t in r["targets"].items()))
        for why in r.get("failed_tunes", []):
            print(f"  {row:11} a tune not played: {why}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", metavar="OUT", help="also write the results as JSON here")
    ap.add_argument("--quick", action="store_true", help="one tune a group (plain), two calls, the default row only")
    ap.add_argument("--per-group", type=int, help="tunes per metre and feel, alternately plain and rubato (default 5)")
    ap.add_argument("--calls", type=int, help="calls per tune (default 3; --quick 2)")
    ap.add_argument("--groups", default="", help="comma-separated groups, e.g. 'jig 6/8,air 3/4' (default all)")
    ap.add_argument("--rows", default="", help=f"comma-separated rows of {', '.join(ROWS)} (default all)")
    ap.add_argument("--seed", type=int, default=20)
    ap.add_argument("--model", default="models/default", help="model folder (default models/default)")
    a, done = harness.parse_jack_bench(ap, argv, {"player": role_player, "tune": role_tune}, "bench_interaction")
    if done is not None:
        return done
    groups = [g for g in a.groups.split(",") if g]
    bad = [g for g in groups if g not in C.GROUPS] + [r for r in a.rows.split(",") if r and r not in ROWS]
    if bad:
        raise SystemExit(f"bench_interaction: unknown group or row {bad[0]!r}: groups {list(C.GROUPS)}, rows {list(ROWS)}")
    rows = {k: v for k, v in ROWS.items() if k in a.rows.split(",")} if a.rows else (
        {"default": []} if a.quick else dict(ROWS))
    params = {"per_group": a.per_group or (1 if a.quick else 5), "calls": a.calls or (2 if a.quick else 3),
              "seed": a.seed, "groups": groups, "model": a.model}
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    started, load0 = time.perf_counter(), os.getloadavg()
    calls, xruns = run_rows(rows, params)
    res = {"date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()), "loadavg_start": load0,
           "loadavg_end": os.getloadavg(), "seconds": round(time.perf_counter() - started), "jack_xruns": xruns,
           "transport": f"jack dummy -p {JACK_PERIOD} -r 48000, a server per tune", "model": a.model, **params,
           "rows": {}}
    for name, got in calls.items():
        summ = S.summarise(got["calls"])
        res["rows"][name] = {"sets": rows[name], "summary": summ, "failed_tunes": got["failed"],
                             "targets": S.targets(summ, align_beat=aligns_on_beat(rows[name])), "calls": got["calls"]}
    print_table(res)
    harness.write_results(res, a.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
