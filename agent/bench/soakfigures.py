"""The soak's figures (agent/bench/soak.py): the whole run's counts, the run cut into segments (is
the last as good as the first?), and the recording read back.

Per segment (`segments`): the scheduling error at the reader (received minus due, paired by
identity), the engine thread's model step times, the recorder's flush times, the engine's
resident memory at the segment's end, and the machine's 1-minute load average. `flat` says, for
each timing, whether the last segment is within 1.2x of the first (the issue's target).
`read_recording` opens the recorded .mid with mido and music21 and its .musicxml with music21.
"""
from __future__ import annotations

import bisect
import os
import time
from pathlib import Path

from agent.bench import realtime as br

BPM = 100.0
FLAT_RATIO = 1.2  # the last segment within this of the first
MAX_RSS_GROWTH_MB = 20.0
SEGMENT_KEYS = ("sched_p99_ms", "step_p99_ms", "flush_p50_ms")  # what `flat` compares


# -- measuring, in the engine's process ----------------------------------------------
def rss_mb(pid: int | None = None) -> float:
    try:
        with open(f"/proc/{pid or os.getpid()}/status") as f:
            return next(int(x.split()[1]) for x in f if x.startswith("VmRSS")) / 1024
    except (OSError, StopIteration):
        return float("nan")


def drain(q) -> list:
    out = []
    try:
        while True:
            out.append(q.popleft())  # atomic: the engine's threads go on appending
    except IndexError:
        return out


def time_flushes(rec, flushes) -> None:
    """Each flush of the recorder's thread timed into flushes as (t_s, seconds)."""
    plain = rec.flush

    def flush() -> bool:
        t0 = time.perf_counter()
        ok = plain()
        flushes.append((t0, time.perf_counter() - t0))
        return ok

    rec.flush = flush


# -- the figures ----------------------------------------------------------------------
def note_lengths(events, beat_at: list[tuple[float, float]]) -> list[tuple[float, int, float]]:
    """[(t, bytes)] -> [(beats, pitch, start_s)], longest first. A note's beats are at the engine's
    tempo when it began: beat_at is [(send_s, seconds per beat)] by time, the last send before it."""
    def spb_at(t: float) -> float:
        i = bisect.bisect_right(beat_at, (t, float("inf"))) - 1
        return beat_at[max(0, i)][1] if beat_at else 60.0 / BPM

    open_: dict[tuple[int, int], float] = {}
    out = []
    for t, b in events:
        key = (b[0] & 0x0F, b[1])
        if b[0] & 0xF0 == 0x90 and b[2] > 0:
            open_[key] = t
        elif key in open_:
            t0 = open_.pop(key)
            out.append(((t - t0) / spb_at(t0), b[1], t0))
    return sorted(out, reverse=True)


def _ms(x):
    return None if x is None else round(x * 1e3, 3)


