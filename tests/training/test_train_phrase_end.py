"""Phrase-end labels from the real corpus, the grouped split, the shipped weights on held-out chorales,
and the --quick run of scripts/train_phrase_end.py."""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from agent.music import phrase_end as pe
from agent.training import fingerprint, phrase_data
from agent.training import phrase_end as T

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "models" / "default" / "phrase_end.json"
# The shipped note-off head (phrase start known, as in call and response) scores F1 0.68 on all 56
# held-out chorales (the card); the held-note rule 0.45 and the silence rule 0.04 on the same notes.
# On the first 8 of them, parsed here, it scores 0.65 (pieces range 0.33-1.0; held 0.38, silence 0.15),
# so the bar is 0.55: above both rules by a clear margin, below the measured figure by one piece's luck.
MIN_F1_HELD_OUT_CHORALES = 0.55
N_CHORALES = 8


def test_chorale_fermata_notes_are_the_labels(chorale):
    """BWV 66.6: six fermatas in the soprano, each a quarter on beat 3 but the last two (a half, a quarter)."""
    notes, fermatas, beat_q, bpb, bar0 = phrase_data.melody(chorale.parts[0])
    assert (beat_q, bpb, bar0) == (1.0, 4, 1.0)
    assert fermatas == [4, 8, 13, 21, 29, 35] and len(notes) == 36
    assert [notes[i][0] for i in fermatas] == [3.0, 7.0, 11.0, 19.0, 27.0, 35.0]
    assert [notes[i][2] for i in fermatas] == [73, 69, 66, 73, 68, 66]  # C#5 A4 F#4 C#5 G#4 F#4


def test_essen_phrase_lines_are_the_labels():
    """Das Hildebrandslied (altdeu10.abc, X:1): its ABC lines hold 7, 7, 7, 6 ... notes."""
    path = phrase_data.corpus_dir() / "essenFolksong" / "altdeu10.abc"
    title, text = next(phrase_data.abc_tunes(path))
    assert title == "Das Hildebrandslied"
    assert phrase_data.line_note_counts(text)[:4] == [7, 7, 7, 6]
    piece = phrase_data.parse_abc("essen", "essenFolksong", limit=1, skipped=__import__("collections").Counter())[0]
    assert piece["ends"][:4] == [6, 13, 20, 26]
    assert (piece["beat_q"], piece["bpb"]) == (2.0, 4)  # 4/2


def test_ties_merge_in_line_counts():
    assert phrase_data.line_note_counts("X:1\nM:4/4\nK:C\nc2d2-|d2e2\nz2f2-\nf4\n") == [3, 1, 0]


def test_split_keeps_a_tune_and_its_variants_together():
    """A transposed copy and a copy with one note changed go to the split of the tune, whatever it is."""
    rng = np.random.default_rng(3)
    tunes = []
    for k in range(40):
        line = list(60 + np.cumsum(rng.integers(-4, 5, 40)))
        variant = list(line)
        variant[20] += 1
        tunes.append([{"name": f"{k}", "notes": [[j, 1.0, int(p)] for j, p in enumerate(line)]},
                      {"name": f"{k}T", "notes": [[j, 1.0, int(p) + 5] for j, p in enumerate(line)]},
                      {"name": f"{k}V", "notes": [[j, 1.0, int(p)] for j, p in enumerate(variant)]}])
    splits = T.split_pieces({"a": [t[0] for t in tunes], "b": [t[1] for t in tunes] + [t[2] for t in tunes]},
                            seed=1, valid=0.2, test=0.3)
    where = {p["name"]: s for src in splits.values() for s, ps in src.items() for p in ps}
    assert all(where[f"{k}"] == where[f"{k}T"] == where[f"{k}V"] for k in range(40))
    assert len(set(where.values())) == 3


@pytest.fixture(scope="module")
def shipped():
    return json.loads(SHIPPED.read_text())


def test_shipped_weights_score_held_out_chorales(shipped):
    """The shipped model on chorales it never saw (the first of its card's test split; the quick run's
    test below checks that no test melody has a near-duplicate in training): note-off F1 over their
    phrase ends, with the call's start known."""
    from music21 import corpus

    card = shipped["card"]
    model = pe.load_model(SHIPPED)
    names = card["test_chorales"][:N_CHORALES]
    pieces = []
    for name in names:
        mel = phrase_data.melody(corpus.parse(f"bach/{name}").parts[0])
        pieces.append(phrase_data._piece(name, "chorales", mel, mel[1]))
    r = T.evaluate(model, pieces)
    assert r["note_off_call"]["f1"] >= MIN_F1_HELD_OUT_CHORALES, r
    assert r["note_off_call"]["f1"] > r["held"]["f1"] and r["note_off_call"]["f1"] > r["silence"]["f1"]


def test_card_figures_are_the_held_out_ones(shipped):
    test = shipped["card"]["test"]
    assert set(test) >= {"chorales", "essen"}
    for src in ("chorales", "essen"):
        for method in T.METHODS:
            r = test[src][method]
            assert 0 <= r["precision"] <= 1 and 0 <= r["recall"] <= 1
            assert r["tp"] + r["fn"] == test[src]["phrase_ends"]


@pytest.mark.slow
def test_quick_run_under_a_minute(tmp_path):
    t0 = time.perf_counter()
    report_path = tmp_path / "report.json"
    weights = tmp_path / "w.json"
    assert T.main(["--quick", "--json", str(report_path), "--out", str(weights)]) == 0
    assert time.perf_counter() - t0 < 60 or any(  # the first run parses the quick caches
        not phrase_data.cache_path(ROOT, s, T.QUICK_LIMITS[s]).exists() for s in phrase_data.SOURCES)
    report = json.loads(report_path.read_text())
    for src in phrase_data.SOURCES:
        assert len(report["test_pieces"][src]) == report["pieces"][src]["test"] > 0
    # no held-out melody has a near-duplicate (the fingerprint rule) among the training melodies
    data = {s: phrase_data.load(s, ROOT, T.QUICK_LIMITS[s])["pieces"] for s in phrase_data.SOURCES}
    splits = T.split_pieces(data, report["seed"], report["split"]["valid"], report["split"]["test"])
    train = [T.melody_fingerprint(p) for src in splits.values() for p in src["train"]]
    for src in splits.values():
        for p in src["test"]:
            fp = T.melody_fingerprint(p)
            assert max(fingerprint.jaccard(fp.shingles, t.shingles) for t in train) < fingerprint.THRESHOLD
    model = pe.load_model(weights)
    assert np.isfinite(model.probability("note_off", np.zeros(len(pe.FEATURE_NAMES))))
    for src in ("chorales", "essen"):
        assert 0 <= report["test"][src]["note_off"]["f1"] <= 1
