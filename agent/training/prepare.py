"""Turn real music into cached token arrays: music21's corpus and folders of MIDI files.

    python scripts/prepare_data.py                       # the default corpus -> data/prepared/
    python scripts/prepare_data.py --corpus essen,bach --midi-dir ~/midi --out data/mine
    python scripts/prepare_data.py --corpus poly --workers 1 --out data/poly   # the polyphonic sources

Sources are music21 corpus parts (CORPUS; a polyphonic score's parts are merged into one
stream), benchmark piano rolls (ROLLS: Nottingham, chords already in the roll) and MIDI
folders; GROUPS name several at once. The run ends with a per-source table (pieces, tokens,
polyphony, skipped by reason), also in the manifest's "sources".

Each source is parsed once, in parallel worker processes, into a per-source
cache (`data/cache/<source>.npz`: token arrays plus a JSON index of files,
sizes and mtimes). A second run reparses only files that changed. A file
that fails to parse is reported by name, recorded in the manifest and
skipped; the run goes on. Then all pieces are deduplicated, filtered and
split train/valid/test by piece with a fixed seed (a hash of the piece's
tokens, so a piece lands in the same split whatever else is in the data) and
written with agent.training.data.write_split. Pieces that are transpositions of one
another (the same tune printed in two keys, in two books) share the split of
the one with the smallest hash, since training transposes pieces and would
otherwise learn a test tune from its twin. Transposition happens later, in
training, so it can never carry a piece across splits.

Beyond exact twins, near-duplicates (the same tune in O'Neill's and Ryan's,
Essen variants, a tune with a note changed) are grouped by a melodic
fingerprint of each piece's top line (agent/training/fingerprint.py: transposition-
invariant interval 5-grams, Jaccard >= --fp-threshold, or identical first 16
intervals), and a whole group takes the split of its smallest hash. The
manifest's `grouping` says how many groups were merged and how many pieces
they held, per source; `piece_sources` and `piece_groups` give each piece's
source and group (scripts/held_out.py reads them).
"""
from __future__ import annotations

import argparse
import fnmatch
import hashlib
import json
import multiprocessing as mp
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from agent.config import ROOT
from agent.training import data as dataset
from agent.training import fingerprint
from agent.training.splits import assemble, print_report, source_report
from agent.config import load_config
from agent.errors import AntiphonError
from agent.music.tokens import Vocab, encode


@dataclass(frozen=True)
class Part:
    """One music21 corpus part: its folders, the file kinds kept, and how its pieces are read."""

    folders: tuple[str, ...]  # music21 corpus folders (corpus.getComposer names)
    suffixes: tuple[str, ...]  # file suffixes kept
    skip: tuple[str, ...] = ()  # file-name patterns (fnmatch) left out
    style: str = ""  # what kind of music: chorale, folk, renaissance, quartet, piano, song...
    chords: bool = False  # realise the chord symbols as a left-hand accompaniment
    voices_as_tunes: bool = False  # each tune of a file is one voice of a single piece: merge them
    one_format: bool = False  # a piece in several formats (x.krn and x.mxl): keep the first suffix's


