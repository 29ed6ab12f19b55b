"""Where recordings go and how their files are written: atomically, in a folder with room.

`atomic_write` writes through a temporary file renamed over the target (os.replace is atomic:
a reader never sees half a file, `kill -9` leaves the last good one). `free_path` never
overwrites an earlier take; `check_writable` refuses a folder without room before a session
starts rather than at its end. music21 is imported only when a MusicXML file is written.
"""
from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

from agent.errors import AntiphonError

SUFFIXES = (".mid", ".musicxml", ".png")


def atomic_write(path: Path, write) -> Path:
    """Write through a temporary file in the same folder, then rename it over `path` (atomic)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def musicxml_bytes(score) -> bytes:
    from music21.musicxml.m21ToXml import GeneralObjectExporter

    return GeneralObjectExporter(score).parse()



# -- where recordings go ---------------------------------------------------------------
def free_path(path: str | Path) -> Path:
    """`path`, or path-1, path-2... so that neither it nor its .musicxml/.png exists yet (never overwrite)."""
    path = Path(path)
    if path.suffix.lower() not in (".mid", ".midi"):
        path = path.with_name(path.name + ".mid")
    stem, n = path.stem, 0
    cand = path
    while any(cand.with_suffix(s).exists() for s in SUFFIXES + (path.suffix,)):
        n += 1
        cand = path.with_name(f"{stem}-{n}{path.suffix}")
    return cand


MIN_FREE_BYTES = 8 << 20  # an hour's MIDI file is ~0.2 MB; its MusicXML and PNG a few MB


def check_writable(folder: str | Path) -> Path:
    """Create `folder` if needed and prove a file can be written there with room to spare, or raise
    AntiphonError (one line: before the session starts, not at its end)."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(folder).free
        if free < MIN_FREE_BYTES:
            raise AntiphonError(f"cannot record to {folder}: only {free / 2**20:.1f} MB free there "
                                f"({MIN_FREE_BYTES >> 20} MB needed)")
        probe = folder / f".antiphon-write-test-{os.getpid()}"
        try:
            with open(probe, "wb") as f:  # some bytes, on disk: an empty file fits on a full disk
                f.write(bytes(64 << 10))
                f.flush()
                os.fsync(f.fileno())
        finally:
            if probe.exists():
                probe.unlink()
    except OSError as exc:
        raise AntiphonError(f"cannot record to {folder}: {exc.strerror or exc}") from None
    return folder
