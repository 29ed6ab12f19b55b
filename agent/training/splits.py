"""Prepared data's splits: parsed pieces deduplicated, filtered, grouped (a tune and its near-duplicates
and transposed twins are one group) and split by a hash of the group, so a group takes one split.

The splits are written with agent/training/data.py; `assemble` returns the manifest that
agent/training/prepare.py writes beside them.
"""
from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np

from agent.music.tokens import Vocab
from agent.training import data as dataset
from agent.training import fingerprint


def split_of(digest: str, seed: int, valid: float, test: float) -> str:
    u = int(hashlib.sha1(f"{seed}:{digest}".encode()).hexdigest()[:12], 16) / 16**12
    return "test" if u < test else "valid" if u < test + valid else "train"


def piece_digest(ids: np.ndarray) -> str:
    return hashlib.sha1(np.asarray(ids, dtype=np.int32).tobytes()).hexdigest()


def kept_pieces(sources: dict[str, dict], args, vocab: Vocab) -> tuple[list, dict, dict, list]:
    """The pieces that pass the filters, each once: (kept, counts per source, filtered, skipped files).

    kept: (source, name, ids, digest, digest of its lowest transposition).
    """
    seen: set[str] = set()
    kept = []  # (source, name, ids, digest, digest of its lowest transposition)
    per_source: dict[str, dict] = {}
    filtered = {"too_short": 0, "off_grid": 0, "duplicate": 0}
    skipped = []
    for src, entries in sources.items():
        per_source[src] = {"files": len(entries), "skipped_files": 0, "pieces": 0, "tokens": 0,
                           **{s: 0 for s in dataset.SPLITS}}
        for path, e in sorted(entries.items()):
            if e["error"]:
                per_source[src]["skipped_files"] += 1
                skipped.append({"file": path, "source": src, "reason": e["error"]})
            for p in e["pieces"]:
                if p["notes"] < args.min_notes:
                    filtered["too_short"] += 1
                    continue
                if args.grid_filter and p["off_grid"]:
                    filtered["off_grid"] += 1
                    continue
                ids = np.asarray(p["ids"], dtype=np.int32)
                digest = piece_digest(ids)
                if digest in seen:  # O'Neill's ranges overlap; some tunes are in two books
                    filtered["duplicate"] += 1
                    continue
                seen.add(digest)
                kept.append((src, p["name"], ids, digest, piece_digest(dataset.lowest_transposition(ids, vocab))))
    return kept, per_source, filtered, skipped


def assemble(sources: dict[str, dict], args, vocab: Vocab) -> dict:
    """Dedupe, filter, split; write the splits. Returns the manifest (main writes it)."""
    kept, per_source, filtered, skipped = kept_pieces(sources, args, vocab)
    # a piece in no group is split by its own digest; a group (transposed twins, near-duplicates) by its smallest
    threshold = getattr(args, "fp_threshold", fingerprint.THRESHOLD)
    groups = group_pieces(kept, vocab, threshold)
    group_digest: dict[int, str] = {}
    for (_, _, _, digest, _), g in zip(kept, groups):
        group_digest[g] = min(digest, group_digest.get(g, digest))
    splits: dict[str, list] = {s: [] for s in dataset.SPLITS}
    names: dict[str, list] = {s: [] for s in dataset.SPLITS}
    piece_sources: dict[str, list] = {s: [] for s in dataset.SPLITS}
    piece_groups: dict[str, list] = {s: [] for s in dataset.SPLITS}
    for (src, name, ids, _, _), g in zip(kept, groups):
        split = split_of(group_digest[g], args.seed, args.valid, args.test)
        splits[split].append(ids)
        names[split].append(name)
        piece_sources[split].append(src)
        piece_groups[split].append(group_digest[g][:12])
        counts = per_source[src]
        counts["pieces"] += 1
        counts["tokens"] += len(ids)
        counts[split] += 1
    out = Path(args.out)
    totals = {}
    for s in dataset.SPLITS:
        n, t = dataset.write_split(out, s, splits[s])
        totals[s] = {"pieces": n, "tokens": t}
    return {
        "vocab": vocab.to_dict(), "seed": args.seed, "fractions": {"valid": args.valid, "test": args.test},
        "filters": {"min_notes": args.min_notes, "grid_filter": args.grid_filter}, "filtered": filtered,
        "counts": {"sources": per_source, "splits": totals},
        "pieces": names, "skipped": skipped,
        "grouping": grouping_report(kept, groups, threshold),
        "piece_sources": piece_sources, "piece_groups": piece_groups,
    }