CORPUS = {
    "bach": Part(("bach",), (".mxl", ".xml", ".krn"), style="chorale"),  # the .rntxt analyses are not music
    "essen": Part(("essenFolksong",), (".abc",), ("test*", "variant*"), "folk"),  # test/variant files repeat tunes
    "oneills": Part(("oneills1850",), (".abc",), style="folk"),
    "ryans": Part(("ryansMammoth",), (".abc",), style="folk"),
    "airds": Part(("airdsAirs",), (".abc",), style="folk"),
    "miscfolk": Part(("miscFolk",), (".abc",), style="folk"),
    # polyphonic parts, not in the default set: every part of a score is merged into one stream
    "palestrina": Part(("palestrina",), (".krn",), style="renaissance"),  # masses, 4-6 voices
    "monteverdi": Part(("monteverdi",), (".mxl",), ("*_old.*",), "renaissance"),  # madrigals; _old: a 2nd copy
    "trecento": Part(("trecento",), (".xml", ".mxl"), ("*_bak.*",), "trecento", one_format=True),  # _bak: a copy
    "josquin": Part(("josquin",), (".abc",), style="renaissance", voices_as_tunes=True),  # ABC: a tune a voice
    "beethoven": Part(("beethoven",), (".mxl", ".krn"), style="quartet", one_format=True),  # string quartets
    "haydn": Part(("haydn",), (".mxl",), style="quartet"),  # string quartets
    "mozart": Part(("mozart",), (".mxl",), style="quartet"),  # 4 string quartets; k545 piano exposition
    # Robert's op. 41 quartets and two songs, Clara's polonaises and a trio movement
    "schumann": Part(("schumann_robert", "schumann_clara"), (".mxl", ".xml"), style="chamber", one_format=True),
    "chopin": Part(("chopin",), (".krn",), style="piano"),  # one mazurka
    "joplin": Part(("joplin",), (".mxl",), style="piano"),  # Maple Leaf Rag
    "schubert": Part(("schubert",), (".xml",), style="song"),  # Der Lindenbaum, voice and piano
    # music21 ships two tunes of the Nottingham Music Database as ABC, with their chord symbols
    "nottingham-abc": Part(("nottingham-dataset",), (".abc",), style="folk", chords=True),
}
# benchmark piano rolls (../shared/data/poly_music): name -> (file, style); chords are in the roll already
ROLLS = {"nottingham": ("Nottingham.mat", "folk")}
GROUPS = {  # names for several parts at once (the biggest parse, Palestrina's ~1,300 files, last)
    "renaissance": "monteverdi,trecento,josquin,palestrina",
    "classical": "beethoven,haydn,mozart,schumann,chopin,joplin,schubert",
    "poly": "nottingham,nottingham-abc,classical,renaissance",
}
DEFAULT_CORPUS = "bach,essen,oneills,ryans,airds,miscfolk"
# ../shared/data/poly_music beside the checkout (a worktree under wt/ has it one level further up)
POLY_MUSIC = next((p for p in (ROOT.parent / "shared/data/poly_music", ROOT.parent.parent / "shared/data/poly_music")
                   if p.is_dir()), ROOT.parent / "shared/data/poly_music")
MIDI_SUFFIXES = (".mid", ".midi")
CACHE_VERSION = 1
SAVE_EVERY_S = 120.0  # while parsing a source, its cache is saved this often (seconds)


# -- finding files -----------------------------------------------------------
def corpus_files(name: str) -> list[Path]:
    from music21 import corpus

    part = CORPUS[name]
    files = sorted({Path(str(p)) for f in part.folders for p in corpus.getComposer(f)})
    files = [p for p in files if p.suffix.lower() in part.suffixes
             and not any(fnmatch.fnmatch(p.name, pat) for pat in part.skip)]
    if part.one_format:  # x.mxl and x.krn are one piece twice: keep the format listed first
        rank = {s: i for i, s in enumerate(part.suffixes)}
        best: dict[Path, Path] = {}
        for p in files:
            stem = p.with_suffix("")
            if stem not in best or rank[p.suffix.lower()] < rank[best[stem].suffix.lower()]:
                best[stem] = p
        files = sorted(best.values())
    return files


def expand_sources(spec: str) -> list[str]:
    """'poly,bach' -> the part names it stands for (groups expanded, order kept, no repeats)."""
    out: list[str] = []
    for c in (c.strip() for c in spec.split(",")):
        for name in expand_sources(GROUPS[c]) if c in GROUPS else [c] if c else []:
            if name not in out:
                out.append(name)
    return out


def roll_files(name: str, folder: Path) -> list[Path]:
    path = folder / ROLLS[name][0]
    if not path.is_file():
        raise AntiphonError(f"{name}: no {path} (the benchmark rolls; give their folder with --poly-music)")
    return [path]


def midi_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in MIDI_SUFFIXES and p.is_file())


def midi_source_name(folder: Path) -> str:
    folder = folder.resolve()
    return f"midi-{folder.name}-{hashlib.sha1(str(folder).encode()).hexdigest()[:8]}"


# -- parsing (runs in worker processes) ---------------------------------------
def off_grid(notes, resolution: int) -> bool:
    """True if a note starts or ends between ticks (the grid cannot represent it exactly)."""
    return any(abs(t * resolution - round(t * resolution)) > 1e-6 for n in notes for t in (n.start, n.end))


