"""The jam's bookkeeping: what was heard (Phrase), what is being played (Generation), what is reported.

Plain records, no policy: `policy.py` decides, `turn.py` says when a phrase has
ended; this module only holds their state and turns a finished generation
into the record `Jam.responses` keeps and the line the engine reports.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field


@dataclass
class Phrase:
    """The player's phrase so far. Times are seconds; ticks are the stream's."""

    index: int
    first_t: float
    first_tick: int
    last_t: float  # the last event (note-on or release)
    last_tick: int
    notes: int = 0
    forced_t: float | None = None  # end-of-phrase CC time
    last_on_t: float = 0.0  # the last note-on (chord: its first note)
    onsets: list = field(default_factory=list)  # note-on times, a chord once (for the turn policy)
    first_beat: float | None = None  # the tempo map's beat at first_t (bar alignment)


@dataclass
class Opening:
    """How a call's answer begins: when, from which state, and its first onset."""

    threshold_t: float  # when the agent takes its turn (its first note is due lead_s later)
    turn_t: float  # when the turn policy said the phrase had ended (the grid point may be later)
    target_t: float  # when its first note is due (on the grid)
    base: tuple | None = None  # (predictor snapshot, frontier) before the answer: undone if the player plays on
    onset: list = field(default_factory=list)  # the first onset's (pitch, velocity), held until it is complete
    lead_ticks: int = 0  # rests sampled before the first note (fed, but they take no time)
    pause_until: float = 0.0  # don't sample until the first note is out (see Jam._generate)
    turn: dict = field(default_factory=dict)  # the turn policy's evidence


@dataclass
class Generation:
    """One answer (call: with its `opening`), or one run of accompany/solo."""

    kind: str  # "call" | "accompany" | "solo"
    phrase: Phrase | None = None
    opening: Opening | None = None  # call only
    length_ticks: int | None = None
    end_tick: int | None = None  # None: open-ended
    started: bool = False  # first note placed (call: leading rests dropped until then)
    t0: float | None = None
    first_note_t: float | None = None
    notes: int = 0
    ended: str | None = None  # None while it runs; "finished" | "barged" (the player) | "stopped" (stop, panic, mode)
    end_t: float | None = None
    snaps: deque = field(default_factory=deque)  # (due_s | None, predictor snapshot, frontier)
    bpm: float | None = None  # the tempo it was played at

    @property
    def done(self) -> bool:
        return self.ended is not None

    @property
    def pause_until(self) -> float:
        return self.opening.pause_until if self.opening is not None else 0.0


def summarise(g: Generation, resolution: int) -> tuple[dict, str | None]:
    """The finished generation as a dict for `Jam.responses`, and the line to report (None: nothing to say)."""
    o = g.opening
    rec = {"kind": g.kind, "notes": g.notes, "barged": g.ended == "barged", "stopped": g.ended == "stopped",
           "end_t": g.end_t, "first_note_t": g.first_note_t, "threshold_t": o and o.threshold_t,
           "turn_t": o and o.turn_t, "target_t": o and o.target_t, "bpm": g.bpm}
    if g.phrase is None:
        return rec, (None if g.kind == "solo" else f"{g.kind}: played {g.notes} notes")
    p = g.phrase
    rec.update(phrase=p.index, heard_notes=p.notes, heard_beats=(p.last_tick - p.first_tick) / resolution,
               answer_beats=(g.length_ticks or 0) / resolution, last_t=p.last_t, turn=dict(o.turn) if o else {})
    onset = ("" if g.first_note_t is None or o is None
             else f", first note {1e3 * (g.first_note_t - o.threshold_t):+.1f} ms after the pause")
    how = ("cut short by the player" if g.ended == "barged" else "stopped" if g.ended == "stopped"
           else f"{g.notes} notes over {rec['answer_beats']:.1f} beats")
    tempo = "" if g.bpm is None else f" at {g.bpm:.1f} bpm"
    line = (f"phrase {p.index}: heard {p.notes} notes over {rec['heard_beats']:.1f} beats; "
            f"answered {how}{tempo}{onset}")
    return rec, line
