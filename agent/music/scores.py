"""A recorded session as a score (music21, for MusicXML) and as a piano-roll picture (matplotlib).

Both take notes already on the token grid: per part, (pitch, start_beat,
end_beat, velocity), with beats counted from the recording's start. Kept
apart from session/recorder.py because these two libraries are slow to import and
only the final write needs them.
"""
from __future__ import annotations

Grid = dict[str, list[tuple[int, float, float, int]]]


def musicxml_score(parts: Grid, tempos: list[tuple[float, float]], markers: list[tuple[float, str, str]], *,
                   beats_per_bar: int = 4, title: str = ""):
    """One music21 Part per recorded part, in order; each part's overlapping notes become chords
    (tied where a note outlasts the chord), so every part has one voice and MuseScore opens it as is.
    Tempo changes are metronome marks on the first part; phrase markers sit on `human`, answers on `agent`."""
    from fractions import Fraction

    from music21 import chord, clef, expressions, metadata, meter, note, stream, tempo
    from music21.tie import Tie

    def ql(beat: float) -> Fraction:
        return Fraction(beat).limit_denominator(96)  # grid beats are k/resolution: exact as fractions

    end = max([b for ns in parts.values() for _, _, b, _ in ns] + [float(beats_per_bar)])
    bars = -(-end // beats_per_bar)  # whole bars, so every part ends on a bar line
    score = stream.Score()
    score.insert(0, metadata.Metadata(title=title))
    for i, (name, ns) in enumerate(parts.items()):
        part = stream.Part(id=name)
        part.partName = name
        part.insert(0, meter.TimeSignature(f"{beats_per_bar}/4"))
        mean = sum(p for p, *_ in ns) / len(ns) if ns else 60
        part.insert(0, clef.TrebleClef() if mean >= 57 else clef.BassClef())
        for at, length, sounding in segments([(p, ql(a), ql(b), v) for p, a, b, v in ns], ql(bars * beats_per_bar)):
            if not sounding:  # coreInsert: in time order already, the part's caches updated once below
                part.coreInsert(at, note.Rest(quarterLength=length))
                continue
            pieces = []
            for pitch, vel, tie in sounding:
                n = note.Note(pitch, quarterLength=length)
                n.volume.velocity = vel
                if tie:
                    n.tie = Tie(tie)
                pieces.append(n)
            part.coreInsert(at, pieces[0] if len(pieces) == 1 else chord.Chord(pieces, quarterLength=length))
        part.coreElementsChanged()
        if i == 0:
            for beat, bpm in tempos:
                part.insert(ql(beat), tempo.MetronomeMark(number=round(bpm, 1)))
        want = "phrase" if name == "human" else "answer" if name == "agent" else None
        for beat, kind, text in markers:
            if kind == want:
                part.insert(ql(beat), expressions.TextExpression(text))
        score.insert(0, part.makeNotation())
    return score


def segments(notes, end):
    """Notes (pitch, start, end, velocity) -> consecutive (start, length, [(pitch, velocity, tie)]) spans
    between every note boundary up to `end`; a note over several spans is tied (start/continue/stop),
    an empty span is a rest. One voice per part, whatever overlaps, with each note's own tie."""
    cuts = sorted({0, end} | {a for _, a, _, _ in notes} | {b for _, _, b, _ in notes})
    by_start = sorted(notes, key=lambda n: n[1])
    out, active, i = [], [], 0
    for lo, hi in zip(cuts, cuts[1:]):  # one sweep: the notes sounding over each span, not all of them
        if hi > end:
            break
        while i < len(by_start) and by_start[i][1] <= lo:
            active.append(by_start[i])
            i += 1
        active = [n for n in active if n[2] > lo]  # every end is a cut: b > lo means b >= hi
        sounding = []
        for p, a, b, v in sorted(active):
            if a <= lo and hi <= b:
                tie = None if (a == lo and b == hi) else "start" if a == lo else "stop" if b == hi else "continue"
                if all(q != p for q, _, _ in sounding):  # the same pitch twice at once: one sounds
                    sounding.append((p, v, tie))
        out.append((lo, hi - lo, sounding))
    return out


def pianoroll_png(parts: Grid, markers: list[tuple[float, str, str]], fp, *, beats_per_bar: int = 4,
                  end_beat: float = 0.0, colours: dict[str, str] | None = None) -> None:
    """Beats across, MIDI pitch up; one colour per part, grey bar lines, a dashed line and label per marker."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch, Rectangle

    colours = colours or {}
    notes = [n for ns in parts.values() for n in ns]
    end = max([b for _, _, b, _ in notes] + [end_beat, float(beats_per_bar)])
    lo = min((p for p, *_ in notes), default=60) - 3
    hi = max((p for p, *_ in notes), default=72) + 3
    fig, ax = plt.subplots(figsize=(min(60, 4 + end / 3), 5), dpi=100)
    handles = []
    for name, ns in parts.items():
        c = colours.get(name, "tab:gray")
        for pitch, a, b, vel in ns:
            ax.add_patch(Rectangle((a, pitch - 0.4), b - a, 0.8, color=c, lw=0, alpha=0.4 + 0.6 * vel / 127))
        handles.append(Patch(color=c, label=f"{name} ({len(ns)} notes)"))
    for b in range(0, int(end) + beats_per_bar, beats_per_bar):
        ax.axvline(b, color="0.85", lw=0.6, zorder=0)
    for beat, kind, text in markers:
        c = colours.get("human" if kind == "phrase" else "agent", "k")
        ax.axvline(beat, color=c, lw=0.8, ls="--")
        ax.text(beat, hi - 0.5, " " + text, color=c, fontsize=7, va="top", rotation=90)
    ax.set_xlim(0, end)
    ax.set_ylim(lo, hi)
    ax.set_xlabel(f"beats (bar lines every {beats_per_bar})")
    ax.set_ylabel("MIDI pitch")
    ax.legend(handles=handles, loc="lower right")
    fig.tight_layout()
    fig.savefig(fp, format="png")
    plt.close(fig)