def _piece(name: str, notes, vocab: Vocab) -> dict:
    return {"name": name, "ids": np.asarray(encode(notes, vocab), dtype=np.int32),
            "notes": len(notes), "off_grid": off_grid(notes, vocab.resolution)}


def parse_file(job: tuple[str, str, str, dict]) -> tuple[str, list[dict], str | None]:
    """(kind, path, display name, vocab dict) -> (path, pieces, error or None). Never raises.

    kind: "midi", "roll", or "music21" with "+chords" (chord symbols as a left hand) and/or
    "+voices" (the file's tunes are the voices of one piece)."""
    kind, path, display, vocab_d = job
    vocab = Vocab.from_dict(vocab_d)
    try:
        if kind == "midi":
            from agent.music.notes import read_midi

            return path, [_piece(display, read_midi(path).notes, vocab)], None
        if kind == "roll":
            from agent.training.corpora import ROLL_LAYOUT, roll_notes
            from agent.model.roll import load_mat

            fpb, lowest = ROLL_LAYOUT[Path(path).stem]
            return path, [_piece(f"{display}#{split}{i + 1}", roll_notes(frames, fpb, lowest), vocab)
                          for split, pieces in load_mat(path).items() for i, frames in enumerate(pieces)], None
        from music21 import converter, stream

        from agent.training.corpora import chord_accompaniment
        from agent.music.notes import notes_from_music21

        parsed = converter.parse(path)
        scores = list(parsed.scores) if isinstance(parsed, stream.Opus) else [parsed]
        if "+voices" in kind:  # every tune is one voice of the piece, from its beginning
            notes = sorted((n for s in scores for n in notes_from_music21(s)), key=lambda n: (n.start, n.pitch))
            return path, [_piece(display, notes, vocab)], None
        pieces, errors = [], []
        for i, score in enumerate(scores):
            number = getattr(score.metadata, "number", None) if score.metadata else None
            name = f"{display}#{number or i + 1}" if len(scores) > 1 else display
            try:
                notes = notes_from_music21(score)
                if "+chords" in kind:  # the chord symbols as a left hand under the tune
                    notes = sorted(notes + chord_accompaniment(score), key=lambda n: (n.start, n.pitch))
                pieces.append(_piece(name, notes, vocab))
            except Exception as exc:  # one bad tune in an opus must not lose the rest
                errors.append(f"{name}: {type(exc).__name__}: {exc}")
        if not pieces and errors:
            return path, [], "; ".join(errors[:3])
        return path, pieces, None
    except Exception as exc:  # music21 and mido raise anything; report and skip
        return path, [], f"{type(exc).__name__}: {str(exc)[:300]}"


# -- the per-source cache ------------------------------------------------------
def _stat(p: Path) -> list[int]:
    st = p.stat()
    return [st.st_size, st.st_mtime_ns]


def load_cache(path: Path, vocab: Vocab) -> dict:
    """{file path: {"stat", "error", "pieces": [{name, ids, notes, off_grid}]}} or {} if stale/absent."""
    if not path.exists():
        return {}
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            tokens, offsets = z["tokens"], z["offsets"]
    except Exception as exc:  # a broken cache is rebuilt, not fatal
        print(f"cache {path} unreadable ({exc}); rebuilding", file=sys.stderr)
        return {}
    if meta.get("version") != CACHE_VERSION or meta.get("vocab") != vocab.to_dict():
        return {}
    entries = {}
    for f, e in meta["files"].items():
        pieces = [dict(p, ids=tokens[offsets[p["index"]]:offsets[p["index"] + 1]]) for p in e["pieces"]]
        entries[f] = {"stat": e["stat"], "error": e["error"], "pieces": pieces}
    return entries


