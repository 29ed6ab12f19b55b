"""Answers on the player's beat over real JACK ports: the agent is never told the tempo.

`antiphon play` (the default config: timing.source = "player", jam.turn =
"phrase", jam.align = "phrase"; each phrase begins on a beat and lasts two
bars, so its phrase slot is the beat its held last note ends on) listens to
a player process playing two
chorale-like phrases at 130 bpm with humanised timing; a reader process
stamps what it sends. The answer's first note must land on the player's
beat within 0.06 beat, at most a beat after the phrase's last release, and
`play` must report the tempo it followed. A second tempo runs through the
interaction benchmark's own engine run.

"The player's beat" is the beat as the player last played it: a line (phase
and tempo) through the phrase's last four on-beat note-ons as the player
process sent them, extended to the answer's beat.
The player is humanised (onsets off the grid by up to 0.05 beat), and a
follower answers where the player is, not where a metronome would be: with
this seed the second phrase ends about 19 ms behind the grid on two of its
last three beats, and the answer follows it there (+20-25 ms from the
metronome's beat); the first phrase's last beats rush (+10, +4, -7, -12 ms),
and an answer two beats later that follows the rush lands ~30 ms early.

The tolerance is 0.06 beat (the interaction benchmark's grid tolerance)
plus one JACK period of the tier's server: JACK moves a message at cycle
boundaries, so the player's notes reach the agent, and the answer reaches
the reader, up to a period late each (5.3 ms at -p 256; conftest.py says
why 256).
"""
from __future__ import annotations

import re
import signal
import subprocess
import sys
import time

import pytest

pytestmark = [pytest.mark.realmidi, pytest.mark.slow]

# (pitch, beat, length): a phrase with a breath (beat 2 is cut short in `schedule`) ending on a held note
NOTES = [(67, 0.0, 1.0), (67, 1.0, 1.0), (69, 2.0, 1.0), (71, 3.0, 0.5), (72, 3.5, 0.5), (71, 4.0, 1.0),
         (69, 5.0, 1.0), (67, 6.0, 2.0)]
PHRASES = [{"notes": NOTES, "breath": 2}, {"notes": [(p + 2, b, d) for p, b, d in NOTES], "breath": 2}]


@pytest.fixture(scope="module")
def inter():
    from agent.bench import interaction

    return interaction


def first_ons_after(got, facts):
    ons = [t for t, b in got if b[0] & 0xF0 == 0x90 and b[2] > 0]
    return [min((t for t in ons if f["end_s"] <= t < f["next_s"]), default=None) for f in facts]


def player_beat(played, grid0: float, spb: float, fact: dict, beat: int, last: int = 4) -> float:
    """Where the player put beat `beat`, as his last `last` on-beat note-ons of the phrase imply it, in
    beats from the metronome's grid: a least-squares line (phase and tempo) through their offsets, at
    the times the player process sent them, extended to `beat`."""
    beats = [(t - grid0) / spb for t, b in played
             if b[0] & 0xF0 == 0x90 and b[2] > 0 and fact["start_s"] - 0.1 <= t <= fact["end_s"]]
    on = [(round(x), x - round(x)) for x in beats if abs(x - round(x)) <= 0.1][-last:]
    n = len(on)
    mx, my = sum(k for k, _ in on) / n, sum(o for _, o in on) / n
    sxx = sum((k - mx) ** 2 for k, _ in on)
    slope = sum((k - mx) * (o - my) for k, o in on) / sxx if sxx else 0.0
    return my + slope * (beat - mx)


def tolerance_beats(jack, spb: float) -> float:
    return 0.06 + jack.period / jack.rate / spb


def player_late_ms(events, played) -> float:
    """How late the player process sent its latest-sent message, ms (its schedule vs its own log)."""
    return max(((s - t) * 1e3 for (t, _), (s, _) in zip(events, played)), default=0.0)


def test_antiphon_play_with_no_tempo_given_answers_a_130_bpm_player_on_the_beat(inter, bench, jack, jack_env,
                                                                                  model_dir):
    bpm = 130.0
    xruns0 = jack.xruns()
    spb = 60.0 / bpm
    player = inter.Player("Kbd130", jack_env)
    p = subprocess.Popen([sys.executable, "-m", "agent", "play", "--backend", "jack", "--in", "Kbd130",
                          "--virtual", "AntiphonBeat", "--model", str(model_dir),
                          "--set", "jam.response_bars=1.0", "--set", "sampling.seed=3"],
                         env={**jack_env, "PYTHONUNBUFFERED": "1"}, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        assert "listening on" in p.stdout.readline()
        reader = bench.Child("reader", "AntiphonBeat", jack_env)
        grid0 = time.perf_counter() + 0.5
        events, facts = inter.schedule(PHRASES, bpm, grid0, seed=5)
        player.say(inter.json.dumps(events))
        played = player.result()
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
    firsts = first_ons_after(got, facts)
    xruns = jack.xruns() - xruns0
    late_ms = player_late_ms(events, played)  # a loaded machine can make the player itself late
    assert all(t is not None for t in firsts), (firsts, out, xruns, late_ms)
    for t, f in zip(firsts, facts):
        beats = (t - grid0) / spb
        phase = player_beat(played, grid0, spb, f, round(beats))
        assert abs(beats - round(beats) - phase) <= tolerance_beats(jack, spb), (beats, phase, out, xruns, late_ms)
        assert (t - f["end_s"]) / spb <= 1.0, out  # answered on the next beat after the release
    for f in facts:  # nothing during the phrases (the breath included)
        assert not [t for t, b in got if b[0] & 0xF0 == 0x90 and b[2] > 0 and f["start_s"] < t < f["end_s"]]
    followed = [float(x) for x in re.findall(r"answered .* at ([0-9.]+) bpm", out)]
    assert len(followed) == 2 and all(abs(x - bpm) / bpm <= 0.03 for x in followed), out
    assert "0 left open" in out


def turns(run) -> list[dict]:
    """What the engine itself did with each phrase (for assertion messages: an answer the engine
    played but the reader did not hear is the transport's; one it never played is the agent's)."""
    keep = ("kind", "phrase", "notes", "barged", "stopped", "bpm", "turn")
    return [{k: r.get(k) for k in keep} | {"first_note_s": r["first_note_t"] and r["first_note_t"] - run["grid0_s"]}
            for r in run["responses"]]


def test_a_slower_player_is_followed_too(inter, jack, jack_env, model_dir):
    xruns0 = jack.xruns()
    run = inter.run_tempo(84.0, PHRASES, str(model_dir), jack_env, seed=6)
    row = inter.score(run)
    row["jack_xruns"], row["turns"] = jack.xruns() - xruns0, turns(run)
    row["player_late_ms"] = player_late_ms(run["events"], run["played"])
    assert row["answered"] == 2 and row["false_trigger_rate"] == 0.0, row
    assert row["delay_p90_beats"] <= 1.0, row
    assert row["tempo_error_pct"] <= 3.0, row
    spb = 60.0 / 84.0
    for t, f in zip(first_ons_after(run["got"], run["facts"]), run["facts"]):
        beats = (t - run["grid0_s"]) / spb
        phase = player_beat(run["played"], run["grid0_s"], spb, f, round(beats))
        assert abs(beats - round(beats) - phase) <= tolerance_beats(jack, spb), (beats, phase, row)
