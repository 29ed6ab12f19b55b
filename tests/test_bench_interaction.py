"""The interaction benchmark's own arithmetic: the calls it plays (real corpus tunes) and the figures it
reports, on made-up answers. The benchmark run itself (real JACK) is scripts/bench_interaction.py."""
from __future__ import annotations

import math

import pytest

from agent.bench import interaction_calls as C
from agent.bench import interaction_score as S


@pytest.fixture(scope="module")
def jig():
    return C.abc_tune("ryansMammoth/ConnellysAleJig.abc", "Connelly's Ale -- Jig", "6/8")


@pytest.fixture(scope="module")
def reel():
    return C.abc_tune("ryansMammoth/AlhambraReel.abc", "The Alhambra -- Reel", "2/2")


@pytest.fixture(scope="module")
def chorale():
    from music21 import corpus

    from agent.training import beat_corpus

    tune = beat_corpus.tune_from_score(corpus.parse("bach/bwv253").parts[0], "bwv253", "bach", "4/4")
    return {**tune, "kind": "chorale"}


def run_of(tune, bpm, rubato=False, swing=1.0):
    return {"group": "g", "tune": tune, "felt_bpm": bpm, "rubato": rubato, "swing": swing, "seed": 3}


def ons_of(events):
    return [t for t, d in events if d[0] == 0x90]


def test_a_2_2_reel_is_played_as_a_4_4_reel(reel):
    assert (reel["metre"], reel["beat_q"], reel["bpb"], reel["division"], reel["kind"]) == ("4/4", 1.0, 4, 2, "reel")


def test_a_jigs_calls_sit_on_its_bar_lines_in_dotted_quarter_beats_with_room_after(jig):
    events, facts = C.render_calls(run_of(jig, 90.0), 3, start_s=10.0)
    assert len(facts) == 3
    f = facts[0]
    assert f["period_s"] == pytest.approx(60 / 90, abs=1e-9)  # the felt beat: a dotted quarter at 90
    assert f["felt_bpm"] == pytest.approx(90.0, abs=1e-6)
    assert (f["bpb"], f["division"], f["sub"]) == (2, 3, [0.0, 1 / 3, 2 / 3])
    xs = [S.beats(f, t) for t in ons_of(events) if t < f["end_s"]]
    assert sum(S.on_grid(x, f["sub"], 1e-6) for x in xs) == len(xs)  # every note-on on the jig's thirds
    assert S.beats(f, f["end_s"]) == pytest.approx(10.0, abs=1e-6)  # a pickup bar + 4 bars of 6/8
    assert S.beats(f, f["next_s"]) == pytest.approx(16.0, abs=1e-6)  # + the slot's bar, the answer's, a bar of room
    assert S.beats(facts[1], facts[1]["ref_s"] + 1e-9) == pytest.approx(0.0, abs=1e-6)
    assert (facts[1]["ref_s"] - f["next_s"]) / f["period_s"] == pytest.approx(0.0, abs=1e-6)  # next call on a bar line


def test_the_calls_last_note_is_held_to_its_written_end_and_a_breath_shortens_a_note(chorale):
    events, facts = C.render_calls(run_of(chorale, 60.0), 1, start_s=0.0)
    f = facts[0]
    offs = [t for t, d in events if d[0] == 0x80]
    assert max(offs) == pytest.approx(f["end_s"], abs=1e-9)  # the last release is the written end
    # bwv253 opens with a quarter's pickup; its first fermata (a quarter on beat 3 of bar 3) ends 11 beats
    # after the pickup's bar line, as written
    assert S.beats(f, f["end_s"]) == pytest.approx(11.0, abs=1e-6)
    # the breath: the tune's note 4, a quarter on beat 6 from the bar line, is held half a beat
    assert C.breath_note(chorale, C.phrases(chorale, 1)[0]) == 4
    on4 = next(t for t, d in events if d[0] == 0x90 and abs(t - 6.0) < 1e-6)
    off4 = min(t for t in offs if t > on4)
    assert off4 - on4 == pytest.approx(0.5, abs=1e-6)


