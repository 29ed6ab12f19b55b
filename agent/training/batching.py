"""How training (agent/training/train.py) feeds pieces to the LSTM: trained as it is used.

The live predictor starts every session from a zero state at START, so in
training every piece starts from a zero state at its START too; no state is
carried from one piece into the next. Each epoch:

- every training piece is (with probability `humanise_p`) humanised
  (agent/training/humanise.py: tempo, onsets, releases, velocities, as a player plays)
  and then transposed by a random allowed shift;
- pieces are laid one per row in batches of `batch` pieces of similar length
  (sorted within pools of 16 batches, so padding is small and the mix is
  still random), padded and masked, and each batch is cut into chunks of
  `chunk` tokens. The state is carried (detached) from one chunk to the next
  of the same batch, and starts from zero at a batch's first chunk: `fresh`.
  Rows are ordered longest first, and a row leaves the batch once its piece
  has ended, so no step computes padding the length of a long piece (with
  the polyphonic corpus, whose pieces run from 50 to 40,000 tokens, a batch
  as wide as its longest piece spent two thirds of training on padding).

`chunk_nll` is the one step both training and the tests run. Piano-roll pieces
(`roll_chunks`) are batched the same way, padded and masked, without leaving rows.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from agent.training import data as dataset
from agent.music.tokens import Vocab
from agent.training.humanise import humanise

POOL_BATCHES = 16


def augment(pieces: list, shift_choices: list, vocab: Vocab, rng: np.random.Generator,
            humanise_p: float = 0.0) -> list[np.ndarray]:
    """Each piece humanised with probability humanise_p, then transposed by one of its allowed shifts.

    Humanising moves no pitch, so the shifts allowed for the clean piece stay allowed.
    """
    out = []
    for piece, shifts in zip(pieces, shift_choices):
        if humanise_p > 0 and rng.random() < humanise_p:
            piece = humanise(piece, vocab, rng)
        out.append(dataset.transpose(piece, int(rng.choice(shifts)), vocab))
    return out


def length_batches(pieces: list, order, batch: int) -> list[list[int]]:
    """The indices in `order` cut into batches of `batch` pieces of similar length: sorted by length
    within pools of POOL_BATCHES batches, so padding is small and the mix is still random."""
    pool = batch * POOL_BATCHES
    batches = []
    for p in range(0, len(order), pool):
        group = sorted(order[p:p + pool], key=lambda i: len(pieces[i]))
        batches += [group[b:b + batch] for b in range(0, len(group), batch)]
    return batches


def piece_chunks(pieces: list, batch: int, chunk: int, rng: np.random.Generator) -> list[tuple]:
    """(x, y, mask, fresh) chunks of whole pieces, each row a piece from its START.

    x, y [rows, <=chunk] int64 (y is x one token on), mask [rows, <=chunk] float
    (1 where y is a real target, 0 in the padding after a piece's END);
    fresh is True at a batch's first chunk, where the state starts from zero.
    """
    batches = length_batches(pieces, rng.permutation(len(pieces)), batch)
    chunks = []
    for k in rng.permutation(len(batches)):
        idx = sorted(batches[k], key=lambda i: -len(pieces[i]))  # longest first: the rows still going are a prefix
        lengths = np.array([len(pieces[i]) - 1 for i in idx])
        width = int(lengths[0])
        if width < 1:
            continue
        x = np.zeros((len(idx), width), np.int64)
        y = np.zeros((len(idx), width), np.int64)
        mask = np.zeros((len(idx), width), np.float32)
        for r, i in enumerate(idx):
            p = np.asarray(pieces[i], np.int64)
            x[r, :len(p) - 1], y[r, :len(p) - 1], mask[r, :len(p) - 1] = p[:-1], p[1:], 1.0
        x, y, mask = torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(mask)
        for a in range(0, width, chunk):
            rows = int(np.sum(lengths > a))  # pieces that have ended leave the batch (no steps on padding)
            chunks.append((x[:rows, a:a + chunk], y[:rows, a:a + chunk], mask[:rows, a:a + chunk], a == 0))
    return chunks


def state_for(x: torch.Tensor, state, fresh: bool):
    """The state a chunk starts from: zero (None) at a batch's first chunk, else the carried state of
    the rows still in the batch (rows whose piece ended have left it; they were the last rows)."""
    if fresh or state is None:
        return None  # nn.LSTM's zero state: the same start the live predictor and evaluation use
    return tuple(s[:, :x.shape[0]] for s in state) if state[0].shape[1] > x.shape[0] else state


def chunk_nll(model, x: torch.Tensor, y: torch.Tensor, state, fresh: bool):
    """Per-target NLL [rows, time] in nats and the new state; a fresh chunk starts from a zero state."""
    logits, state = model(x, state_for(x, state, fresh))
    nll = F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), y.reshape(-1), reduction="none")
    return nll.view(y.shape), state


def roll_chunks(pieces: list, order, shift_choices: list, batch: int, chunk: int, transpose_p: float,
                rng: np.random.Generator) -> list[tuple]:
    """(x, y, mask, fresh) chunks of piano-roll pieces (in `order`): batches of similar-length whole
    pieces, each transposed with probability transpose_p, padded.

    x, y [batch, <=chunk, keys] float (y is x one frame on), mask [batch, <=chunk];
    fresh marks a batch's first chunk (the state starts from zero there).
    """
    from agent.model import roll

    batches = length_batches(pieces, order, batch)
    chunks = []
    for k in rng.permutation(len(batches)):
        idx = batches[k]
        width = max(len(pieces[i]) for i in idx)
        x = np.zeros((len(idx), width, pieces[idx[0]].shape[1]), np.float32)
        mask = np.zeros((len(idx), width - 1), np.float32)
        for r, i in enumerate(idx):
            shift = int(rng.choice(shift_choices[i])) if rng.random() < transpose_p else 0
            piece = roll.transpose(pieces[i], shift)
            x[r, :len(piece)] = piece
            mask[r, :len(piece) - 1] = 1.0
        x = torch.from_numpy(x)
        mask = torch.from_numpy(mask)
        for a in range(0, width - 1, chunk):
            b = min(a + chunk, width - 1)
            chunks.append((x[:, a:b], x[:, a + 1:b + 1], mask[:, a:b], a == 0))
    return chunks
