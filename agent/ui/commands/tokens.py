"""antiphon tokens FILE.mid [--ids] [--roundtrip OUT.mid]"""
from __future__ import annotations

from pathlib import Path

from agent.ui.cli import common_options
from agent.config import load_config
from agent.errors import AntiphonError
from agent.music.tokens import decode, encode, quantize
from agent.model.folder import ModelDir
from agent.music.notes import read_midi, write_midi

HELP = "show a MIDI file as tokens, or round-trip it through them"


def add_arguments(p) -> None:
    p.add_argument("file", nargs="?", help="a .mid file (or use --corpus)")
    p.add_argument("--corpus", metavar="NAME", help="a piece from music21's corpus instead, e.g. bach/bwv66.6")
    p.add_argument("--ids", action="store_true", help="print integer token ids on one line")
    p.add_argument("--model", metavar="DIR", help="use this model's vocabulary (default: the configured model's)")
    p.add_argument("--roundtrip", metavar="OUT.mid", help="decode the tokens again and write them as MIDI")
    common_options(p)


def vocab_for(args):
    cfg = load_config(args.config, args.overrides)
    md = args.model or cfg.model.path
    try:
        return ModelDir.resolve(md).vocab(), cfg
    except AntiphonError:
        if args.model:
            raise
        return cfg.vocab(), cfg  # no default model yet: the configured vocabulary


def run(args) -> int:
    vocab, cfg = vocab_for(args)
    if bool(args.file) == bool(args.corpus):
        raise AntiphonError("give one MIDI file or one --corpus piece")
    if args.corpus:
        import music21

        from agent.music.notes import notes_from_music21

        try:
            notes = notes_from_music21(music21.corpus.parse(args.corpus))
        except Exception as exc:  # music21 raises its own exception types
            raise AntiphonError(f"corpus piece {args.corpus!r}: {exc}") from exc
        bpm = cfg.timing.bpm
    else:
        piece = read_midi(args.file)
        notes, bpm = piece.notes, piece.bpm
    ids = encode(notes, vocab)
    if args.ids:
        print(" ".join(map(str, ids)))
    elif not args.roundtrip:
        print(vocab.names(ids))
    if args.roundtrip:
        back = decode(ids, vocab)
        out = write_midi(back, Path(args.roundtrip), bpm=bpm)
        q = quantize(notes, vocab.resolution)
        outside = sum(1 for _, _, pitch, _ in q if not vocab.in_range(pitch))
        dropped = f", {outside} outside the pitch range {vocab.pitch_lo}..{vocab.pitch_hi} left out" if outside else ""
        print(f"wrote {out}: {len(back)} notes ({len(notes)} read, {len(q)} after quantizing to "
              f"1/{vocab.resolution} beat and merging unisons{dropped})")
    return 0
