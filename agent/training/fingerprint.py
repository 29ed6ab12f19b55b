"""Melodic fingerprints of token pieces, and grouping near-duplicate tunes before a split.

The same tune turns up more than once in the corpus: in O'Neill's and in
Ryan's, as Essen variants, printed in another key, with a note changed or an
ornament added. Split piece by piece, one copy lands in train and another in
test, and the test figure is flattered. So pieces are grouped first and a whole
group goes to one split.

A piece's fingerprint is its *top line* (the highest pitch sounding at each
onset, repeated pitches merged) reduced to melodic intervals in semitones,
which makes it transposition-invariant, and then to

- `head`: the first HEAD_INTERVALS intervals (None if the line is shorter), and
- `shingles`: the set of interval n-grams (n = NGRAM), packed exactly into uint64.

Two pieces are near-duplicates if their heads are identical, or if the Jaccard
similarity of their shingle sets is at least THRESHOLD. Candidate pairs for the
Jaccard test come from MinHash with banding (locality-sensitive hashing), so
grouping thousands of tunes does not compare every pair; every candidate is
then checked with the exact Jaccard similarity. Groups are the connected
components (union-find) of the near-duplicate relation.

One changed note alters at most two intervals, so at most NGRAM + 1 shingles:
a 60-note tune keeps a Jaccard similarity above 0.8 with its variant, while two
different chorale melodies share few 5-interval shingles (well under 0.2).

numpy only (prepare_data and the tests use it; nothing here needs torch).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from agent.music.tokens import Vocab, decode

NGRAM = 5  # intervals per shingle
THRESHOLD = 0.5  # Jaccard similarity of shingle sets at or above which two pieces are one tune
HEAD_INTERVALS = 16  # identical first N intervals: one tune (variants that differ only later on)
HASHES, BAND_ROWS = 120, 3  # MinHash signature length, rows per LSH band (40 bands)


@dataclass(frozen=True)
class Fingerprint:
    head: bytes | None  # the first HEAD_INTERVALS intervals, or None if the top line is shorter
    shingles: np.ndarray  # sorted unique uint64 interval n-grams


def top_line(ids, vocab: Vocab) -> np.ndarray:
    """MIDI pitches of the top line, in time order: at each onset, the highest pitch then sounding
    (a held soprano note stays the top line while the voices under it move), with consecutive
    repeats of one pitch merged (a tied or re-struck note is one melodic step)."""
    notes = decode(ids, vocab)
    if not notes:
        return np.zeros(0, dtype=np.int64)
    res = vocab.resolution
    start = np.array([round(n.start * res) for n in notes], dtype=np.int64)
    end = np.array([round(n.end * res) for n in notes], dtype=np.int64)
    pitch = np.array([n.pitch for n in notes], dtype=np.int64)
    onsets = np.unique(start)
    line = np.empty(len(onsets), dtype=np.int64)
    for a in range(0, len(onsets), 256):  # blocks of onsets: memory stays small for long pieces
        t = onsets[a:a + 256, None]
        sounding = (start[None, :] <= t) & (end[None, :] > t)
        line[a:a + 256] = np.where(sounding, pitch[None, :], -1).max(axis=1)
    keep = np.ones(len(line), dtype=bool)
    keep[1:] = line[1:] != line[:-1]
    return line[keep]


def fingerprint(ids, vocab: Vocab, n: int = NGRAM, head: int = HEAD_INTERVALS) -> Fingerprint:
    """The transposition-invariant fingerprint of one piece (token ids)."""
    if not 1 <= n <= 8:
        raise ValueError(f"shingle length {n} outside 1..8 (8 intervals pack into 64 bits)")
    iv = np.diff(top_line(ids, vocab))
    code = (iv + 128).astype(np.uint64)  # intervals are within +-127: one byte each
    if len(code) < n:
        shingles = np.zeros(0, dtype=np.uint64)
    else:
        windows = np.lib.stride_tricks.sliding_window_view(code, n)
        shifts = (np.arange(n, dtype=np.uint64) * np.uint64(8))
        shingles = np.unique(np.bitwise_or.reduce(windows << shifts, axis=1))
    h = code[:head].astype(np.uint8).tobytes() if len(code) >= head else None
    return Fingerprint(h, shingles)


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """|a & b| / |a | b| of two sorted unique arrays (0 when both are empty)."""
    if len(a) == 0 or len(b) == 0:
        return 0.0
    inter = len(np.intersect1d(a, b, assume_unique=True))
    return inter / (len(a) + len(b) - inter)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: a fixed, well-spread 64-bit hash (wraps modulo 2**64)."""
    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def minhash(shingles: np.ndarray, hashes: int = HASHES) -> np.ndarray:
    """[hashes] uint64: the minimum of each of `hashes` fixed hash functions over the set."""
    seeds = _mix(np.arange(1, hashes + 1, dtype=np.uint64))
    return _mix(shingles[None, :] ^ seeds[:, None]).min(axis=1)


class _UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def near_duplicate_pairs(fps: list[Fingerprint], threshold: float = THRESHOLD,
                         hashes: int = HASHES, rows: int = BAND_ROWS) -> set[tuple[int, int]]:
    """Index pairs (i < j) of pieces that are one tune: same head, or shingle Jaccard >= threshold."""
    pairs: set[tuple[int, int]] = set()
    by_head: dict[bytes, list[int]] = {}
    for i, fp in enumerate(fps):
        if fp.head is not None:
            by_head.setdefault(fp.head, []).append(i)
    for members in by_head.values():
        pairs.update((members[0], j) for j in members[1:])  # a chain is enough for union-find
    with_shingles = [i for i, fp in enumerate(fps) if len(fp.shingles)]
    if len(with_shingles) < 2:
        return pairs
    sigs = np.stack([minhash(fps[i].shingles, hashes) for i in with_shingles])
    candidates: set[tuple[int, int]] = set()
    for b in range(0, hashes - rows + 1, rows):
        buckets: dict[bytes, list[int]] = {}
        for k, key in enumerate(map(bytes, sigs[:, b:b + rows])):
            buckets.setdefault(key, []).append(with_shingles[k])
        for members in buckets.values():
            if len(members) > 1:
                candidates.update((a, c) for x, a in enumerate(members) for c in members[x + 1:])
    for i, j in candidates - pairs:
        if jaccard(fps[i].shingles, fps[j].shingles) >= threshold:
            pairs.add((i, j))
    return pairs


def group(fps: list[Fingerprint], threshold: float = THRESHOLD,
          extra_pairs=()) -> list[int]:
    """A group id per piece (the smallest index in its group): connected components of the
    near-duplicate relation, plus any `extra_pairs` (i, j) the caller knows belong together."""
    uf = _UnionFind(len(fps))
    for i, j in near_duplicate_pairs(fps, threshold):
        uf.union(i, j)
    for i, j in extra_pairs:
        uf.union(i, j)
    return [uf.find(i) for i in range(len(fps))]
