"""scripts/evaluate.py and agent.training.metrics on known inputs and on real Bach chorales."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from agent.training import data as dataset

from agent.training import evaluate as ev
from agent.training import metrics, scoring
from agent.music.tokens import Note, Vocab, encode
from agent.music.notes import notes_from_music21

VOCAB = Vocab()
N_CHORALES = 24


@pytest.fixture(scope="module")
def chorales() -> list[np.ndarray]:
    """The first real Bach chorales of music21's corpus, as token pieces."""
    from music21 import corpus

    out = []
    for path in corpus.getComposer("bach"):
        if len(out) == N_CHORALES:
            break
        try:
            out.append(np.asarray(encode(notes_from_music21(corpus.parse(path)), VOCAB), np.int64))
        except Exception:  # a corpus file music21 cannot read: take the next one
            continue
    return out


def repeated(pitches: tuple[int, ...], times: int, beat: float = 1.0) -> list[int]:
    notes = [Note(p, i * beat, (i + 1) * beat) for i in range(times) for p in pitches]
    return encode(notes, VOCAB)


# -- musical statistics ------------------------------------------------------------

def test_collapse_one_pitch_and_one_chord_but_not_music(chorales):
    one_pitch = repeated((60,), 20)
    one_chord = repeated((60, 64, 67), 12)
    alternating = encode([Note(60 + 2 * (i % 2), i, i + 1) for i in range(20)], VOCAB)
    assert metrics.collapse_rate([one_pitch], VOCAB) == 1.0
    assert metrics.is_collapsed(one_chord, VOCAB)
    assert not metrics.is_collapsed(alternating, VOCAB)
    assert not metrics.is_collapsed(repeated((60,), 7), VOCAB)  # shorter than the window: not judged
    assert metrics.collapse_rate(chorales, VOCAB) == 0.0
    # stuck at the end after real music still counts
    stuck = list(chorales[0][:-1]) + repeated((62,), 10)[1:]
    assert metrics.collapse_rate([stuck, chorales[1]], VOCAB) == 0.5


def test_note_density_and_silence():
    assert metrics.note_density(repeated((60,), 16), VOCAB) == pytest.approx(1.0)
    assert metrics.note_density(repeated((60, 64, 67), 8, beat=0.5), VOCAB) == pytest.approx(6.0)
    assert metrics.is_silent([VOCAB.START, VOCAB.shift(12), VOCAB.END], VOCAB)
    assert not metrics.is_silent(repeated((60,), 1), VOCAB)


def test_key_estimate_and_in_key_ratio(chorales):
    c_major = encode([Note(p, i, i + 1) for i, p in enumerate((60, 62, 64, 65, 67, 69, 71, 72, 67, 64, 60))], VOCAB)
    pcs = metrics.pitch_class_histogram([c_major], VOCAB)
    assert metrics.estimate_key(pcs)[:2] == (0, "major")
    a_minor = [57, 59, 60, 62, 64, 65, 68, 69, 64, 60, 57, 68, 69]
    a_ids = encode([Note(p, i, i + 1) for i, p in enumerate(a_minor)], VOCAB)
    assert metrics.estimate_key(metrics.pitch_class_histogram([a_ids], VOCAB))[:2] == (9, "minor")
    assert metrics.in_key_ratio(c_major, VOCAB) == 1.0
    chromatic = encode([Note(60 + i, i, i + 1) for i in range(12)], VOCAB)
    assert metrics.in_key_ratio(chromatic, VOCAB, (0, "major")) == pytest.approx(7 / 12)
    # bwv66.6 is in F# minor and diatonic almost throughout
    assert metrics.in_key_ratio(chorales[0], VOCAB) > 0.85