def test_a_swung_reel_puts_its_off_beat_eighths_at_the_swing_ratio(reel):
    swing = 2.0
    events, facts = C.render_calls(run_of(reel, 100.0, swing=swing), 1, start_s=0.0)
    f = facts[0]
    assert f["sub"] == pytest.approx([0.0, 2 / 3])
    xs = [S.beats(f, t) for t in ons_of(events)]
    offbeat = [x for x in xs if abs(x - math.floor(x) - 2 / 3) < 1e-6]
    written = [n for n in reel["notes"][:len(xs)] if abs((n[0] - reel["bar0_q"]) % 1.0 - 0.5) < 1e-6]
    assert len(offbeat) == len(written) > 10


def test_rubato_moves_the_onsets_and_varies_the_velocities_but_keeps_the_written_end(jig):
    plain, pf = C.render_calls(run_of(jig, 90.0), 1, start_s=0.0)
    rub, rf = C.render_calls(run_of(jig, 90.0, rubato=True), 1, start_s=0.0)
    assert len(ons_of(rub)) == len(ons_of(plain))
    assert len({d[2] for _, d in rub if d[0] == 0x90}) > 5
    assert max(t for t, d in rub if d[0] == 0x80) == pytest.approx(rf[0]["end_s"], abs=1e-9)
    moved = [abs(a - b) for a, b in zip(ons_of(rub), ons_of(plain))]
    assert sum(m > 0.01 for m in moved) > len(moved) // 2


FACT = {"start_s": 1.0, "end_s": 9.0, "next_s": 15.0, "ref_s": 1.0, "period_s": 0.5, "bpb": 2, "division": 3,
        "swing": 1.0, "sub": [0.0, 1 / 3, 2 / 3], "felt_bpm": 120.0}
SNAP = {"bpm": 120.5, "bpb": 4, "division": 3, "swing": 1.0, "bar_s": 9.0}


def test_score_call_counts_a_note_during_the_call_and_rates_the_answer_on_the_players_grid():
    ons = [4.2,  # during the call (a withdrawn answer still sounds): a false trigger
           10.0, 10.0 + 0.5 / 3, 10.3]  # the answer: beat 18 (a bar line), a third later, then off the thirds
    r = S.score_call(FACT, SNAP, ons, slack_s=0.0)
    assert r["false"] is True
    assert r["delay_beats"] == pytest.approx(2.0) and r["delay_bars"] == pytest.approx(1.0)
    assert (r["first_on_beat"], r["first_on_downbeat"]) == (True, True)
    assert (r["grid_on"], r["grid_n"]) == (2, 3)
    assert (r["octave"], r["metre"], r["bpb"], r["downbeat"]) == (True, True, False, True)


def test_a_doubled_tempo_is_the_wrong_octave_and_its_downbeat_is_not_counted():
    r = S.score_call(FACT, {**SNAP, "bpm": 240.0, "division": 2}, [9.25], slack_s=0.0)
    assert (r["octave"], r["metre"], r["downbeat"], r["false"]) == (False, False, False, False)
    assert (r["first_on_beat"], r["delay_beats"]) == (False, pytest.approx(0.5))


def test_targets_rate_tempo_after_each_tunes_first_call_and_the_delay_in_beats_with_align_beat():
    base = S.score_call(FACT, SNAP, [9.5], slack_s=0.0)  # one beat late, on beat 17 (not a downbeat)
    calls = [{**base, "group": "jig", "variant": "plain", "call": 0, "octave": False},
             {**base, "group": "jig", "variant": "plain", "call": 1}]
    summ = S.summarise(calls)
    assert summ["overall"]["tempo_octave"] == pytest.approx(1.0)  # the first call's wrong tempo is not rated
    t = S.targets(summ, align_beat=True)
    assert t["delay_p90_beats"]["value"] == pytest.approx(1.0) and t["delay_p90_beats"]["met"] is True
    assert t["first_on_downbeat"]["met"] is False and t["false_rate"]["met"] is True
    assert S.targets(summ, align_beat=False)["delay_p90_bars"]["value"] == pytest.approx(0.5)
