"""The jam policy on a fake clock: call-and-response, barge-in, accompany rollback, solo, live controls.

No sleeping and no threads: the test moves the clock, calls `jam.tick` and
`scheduler.pump` at the times they ask for, and reads what was sent.
"""
from __future__ import annotations

import sys
from pathlib import Path

import mido
import numpy as np
import pytest

from scripted import ScriptedPredictor  # noqa: E402

from agent.music.tempomap import FakeClock, TempoMap
from agent.config import load_config
from agent.live.controls import LiveControls
from agent.live.jam.policy import Jam
from agent.live.scheduler import Scheduler
from helpers import ListOut

BPM = 120.0  # 0.5 s a beat, 1/24 s a tick at resolution 12


class Rig:
    def __init__(self, mode="call", script=None, source="fixed", **jam):
        # the plain rule at a fixed tempo unless a test asks for more (tests/live/jam/test_turn.py does)
        jam = {"turn": '"silence"', "align": '"none"', "silence_beats": 0.0, **jam}
        sets = [f"timing.bpm={BPM}", f"jam.mode=\"{mode}\"", f'timing.source="{source}"'] + [
            f"jam.{k}={v}" for k, v in jam.items()]
        self.cfg = load_config(overrides=sets)
        self.vocab = self.cfg.vocab()
        self.clock = FakeClock(100.0)
        self.out = ListOut(self.clock)
        self.sched = Scheduler(self.out, self.clock)
        self.tempo = TempoMap(BPM, self.clock.now())
        self.controls = LiveControls(self.cfg)
        self.pred = ScriptedPredictor(self.vocab, **({"script": script} if script else {}))
        self.lines = []
        self.jam = Jam(self.pred, self.sched, self.tempo, self.controls, self.clock, self.vocab,
                       report=self.lines.append)
        self.wake = self.jam.tick(self.clock.now())
        self.t0 = self.clock.now()

    def run_until(self, t_s):
        """Advance time to t_s, waking the jam and the scheduler whenever they asked to be."""
        while True:
            nd = self.sched.next_due()
            nxt = min(x for x in (self.wake, nd, t_s) if x is not None)
            self.clock.set(nxt)
            self.sched.pump()
            self.wake = self.jam.tick(self.clock.now())
            if nxt >= t_s:
                return

    def note(self, pitch, on, t_s):
        """A player event, then the policy step the listener runs right after it."""
        self.jam.player_note(pitch, 90 if on else 0, on, t_s)
        self.wake = self.jam.tick(self.clock.now())

    def play(self, pitches, *, start_s, note_s=0.2, gap_s=0.25):
        """The player plays pitches in turn from start_s (absolute), the policy running in between."""
        t = start_s
        for p in pitches:
            self.run_until(t)
            self.note(p, True, t)
            self.run_until(t + note_s)
            self.note(p, False, t + note_s)
            t += gap_s
        return t - gap_s + note_s  # time of the last note-off

    def agent_notes(self):
        return [(t, m) for t, m in self.out.sent if m.type in ("note_on", "note_off")]


def paired(msgs) -> bool:
    open_ = set()
    for _, m in msgs:
        if m.type == "note_on" and m.velocity > 0:
            if m.note in open_:
                return False
            open_.add(m.note)
        elif m.type in ("note_on", "note_off"):
            open_.discard(m.note)
    return not open_


def test_call_answers_after_the_silence_threshold_as_long_as_the_call():
    r = Rig("call", silence_ms=500.0)
    last_off = r.play([60, 62, 64, 65], start_s=r.t0 + 0.1)
    thr = last_off + 0.5
    r.run_until(thr - 0.001)
    assert not r.agent_notes() and not r.jam.responses  # not a note before the threshold (composed ahead)
    r.run_until(thr + 5.0)
    sent = r.agent_notes()
    assert sent and paired(sent)
    first = sent[0][0]
    assert first == pytest.approx(thr + r.jam.lead_s, abs=1e-6)  # fake clock: exact
    rec = r.jam.responses[0]
    assert rec["heard_notes"] == 4 and not rec["barged"]
    assert rec["answer_beats"] == pytest.approx(rec["heard_beats"])  # as long as the call
    assert max(t for t, _ in sent) - first <= rec["answer_beats"] * 0.5 + 1e-6
    assert "phrase 1: heard 4 notes" in r.lines[0]
    assert not r.sched.open_notes and r.sched.dropped_late == 0 and r.sched.late == 0


