"""Answers in the next phrase slot, phrase ends from the classifier: real tunes on a fake clock.

Tunes come from music21's corpus through agent/training/beat_corpus.py (data/beat_tunes.json, built on
first use), picked by name. The player plays a tune call by call at its written times (each note
released at 90 % of its length: a breath is taken out of the note), waiting after each call for the
agent's answer and coming in again at the tune's next phrase start a whole number of bars later; the jam
follows the tempo (BeatTracker + TempoFollower, as the engine wires them) and is told no bar line. The
model is the scripted stand-in with no rest in its next-token distribution, so the LSTM's rest
probability plays no part: the turn is the classifier's (models/default/phrase_end.json) or the silence's.
Times are compared in the tune's quarter notes, one expected value each.
"""
from __future__ import annotations

import dataclasses
import math

import pytest

from test_jam import Rig, paired  # noqa: E402

from agent.live.jam import turn as turns
from agent.music.beat import BeatTracker, TempoFollower
from agent.music.tempomap import TempoMap
from agent.training import beat_corpus

HOLD = 0.9  # of each note's written length
TOL_Q = 0.03  # quarter notes


@pytest.fixture(scope="module")
def tunes():
    return {t["name"]: t for t in beat_corpus.load()}


def rig(turn="phrase", align="phrase", bpb=4):
    r = Rig("call", source="player", turn=f'"{turn}"', align=f'"{align}"', silence_beats=1.5)
    r.tempo.beats_per_bar = bpb  # as the engine sets it from timing.beats_per_bar
    r.jam.follow = TempoFollower(r.tempo, BeatTracker(r.cfg.timing.bpm))
    v = r.vocab
    probs = [0.0] * v.size
    probs[v.note_on(69)] = 1.0  # the model expects a note, never a rest
    r.pred.next_probs = probs
    return r


def phrase_calls(tune, n):
    """The tune's first n lines as written (chorales: fermata to fermata), as (first, last) note indices."""
    e = tune["phrase_ends"]
    return ([(0, e[0])] + [(a + 1, b) for a, b in zip(e, e[1:])])[:n]


def bar_calls(tune, n, bars=4):
    """n calls of `bars` bars: each from its pickup to the note on the downbeat of its last bar."""
    notes, bar_q = tune["notes"], tune["bar_q"]
    q0 = notes[0][0]
    down = tune["bar0_q"] + math.ceil((q0 - tune["bar0_q"]) / bar_q - 1e-9) * bar_q
    out, i = [], 0
    for k in range(n):
        last = max(j for j, x in enumerate(notes) if x[0] <= down + (k * bars + bars - 1) * bar_q + 1e-6)
        out.append((i, last))
        i = next(j for j, x in enumerate(notes) if x[0] >= down + (k + 1) * bars * bar_q - (down - q0) - 1e-6)
    return out


def jam_calls(r, tune, calls, bpm):
    """Play the calls; per call (first_q, written end_q, the answer's first note in tune quarters, the
    turn record). After each answer the next call comes in at its written place, whole bars later."""
    bq, bar_q, spb = tune["beat_q"], tune["bar_q"], 60.0 / bpm
    t0 = r.clock.now() + 0.37
    shift = 0.0
    out = []
    for i0, i1 in calls:
        notes = [(q + shift, length, pitch) for q, length, pitch, *_ in tune["notes"][i0:i1 + 1]]
        events = []
        for q, length, pitch in notes:
            events += [(t0 + q / bq * spb, pitch, True), (t0 + (q + HOLD * length) / bq * spb, pitch, False)]
        for t, pitch, on in sorted(events, key=lambda e: (e[0], e[2])):
            r.run_until(t)
            r.note(pitch, on, t)
        release = max(t for t, _, on in events if not on)
        answered = r.jam.answers
        for k in range(1, 64):  # until the answer has ended (it lasts as many bars as the call)
            r.run_until(release + k * spb)
            if r.jam.answers > answered:
                break
        first = next(t for t, m in r.agent_notes() if m.type == "note_on" and m.velocity > 0 and t > release - 1.0)
        out.append((notes[0][0] - shift, notes[-1][0] + notes[-1][1] - shift, (first - t0) / spb * bq - shift,
                    dict(r.jam.responses[-1]["turn"])))
        done_q = (max(t for t, _ in r.agent_notes()) - t0) / spb * bq  # the answer's last note-off
        nxt = tune["notes"][min(i1 + 1, len(tune["notes"]) - 1)][0] + shift
        shift += max(0.0, math.ceil((done_q - nxt) / bar_q - 1e-6) * bar_q)
    assert paired(r.agent_notes())
    return out