def save_cache(path: Path, vocab: Vocab, entries: dict) -> None:
    files, arrays = {}, []
    for f, e in entries.items():
        metas = []
        for p in e["pieces"]:
            metas.append({"name": p["name"], "notes": p["notes"], "off_grid": p["off_grid"], "index": len(arrays)})
            arrays.append(p["ids"])
        files[f] = {"stat": e["stat"], "error": e["error"], "pieces": metas}
    offsets = np.zeros(len(arrays) + 1, dtype=np.int64)
    np.cumsum([len(a) for a in arrays], out=offsets[1:])
    tokens = np.concatenate(arrays).astype(np.int32) if arrays else np.zeros(0, np.int32)
    meta = json.dumps({"version": CACHE_VERSION, "vocab": vocab.to_dict(), "files": files})
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, tokens=tokens, offsets=offsets, meta=np.array(meta))
    os.replace(tmp, path)  # atomic: an interrupted run leaves the old cache intact


def parse_source(name: str, kind: str, files: list[Path], base: Path, vocab: Vocab, cache_dir: Path,
                 use_cache: bool, pool) -> dict:
    """Parse (or reuse from cache) every file of one source; returns the cache entries."""
    from tqdm import tqdm

    cache_path = cache_dir / f"{name}.npz"
    old = load_cache(cache_path, vocab) if use_cache else {}
    entries, jobs, stats = {}, [], {}
    for p in files:
        key = str(p)
        stats[key] = _stat(p)  # as before parsing: a file changed meanwhile is parsed again next run
        if key in old and old[key]["stat"] == stats[key]:
            entries[key] = old[key]
        else:
            display = f"{name}/{p.relative_to(base).as_posix()}"
            jobs.append((kind, key, display, vocab.to_dict()))
    print(f"{name}: {len(files)} files, {len(files) - len(jobs)} from cache, {len(jobs)} to parse", file=sys.stderr)
    if jobs:
        # biggest files first, so the last worker is not left with the longest file
        jobs.sort(key=lambda j: -os.path.getsize(j[1]))
        results = pool.imap_unordered(parse_file, jobs) if pool else map(parse_file, jobs)
        saved = time.monotonic()
        for path, pieces, error in tqdm(results, total=len(jobs), desc=name, unit="file", file=sys.stderr):
            if error:
                tqdm.write(f"skipped {path}: {error}", file=sys.stderr)
            entries[path] = {"stat": stats[path], "error": error, "pieces": pieces}
            if time.monotonic() - saved > SAVE_EVERY_S:  # a long parse that is stopped resumes from here
                save_cache(cache_path, vocab, entries)
                saved = time.monotonic()
        save_cache(cache_path, vocab, entries)
    for path, e in entries.items():
        if e["error"] and e is old.get(path):
            print(f"skipped {path}: {e['error']} (cached)", file=sys.stderr)
    return entries


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", default=DEFAULT_CORPUS,
                    help=f"comma-separated sources: music21 corpus parts ({', '.join(CORPUS)}), "
                         f"rolls ({', '.join(ROLLS)}) or groups ({', '.join(GROUPS)}); '' for none")
    ap.add_argument("--poly-music", type=Path, default=POLY_MUSIC, metavar="DIR",
                    help=f"folder of the benchmark rolls ({', '.join(f for f, _ in ROLLS.values())}; "
                         f"default {POLY_MUSIC})")
    ap.add_argument("--midi-dir", action="append", default=[], type=Path, metavar="DIR",
                    help="a folder of .mid/.midi files, searched recursively (repeatable)")
    ap.add_argument("--out", default=str(ROOT / dataset.DEFAULT_DATA_DIR), help="prepared data folder")
    ap.add_argument("--cache", default=str(ROOT / "data/cache"), help="per-source cache folder")
    ap.add_argument("--no-cache", action="store_true", help="reparse everything (the cache is rewritten)")
    ap.add_argument("--workers", type=int, default=2, help="parser processes (1 = in this process)")
    ap.add_argument("--seed", type=int, default=1234, help="split seed")
    ap.add_argument("--valid", type=float, default=0.05, help="fraction of pieces in the valid split")
    ap.add_argument("--test", type=float, default=0.05, help="fraction of pieces in the test split")
    ap.add_argument("--min-notes", type=int, default=8, help="drop pieces with fewer notes")
    ap.add_argument("--fp-threshold", type=float, default=fingerprint.THRESHOLD,
                    help="Jaccard similarity of top-line interval n-grams at which two pieces are one tune "
                         "(grouped into one split; default %(default)s)")
    ap.add_argument("--grid-filter", action="store_true",
                    help="drop pieces whose note times fall between ticks (not exactly representable)")
    ap.add_argument("--limit", type=int, default=0, help="use only the first N files of each corpus part (quick runs)")
    ap.add_argument("--config", help="config file whose [tokens] section gives the vocabulary")
    return ap


