"""Real tunes into `antiphon play` over real JACK ports: the answer on the player's downbeat and grid.

A player process plays two calls (a tune's first two phrases, as the
interaction benchmark plays them: agent/bench/interaction_calls.py) of a
swung reel and of a 6/8 jig into `antiphon play` (the default config; it is
never told the tempo, the metre or the feel); a reader process stamps what
the agent sends. The answer to the second call (the tracker has heard the
tune's first phrase) must start on one of the player's bar lines, and every
note of it must sit on the player's subdivision: the swung eighth (2/3 of the
beat at swing 2.0) in the reel, thirds of the dotted quarter in the jig. No
agent note may sound while a call is being played.

The tolerance is the tier's: 0.06 beat plus one JACK period (JACK moves a
message at cycle boundaries; conftest.py says why the period is 256 frames).
"""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

from agent.bench import interaction_calls as C
from agent.bench import interaction_score as S

pytestmark = [pytest.mark.realmidi, pytest.mark.slow]

REEL = ("ryansMammoth/AlhambraReel.abc", "The Alhambra -- Reel", "2/2")  # played in 4/4, swung
JIG = ("ryansMammoth/ConnellysAleJig.abc", "Connelly's Ale -- Jig", "6/8")


def play_tune(run: dict, tag: str, env: dict, model_dir, jack) -> tuple[list[dict], str]:
    """The run's first two calls into `antiphon play`; each call's figures (interaction_score) and play's output."""
    from agent.bench import harness
    from agent.bench import interaction as inter

    kbd, agent = f"Kbd{tag}", f"Antiphon{tag}"
    player = inter.Player(kbd, env)
    p = subprocess.Popen([sys.executable, "-m", "agent", "play", "--backend", "jack", "--in", kbd, "--virtual", agent,
                          "--model", str(model_dir), "--set", "jam.response_bars=1.0", "--set", "sampling.seed=3"],
                         env={**env, "PYTHONUNBUFFERED": "1"}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert "listening on" in p.stdout.readline()
        reader = harness.Child("reader", agent, env)
        events, facts = C.render_calls(run, 2, time.perf_counter() + 0.5)
        player.say(json.dumps(events))
        player.result()
        time.sleep(max(0.0, facts[-1]["next_s"] - time.perf_counter()))
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=30)
        assert p.returncode == 0, err
        reader.say("stop")
        got = reader.result()
    finally:
        if p.poll() is None:
            p.kill()
        player.say("quit")
    ons = [t for t, b in got if b[0] & 0xF0 == 0x90 and b[2] > 0]
    slack = jack.period / jack.rate
    no_snap = {"bpm": 1.0, "bpb": 0, "division": 0, "swing": 1.0, "bar_s": 0.0}  # play's tempo map is not ours to read
    return [S.score_call(f, no_snap, ons, slack) for f in facts], out


def check(calls: list[dict], out: str, jack, xruns0: int) -> None:
    keep = ("false", "answered", "delay_beats", "first_x", "first_on_beat", "first_on_downbeat", "grid_on", "grid_n")
    why = f"{[{k: c.get(k) for k in keep} for c in calls]}\n{out}\nxruns {jack.xruns() - xruns0}"
    assert [c["false"] for c in calls] == [False, False], why
    second = calls[1]
    assert second["answered"], why
    assert second["first_on_downbeat"], why  # on one of the player's bar lines
    assert second["grid_on"] == second["grid_n"], why  # every note on the player's subdivision


@pytest.mark.xfail(strict=False, reason="measured at 20:42 UTC on 74f54bd's tree: both answers start on the player's bar line "
                   "(4.0 beats after the written end, beat 20), but 5 of 10 (and 2 of 7) of their note-ons are on the "
                   "swung eighths at swing 2.0: the agent does not swing yet (an earlier run passed: its answer kept to beats)")
def test_a_swung_reel_is_answered_on_the_players_bar_line_and_swung_grid(jack, jack_env, model_dir):
    xruns0 = jack.xruns()
    run = {"group": "reel 4/4 swung", "tune": C.abc_tune(*REEL), "felt_bpm": 100.0, "rubato": False, "swing": 2.0,
           "seed": 5}
    calls, out = play_tune(run, "Reel", jack_env, model_dir, jack)
    check(calls, out, jack, xruns0)


@pytest.mark.xfail(strict=True, reason="measured at 20:43 UTC on 74f54bd's tree (at 19:30 on c01ad07 alike): `play` reports "
                   "100 bpm (the default: the 80 bpm jig not followed) for both calls; the second answer starts 1.48 "
                   "beats after the written end, at beat 9.48 (off the beat), 7 of its 13 notes on the thirds")
def test_a_6_8_jig_is_answered_on_the_players_bar_line_and_in_thirds(jack, jack_env, model_dir):
    xruns0 = jack.xruns()
    run = {"group": "jig 6/8", "tune": C.abc_tune(*JIG), "felt_bpm": 80.0, "rubato": False, "swing": 1.0, "seed": 5}
    calls, out = play_tune(run, "Jig", jack_env, model_dir, jack)
    check(calls, out, jack, xruns0)


def test_the_benchmarks_quick_run_plays_scores_and_rates_a_tune(jack, model_dir, tmp_path, capsys):
    from agent.bench import interaction as inter

    out = tmp_path / "bench.json"
    assert inter.main(["--quick", "--groups", "polka 2/4", "--model", str(model_dir), "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    row = res["rows"]["default"]
    assert [(c["group"], c["call"]) for c in row["calls"]] == [("polka 2/4", 0), ("polka 2/4", 1)]
    assert row["summary"]["overall"]["answered"] == 2, row["calls"]
    assert set(row["targets"]) == {"tempo_octave", "metre", "first_on_beat", "first_on_downbeat", "false_rate",
                                   "grid_min_group", "delay_p90_beats" if inter.aligns_on_beat([]) else "delay_p90_bars"}
    assert "targets (issue 20):" in capsys.readouterr().out
