"""Answers in the player's time, on a fake clock: tempo followed, first note on the beat, turn-taking.

The player is never told to the agent: it plays at its own tempo and phase,
the jam follows it (BeatTracker + TempoFollower, as the engine wires them).
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from test_jam import Rig, paired  # noqa: E402

from agent.music.beat import BeatTracker, TempoFollower
from agent.live.jam.turn import ModelTurn

# a chorale-like phrase: (pitch, beat, length in beats); it ends on a held note (a cadence)
PHRASE = [(67, 0, 1), (67, 1, 1), (69, 2, 1), (71, 3, 0.5), (72, 3.5, 0.5), (71, 4, 1), (69, 5, 1), (67, 6, 2)]
# the same line with a breath: the note on beat 2 is cut to half a beat, then the phrase goes on
BREATH = [(67, 0, 1), (67, 1, 1), (69, 2, 0.5), (71, 3, 0.5), (72, 3.5, 0.5), (71, 4, 1), (69, 5, 1), (67, 6, 2)]


def follow_rig(bpm_player, *, turn="model", align="beat", silence_beats=1.5, **jam):
    r = Rig("call", source="player", turn=f'"{turn}"', align=f'"{align}"', silence_beats=silence_beats,
            response_bars=1.0, **jam)
    r.jam.follow = TempoFollower(r.tempo, BeatTracker(r.cfg.timing.bpm))
    return r


def perform(r, notes, bpm, t0, *, hold=0.95):
    """Play notes (beats) at bpm from t0 (s), each held `hold` of its length; returns the last release (s)."""
    spb = 60.0 / bpm
    events = []
    for pitch, b, d in notes:
        events.append((t0 + b * spb, pitch, True))
        events.append((t0 + (b + d * hold) * spb, pitch, False))
    for t, pitch, on in sorted(events, key=lambda e: (e[0], e[2])):
        r.run_until(t)
        r.note(pitch, on, t)
    return max(t for t, _, on in events if not on)


def first_agent_on(r, after_s):
    return next(t for t, m in r.agent_notes() if m.type == "note_on" and m.velocity > 0 and t >= after_s)


def beats_off_grid(t, t0, bpm, unit=1.0):
    x = (t - t0) / (60.0 / bpm) / unit
    return abs(x - round(x)) * unit


@pytest.mark.parametrize("bpm", [72.0, 130.0])
def test_a_cadence_is_answered_on_the_players_next_beat_at_the_players_tempo(bpm):
    r = follow_rig(bpm)
    t0 = r.clock.now() + 0.731  # the player's own phase, not the agent's
    # two phrases: the first settles the tempo, the second is the one we time
    perform(r, PHRASE, bpm, t0)
    t1 = t0 + 16 * 60.0 / bpm
    release = perform(r, PHRASE, bpm, t1)
    r.run_until(release + 6 * 60.0 / bpm)  # the one-bar answer, and its last note-off
    assert r.tempo.bpm == pytest.approx(bpm, rel=0.01)
    first = first_agent_on(r, release)
    delay_beats = (first - release) / (60.0 / bpm)
    assert 0 < delay_beats <= 1.0  # the next beat, not a fixed 600 ms
    assert beats_off_grid(first, t0, bpm) < 0.01  # on the player's beat
    rec = r.jam.responses[-1]
    assert rec["turn"]["long_note"] and rec["turn"]["early"]
    # the answer's notes run at the player's tempo: every onset on its eighth grid
    ons = [t for t, m in r.agent_notes() if m.type == "note_on" and m.velocity > 0 and t >= first]
    assert len(ons) >= 3 and all(beats_off_grid(t, t0, bpm, 0.5) < 0.01 for t in ons)
    assert paired(r.agent_notes())


def test_a_breath_inside_the_phrase_is_not_answered():
    bpm = 100.0
    r = follow_rig(bpm)
    t0 = r.clock.now() + 0.2
    perform(r, PHRASE, bpm, t0)
    t1 = t0 + 16 * 0.6
    release = perform(r, BREATH, bpm, t1)
    breath_end = t1 + 3 * 0.6
    assert all(t < t1 or t > release for t, _ in r.agent_notes())  # nothing during the phrase or its breath
    r.run_until(release + 2.4)
    assert first_agent_on(r, release) > release
    assert not r.jam.responses[-1]["barged"]
    assert len([x for x in r.jam.responses if x["first_note_t"] and t1 < x["first_note_t"] < breath_end]) == 0


def test_without_evidence_the_model_turn_waits_for_the_silence_threshold():
    bpm = 120.0
    r = follow_rig(bpm, silence_beats=1.5)
    t0 = r.clock.now() + 0.1
    short_end = [(p, b, d) for p, b, d in PHRASE[:-1]] + [(67, 6, 0.5)]  # ends on a short, off-beat-free note
    perform(r, PHRASE, bpm, t0)
    release = perform(r, short_end, bpm, t0 + 8.0)
    r.run_until(release + 3.0)
    first = first_agent_on(r, release)
    assert (first - release) / 0.5 >= 1.5  # heard out: the silence threshold in beats, then the next beat
    assert beats_off_grid(first, t0, bpm) < 0.01
    assert not r.jam.responses[-1]["turn"]["early"]


def test_the_models_expected_rest_alone_can_end_the_phrase():
    bpm = 120.0
    r = follow_rig(bpm)
    v = r.vocab
    probs = [0.0] * v.size
    probs[v.shift(24)] = 0.8  # the model: two beats of rest come next
    probs[v.note_on(69)] = 0.2
    r.pred.next_probs = probs
    t0 = r.clock.now() + 0.1
    perform(r, PHRASE, bpm, t0)
    release = perform(r, PHRASE[:-1] + [(67, 6, 0.5)], bpm, t0 + 8.0)
    r.run_until(release + 3.0)
    assert r.jam.responses[-1]["turn"]["p_rest"] == pytest.approx(0.8)
    assert (first_agent_on(r, release) - release) / 0.5 <= 1.0


@pytest.mark.parametrize("bpm", [66.0, 132.0])
def test_the_silence_rule_counts_beats_of_the_followed_tempo(bpm):
    r = follow_rig(bpm, turn="silence", silence_beats=1.0)
    t0 = r.clock.now() + 0.3
    perform(r, PHRASE, bpm, t0)
    release = perform(r, PHRASE, bpm, t0 + 16 * 60 / bpm)
    r.run_until(release + 4 * 60 / bpm)
    delay = (first_agent_on(r, release) - release) / (60 / bpm)
    assert 1.0 <= delay <= 2.0  # a fast player is answered as soon, in beats, as a slow one


def test_phrase_alignment_counts_bars_from_the_phrases_first_beat():
    """The call begins on a beat and lasts two bars: the answer comes in two bars after its first beat
    (where the old align = "bar" came in: bars from the phrase's first beat)."""
    bpm = 90.0
    r = follow_rig(bpm, align="phrase")
    t0 = r.clock.now() + 0.4
    perform(r, PHRASE, bpm, t0)
    t1 = t0 + 16 * 60 / bpm
    release = perform(r, PHRASE, bpm, t1)
    r.run_until(release + 6 * 60 / bpm)
    first = first_agent_on(r, release)
    assert (first - t1) / (60 / bpm) == pytest.approx(8.0, abs=0.01)


def test_bar_alignment_comes_in_on_the_tempo_maps_bar_line():
    """align = "bar": the bar line the tempo map carries (the player's tracked downbeat), not the call's."""
    bpm = 90.0
    r = follow_rig(bpm, align="bar")
    t0 = r.clock.now() + 0.4
    perform(r, PHRASE, bpm, t0)
    release = perform(r, PHRASE, bpm, t0 + 16 * 60 / bpm)
    r.run_until(release + 6 * 60 / bpm)
    first = first_agent_on(r, release)
    pos = r.tempo.bar_position(first)
    assert min(pos, r.tempo.beats_per_bar - pos) == pytest.approx(0.0, abs=0.01)


def test_fixed_source_ignores_the_players_tempo():
    r = follow_rig(130.0)
    r.controls.set("timing.source", "fixed")
    perform(r, PHRASE, 130.0, r.clock.now() + 0.1)
    assert r.tempo.bpm == 120.0  # the rig's configured tempo
    assert isinstance(r.jam.turn(), ModelTurn)


def test_off_grid_rests_are_pushed_down_and_the_offset_follows_the_tempo_map():
    from agent.music.tempomap import TempoMap
    from agent.model.sampler import SamplingControls
    from agent.live.jam.shaping import Shaping

    r = follow_rig(120.0)
    v = r.vocab
    sh = Shaping(v)
    src = SamplingControls()
    on_grid = dict(sh.controls(src, 3.0, grid=0).token_bias)
    assert v.shift(6) not in on_grid and v.shift(12) not in on_grid  # an eighth, a beat: stay on the grid
    assert on_grid[v.shift(4)] == -3.0 and on_grid[v.shift(3)] == -3.0  # a triplet, a sixteenth: leave it
    two_past = dict(sh.controls(src, 3.0, grid=2).token_bias)
    assert v.shift(4) not in two_past and two_past[v.shift(6)] == -3.0  # 2 + 4 ticks: back on the grid
    assert sh.controls(src, 0.0, grid=2).token_bias == sh.controls(src, 0.0).token_bias  # 0 = off
    tm = TempoMap(120.0, 10.0)
    assert sh.grid_offset(tm, 10.0 + 0.25 + 2 / 24) == 2  # an eighth and two ticks past beat 0


def test_a_long_first_note_is_no_cadence():
    bpm = 110.0
    # the player comes in a little after the beat following the long first note (humanised)
    opening_half = [(62, 0, 2), (64, 2.03, 0.97), (65, 3, 1), (67, 4, 1), (65, 5, 1), (64, 6, 2)]
    r = follow_rig(bpm)
    t0 = r.clock.now() + 0.2
    perform(r, PHRASE, bpm, t0)
    t1 = t0 + 16 * 60 / bpm
    release = perform(r, opening_half, bpm, t1)
    assert not [t for t, m in r.agent_notes() if t1 < t < release]  # the phrase was heard out
    r.run_until(release + 6 * 60 / bpm)
    assert (first_agent_on(r, release) - release) / (60 / bpm) <= 1.0  # and its end answered on the next beat


def test_a_long_note_inside_the_phrase_answered_on_the_beat_is_withdrawn_when_the_player_goes_on():
    bpm = 100.0
    spb = 0.6
    # a half note inside the phrase (taken for a cadence), the player going on just after the beat
    inner_half = [(67, 0, 1), (69, 1, 1), (71, 2, 1), (72, 3, 1), (71, 4, 2), (69, 6.04, 0.96), (67, 7, 2)]
    r = follow_rig(bpm)
    t0 = r.clock.now() + 0.2
    perform(r, PHRASE, bpm, t0)
    t1 = t0 + 16 * spb
    release = perform(r, inner_half, bpm, t1)
    sent_inside = [t for t, m in r.agent_notes() if m.type == "note_on" and m.velocity > 0 and t1 < t < release]
    assert sent_inside  # it came in on beat 6 (the half note looked like a cadence) ...
    assert r.jam.withdrawn == 1 and r.jam.phrase is not None and r.jam.phrase.index == 2  # ... and backed off
    assert not r.sched.open_notes
    r.run_until(release + 6 * spb)
    rec = r.jam.responses[-1]
    assert rec["phrase"] == 2 and rec["heard_notes"] == 7  # one phrase, heard to its end
    assert (first_agent_on(r, release) - release) / spb <= 1.0  # and its real end answered on the next beat
    assert paired(r.agent_notes())