def test_response_bars_sets_the_length_and_align_bar_waits_for_the_bar_line():
    r = Rig("call", silence_ms=300.0, response_bars=1.0, align='"bar"')
    last_off = r.play([60, 64], start_s=r.t0 + 0.05)
    r.run_until(last_off + 4.0)
    sent = r.agent_notes()
    first = sent[0][0]
    bar_s = 4 * 60 / BPM
    assert (first - r.t0) / bar_s == pytest.approx(round((first - r.t0) / bar_s), abs=1e-6)
    assert first > last_off + 0.3
    assert r.jam.responses[0]["answer_beats"] == 4.0
    assert max(t for t, _ in sent) <= first + bar_s + 1e-6 and paired(sent)


def test_barge_in_stops_the_answer_at_once_and_closes_its_notes():
    # one long note per step, so the barge-in lands while a note sounds
    r = Rig("call", silence_ms=300.0, response_bars=2.0, script="NOTE_ON(72) SHIFT(24) NOTE_OFF(72)")
    last_off = r.play([60, 62, 64], start_s=r.t0 + 0.1)
    r.run_until(last_off + 0.3 + 0.3)  # answer started, its first note sounding
    assert r.sched.open_notes == {(0, 72)}
    t_in = r.clock.now()
    n_fed = len(r.pred.fed)
    r.jam.player_note(67, 90, True, t_in)
    assert not r.sched.open_notes and r.sched.pending() == 0
    assert r.out.sent[-1][1].type == "note_off" and r.out.sent[-1][0] == t_in  # closed now, not later
    assert r.jam.responses[-1]["barged"] and r.jam.gen is None
    # the model saw the agent's note end, then the player's note; nothing sampled ahead survives
    tail = r.vocab.names(r.pred.fed[n_fed - 3:])
    assert "NOTE_OFF(72)" in tail and tail.endswith("NOTE_ON(67)")
    r.run_until(t_in + 3.0)
    assert paired(r.agent_notes())


def test_accompany_rolls_back_to_the_player_event_and_resamples():
    r = Rig("accompany", silence_ms=400.0, lookahead_ms=250.0)
    r.play([60], start_s=r.t0 + 0.1, note_s=0.1)
    assert r.jam.gen is not None and r.jam.gen.kind == "accompany"
    r.run_until(r.clock.now() + 0.05)
    ahead = r.jam.stream.front_s() - r.clock.now()
    assert 0 < ahead <= 0.25 + 0.5 + 1e-6  # never more than the lookahead (+ one sampled shift)
    pending_before = r.sched.pending()
    t_in = r.clock.now()
    rollbacks = r.jam.rollbacks
    r.jam.player_note(62, 90, True, t_in)
    assert r.jam.rollbacks == rollbacks + 1
    assert all(d <= t_in for d, _, _ in r.sched._heap)  # queued messages after t were dropped
    assert pending_before >= r.sched.pending()
    assert r.vocab.names(r.pred.fed[-1:]) == "NOTE_ON(62)"  # the player's note follows the rolled-back state
    r.wake = r.jam.tick(t_in)
    r.run_until(t_in + 0.1)
    r.note(62, False, t_in + 0.1)
    r.run_until(t_in + 2.0)  # silence: the agent stops
    assert r.jam.gen is None and not r.sched.open_notes
    assert paired(r.agent_notes())
    assert r.jam.responses[-1]["kind"] == "accompany"
    assert r.sched.dropped_late == 0 and r.sched.late == 0


def test_solo_plays_until_cut_and_cut_closes_everything():
    r = Rig("solo", script="NOTE_ON(72) NOTE_ON(76) SHIFT(30) NOTE_OFF(72) NOTE_OFF(76)")
    r.run_until(r.t0 + 3.0)
    assert len([m for _, m in r.agent_notes() if m.type == "note_on"]) >= 4
    r.run_until(r.t0 + 3.2)  # inside a note
    assert r.sched.open_notes
    r.jam.cut(r.clock.now())
    assert not r.sched.open_notes and r.sched.pending() == 0 and paired(r.agent_notes())