def test_a_chorale_line_ending_on_a_short_note_is_answered_at_its_pickup_slot(tunes):
    """bwv101.7's lines begin on a pickup quarter and end on a fermata quarter on beat 3, played at its
    written length: the classifier ends the line at its release and the answer comes in on beat 4, where
    the next line would (the call's period completed), not a bar later and not after the silence."""
    out = jam_calls(rig(), tunes["bwv101.7"], phrase_calls(tunes["bwv101.7"], 3), 80.0)
    first_q, end_q, answer_q, turn = out[1]
    assert (first_q, end_q) == (8.0, 16.0)
    assert answer_q == pytest.approx(16.0, abs=TOL_Q)


def test_the_classifier_decided_the_short_ending(tunes):
    out = jam_calls(rig(), tunes["bwv101.7"], phrase_calls(tunes["bwv101.7"], 3), 80.0)
    assert out[1][3]["phrase_end"] is True


def test_the_silence_rule_answers_the_same_line_a_bar_late(tunes):
    """Without the classifier the pickup slot (0.1 beat after the release) is missed: after the
    silence's 1.5 beats the next slot is the pickup beat a bar on, a bar after the written end (the most
    the guard allows)."""
    out = jam_calls(rig(turn="silence"), tunes["bwv101.7"], phrase_calls(tunes["bwv101.7"], 3), 80.0)
    assert out[1][2] - out[1][1] == pytest.approx(4.0, abs=TOL_Q)


def test_an_answer_a_bar_late_lasts_as_many_bars_as_the_call(tunes):
    r = rig(turn="silence")
    jam_calls(r, tunes["bwv101.7"], phrase_calls(tunes["bwv101.7"], 3), 80.0)
    assert r.jam.responses[1]["answer_beats"] == pytest.approx(8.0)  # the call's two bars, pickup to pickup


def test_a_chorale_beginning_on_the_downbeat_is_answered_on_the_downbeat_after_it(tunes):
    """bwv10.7 begins on a downbeat; its third line (from quarter 36) ends on a half note at 54-56."""
    out = jam_calls(rig(), tunes["bwv10.7"], phrase_calls(tunes["bwv10.7"], 3), 80.0)
    first_q, end_q, answer_q, _ = out[2]
    assert (first_q, end_q) == (36.0, 56.0)
    assert answer_q == pytest.approx(56.0, abs=TOL_Q)


def test_a_strathspey_call_is_answered_on_the_downbeat_after_it(tunes):
    """A 4/4 strathspey of Ryan's Mammoth: 4-bar calls from a sixteenth pickup to the note on the last
    bar's downbeat; bar lines at 0.5 + 4k quarters. The pickup belongs to the downbeat."""
    tune = tunes["DUNCAN DAVIDSON -- STRATHSPEY"]
    out = jam_calls(rig(), tune, bar_calls(tune, 2), 96.0)
    first_q, end_q, answer_q, _ = out[1]
    assert first_q == 16.25
    assert answer_q == pytest.approx(32.5, abs=TOL_Q)


def test_a_6_8_jig_call_is_answered_on_the_downbeat_after_it(tunes):
    """A jig at a dotted quarter of 90: an eighth pickup, bar lines at 0.5 + 3k quarters; the beats a bar
    stay 4 (two 6/8 bars of felt beats), so the slot is the downbeat two bars on from the call's."""
    tune = tunes["BATTLE THE CASH -- JIG"]
    out = jam_calls(rig(), tune, bar_calls(tune, 2), 90.0)
    first_q, end_q, answer_q, _ = out[1]
    assert (first_q, end_q) == (12.0, 22.5)
    assert answer_q == pytest.approx(24.5, abs=TOL_Q)


def test_a_3_4_air_call_is_answered_where_its_pickup_began(tunes):
    """A 3/4 air of Aird's (timing.beats_per_bar = 3) whose 4-bar calls begin on a pickup beat: the
    third, from quarter 24, ends at 36 (bar lines at 1 + 3k); the answer comes in on the pickup beat."""
    tune = tunes["Logie o' Buchan."]
    out = jam_calls(rig(bpb=3), tune, bar_calls(tune, 3), 100.0)
    first_q, end_q, answer_q, _ = out[2]
    assert (first_q, end_q) == (24.0, 36.0)
    assert answer_q == pytest.approx(36.0, abs=TOL_Q)


def test_align_beat_answers_within_a_beat_of_the_written_end(tunes):
    out = jam_calls(rig(align="beat"), tunes["bwv101.7"], phrase_calls(tunes["bwv101.7"], 3), 80.0)
    _, end_q, answer_q, _ = out[1]
    assert answer_q - end_q == pytest.approx(0.5, abs=0.5)


