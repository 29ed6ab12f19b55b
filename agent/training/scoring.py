"""How a token model is scored, one way for every command: NLL per token in nats, each piece from a
zero state at its START (START not a target), every following token through END a target.

evaluate, held_out, compare_models and the model card (report.py) all score through here; the
count baselines (agent/training/metrics.py) are scored on the same targets by `score_counts`.
"""
from __future__ import annotations

import numpy as np

from agent.music.tokens import Vocab
from agent.training import metrics


def summarize(logp: np.ndarray, targets: np.ndarray, onset_correct: int, vocab: Vocab) -> dict:
    """NLL per token and per note, and pitch accuracy, from per-target log-probs."""
    is_on = (targets >= vocab.note_on_base) & (targets < vocab.note_off_base)
    n_notes = int(is_on.sum())
    total = -float(np.sum(logp))
    return {
        "test_nll": total / max(len(targets), 1),
        "test_nll_per_note": total / n_notes if n_notes else float("nan"),
        "pitch_accuracy": onset_correct / n_notes if n_notes else float("nan"),
    }


def piece_logps(model, pieces: list[np.ndarray], vocab: Vocab, batch: int = 32, chunk: int = 256, device="cpu"):
    """Teacher-forced log P(target) for every target, one array per piece (agent.model.net.score_pieces),
    and the number of onsets whose argmax over NOTE_ON logits is right."""
    from agent.model.net import score_pieces

    return score_pieces(model, pieces, device=device, batch=batch, chunk=chunk,
                        argmax_range=(vocab.note_on_base, vocab.note_off_base))


def score_lstm(model, pieces: list[np.ndarray], vocab: Vocab, batch: int = 32, chunk: int = 256):
    """Teacher-forced log P(target) for every target of every piece.

    Returns (logp [n_targets] in piece order, targets, number of onsets whose
    argmax over NOTE_ON logits is right).
    """
    logps, correct = piece_logps(model, pieces, vocab, batch, chunk)
    targets = np.concatenate([np.asarray(p[1:], np.int64) for p in pieces])
    return np.concatenate(logps), targets, correct


def nll_by_group(model, pieces: list, groups: list[str], vocab: Vocab) -> dict[str, dict]:
    """{group: {"nll", "targets"}} and "all" (with its "pitch_accuracy"), scoring every piece once."""
    logps, correct = piece_logps(model, pieces, vocab)
    out: dict[str, list[float]] = {}
    for lp, g in zip(logps, groups):
        for key in (g, "all"):
            s = out.setdefault(key, [0.0, 0])
            s[0] -= float(np.sum(lp))
            s[1] += len(lp)
    table = {k: {"nll": round(s / max(n, 1), 4), "targets": n} for k, (s, n) in sorted(out.items())}
    targets = np.concatenate([np.asarray(p[1:], np.int64) for p in pieces]) if pieces else np.zeros(0, np.int64)
    onsets = int(((targets >= vocab.note_on_base) & (targets < vocab.note_off_base)).sum())
    if "all" in table:
        table["all"]["pitch_accuracy"] = round(correct / onsets, 4) if onsets else float("nan")
    return table


def piece_nll(model, pieces: list, device="cpu", batch: int = 64, chunk: int = 512) -> tuple[float, int]:
    """(sum of NLL in nats, number of targets) over pieces, each from a zero state (training's validation)."""
    from agent.model.net import score_pieces

    logps, _ = score_pieces(model, pieces, device=device, batch=batch, chunk=chunk)
    return -float(sum(lp.sum() for lp in logps)), sum(len(lp) for lp in logps)


def score_counts(model, pieces: list[np.ndarray], vocab: Vocab):
    """The same as score_lstm for a metrics.UnigramModel / KneserNeyModel."""
    width = max(getattr(model, "order", 1) - 1, 1)
    ctx, tgt = metrics.contexts(pieces, width, vocab.START)
    logp = np.log(model.prob(ctx, tgt[:, None])[:, 0])
    onset = (tgt >= vocab.note_on_base) & (tgt < vocab.note_off_base)
    cands = np.arange(vocab.note_on_base, vocab.note_off_base)
    guess = model.prob(ctx[onset], cands).argmax(-1) + vocab.note_on_base
    return logp, tgt, int((guess == tgt[onset]).sum())