def test_live_controls_take_effect_on_the_next_step():
    r = Rig("call", silence_ms=2000.0)
    last_off = r.play([60, 62], start_s=r.t0 + 0.1)
    r.controls.set("jam.silence_ms", 300.0)  # a shorter threshold now applies to this phrase
    r.run_until(last_off + 0.35)
    assert r.jam.responses or r.jam.gen is not None
    with pytest.raises(Exception):
        r.controls.set("sampling.temperature", -1)
    assert r.controls.sampling.temperature == 1.0  # a bad value changes nothing
    r.controls.temperature_from_cc(127)
    assert r.jam.voice.sampling().temperature == 2.0
    r.controls.set("jam.mode", "solo")
    r.run_until(r.clock.now() + 0.5)
    assert r.jam.mode == "solo"


def test_the_end_of_phrase_cc_answers_at_once():
    r = Rig("call", silence_ms=5000.0)
    r.play([60, 62], start_s=r.t0 + 0.1)
    t = r.clock.now() + 0.01
    r.run_until(t)
    r.jam.phrase_end(t)
    r.run_until(t + 0.01)
    assert r.jam.gen is not None and r.jam.gen.opening.threshold_t == t


def test_tempo_change_rescales_the_answer():
    slow = Rig("call", silence_ms=300.0, response_bars=1.0)
    fast = Rig("call", silence_ms=300.0, response_bars=1.0)
    fast.controls.set("timing.bpm", BPM * 2)
    fast.tempo.set_bpm(BPM * 2, fast.clock.now())
    spans = []
    for r in (slow, fast):
        off = r.play([60], start_s=r.t0 + 0.1)
        r.run_until(off + 5.0)
        ts = [t for t, _ in r.agent_notes()]
        spans.append(ts[-1] - ts[0])
    assert spans[1] == pytest.approx(spans[0] / 2, rel=0.05)


def test_note_message_types():
    # the agent's output is plain note_on/note_off on the configured channel
    r = Rig("call", silence_ms=300.0)
    r.run_until(r.play([60], start_s=r.t0 + 0.1) + 2.0)
    assert {m.type for _, m in r.agent_notes()} == {"note_on", "note_off"}
    assert all(isinstance(m, mido.Message) and m.channel == 0 for _, m in r.agent_notes())


def test_a_player_event_during_a_long_sampled_rest_rolls_back_into_the_rest():
    r = Rig("accompany", silence_ms=3000.0, lookahead_ms=100.0,
            script="NOTE_ON(72) SHIFT(3) NOTE_OFF(72) SHIFT(48)")
    r.play([60], start_s=r.t0 + 0.1, note_s=0.05)
    r.run_until(r.t0 + 0.6)  # inside the agent's 4-beat rest
    rest_start = len(r.pred.fed)
    while r.vocab.token(r.pred.fed[rest_start - 1]).kind != "SHIFT":
        rest_start -= 1
    rollbacks = r.jam.rollbacks
    r.note(64, True, r.clock.now())
    assert r.jam.rollbacks == rollbacks + 1
    fed = [r.vocab.token(i) for i in r.pred.fed]
    at = max(i for i, t in enumerate(fed) if str(t) == "NOTE_ON(64)")
    assert fed[at - 1].kind == "SHIFT" and fed[at - 1].value < 48  # part of the rest, then the player's note
    assert str(fed[at - 2]) == "NOTE_OFF(72)"  # the full rest sampled before was rolled back
    r.run_until(r.clock.now() + 0.1)
    r.note(64, False, r.clock.now())
    r.run_until(r.clock.now() + 5.0)
    assert paired(r.agent_notes()) and r.sched.late == 0 and r.sched.dropped_late == 0


def test_playing_on_while_the_answer_is_being_prepared_undoes_it():
    r = Rig("call", silence_ms=500.0, prepare_ms=100.0)
    last_off = r.play([60, 62], start_s=r.t0 + 0.1)
    fed_before = list(r.pred.fed)
    r.run_until(last_off + 0.45)  # inside the prepare window: the answer's start is composed
    assert r.jam.gen is not None and r.sched.pending() > 0
    r.note(64, True, r.clock.now())
    assert r.jam.gen is None and r.sched.pending() == 0 and not r.agent_notes()
    assert r.pred.fed[:len(fed_before)] == fed_before and "NOTE_ON(64)" in r.vocab.names(r.pred.fed[-1:])
    assert not any(r.vocab.token(i).kind == "NOTE_ON" and r.vocab.token(i).value not in (60, 62, 64)
                   for i in r.pred.fed)  # nothing the agent sampled is left in the model's history
    r.note(64, False, r.clock.now() + 0.1)
    r.run_until(r.clock.now() + 3.0)
    rec = r.jam.responses[0]
    assert rec["heard_notes"] == 3 and r.jam.phrases == 1  # one phrase, answered once, after the third note