def test_without_phrase_end_json_the_phrase_turn_is_the_model_turn(tunes, tmp_path):
    r = rig()
    r.controls.cfg = dataclasses.replace(r.cfg, model=dataclasses.replace(r.cfg.model, path=str(tmp_path)))
    r.controls.set("jam.turn", "silence")  # the policy is built again when the setting changes
    r.jam.turn()
    r.controls.set("jam.turn", "phrase")  # ... from the model folder now configured, which has no file
    out = jam_calls(r, tunes["bwv101.7"], phrase_calls(tunes["bwv101.7"], 3), 80.0)
    assert r.jam.turn().tracker is None
    assert out[1][2] - out[1][1] == pytest.approx(4.0, abs=TOL_Q)  # the silence decides, as with turn = "silence"


def test_a_phrase_end_file_that_cannot_be_read_is_reported_in_one_line(tmp_path):
    (tmp_path / "phrase_end.json").write_text("{not json")
    lines = []
    assert turns.load_phrase_model(tmp_path, lines.append) is None
    assert len(lines) == 1 and str(tmp_path / "phrase_end.json") in lines[0]


# -- placement on a tempo map (no player) ------------------------------------------------------

class Call:
    def __init__(self, first_t, last_t, first_beat=None):
        self.first_t, self.last_t, self.first_beat = first_t, last_t, first_beat


def test_a_slot_more_than_a_bar_after_the_calls_end_gives_way_to_the_next_beat():
    tm = TempoMap(60.0, 0.0)  # a beat a second, bars of 4 from beat 0, eighths
    call = Call(first_t=0.0, last_t=7.2)  # written end 7.5 s; the slot after 9.1 s would be 12 s, 4.5 s after it
    assert turns.place(tm, 9.1, "phrase", call) == pytest.approx(10.0)


def test_while_the_beat_is_not_trusted_phrase_and_bar_come_in_on_the_beat():
    tm = TempoMap(60.0, 0.0)
    call = Call(first_t=3.0, last_t=9.5)
    assert turns.place(tm, 9.6, "phrase", call, trusted=True) == pytest.approx(11.0)  # beat 3 + 2 bars
    assert turns.place(tm, 9.6, "phrase", call, trusted=False) == pytest.approx(10.0)


def test_a_slot_exactly_a_bar_after_the_written_end_is_kept():
    tm = TempoMap(60.0, 0.0)
    call = Call(first_t=0.0, last_t=7.9)  # released a tenth before its written end, 8 s
    assert turns.place(tm, 9.4, "phrase", call) == pytest.approx(12.0)


def test_align_bar_uses_the_tempo_maps_bar_line():
    tm = TempoMap(60.0, 0.0)
    tm.bar_beat = 2.0  # the tracked downbeat: bars at 2, 6, 10 ...
    assert turns.place(tm, 6.5, "bar", Call(first_t=0.0, last_t=6.4)) == pytest.approx(10.0)


def test_an_answer_composed_a_little_late_keeps_its_slot_and_only_its_first_note_is_late():
    """The engine thread stalls past the slot (a loaded machine): the first note goes out as soon as it
    can, the rest of the answer stays on the slot's grid (not a bar later, not shifted)."""
    r = Rig("call", align='"phrase"', turn='"silence"', silence_beats=4.0)  # 120 bpm, beat 0 at r.t0
    for k in range(4):  # quarters on beats 4-7, released at 90 %
        r.run_until(r.t0 + (4 + k) * 0.5)
        r.note(60 + k, True, r.t0 + (4 + k) * 0.5)
        r.run_until(r.t0 + (4.9 + k) * 0.5)
        r.note(60 + k, False, r.t0 + (4.9 + k) * 0.5)
    slot = r.t0 + 12 * 0.5  # the call's first beat + 2 bars (the silence ends it at beat 11.9)
    r.run_until(slot - 0.1)  # before the answer is composed (at the turn, 0.05 s before the slot)
    r.clock.set(slot + 0.1)  # the thread wakes 0.2 beat after the slot: composing runs late
    r.wake = r.jam.tick(r.clock.now())
    r.run_until(slot + 2.0)
    ons = [t for t, m in r.agent_notes() if m.type == "note_on" and m.velocity > 0]
    assert ons[0] == pytest.approx(slot + 0.1 + r.jam.lead_s, abs=1e-6)
    assert ons[1] == pytest.approx(slot + 0.25, abs=1e-6)  # the script's second note, an eighth after the slot
    # nothing of the answer (a note-on, or the first note's own note-off) is due before its late first note
    assert min(t for t, m in r.agent_notes()) == pytest.approx(ons[0], abs=1e-6)
