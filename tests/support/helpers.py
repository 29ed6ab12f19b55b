"""Small helpers several test modules share (tests/ is on pytest's pythonpath)."""
from __future__ import annotations

import queue
import threading
import time
from pathlib import Path

from agent.bench.fakerun import ListOut  # noqa: F401  (the tests' output port; one class for benches and tests)

ROOT = Path(__file__).resolve().parents[2]


def wait_for(cond, timeout_s: float = 10.0, poll_s: float = 0.01) -> bool:
    """Poll cond() until it is true or timeout_s passes; returns whether it came true."""
    end = time.perf_counter() + timeout_s
    while time.perf_counter() < end:
        if cond():
            return True
        time.sleep(poll_s)
    return bool(cond())


def read_musicxml_parts(path) -> dict[str, list[tuple[int, float, float, int]]]:
    """A MusicXML file's parts (by name) as (pitch, start_beat, end_beat, velocity), ties joined per pitch.

    music21's stripTies does not join a pitch tied from a chord into a single note, so the
    ties are followed here, pitch by pitch."""
    from fractions import Fraction

    from music21 import chord, converter

    out: dict = {}
    for part in converter.parse(str(path)).parts:
        notes, open_ = [], {}
        for el in part.flatten().notes:
            at, ql = Fraction(el.offset), Fraction(el.quarterLength)
            for n in (el.notes if isinstance(el, chord.Chord) else [el]):
                p, tie = n.pitch.midi, n.tie.type if n.tie else None
                if tie in ("stop", "continue") and p in open_:
                    open_[p][2] = at + ql
                else:
                    vel = n.volume.velocity if n.volume.velocity is not None else el.volume.velocity
                    open_[p] = [p, at, at + ql, int(vel or 0)]
                    notes.append(open_[p])
                if tie in (None, "stop"):
                    open_.pop(p, None)
        out[part.partName] = [(p, float(a), float(b), v) for p, a, b, v in sorted(notes, key=lambda x: (x[1], x[0]))]
    return out


def lines_of(stream) -> queue.Queue:
    """Each line of a child's stream as it comes (None at its end), read on a thread."""
    q: queue.Queue = queue.Queue()

    def pump() -> None:
        for line in stream:
            q.put(line)
        q.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return q
