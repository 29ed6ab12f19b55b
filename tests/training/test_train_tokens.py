"""Trained as it is used: every piece starts from a zero state in training (agent/training/batching.py),
and humanised copies (agent/training/humanise.py) move timing and touch but not the notes."""
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from agent.training import data as dataset
from agent.music.tokens import Vocab, decode, encode
from agent.training.humanise import humanise, humanised_copy
from agent.model.net import LSTMModel, ModelArgs, score_pieces

ROOT = Path(__file__).resolve().parents[2]
from agent.training.batching import augment, chunk_nll, piece_chunks

VOCAB = Vocab()


@pytest.fixture(scope="module")
def chorales() -> list[np.ndarray]:
    from music21 import corpus

    from agent.music.notes import notes_from_music21

    names = ["bach/bwv66.6", "bach/bwv269", "bach/bwv253", "bach/bwv267", "bach/bwv7.7"]
    return [np.asarray(encode(notes_from_music21(corpus.parse(n)), VOCAB), np.int32) for n in names]


class Probe(LSTMModel):
    """The real model, recording the state each call starts from."""

    def __init__(self, args):
        super().__init__(args)
        self.calls = []

    def forward(self, tokens, state=None, targets=None):
        self.calls.append((tokens[:, 0].clone(), state))
        return super().forward(tokens, state, targets)


def test_every_piece_starts_from_a_zero_state_and_scores_as_evaluation_does(chorales):
    # pieces of mixed length, more than one batch, chunks shorter than the pieces
    pieces = chorales + [p[:40] for p in chorales]
    torch.manual_seed(0)
    model = Probe(ModelArgs(vocab_size=VOCAB.size, embedding=16, hidden=24, layers=2, dropout=0.0)).eval()
    chunks = piece_chunks(pieces, batch=3, chunk=50, rng=np.random.default_rng(1))
    per_row: dict[tuple[int, int], list] = {}  # (batch number, row) -> that row's per-target NLLs
    batch_no, state = -1, None
    with torch.no_grad():
        for x, y, mask, fresh in chunks:
            batch_no += fresh
            nll, state = chunk_nll(model, x, y, (torch.ones(2, len(x), 24),) * 2, fresh) if fresh \
                else chunk_nll(model, x, y, state, fresh)
            for r in range(len(x)):
                per_row.setdefault((batch_no, r), []).append(nll[r][mask[r] > 0].numpy())
    # a fresh chunk threw the (deliberately non-zero) state it was handed away; every row of a fresh
    # chunk begins with a START, and no START is anywhere else
    fresh_calls = [c for c, ch in zip(model.calls, chunks) if ch[3]]
    assert fresh_calls and all(state is None for _, state in fresh_calls)
    assert all((first == VOCAB.START).all() for first, _ in fresh_calls)
    # a row leaves its batch when its piece ends: no chunk holds a row of padding only
    assert all(bool((mask.sum(1) > 0).all()) for _, _, mask, _ in chunks)
    assert any(len(x) < 3 and not fresh for x, _, _, fresh in chunks)  # the short pieces did leave
    for x, _, mask, fresh in chunks:
        starts = (x == VOCAB.START) & (mask > 0)
        assert int(starts[:, 1:].sum()) == 0 and (fresh or int(starts.sum()) == 0)
    # each piece's training NLLs are exactly its evaluation NLLs from a zero state (score_pieces)
    trained = [np.concatenate(v) for v in per_row.values()]
    logps, _ = score_pieces(model, pieces, batch=2, chunk=64)
    assert len(trained) == len(pieces)
    for lp in logps:  # each evaluated piece matches exactly one trained row (float32 vs float64 sums)
        assert sum(len(t) == len(lp) and np.allclose(t, -lp, atol=1e-4) for t in trained) == 1


def test_a_carried_state_would_have_changed_the_scores(chorales):
    """The check above can fail: scored after another piece (state carried), a piece scores differently."""
    torch.manual_seed(0)
    model = LSTMModel(ModelArgs(vocab_size=VOCAB.size, embedding=16, hidden=24, layers=1, dropout=0.0)).eval()
    a, b = (torch.as_tensor(p, dtype=torch.long)[None] for p in chorales[:2])
    with torch.no_grad():
        _, carried = model(a[:, :-1])
        nll_carried, _ = chunk_nll(model, b[:, :-1], b[:, 1:], carried, fresh=False)
        nll_fresh, _ = chunk_nll(model, b[:, :-1], b[:, 1:], carried, fresh=True)
    assert not torch.allclose(nll_carried, nll_fresh)


def _onsets_by_pitch(ids):
    out: dict[int, list[float]] = {}
    for n in decode(ids, VOCAB):
        out.setdefault(n.pitch, []).append(n.start)
    return out


def test_humanise_moves_timing_and_touch_not_notes(chorales):
    piece = chorales[0]
    plain = humanise(piece, VOCAB, np.random.default_rng(0), onset_ticks=0, release_ticks=0, velocity_sd=0, tempo=0)
    assert np.array_equal(plain, piece)  # nothing asked for, nothing changed
    h = humanise(piece, VOCAB, np.random.default_rng(3), release_ticks=0, velocity_sd=0, tempo=0)
    assert h[0] == VOCAB.START and h[-1] == VOCAB.END and not np.array_equal(h, piece)
    before, after = _onsets_by_pitch(piece), _onsets_by_pitch(h)
    assert before.keys() == after.keys()
    moved = []
    for p in before:
        assert len(before[p]) == len(after[p])
        moved += [round((b - a) * VOCAB.resolution) for a, b in zip(before[p], sorted(after[p]))]
    assert max(abs(m) for m in moved) <= 2 and sum(m != 0 for m in moved) > len(moved) // 4
    # velocity and tempo: more velocity tokens than a score's one level, and a different length in ticks
    full = humanise(piece, VOCAB, np.random.default_rng(4), tempo=0.2)
    vel = lambda ids: int(((ids >= VOCAB.velocity_base) & (ids < VOCAB.size)).sum())  # noqa: E731
    assert vel(full) > 3 * vel(piece)
    assert sorted(n.pitch for n in decode(full, VOCAB)) == sorted(n.pitch for n in decode(piece, VOCAB))


def test_humanised_copy_is_fixed_by_its_seed_and_per_piece(chorales):
    a = humanised_copy(chorales[:3], VOCAB, seed=5)
    b = humanised_copy(chorales[1:3], VOCAB, seed=5)
    assert all(np.array_equal(x, y) for x, y in zip(a[1:], b))  # a piece's copy does not depend on the list
    assert not np.array_equal(a[0], humanised_copy(chorales[:1], VOCAB, seed=6)[0])


def test_augment_humanises_a_share_and_transposes(chorales):
    shifts = [dataset.allowed_shifts(p, VOCAB, 6) for p in chorales]
    same = augment(chorales, [[0]] * len(chorales), VOCAB, np.random.default_rng(0), humanise_p=0.0)
    assert all(np.array_equal(a, b) for a, b in zip(same, chorales))
    out = augment(chorales * 8, shifts * 8, VOCAB, np.random.default_rng(0), humanise_p=0.5)
    lowest = [dataset.lowest_transposition(p, VOCAB) for p in chorales * 8]
    clean = sum(np.array_equal(dataset.lowest_transposition(o, VOCAB), lo) for o, lo in zip(out, lowest))
    assert 8 <= clean <= 32  # about half humanised (40 pieces)
