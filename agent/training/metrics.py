"""Musical statistics of token streams, for evaluation (numpy only, no torch).

Every function takes token ids (any int sequence) and the `Vocab` they are
written in. Times are in beats; pitches are MIDI numbers; a pitch class is
pitch % 12 (0 = C). Histograms are normalised to sum to 1 (all zeros if
there are no notes).

It also holds the count-based baselines the LSTM is compared with: a
unigram and an interpolated Kneser-Ney n-gram over tokens.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

# Keys come from agent.music.keys, the one estimator. PC_NAMES (evaluate's plot labels) and
# estimate_key (best_key: (tonic, mode, r), C major with r = 0 for a flat histogram) are kept
# here under the names evaluation code calls.
from agent.music.keys import PC_NAMES, scale_pitch_classes  # noqa: F401
from agent.music.keys import best_key as estimate_key
from agent.music.keys import key_name as _key_name
from agent.music.tokens import Vocab


def polyphony_ticks(ids: Sequence[int], vocab: Vocab) -> tuple[int, int]:
    """(note ticks, sounding ticks) of a token stream: the sum over notes of their lengths, and the
    time during which at least one note sounds. Assumes a well-formed stream (as `encode` makes):
    every NOTE_ON of a sounding pitch is preceded by its NOTE_OFF."""
    ids = np.asarray(ids, dtype=np.int64)
    on0, off0, sh0 = vocab.note_on_base, vocab.note_off_base, vocab.shift_base
    n = vocab.n_pitches
    delta = ((ids >= on0) & (ids < on0 + n)).astype(np.int64) - ((ids >= off0) & (ids < off0 + n))
    sounding = np.cumsum(delta)  # notes sounding after each token
    is_shift = (ids >= sh0) & (ids < sh0 + vocab.max_shift)
    ticks = np.where(is_shift, ids - sh0 + 1, 0)
    return int(np.sum(ticks * sounding)), int(np.sum(ticks * (sounding > 0)))


def polyphony(pieces: Iterable[Sequence[int]], vocab: Vocab) -> float:
    """Mean notes sounding, time-weighted, over the time anything sounds (rests do not count);
    1.0 for a single melodic line, 0.0 for no sounding time at all."""
    note_t = sound_t = 0
    for ids in pieces:
        a, b = polyphony_ticks(ids, vocab)
        note_t += a
        sound_t += b
    return note_t / sound_t if sound_t else 0.0


def onsets(ids: Iterable[int], vocab: Vocab) -> list[tuple[int, int]]:
    """(tick, pitch) of every NOTE_ON, in stream order; tick counts SHIFTs from 0."""
    tick = 0
    out = []
    lo_on, lo_shift = vocab.note_on_base, vocab.shift_base
    for i in ids:
        i = int(i)
        if lo_on <= i < vocab.note_off_base:
            out.append((tick, i - lo_on + vocab.pitch_lo))
        elif lo_shift <= i < vocab.velocity_base:
            tick += i - lo_shift + 1
    return out


def onset_groups(ids: Iterable[int], vocab: Vocab) -> list[frozenset[int]]:
    """Note-ons grouped by onset tick: one pitch set per distinct onset (a chord is one group)."""
    groups: list[frozenset[int]] = []
    last_tick, cur = None, set()
    for tick, pitch in onsets(ids, vocab):
        if tick != last_tick and cur:
            groups.append(frozenset(cur))
            cur = set()
        cur.add(pitch)
        last_tick = tick
    if cur:
        groups.append(frozenset(cur))
    return groups


def pitch_histogram(seqs: Iterable[Sequence[int]], vocab: Vocab) -> np.ndarray:
    """Normalised counts of NOTE_ON pitches 0..127 over all sequences: shape [128]."""
    counts = np.zeros(128)
    lo, hi = vocab.note_on_base, vocab.note_off_base
    for s in seqs:
        a = np.asarray(s, dtype=np.int64)
        a = a[(a >= lo) & (a < hi)] - lo + vocab.pitch_lo
        counts += np.bincount(a, minlength=128)[:128]
    total = counts.sum()
    return counts / total if total else counts


def pitch_class_histogram(seqs: Iterable[Sequence[int]], vocab: Vocab) -> np.ndarray:
    """Normalised counts of NOTE_ON pitch classes: shape [12], index 0 = C."""
    return np.bincount(np.arange(128) % 12, weights=pitch_histogram(seqs, vocab), minlength=12)


def histogram_distance(p: np.ndarray, q: np.ndarray) -> float:
    """Total variation distance 0.5 * sum|p - q| between two normalised histograms, in [0, 1]."""
    return float(0.5 * np.abs(np.asarray(p, float) - np.asarray(q, float)).sum())


def key_name(tonic: int, mode: str) -> str:
    """(2, 'minor') as two arguments -> 'D minor' (agent.music.keys.key_name takes the pair)."""
    return _key_name((tonic, mode))


def in_key_ratio(ids: Sequence[int], vocab: Vocab, key: tuple[int, str] | None = None) -> float:
    """Fraction of NOTE_ONs whose pitch class is in the scale of `key` (NaN if no notes).

    `key` is (tonic, mode); if None it is estimated from `ids` themselves.
    """
    pcs = [p % 12 for _, p in onsets(ids, vocab)]
    if not pcs:
        return float("nan")
    if key is None:
        key = estimate_key(np.bincount(pcs, minlength=12))[:2]
    scale = scale_pitch_classes(tuple(key))
    return sum(pc in scale for pc in pcs) / len(pcs)


def note_density(ids: Sequence[int], vocab: Vocab) -> float:
    """Note-ons per beat over the stream's total SHIFT time (NaN if it takes no time)."""
    a = np.asarray(ids, dtype=np.int64)
    shifts = a[(a >= vocab.shift_base) & (a < vocab.velocity_base)] - vocab.shift_base + 1
    beats = shifts.sum() / vocab.resolution
    n_on = int(((a >= vocab.note_on_base) & (a < vocab.note_off_base)).sum())
    return n_on / beats if beats > 0 else float("nan")