def group_pieces(kept: list, vocab: Vocab, threshold: float) -> list[int]:
    """A group id per kept piece: near-duplicates by melodic fingerprint, plus exact transposed twins."""
    fps = [fingerprint.fingerprint(ids, vocab) for _, _, ids, _, _ in kept]
    first_of: dict[str, int] = {}
    twins = []
    for i, (*_, key) in enumerate(kept):  # key: digest of the lowest transposition
        twins.append((first_of.setdefault(key, i), i))
    return fingerprint.group(fps, threshold, extra_pairs=twins)


def grouping_report(kept: list, groups: list[int], threshold: float) -> dict:
    """How many groups of more than one piece there are, and how many pieces they hold, in all and per source."""
    members: dict[int, list[str]] = {}
    for (src, *_), g in zip(kept, groups):
        members.setdefault(g, []).append(src)
    merged = [m for m in members.values() if len(m) > 1]
    per_source: dict[str, dict] = {}
    for m in merged:
        for src in set(m):
            c = per_source.setdefault(src, {"merged_groups": 0, "pieces_in_merged_groups": 0})
            c["merged_groups"] += 1
            c["pieces_in_merged_groups"] += m.count(src)
    return {
        "method": (f"top-line interval {fingerprint.NGRAM}-grams, Jaccard >= {threshold}, or the same first "
                   f"{fingerprint.HEAD_INTERVALS} intervals, or a transposed twin; a group takes one split"),
        "threshold": threshold, "ngram": fingerprint.NGRAM, "head_intervals": fingerprint.HEAD_INTERVALS,
        "groups": len(members), "merged_groups": len(merged),
        "pieces_in_merged_groups": sum(len(m) for m in merged),
        "cross_source_groups": sum(1 for m in merged if len(set(m)) > 1),
        "largest_group": max((len(m) for m in members.values()), default=0),
        "per_source": per_source,
    }


# -- the per-source report -----------------------------------------------------
def source_report(sources: dict[str, dict], args, vocab: Vocab, styles: dict[str, str]) -> dict[str, dict]:
    """{source: {"style", "pieces", "tokens", "polyphony", "skipped": {reason: count}}}.

    The pieces that pass the same filters, in the same order, as `assemble` (a piece seen in an earlier
    source or file is a duplicate). Skipped files count by their error's kind; pieces by filter.
    Polyphony: mean notes sounding, time-weighted, over the time anything sounds (agent.training.corpora).
    """
    from agent.training.corpora import skip_reason
    from agent.training.metrics import polyphony_ticks

    seen: set[str] = set()
    report = {}
    for src, entries in sources.items():
        skipped: dict[str, int] = {}
        pieces = tokens = note_t = sound_t = 0
        for _, e in sorted(entries.items()):
            if e["error"]:
                reason = skip_reason(e["error"])
                skipped[reason] = skipped.get(reason, 0) + 1
            for p in e["pieces"]:
                ids = np.asarray(p["ids"], dtype=np.int32)
                digest = piece_digest(ids)
                reason = ("too short" if p["notes"] < args.min_notes else
                          "off grid" if args.grid_filter and p["off_grid"] else
                          "duplicate" if digest in seen else None)
                if reason:
                    skipped[reason] = skipped.get(reason, 0) + 1
                    continue
                seen.add(digest)
                a, b = polyphony_ticks(ids, vocab)
                pieces, tokens, note_t, sound_t = pieces + 1, tokens + len(ids), note_t + a, sound_t + b
        report[src] = {"style": styles.get(src, "midi"), "files": len(entries), "pieces": pieces, "tokens": tokens,
                       "polyphony": round(note_t / sound_t, 3) if sound_t else 0.0,
                       "skipped": dict(sorted(skipped.items()))}
    return report


def print_report(report: dict[str, dict], file=None) -> None:
    """The per-source table: pieces, tokens, polyphony, and what was skipped, by reason."""
    file = file or sys.stdout
    print(f"{'source':>24} {'style':>11} {'files':>6} {'pieces':>7} {'tokens':>10} {'poly':>5} {'parse_s':>8}  skipped",
          file=file)
    for src, r in report.items():
        why = ", ".join(f"{n} {reason}" for reason, n in r["skipped"].items()) or "-"
        print(f"{src:>24} {r['style']:>11} {r['files']:6d} {r['pieces']:7d} {r['tokens']:10d} "
              f"{r['polyphony']:5.2f} {r.get('parse_s', 0.0):8.1f}  {why}", file=file)
