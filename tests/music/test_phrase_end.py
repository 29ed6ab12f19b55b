"""The phrase-end features are causal, the live tracker computes what training computed, and the
weight file loads or fails with one line naming it."""
from __future__ import annotations

import json

import numpy as np
import pytest

from agent.music import phrase_end as pe

MODEL = pe.PhraseEndModel({s: pe.Head(np.zeros(len(pe.FEATURE_NAMES)), np.ones(len(pe.FEATURE_NAMES)), None, None,
                                      np.linspace(-1, 1, len(pe.FEATURE_NAMES)), -0.5, 0.5) for s in pe.STAGES})


@pytest.fixture(scope="module")
def soprano(chorale):
    """BWV 66.6's soprano (real notes) in beats from a bar line, with its fermata indices."""
    from agent.training.phrase_data import melody

    notes, fermatas, beat_q, bpb, bar0 = melody(chorale.parts[0])
    a = np.asarray(notes, dtype=float)
    on = (a[:, 0] - bar0) / beat_q
    return on, on + a[:, 1] / beat_q, a[:, 2].astype(int), bpb, fermatas


def test_features_are_causal(soprano):
    """Changing anything after note i (later onsets, pitches, ends) leaves note i's features as they were;
    at the note-on stage, note i's own end does not count either."""
    on, en, pitch, bpb, _ = soprano
    rng = np.random.default_rng(0)
    for i in range(0, len(on) - 1, 3):
        before_on = pe.features(on, en, pitch, i, bpb, 0, released=False)
        before_off = pe.features(on, en, pitch, i, bpb, 0, released=True)
        on2, en2, p2 = on.copy(), en.copy(), pitch.copy()
        on2[i + 1:] += rng.uniform(0, 2, len(on) - i - 1)
        en2[i + 1:] = on2[i + 1:] + rng.uniform(0.1, 3, len(on) - i - 1)
        p2[i + 1:] = rng.integers(40, 90, len(on) - i - 1)
        assert np.array_equal(pe.features(on2, en2, p2, i, bpb, 0, released=True), before_off)
        en2[i] += 1.5
        assert np.array_equal(pe.features(on2, en2, p2, i, bpb, 0, released=False), before_on)


def test_release_features_only_at_note_off(soprano):
    on, en, pitch, bpb, fermatas = soprano
    i = fermatas[0]
    x_on = pe.features(on, en, pitch, i, bpb, released=False)
    x_off = pe.features(on, en, pitch, i, bpb, released=True)
    release = [pe.FEATURE_NAMES.index(n) for n in pe.RELEASE_NAMES]
    assert not np.any(x_on[release])
    assert x_off[pe.FEATURE_NAMES.index("dur_log2")] == pytest.approx(np.log2(en[i] - on[i]))


def test_tracker_matches_offline_features(soprano):
    """The live tracker, fed the chorale in seconds at 72 bpm (chords and a late release included),
    gives the probabilities the offline features give."""
    on, en, pitch, bpb, _ = soprano
    grid = pe.Grid(period=60 / 72, downbeat=3.0, beats_per_bar=bpb)
    sec = lambda b: grid.downbeat + b * grid.period  # noqa: E731
    tr = pe.PhraseTracker(MODEL)
    for i in range(len(on)):
        p_on = tr.note_on(sec(on[i]), int(pitch[i]), grid)
        tr.note_on(sec(on[i]) + 0.01, int(pitch[i]) - 7, grid)  # a chord's lower note: same melody note
        assert p_on == pytest.approx(float(MODEL.probability("note_on", pe.features(on, en, pitch, i, bpb, 0, False))))
        assert tr.note_off(sec(en[i]) - 0.001, int(pitch[i]) - 7, grid) is None
        p_off = tr.note_off(sec(en[i]), int(pitch[i]), grid)
        want = MODEL.probability("note_off", pe.features(on, en, pitch, i, bpb, 0, True))
        assert p_off == pytest.approx(float(want), abs=1e-6)


def test_shipped_weights_load():
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "models" / "default" / "phrase_end.json"
    model = pe.load_model(path)
    assert set(model.heads) == set(pe.STAGES)
    for h in model.heads.values():
        assert 0 < h.threshold < 1


@pytest.mark.parametrize("content, says", [
    (None, "cannot read"),
    ("{not json", "bad phrase-end weights"),
    ('{"format": "something else"}', "not a phrase-end weight file"),
    ("[1, 2]", "not a phrase-end weight file"),
    ("FEATURES", "other features"),
    ("SHAPE", "head 'note_on': w2 has shape"),
    ("THRESHOLD", "threshold 1.5 outside"),
    ("NOHEAD", "no 'note_off' head"),
])
def test_bad_weight_files_say_one_line_naming_the_file(tmp_path, content, says):
    good = MODEL.to_dict()
    if content == "FEATURES":
        content = json.dumps({**good, "features": good["features"][:-1]})
    elif content == "SHAPE":
        good["heads"]["note_on"]["w2"] = [0.0, 1.0]
        content = json.dumps(good)
    elif content == "THRESHOLD":
        good["heads"]["note_off"]["threshold"] = 1.5
        content = json.dumps(good)
    elif content == "NOHEAD":
        del good["heads"]["note_off"]
        content = json.dumps(good)
    path = tmp_path / "weights.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(pe.PhraseModelError) as e:
        pe.load_model(path)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(str(path)) and says in msg


def test_a_good_file_round_trips(tmp_path):
    path = tmp_path / "w.json"
    path.write_text(json.dumps(MODEL.to_dict({"note": "test"})))
    x = np.random.default_rng(1).normal(size=(5, len(pe.FEATURE_NAMES)))
    assert np.allclose(pe.load_model(path).probability("note_off", x), MODEL.probability("note_off", x))