def is_collapsed(ids: Sequence[int], vocab: Vocab, window: int = 8) -> bool:
    """True if the stream ends stuck on one pitch or chord.

    Precisely: group the NOTE_ONs by onset tick into pitch sets (a chord is
    one set); the stream is collapsed when it has at least `window` groups
    and its last `window` groups are all the same set, i.e. the last 8 (by
    default) things it played were the same note or the same chord. This is
    the argmax failure of ../shared/ANCESTRY.md ("stuck predicting A
    forever"). A stream with fewer than `window` onsets is not judged
    collapsed (silence is counted separately, see `is_silent`).
    """
    groups = onset_groups(ids, vocab)
    if len(groups) < window:
        return False
    tail = groups[-window:]
    return all(g == tail[0] for g in tail)


def is_silent(ids: Sequence[int], vocab: Vocab) -> bool:
    """True if the stream has no NOTE_ON at all."""
    a = np.asarray(ids, dtype=np.int64)
    return not bool(((a >= vocab.note_on_base) & (a < vocab.note_off_base)).any())


def collapse_rate(samples: Sequence[Sequence[int]], vocab: Vocab, window: int = 8) -> float:
    """Fraction of `samples` for which `is_collapsed` holds (0 if there are none)."""
    if not samples:
        return 0.0
    return sum(is_collapsed(s, vocab, window) for s in samples) / len(samples)


def mean_finite(values: Iterable[float]) -> float:
    """Mean over the finite values (NaN if none): per-sample stats skip empty samples."""
    v = np.asarray([x for x in values if np.isfinite(x)], float)
    return float(v.mean()) if v.size else float("nan")


def music_stats(continuations: Sequence[Sequence[int]], openings: Sequence[Sequence[int]], vocab: Vocab,
                window: int = 8) -> dict:
    """Summary statistics of continuations, each following its opening.

    in_key_ratio measures each continuation against the key estimated from
    its opening *and* itself (so a continuation is judged in the key the
    music set up); polyphony is the mean number of notes sounding while any
    sounds, over all continuations. Returns plain floats for a JSON report.
    """
    ratios = []
    for cont, op in zip(continuations, openings):
        pcs = [p % 12 for _, p in onsets(list(op) + list(cont), vocab)]
        key = estimate_key(np.bincount(pcs, minlength=12))[:2] if pcs else None
        ratios.append(in_key_ratio(cont, vocab, key))
    return {
        "n": len(continuations),
        "in_key_ratio": mean_finite(ratios),
        "note_density": mean_finite(note_density(c, vocab) for c in continuations),
        "collapse_rate": collapse_rate(continuations, vocab, window),
        "silent_rate": (sum(is_silent(c, vocab) for c in continuations) / len(continuations)) if continuations else 0.0,
        "distinct_pitches": mean_finite(float(len({p for _, p in onsets(c, vocab)})) for c in continuations),
        "polyphony": polyphony(continuations, vocab),
        "pitch_class_histogram": [round(float(x), 5) for x in pitch_class_histogram(continuations, vocab)],
    }


# -- count-based baselines ------------------------------------------------------
# Both predict every target of a piece (piece[1:], as the LSTM does) from the
# tokens before it, with the piece's START repeated as left padding, so all
# three models are scored on exactly the same targets.