def test_histograms_and_distance(chorales):
    h = metrics.pitch_class_histogram(chorales, VOCAB)
    assert h.shape == (12,) and h.sum() == pytest.approx(1.0)
    assert metrics.histogram_distance(h, h) == 0.0
    only_c, only_d = repeated((60,), 4), repeated((62,), 4)
    assert metrics.histogram_distance(metrics.pitch_class_histogram([only_c], VOCAB),
                                      metrics.pitch_class_histogram([only_d], VOCAB)) == pytest.approx(1.0)


# -- baselines ---------------------------------------------------------------------

def test_ngram_beats_unigram_on_real_chorales_and_normalises(chorales):
    train, test = chorales[:-4], chorales[-4:]
    uni = metrics.UnigramModel(VOCAB.size).fit(train)
    kn = metrics.KneserNeyModel(VOCAB.size, 4, pad=VOCAB.START).fit(train)
    s_uni = scoring.summarize(*scoring.score_counts(uni, test, VOCAB), VOCAB)
    s_kn = scoring.summarize(*scoring.score_counts(kn, test, VOCAB), VOCAB)
    assert s_kn["test_nll"] < s_uni["test_nll"] - 1.0  # nats per token: a 4-gram knows the grammar
    assert s_kn["pitch_accuracy"] > s_uni["pitch_accuracy"]
    assert s_uni["test_nll"] < math.log(VOCAB.size)
    ctx, _ = metrics.contexts(test, 3, VOCAB.START)
    p = kn.prob(ctx[::50], np.arange(VOCAB.size))
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-9)
    assert (p > 0).all()


# -- the LSTM and the whole report -------------------------------------------------

def write_model(folder: Path, *, uniform: bool = False, seed: int = 0) -> Path:
    """A small model folder (checkpoint.pt + vocab.json) in the trainer's checkpoint format."""
    import torch

    from agent.model.net import LSTMModel, ModelArgs

    torch.manual_seed(seed)
    model = LSTMModel(ModelArgs(VOCAB.size, embedding=16, hidden=32, layers=1, dropout=0.0))
    if uniform:  # every token equally likely, whatever the input
        with torch.no_grad():
            model.head.weight.zero_()
            model.head.bias.zero_()
    folder.mkdir(parents=True, exist_ok=True)
    torch.save({"model_args": model.model_args(), "vocab": VOCAB.to_dict(), "config": {},
                "model": model.state_dict()}, folder / "checkpoint.pt")
    VOCAB.save(folder / "vocab.json")
    return folder


def test_uniform_model_nll_is_log_vocab(tmp_path, chorales):
    from agent.model.net import load_checkpoint

    model, _ = load_checkpoint(write_model(tmp_path / "m", uniform=True) / "checkpoint.pt")
    pieces = chorales[:5]
    logp, tgt, _ = scoring.score_lstm(model, pieces, VOCAB, batch=2, chunk=37)  # ragged batches, odd chunks
    assert len(logp) == sum(len(p) - 1 for p in pieces)
    s = scoring.summarize(logp, tgt, 0, VOCAB)
    assert s["test_nll"] == pytest.approx(math.log(VOCAB.size), abs=1e-5)
    n_notes = int(((tgt >= VOCAB.note_on_base) & (tgt < VOCAB.note_off_base)).sum())
    assert s["test_nll_per_note"] == pytest.approx(math.log(VOCAB.size) * len(tgt) / n_notes, rel=1e-5)


def test_batched_scoring_matches_one_piece_at_a_time(tmp_path, chorales):
    from agent.model.net import load_checkpoint

    model, _ = load_checkpoint(write_model(tmp_path / "m", seed=1) / "checkpoint.pt")
    pieces = chorales[:3]
    batched, _, c1 = scoring.score_lstm(model, pieces, VOCAB, batch=3, chunk=64)
    single = np.concatenate([scoring.score_lstm(model, [p], VOCAB, batch=1, chunk=10_000)[0] for p in pieces])
    np.testing.assert_allclose(batched, single, atol=1e-4)