def plan_sources(args, ap: argparse.ArgumentParser) -> list[tuple]:
    """(source name, kind, files, base folder) for every source asked for; ap.error on a bad one."""
    wanted = expand_sources(args.corpus)
    unknown = [c for c in wanted if c not in CORPUS and c not in ROLLS]
    if unknown:
        ap.error(f"unknown corpus part(s) {', '.join(unknown)} "
                 f"(known: {', '.join([*CORPUS, *ROLLS])}; groups: {', '.join(GROUPS)})")
    plan = []  # (source name, kind, files, base folder)
    for c in wanted:
        if c in ROLLS:
            try:
                files = roll_files(c, args.poly_music)
            except AntiphonError as exc:
                ap.error(str(exc))
            plan.append((c, "roll", files, files[0].parent))
            continue
        files = corpus_files(c)[: args.limit or None]
        base = Path(os.path.commonpath([p.parent for p in files])) if files else ROOT
        part = CORPUS[c]
        plan.append((c, "music21" + "+chords" * part.chords + "+voices" * part.voices_as_tunes, files, base))
    for d in args.midi_dir:
        if not d.is_dir():
            ap.error(f"--midi-dir {d}: not a folder")
        plan.append((midi_source_name(d), "midi", midi_files(d), d))
    if not plan:
        ap.error("no sources: give --corpus and/or --midi-dir")
    return plan


def parse_all(plan: list[tuple], vocab: Vocab, args) -> tuple[dict, dict]:
    """Every source's parsed files (from the cache where it has them): (sources, seconds per source)."""
    pool = mp.get_context("fork").Pool(args.workers) if args.workers > 1 else None
    try:
        sources, parse_s = {}, {}
        for name, kind, files, base in plan:
            t_src = time.perf_counter()
            sources[name] = parse_source(name, kind, files, base, vocab, Path(args.cache), not args.no_cache, pool)
            parse_s[name] = round(time.perf_counter() - t_src, 1)
    finally:
        if pool:
            pool.close()
            pool.join()
    return sources, parse_s


def print_summary(out: str, manifest: dict) -> None:
    """What was prepared, on stdout: the splits, the per-source table, the grouping."""
    summary = {"out": out, "splits": manifest["counts"]["splits"], "filtered": manifest["filtered"],
               "skipped_files": len(manifest["skipped"]), "seconds": manifest["prepare_s"]}
    print(json.dumps(summary, indent=1))
    print_report(manifest["sources"])
    for src, c in manifest["counts"]["sources"].items():
        print(f"{src:>24}: {c['pieces']:6d} pieces {c['tokens']:9d} tokens "
              f"(train {c['train']}, valid {c['valid']}, test {c['test']}), {c['skipped_files']} files skipped")
    g = manifest["grouping"]
    print(f"grouping: {g['merged_groups']} merged groups held {g['pieces_in_merged_groups']} pieces "
          f"({g['cross_source_groups']} across sources, largest {g['largest_group']})")
    for src, c in g["per_source"].items():
        print(f"{src:>24}: {c['pieces_in_merged_groups']} pieces in {c['merged_groups']} merged groups")


def main(argv: list[str] | None = None) -> int:
    ap = parser()
    args = ap.parse_args(argv)
    vocab = load_config(args.config).vocab()
    plan = plan_sources(args, ap)
    t0 = time.perf_counter()
    sources, parse_s = parse_all(plan, vocab, args)
    manifest = assemble(sources, args, vocab)
    styles = {**{c: part.style for c, part in CORPUS.items()}, **{r: style for r, (_, style) in ROLLS.items()}}
    manifest["sources"] = source_report(sources, args, vocab, styles)
    for name, seconds in parse_s.items():
        manifest["sources"][name]["parse_s"] = seconds  # this run's: near 0 when all came from the cache
    manifest["prepare_s"] = round(time.perf_counter() - t0, 1)
    dataset.write_manifest(args.out, manifest)
    print_summary(args.out, manifest)
    return 0