def contexts(pieces: Iterable[Sequence[int]], width: int, pad: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(ctx [M, width], targets [M]): the `width` tokens before every target piece[1:]."""
    ctxs, tgts = [], []
    for p in pieces:
        a = np.asarray(p, dtype=np.int64)
        if a.size < 2:
            continue
        padded = np.concatenate([np.full(width, pad, np.int64), a])
        win = np.lib.stride_tricks.sliding_window_view(padded, width + 1)[1:]
        ctxs.append(win[:, :width])
        tgts.append(win[:, width])
    if not ctxs:
        return np.zeros((0, width), np.int64), np.zeros(0, np.int64)
    return np.concatenate(ctxs), np.concatenate(tgts)


class UnigramModel:
    """Token frequencies of the train targets with add-one smoothing: P(w) = (c(w)+1)/(N+V)."""

    order = 1

    def __init__(self, vocab_size: int) -> None:
        self.V = vocab_size
        self.p = np.full(vocab_size, 1.0 / vocab_size)

    def fit(self, pieces: Iterable[Sequence[int]]) -> "UnigramModel":
        counts = np.zeros(self.V)
        for piece in pieces:
            counts += np.bincount(np.asarray(piece[1:], dtype=np.int64), minlength=self.V)
        self.p = (counts + 1.0) / (counts.sum() + self.V)
        return self

    def prob(self, ctx: np.ndarray, cands: np.ndarray) -> np.ndarray:
        """P(cand | ctx), shape [M, C] for ctx [M, *] and cands [M, C] or [C]."""
        cands = np.broadcast_to(np.asarray(cands, np.int64), (len(ctx),) + np.shape(cands)[-1:])
        return self.p[cands]


class KneserNeyModel:
    """Interpolated Kneser-Ney n-gram over tokens (Chen & Goodman 1998, one discount per order).

    P_k(w|h) = max(a_k(hw) - D_k, 0) / T(h) + D_k * N1+(h.) / T(h) * P_{k-1}(w|h')
    where a_k is the raw count at the top order and the continuation count
    (number of distinct left neighbours) below it; T(h) = sum_w a_k(hw),
    h' drops h's oldest token, and the bottom order interpolates with the
    uniform 1/V. A context never seen backs off to the order below.
    D_k = n1 / (n1 + 2 n2) from the counts-of-counts of a_k. Counting is
    vectorised: an n-gram is one int64 key (base V), V**order < 2**63.
    """

    def __init__(self, vocab_size: int, order: int = 4, pad: int = 0) -> None:
        if vocab_size ** order >= 2 ** 62:
            raise ValueError(f"vocabulary {vocab_size} too large for a {order}-gram int64 key")
        self.V, self.order, self.pad = vocab_size, order, pad
        self.tables: dict[int, tuple] = {}

    def fit(self, pieces: Iterable[Sequence[int]]) -> "KneserNeyModel":
        ctx, tgt = contexts(pieces, self.order - 1, self.pad)
        keys = self._ctx_key(ctx, self.order - 1) * self.V + tgt
        del ctx, tgt
        uk, a = np.unique(keys, return_counts=True)
        del keys
        for k in range(self.order, 0, -1):
            if k < self.order:  # continuation counts from the distinct (k+1)-grams
                uk, a = np.unique(uk % self.V ** k, return_counts=True)
            hk = uk // self.V  # sorted, since uk is
            hs, first, n1plus = np.unique(hk, return_index=True, return_counts=True)
            totals = np.add.reduceat(a, first)
            c1, c2 = (a == 1).sum(), (a == 2).sum()
            d = c1 / (c1 + 2 * c2) if c1 + c2 else 0.5
            self.tables[k] = (uk, a.astype(np.float64), hs, totals.astype(np.float64), n1plus.astype(np.float64),
                              float(min(max(d, 0.05), 0.95)))
        return self

    def _ctx_key(self, ctx: np.ndarray, k: int) -> np.ndarray:
        """Key of the last k tokens of each row (oldest has the highest power)."""
        key = np.zeros(len(ctx), np.int64)
        for j in range(k):
            key = key * self.V + ctx[:, ctx.shape[1] - k + j]
        return key

    @staticmethod
    def _lookup(sorted_keys: np.ndarray, values: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        i = np.clip(np.searchsorted(sorted_keys, q), 0, len(sorted_keys) - 1)
        found = sorted_keys[i] == q
        return found, np.where(found, values[i], 0.0)

    def prob(self, ctx: np.ndarray, cands: np.ndarray, rows_per_block: int = 65536) -> np.ndarray:
        """P(cand | ctx), shape [M, C] for ctx [M, order-1] and cands [M, C] or [C]."""
        ctx = np.asarray(ctx, np.int64)
        cands = np.broadcast_to(np.asarray(cands, np.int64), (len(ctx),) + np.shape(cands)[-1:])
        out = np.empty(cands.shape)
        for s in range(0, len(ctx), rows_per_block):
            out[s:s + rows_per_block] = self._prob_block(ctx[s:s + rows_per_block], cands[s:s + rows_per_block])
        return out

    def _prob_block(self, ctx: np.ndarray, cands: np.ndarray) -> np.ndarray:
        p = np.full(cands.shape, 1.0 / self.V)
        for k in range(1, self.order + 1):
            uk, a, hs, totals, n1plus, d = self.tables[k]
            hkey = self._ctx_key(ctx, k - 1)
            seen, tot = self._lookup(hs, totals, hkey)
            _, n1 = self._lookup(hs, n1plus, hkey)
            _, cnt = self._lookup(uk, a, hkey[:, None] * self.V + cands)
            tot, n1 = tot[:, None], n1[:, None]
            mixed = (np.maximum(cnt - d, 0.0) + d * n1 * p) / np.where(tot > 0, tot, 1.0)
            p = np.where(seen[:, None], mixed, p)
        return p