@pytest.fixture()
def data_dir(tmp_path, chorales):
    d = tmp_path / "prepared"
    dataset.write_split(d, "train", chorales[:-6])
    dataset.write_split(d, "valid", chorales[-6:-4])
    dataset.write_split(d, "test", chorales[-4:])
    dataset.write_manifest(d, {"vocab": VOCAB.to_dict()})
    return d


def test_report_json_and_plots_from_the_command_line(tmp_path, data_dir):
    model_dir = write_model(tmp_path / "model", seed=2)
    out = tmp_path / "eval.json"
    rc = ev.main([str(model_dir), "--data", str(data_dir), "--json", str(out), "--samples", "3",
                  "--prompt", "24", "--length", "40", "--plots", str(tmp_path / "plots")])
    assert rc == 0
    r = json.loads(out.read_text())
    for key in ("test_nll", "test_nll_per_note", "pitch_accuracy", "collapse_rate", "in_key_ratio",
                "note_density", "polyphony", "pitch_class_distance"):
        assert key in r
    # four-voice chorales: about three notes sounding at once in the data's continuations
    assert r["data_reference"]["polyphony"] > 2.0 and r["polyphony"] >= 0.0
    assert r["baselines"]["unigram"]["test_nll"] > r["baselines"]["ngram"]["test_nll"]
    assert 0.0 <= r["collapse_rate"] <= 1.0 and r["sampling"]["samples"] == 3
    assert "agent.model.predictor" in r["sampling"]["sampler"]
    assert r["n_targets"] == sum(len(p) - 1 for p in dataset.load_split(data_dir, "test"))
    # the humanised copy: other tokens (off-grid timing, more velocity changes), scored by all three
    h = r["humanised"]
    assert r["test_nll_humanised"] == h["test_nll"] > 0 and h["n_targets"] > r["n_targets"]
    assert set(h["baselines"]) == {"unigram", "ngram"} and h["baselines"]["ngram"]["test_nll"] > 0
    for name in ("pitch_histograms.png", "piano_roll.png"):
        assert (tmp_path / "plots" / name).read_bytes()[:4] == b"\x89PNG"


def test_vocab_mismatch_is_a_user_error(tmp_path, data_dir):
    model_dir = write_model(tmp_path / "model")
    dataset.write_manifest(data_dir, {"vocab": Vocab(resolution=4).to_dict()})
    assert ev.main([str(model_dir), "--data", str(data_dir)]) == 2


def test_card_and_evaluate_score_the_same_nll(tmp_path, chorales):
    """train_report (valid/test NLL on the card) and evaluate.py share agent.model.net.score_pieces."""
    from agent.model.net import load_checkpoint

    model, _ = load_checkpoint(write_model(tmp_path / "m", seed=3) / "checkpoint.pt")
    pieces = chorales[:5]
    total, n = scoring.piece_nll(model, pieces, batch=2, chunk=37)
    logp, tgt, _ = scoring.score_lstm(model, pieces, VOCAB)
    assert n == len(tgt) == sum(len(p) - 1 for p in pieces)
    assert total == pytest.approx(-logp.sum(), rel=1e-6)
    assert scoring.piece_nll(model, []) == (0.0, 0)  # a DDP rank with no valid pieces


def test_quick_evaluation_of_the_shipped_model_needs_no_prepared_data(tmp_path):
    """A fresh clone has no data/prepared: --quick builds data/quick from the chorales and scores the model."""
    out = tmp_path / "eval.json"
    rc = ev.main(["models/default", "--quick", "--data", str(tmp_path / "no-prepared-data"), "--json", str(out)])
    assert rc == 0
    r = json.loads(out.read_text())
    assert Path(r["data"]).name == "quick" and r["n_pieces"] <= 8 and r["sampling"]["samples"] == 8
    assert r["test_nll"] < r["baselines"]["ngram"]["test_nll"]  # the trained model beats the n-gram on chorales
    # the shipped model never saw off-grid timing: a player's version of the same chorales is harder for it
    assert r["test_nll_humanised"] > r["test_nll"]
