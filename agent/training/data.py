"""Prepared token data on disk: a manifest plus one token array per split.

A prepared data folder (default `data/prepared/`, made by
scripts/prepare_data.py) holds

    manifest.json           vocab dict, split seed, counts per source and split,
                            piece names per split, skipped files with reasons
    {split}.tokens.npy      int32, the split's pieces concatenated, each piece
                            START ... END, untransposed
    {split}.offsets.npy     int64, n+1 piece start offsets into tokens

for split in train, valid, test. Transposition augmentation happens on the
fly in training (`transpose`), so the folder stays small and the split, being
by piece, never lets a transposed copy of a piece cross into another split.

numpy only: the trainer, the evaluator and the tests all read this, and none
of it needs torch.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from agent.config import ROOT
from agent.errors import AntiphonError
from agent.music.tokens import Vocab

SPLITS = ("train", "valid", "test")
DEFAULT_DATA_DIR = Path("data/prepared")
MANIFEST = "manifest.json"
QUICK_DATA_DIR = Path("data/quick")  # what --quick runs use when there is no prepared data
QUICK_CHORALES = 120  # ~30 s to parse on 2 cores; the split rule puts a handful in valid and test


class DataError(AntiphonError):
    """A prepared data folder is missing, incomplete or inconsistent."""


def _paths(data_dir: str | Path, split: str) -> tuple[Path, Path]:
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r} (known: {', '.join(SPLITS)})")
    d = Path(data_dir)
    return d / f"{split}.tokens.npy", d / f"{split}.offsets.npy"


def write_split(data_dir: str | Path, split: str, pieces: list) -> tuple[int, int]:
    """Write one split's pieces (sequences of token ids); returns (pieces, tokens)."""
    tok_path, off_path = _paths(data_dir, split)
    tok_path.parent.mkdir(parents=True, exist_ok=True)
    lengths = np.array([len(p) for p in pieces], dtype=np.int64)
    offsets = np.zeros(len(pieces) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    tokens = (np.concatenate([np.asarray(p, dtype=np.int32) for p in pieces])
              if pieces else np.zeros(0, dtype=np.int32))
    np.save(tok_path, tokens)
    np.save(off_path, offsets)
    return len(pieces), int(offsets[-1])


def load_tokens(data_dir: str | Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(tokens int32, offsets int64) of one split, memory-mapped (no copy)."""
    tok_path, off_path = _paths(data_dir, split)
    if not tok_path.exists() or not off_path.exists():
        raise DataError(f"{Path(data_dir)}: no {split} split (run scripts/prepare_data.py first)")
    tokens = np.load(tok_path, mmap_mode="r")
    offsets = np.load(off_path)
    if offsets.ndim != 1 or len(offsets) < 1 or offsets[0] != 0 or offsets[-1] != len(tokens):
        raise DataError(f"{off_path}: offsets do not match {tok_path.name} ({len(tokens)} tokens)")
    return tokens, offsets


def load_split(data_dir: str | Path, split: str) -> list[np.ndarray]:
    """One split as a list of pieces, each an int array START ... END."""
    tokens, offsets = load_tokens(data_dir, split)
    tokens = np.asarray(tokens)
    return [tokens[a:b] for a, b in zip(offsets[:-1], offsets[1:])]


def write_manifest(data_dir: str | Path, manifest: dict) -> Path:
    path = Path(data_dir) / MANIFEST
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(manifest, indent=1) + "\n")
    return path


def load_manifest(data_dir: str | Path) -> dict:
    path = Path(data_dir) / MANIFEST
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(f"{path}: no manifest (run scripts/prepare_data.py first)") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON: {exc}") from None


def data_for_quick(data_dir: str | Path, log=print, *, quick_dir: str | Path = QUICK_DATA_DIR,
                   chorales: int = QUICK_CHORALES) -> Path:
    """The prepared data a `--quick` run uses: data_dir if it has a manifest, else a small set.

    On a fresh clone there is no data/prepared, so a quick benchmark or
    evaluation builds (once; later runs reuse it) data/quick from the first
    `chorales` (QUICK_CHORALES) Bach chorales of music21's corpus, with
    scripts/prepare_data.py. Its split rule is the full run's (a hash of each
    piece's tokens, the smallest of its fingerprint group), so a test piece
    here is a test piece of the full set too, unless a near-duplicate outside
    these chorales joins its group there.
    """
    data_dir = Path(data_dir)
    if (data_dir / MANIFEST).is_file():
        return data_dir
    quick = Path(quick_dir).resolve()
    if not (quick / MANIFEST).is_file():
        log(f"no prepared data at {data_dir}: building {quick_dir} from {chorales} Bach chorales (once)")
        script = ROOT / "scripts" / "prepare_data.py"
        r = subprocess.run([sys.executable, str(script), "--corpus", "bach", "--limit", str(chorales),
                            "--out", str(quick), "--cache", str(quick / "cache")], capture_output=True, text=True)
        if r.returncode != 0 or not (quick / MANIFEST).is_file():
            tail = (r.stderr or r.stdout).strip().splitlines()[-1:] or ["no output"]
            raise DataError(f"could not build {quick_dir} for a quick run: {tail[0]}")
    return quick


def vocab_of(data_dir: str | Path) -> Vocab:
    """The vocabulary the folder's tokens were made with."""
    manifest = load_manifest(data_dir)
    if "vocab" not in manifest:
        raise DataError(f"{Path(data_dir) / MANIFEST}: no 'vocab' entry")
    return Vocab.from_dict(manifest["vocab"])


def transpose(ids, semitones: int, vocab: Vocab) -> np.ndarray | None:
    """Shift every NOTE_ON/NOTE_OFF by `semitones`; None if a pitch would leave the range.

    SHIFT, VEL, START and END are unchanged. Works on any int array of ids
    (a piece or a chunk); the result is a new int array of the same dtype.
    """
    ids = np.asarray(ids)
    if semitones == 0:
        return ids.copy()
    n = vocab.n_pitches
    out = ids.copy()
    for base in (vocab.note_on_base, vocab.note_off_base):
        rel = ids - base
        mask = (rel >= 0) & (rel < n)
        moved = rel[mask] + semitones
        if moved.size and (moved.min() < 0 or moved.max() >= n):
            return None
        out[mask] = moved + base
    return out


def pitch_span(ids, vocab: Vocab) -> tuple[int, int] | None:
    """(lowest, highest) pitch among the NOTE_ON/NOTE_OFF tokens of `ids`, or None if none."""
    rel = np.asarray(ids) - vocab.note_on_base
    rel = rel[(rel >= 0) & (rel < 2 * vocab.n_pitches)] % vocab.n_pitches
    if rel.size == 0:
        return None
    return int(rel.min()) + vocab.pitch_lo, int(rel.max()) + vocab.pitch_lo


def lowest_transposition(ids, vocab: Vocab) -> np.ndarray:
    """`ids` transposed so its lowest pitch is vocab.pitch_lo: the same array for every
    transposition of a piece (a copy of `ids` if it has no notes)."""
    span = pitch_span(ids, vocab)
    return transpose(ids, vocab.pitch_lo - span[0] if span else 0, vocab)


def allowed_shifts(ids, vocab: Vocab, max_semitones: int) -> list[int]:
    """Transpositions in [-max, +max] that keep every pitch of `ids` in range."""
    span = pitch_span(ids, vocab)
    if span is None:
        return [0]
    lo, hi = span
    return [s for s in range(-max_semitones, max_semitones + 1)
            if vocab.pitch_lo <= lo + s and hi + s <= vocab.pitch_hi]
