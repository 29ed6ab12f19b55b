"""What a MIDI clock reader heard, against what Antiphon's clock out sent: jitter, tempo, transport.

`sent` is ClockOut.sent, [(due_s, sent_s, status byte)]; `got` is a reader's log,
[(t_s, message bytes)] on the same perf_counter clock (CLOCK_MONOTONIC: the
processes' stamps compare). Pulses are paired in order from the last (they
are all alike; a reader may have joined after the first; the counts are
reported, so a lost one shows).
"""
from __future__ import annotations

from agent.live.figures import pct

CLOCK, START, CONTINUE, STOP = 0xF8, 0xFA, 0xFB, 0xFC


def pulses_at(got) -> list[float]:
    return [t for t, b in got if b[0] == CLOCK]


def clock_bpm(times: list[float], window: int = 24) -> list[tuple[float, float]]:
    """(t_s, bpm) at each pulse from the window-th on: the tempo over the `window` pulses before it
    (24: a beat), as a DAW reads it."""
    return [(times[i], 60.0 * window / 24 / (times[i] - times[i - window]))
            for i in range(window, len(times)) if times[i] > times[i - window]]


def clock_figures(sent, got, off_beat=()) -> dict:
    """Pulse interval jitter (the interval heard minus the interval planned, ms), the sender's own
    lateness (sent minus due, ms), the counts, the first and last transport messages heard, and with
    `off_beat` (ClockOut.off_beat, s) how far the pulses were planned from the followed beat (ms)."""
    due = [d for d, _, s in sent if s == CLOCK]
    late = [(s - d) * 1e3 for d, s, st in sent if st == CLOCK]
    rx = pulses_at(got)
    n = min(len(due), len(rx))
    planned, heard = due[len(due) - n:], rx[len(rx) - n:]  # paired from the end: a reader may join late
    jitter = [abs((heard[i + 1] - heard[i]) - (planned[i + 1] - planned[i])) * 1e3 for i in range(n - 1)]
    transport = [b[0] for _, b in got if b[0] in (START, CONTINUE, STOP)]
    return {"pulses_sent": len(due), "pulses_got": len(rx),
            "clock_jitter_p50_ms": pct(jitter, 50), "clock_jitter_p99_ms": pct(jitter, 99),
            "clock_jitter_max_ms": max(jitter, default=None),
            "clock_send_late_p99_ms": pct(late, 99), "clock_send_late_max_ms": max(late, default=None),
            "clock_first": transport[0] if transport else None, "clock_last": transport[-1] if transport else None,
            "clock_off_beat_p50_ms": pct([abs(x) * 1e3 for x in off_beat], 50),
            "clock_off_beat_p99_ms": pct([abs(x) * 1e3 for x in off_beat], 99)}


class ClockReader:
    """bench_realtime --clock-out: reads the engine's clock port ("Antiphon Clock") as a DAW would, in a
    reader process over JACK (in this process on loopback); `figures()` after the engine has stopped."""

    def __init__(self, env: dict) -> None:
        self.env, self.child, self.got, self.engine = env, None, [], None

    def start(self, engine) -> None:
        import time

        from agent.bench.harness import Child

        self.engine = engine
        port = engine.clock_sync.out.output.name
        if engine.ports.is_loopback:
            engine.ports.open_input(port, lambda m, t: self.got.append((time.perf_counter(), m.bytes())))
        else:
            self.child = Child("reader", port, self.env)

    def figures(self) -> dict:
        if self.child is not None:
            self.child.say("stop 0")
            self.got = self.child.result()
            self.child.p.wait(timeout=10)
        out = self.engine.clock_sync.out
        return clock_figures(list(out.sent), self.got, list(out.off_beat))


# -- a player of real tunes at a tempo it never tells (for tests/realmidi/test_clock_out.py and the bench) ----
def phrase_schedule(phrases, bpm: float, start_s: float, seed: int, bars_per_phrase: int = 4,
                    beats_per_bar: int = 4) -> tuple[list, float]:
    """(events [(t_s, message bytes)], end_s): each phrase [(pitch, beat, length)] from its own bar line,
    one every `bars_per_phrase` bars (room for an answer), onsets and releases jittered by N(0, 2 % of a
    beat), notes held 92 % of their length."""
    import random

    rng = random.Random(seed)
    spb, events = 60.0 / bpm, []
    jit = lambda: max(-0.05, min(0.05, rng.gauss(0.0, 0.02)))  # noqa: E731  (beats)
    for k, phrase in enumerate(phrases):
        base = k * bars_per_phrase * beats_per_bar
        for pitch, beat, length in phrase:
            events.append((start_s + (base + beat + jit()) * spb, [0x90, pitch, 80]))
            events.append((start_s + (base + beat + 0.92 * length + jit()) * spb, [0x80, pitch, 0]))
    return sorted(events), start_s + len(phrases) * bars_per_phrase * beats_per_bar * spb


def role_player(name: str) -> None:
    """Plays the events given as one JSON line on stdin into a virtual port `name`; answers with its log."""
    import json
    import sys

    import mido

    from agent.bench.realtime import play_script

    out = mido.open_output(name, virtual=True)
    print("ready", flush=True)
    events = json.loads(sys.stdin.readline())
    print(json.dumps(play_script(lambda d: out.send(mido.Message.from_bytes(d)), events)), flush=True)
    sys.stdin.readline()
    out.close()


if __name__ == "__main__":
    import argparse

    from agent.bench.harness import add_role_args, run_role

    ap = argparse.ArgumentParser(description="roles of the MIDI clock checks")
    add_role_args(ap)
    run_role(ap.parse_args(), {"player": role_player})