def segments(start_s: float, seg_s: float, n: int, errors: list[tuple[float, float]], steps: list,
             flushes: list, rss: list, load: list) -> list[dict]:
    """n segments of seg_s seconds from start_s (the last one takes what comes after it too).
    errors: (due_s, received - due s); steps, flushes: (t_s, seconds); rss: (t_s, MB); load:
    (t_s, 1-minute load average). Times are perf_counter seconds (one clock for every process)."""
    def bucket(series):
        out = [[] for _ in range(n)]
        for t, v in series:
            out[min(n - 1, max(0, int((t - start_s) // seg_s)))].append(v)
        return out

    errs, stp, fl, mem, ld = (bucket(s) for s in (errors, steps, flushes, rss, load))
    return [dict(segment=i + 1, minutes=f"{i * seg_s / 60:g}-{(i + 1) * seg_s / 60:g}", notes_paired=len(errs[i]),
                 sched_p50_ms=_ms(br.pct(errs[i], 50)), sched_p99_ms=_ms(br.pct(errs[i], 99)),
                 steps=len(stp[i]), step_p99_ms=_ms(br.pct(stp[i], 99)), flushes=len(fl[i]),
                 flush_p50_ms=_ms(br.pct(fl[i], 50)), flush_max_ms=_ms(max(fl[i], default=None)),
                 rss_mb=round(mem[i][-1], 1) if mem[i] else None,
                 load1=round(sum(ld[i]) / len(ld[i]), 2) if ld[i] else None)
            for i in range(n)]


def flat(segs: list[dict]) -> dict:
    """Last segment / first, for each timing; None where either has no data."""
    out = {}
    for k in SEGMENT_KEYS:
        a, b = segs[0][k], segs[-1][k]
        out[k] = round(b / a, 3) if a and b is not None else None
    return out


def read_recording(path: str | Path) -> dict:
    """The recorded .mid read with mido (note-ons per track) and music21 (notes per part), its
    .musicxml with music21; each reader's error, in one line, where it could not."""
    import mido

    path = Path(path)
    res: dict = {"path": str(path)}
    try:
        mid = mido.MidiFile(path)
        res["mido_note_ons"] = {(tr.name or str(i)): sum(1 for m in tr if m.type == "note_on" and m.velocity > 0)
                                for i, tr in enumerate(mid.tracks)}
        res["mido_length_s"] = round(mid.length, 1)
    except Exception as exc:  # report, do not raise: the soak's other figures still count
        res["mido_error"] = f"{type(exc).__name__}: {exc}"
    from music21 import converter

    for key, p in (("music21_mid_notes", path), ("music21_xml_notes", path.with_suffix(".musicxml"))):
        try:
            score = converter.parse(str(p))
            res[key] = [len(part.recurse().notes) for part in score.parts]
        except Exception as exc:
            res[key.replace("notes", "error")] = f"{type(exc).__name__}: {exc}"
    png = path.with_suffix(".png")
    res["png_bytes"] = png.stat().st_size if png.exists() else 0
    return res


def figures(tally, rss0: float, mid: dict, final: dict, got: list, before_stop: int) -> dict:
    """The soak's whole-run figures (agent/bench/soak.py's docstring) from its tally, the engine's
    stats before stop (mid) and at the end (final), every note message the engine sent (tally.sends:
    (bytes, due_s, sent_s, seconds per beat)), and what the reader got."""
    notes_got = [g for g in got if g[1][0] & 0xF0 in (0x80, 0x90)]
    sends = [(tuple(b), d, s_) for b, d, s_, _ in tally.sends]
    beat_at = [(s_, spb) for _, _, s_, spb in tally.sends]  # the engine's seconds per beat, by send time
    pairs, lost_out = br.pair_by_identity(sends, notes_got, window_s=1.0)
    errors = [(s[1], g[0] - s[1]) for s, g in pairs]
    err_ms = sorted(e * 1e3 for _, e in errors)
    lost_in = tally.player_sent - final["received"] - final["overflow"]
    at_reader = note_lengths(notes_got, beat_at)
    as_sent = note_lengths([(s_, b) for b, _, s_ in sends], beat_at)  # when the engine sent them: the transport left out
    stuck = sorted(br.sounding(got[:before_stop]))
    return dict(
        input_events=tally.player_sent, output_notes=sum(1 for _, b in notes_got if b[0] & 0xF0 == 0x90 and b[2] > 0),
        stuck_notes=len(stuck), left_open_after_stop=len(br.sounding(got)),
        lost_events=max(0, lost_in) + lost_out, lost_in=lost_in, lost_out=lost_out, inbox_overflow=final["overflow"],
        late_messages=final["late"] + final["dropped_late"], dropped_late=final["dropped_late"],
        lost_in_by_segment=tally.lost_by_kind, faults_survived=final["faults"], crashes=tally.crashes,
        port_removals=tally.removals, reconnects=final["reconnects"],
        mode_changes=tally.mode_changes, segments=tally.segments, answers=final["answers"], phrases=final["phrases"],
        player_notes_heard=final["player_notes"],
        rss_start_mb=round(rss0, 1), rss_end_mb=round(mid["rss_mb"], 1),  # before stop() frees anything
        rss_growth_mb=round(mid["rss_mb"] - rss0, 1), longest_note_beats=round(at_reader[0][0] if at_reader else 0.0, 2),
        longest_note_beats_as_sent=round(as_sent[0][0], 2) if as_sent else 0.0,
        longest_notes_at_reader=[(round(x, 2), p, round(t, 2)) for x, p, t in at_reader[:3]],
        stuck_detail=stuck,
        notes_limited=final["notes_limited"], limited_by_scheduler=final["limited_by_scheduler"],
        held_released=final["held_released"], reprimes=final["reprimes"],
        dropped_polyphony=final["dropped_polyphony"], stop_s=round(final["stop_s"], 3),
        latency_p50_ms=br.pct(err_ms, 50), latency_p99_ms=br.pct(err_ms, 99),
        latency_max_ms=max(err_ms, default=None), report_lines=[x for x in final["all_lines"] if "port" in x][:6],
        repl_keys=final.get("repl_keys", 0), repl_errors=final.get("repl_errors", []),
        loadavg=os.getloadavg()), errors


def print_segments(segs: list[dict], ratios: dict) -> None:
    cols = ("segment", "minutes", "notes_paired", "sched_p50_ms", "sched_p99_ms", "step_p99_ms", "flushes",
            "flush_p50_ms", "flush_max_ms", "rss_mb", "load1")
    print("  " + " ".join(f"{c:>12}" for c in cols))
    for s in segs:
        print("  " + " ".join(f"{'-' if s[c] is None else s[c]:>12}" for c in cols))
    print("  last/first: " + ", ".join(f"{k} {v}" for k, v in ratios.items()) + f" (target <= {FLAT_RATIO})")