def test_the_player_taking_a_pitch_the_agent_holds_ends_the_agents_note():
    # the model has one voice per pitch: after the player's NOTE_OFF(72) it would never close the agent's 72
    r = Rig("solo", script="NOTE_ON(72) SHIFT(48) NOTE_OFF(72)")
    r.run_until(r.t0 + 0.5)  # inside the agent's two-second 72
    assert (0, 72) in r.sched.open_notes
    t_in = r.clock.now()
    r.note(72, True, t_in)
    r.run_until(t_in + 0.1)
    assert (0, 72) not in r.sched.open_notes  # closed when the player struck it, not two seconds later
    fed = r.vocab.names(r.pred.fed).split()
    at = max(i for i, name in enumerate(fed) if name == "NOTE_ON(72)")
    assert "NOTE_OFF(72)" in fed[at - 2:at]  # the stream closes the agent's 72 before the player's
    r.note(72, False, r.clock.now())
    r.run_until(r.clock.now() + 3.0)
    r.jam.cut(r.clock.now())
    assert paired(r.agent_notes()) and r.sched.late == 0


# -- whose notes are whose: the key heard is the player's, the polyphony cap counts the agent's (issue 21 item 9)

@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    import tiny

    return tiny.make_model_dir(tmp_path_factory.mktemp("jam_model"), hidden=32, embedding=16)


def with_model(rig, model_dir):
    from agent.model.predictor import Predictor

    pred = Predictor.load(model_dir, backend="onnx", seed=1)
    rig.jam.predictor = pred
    return pred


C_MAJOR = [60, 62, 64, 65, 67, 69, 71, 72, 74, 76]


def test_the_key_is_heard_while_the_player_plays_not_at_the_phrase_end(model_dir):
    """After bars of continuous playing the key still read "auto (none heard yet)": it was only
    estimated when the agent sampled, after the phrase."""
    r = Rig("call")
    pred = with_model(r, model_dir)
    t = r.t0 + 0.01
    for p in C_MAJOR:  # legato, no pause: the phrase goes on
        r.note(p, True, t)
        r.note(p, False, t + 0.2)
        t += 0.2
    assert r.jam.phrase is not None and r.jam.gen is None  # still the player's turn
    assert pred.sampler.key_heard == (0, "major")


def test_the_key_follows_the_player_not_the_agents_own_notes(model_dir):
    """The estimate counted the agent's own notes: in solo it only heard itself, and a wrong first
    guess reinforced itself. The agent's F# major run must not move the player's C major."""
    r = Rig("call")
    pred = with_model(r, model_dir)
    t = r.t0 + 0.01
    for p in C_MAJOR:
        r.note(p, True, t)
        r.note(p, False, t + 0.1)
        t += 0.15
    v = r.vocab
    for _ in range(6):  # the agent's notes, as the voice feeds what it sampled
        for p in (66, 68, 70, 71, 73, 75, 77):
            r.jam.stream.feed([v.note_on(p), v.note_off(p)])
    c = r.controls.sampling.replace(key="auto", key_strength=2.0)
    bias = pred.sampler.bias(c, pred.context())
    assert bias[v.note_on(66)] == -2.0 and bias[v.note_on(65)] == 0.0  # F# off C major, F in it
    assert pred.sampler.key_heard == (0, "major")


def test_the_polyphony_cap_counts_the_agents_notes_not_the_players_pedalled_ones(model_dir):
    """After 8 pedalled pitches of the player's the agent could only re-strike the player's pitches."""
    r = Rig("call")
    pred = with_model(r, model_dir)
    v = r.vocab
    held = [48, 52, 55, 60, 64, 67, 72, 76]
    for i, p in enumerate(held):  # held under the pedal: no note-off reaches the jam
        r.note(p, True, r.t0 + 0.01 * (i + 1))
    c = r.controls.sampling.replace(max_polyphony=8)
    bias = pred.sampler.bias(c, pred.context())
    assert bias[v.note_on(62)] > -1e9  # a new pitch of the agent's own is still open to it
    for p in (62, 65, 69, 71, 74, 77, 79, 81):  # now the agent holds 8 of its own
        r.jam.stream.feed([v.note_on(p)])
        r.jam.stream.agent_sounding.add(p)
    bias = pred.sampler.bias(c, pred.context())
    assert bias[v.note_on(84)] == -np.inf and bias[v.note_on(62)] > -1e9  # re-striking its own is fine
