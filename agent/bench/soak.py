"""Soak: the live engine for M minutes over real JACK ports with randomised players.

    python scripts/soak.py --minutes 60 --record [FILE.mid] [--json OUT] [--model DIR] [--seed N]
                           [--jack-period 64] [--segments 6] [--no-repl]

Three processes on a JACK dummy server of its own (JACK_DEFAULT_SERVER):
the engine (the same Engine `antiphon play` runs, with the port watcher, in
its own process, driven over stdin the way the REPL drives LiveControls), a
player that owns the keyboard port the engine listens to, and a reader that
stamps everything the agent sends. Where JACK is missing it says so and runs
the three on in-process loopback ports instead (no port removal there).

The player plays, in random order: realistic phrases (the demo's tunes,
transposed, humanised), sustained chords under the pedal, fast runs, short
floods (thousands of messages a second) and temperature CC sweeps up to 2.0;
between segments the soak changes the mode (call, accompany, solo) and, now
and then, the player removes its port and creates it again (the engine must
report it, play on and reconnect).

Reported (table + JSON): input events, output notes, stuck notes (still
sounding at the reader before the engine's stop), lost events (sent by one
side, not received by the other; flood messages the engine's bounded inbox
refused are counted apart, as `inbox_overflow`), late messages, faults the
engine survived, crashes (the engine process dying, or its error), resident
memory of the engine process at the start and the end, the longest agent
note (beats at the engine's tempo when it began: it follows the player), and latency at the reader (received minus due, paired by
identity).

With `--record` the engine records as `antiphon play --record` does; a REPL session is open on it
(prompt_toolkit, as bench_repl runs it) with a typist at 10 keys a second (REPL_SCRIPT: status,
help, settings, panic). The run is cut into `--segments` (6: ten minutes of an hour); per segment
(agent/bench/soakfigures.py): the scheduling error p99 at the reader, the engine thread's model
step p99, the recorder's flush time, the engine's memory and the machine's load; last over first
for each timing. At the end the recording is read back with mido and music21 and its note-ons
compared with the reader's (the agent's) and the engine's (the player's heard).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from agent.config import ROOT

from agent.bench import realtime as br  # JackServer, the reader role, pairing, sounding
from agent.bench import soakfigures as sf
from agent.bench.soakengine import BPM, TEMPERATURE_CC, role_engine

MODES = ("call", "accompany", "solo")


# -- the player --------------------------------------------------------------------
def segment_events(kind: str, rng: random.Random, start_s: float) -> list[tuple[float, list[int]]]:
    """(time_s, bytes) for one segment of the player's part."""
    from agent.session.scripted import TUNES as PHRASES

    spb = 60.0 / BPM
    ev: list[tuple[float, list[int]]] = []
    if kind == "phrase":
        shift = rng.choice((-5, -2, 0, 3, 7))
        for pitch, b, d in rng.choice(PHRASES):
            t = start_s + b * spb + rng.gauss(0, 0.01)
            v = max(1, min(127, int(rng.gauss(80, 12))))
            ev += [(t, [0x90, pitch + shift, v]), (t + d * spb * 0.9, [0x80, pitch + shift, 0])]
    elif kind == "chords":  # sustained chords under the pedal
        t = start_s
        for root in rng.sample((48, 50, 53, 55, 57, 60), 3):
            ev.append((t, [0xB0, 64, 127]))
            for p in (root, root + 4, root + 7, root + 12):
                ev += [(t, [0x90, p, 70]), (t + 0.3, [0x80, p, 0])]
            ev.append((t + 2 * spb * 2, [0xB0, 64, 0]))
            t += 2 * spb * 2 + 0.05
    elif kind == "run":  # a fast run, 16ths at 200 bpm equivalent
        p0 = rng.choice((48, 55, 60, 67))
        for k in range(32):
            t = start_s + k * 0.075
            p = p0 + (k * 2) % 24
            ev += [(t, [0x90, p, 90]), (t + 0.06, [0x80, p, 0])]
    elif kind == "flood":  # ~4,000 messages a second for a second
        for k in range(4000):
            t = start_s + k / 4000
            p = 36 + (k * 7) % 60
            ev.append((t, [0x90, p, 64] if k % 2 == 0 else [0x80, (36 + ((k - 1) * 7) % 60), 0]))
    elif kind == "temperature":  # a CC sweep to 2.0 and back to 1.0
        for k in range(33):
            ev.append((start_s + k * 0.05, [0xB0, TEMPERATURE_CC, min(127, k * 4)]))
        ev.append((start_s + 2.0, [0xB0, TEMPERATURE_CC, 60]))
    ev.sort(key=lambda e: e[0])
    return ev


def role_player(name: str) -> None:
    """Owns the keyboard port; stdin: 'play KIND SEED' | 'remove' | 'restore' | 'quit'. Replies with
    the note messages sent so far."""
    import mido

    out = mido.open_output(name, virtual=True)
    sent = 0
    print("ready", flush=True)
    for line in sys.stdin:
        cmd = line.split()
        if cmd[0] == "play":
            evs = segment_events(cmd[1], random.Random(int(cmd[2])), time.perf_counter() + 0.05)
            log = br.play_script(lambda d: out.send(mido.Message.from_bytes(d)), evs)
            sent += len(log)  # every message: notes, pedal, temperature CC
        elif cmd[0] == "remove":
            out.close()
        elif cmd[0] == "restore":
            out = mido.open_output(name, virtual=True)
        elif cmd[0] == "quit":
            break
        print(json.dumps(sent), flush=True)
    out.close()


# -- the engine ----------------------------------------------------------------------
class Proc(br.Child):
    """A role of this script in its own process, spoken to line by line. The engine's answers hand
    over what it sent, its step and flush times: kept here (sends, steps, flushes, rss)."""

    def __init__(self, role: str, arg: str, env: dict) -> None:
        super().__init__(role, arg, env, module=__name__)
        self.sends: list = []
        self.steps: list = []
        self.flushes: list = []
        self.rss: list = []
        self.load: list = []

    def ask(self, text: str):
        self.say(text)
        line = self.p.stdout.readline()
        if not line:
            raise RuntimeError(f"the process ended (exit status {self.p.wait()})")
        res = json.loads(line)
        if isinstance(res, dict):
            now = time.perf_counter()
            self.sends += res.pop("sends", [])
            self.steps += res.pop("steps", [])
            self.flushes += res.pop("flushes", [])
            self.rss.append((now, res["rss_mb"]))
            self.load.append((now, os.getloadavg()[0]))
        return res


# -- the run -------------------------------------------------------------------------
@dataclass
class Tally:
    """What the soak counted as it drove the player and the engine."""

    player_sent: int = 0  # every message the player sent: notes, pedal, temperature CC
    crashes: int = 0
    removals: int = 0  # times the keyboard's port went away and came back
    mode_changes: int = 0
    segments: dict = field(default_factory=dict)  # segments played, by kind
    lost_by_kind: dict = field(default_factory=dict)  # messages the player sent that never reached the engine
    sends: list = field(default_factory=list)  # the engine's note messages: (bytes, due_s, sent_s, seconds per beat)


def start_jack(period: int) -> br.JackServer:
    """A JACK dummy server of the soak's own; SystemExit, saying why, where there is none."""
    why = br.JackServer.available()
    if why is None:
        try:
            return br.JackServer(name=f"antiphon-soak-{os.getpid()}", period=period).start()
        except (RuntimeError, OSError) as exc:
            why = f"jackd cannot start: {exc}"
    raise SystemExit(f"soak: no JACK ({why}); this soak needs real ports (install jackd2)")


def play_segments(engine: Proc, player: Proc, rng: random.Random, minutes: float, tally: Tally) -> None:
    """Random segments for `minutes`; between them, now and then, a new mode or the keyboard's port
    removed and restored. Stops early if the engine stops."""
    end = time.monotonic() + minutes * 60
    mode = "call"
    while time.monotonic() < end:
        if rng.random() < 0.25:
            mode = rng.choice([m for m in MODES if m != mode])
            engine.ask(f'set jam.mode "{mode}"')
            tally.mode_changes += 1
        if rng.random() < 0.08:  # the keyboard's port goes away and comes back
            player.ask("remove")
            time.sleep(1.5)  # the engine notices (0.5 s poll) and plays on
            player.ask("restore")
            time.sleep(1.5)  # and reconnects
            tally.removals += 1
        kind = rng.choices(["phrase", "chords", "run", "flood", "temperature"], [6, 2, 2, 1, 1])[0]
        tally.segments[kind] = tally.segments.get(kind, 0) + 1
        st0 = engine.ask("stats")
        before = tally.player_sent
        tally.player_sent = player.ask(f"play {kind} {rng.randrange(1 << 30)}")
        time.sleep(rng.uniform(0.5, 3.0))  # the pause: answers, accompaniment ending
        st = engine.ask("stats")
        arrived = sum(st[k] - st0[k] for k in ("received", "overflow", "queued"))
        tally.lost_by_kind[kind] = tally.lost_by_kind.get(kind, 0) + (tally.player_sent - before) - arrived
        if st["stopped"]:
            tally.crashes += 1
            break


def stop_engine(engine: Proc, reader: br.Child) -> tuple[dict, int, dict, list]:
    """Let the last answer end, mark what the reader holds (stuck notes are counted before stop()),
    then stop the engine: (its stats before stop, messages at the reader then, its final stats,
    everything the reader got)."""
    engine.ask('set jam.mode "call"')  # solo plays on for ever: let the last answer end before counting
    deadline = time.monotonic() + 20.0
    while time.monotonic() < deadline and not engine.ask("stats")["idle"]:
        time.sleep(0.5)
    time.sleep(1.0)
    mid = engine.ask("stats")
    reader.say(f"mark {len(engine.sends)}")
    before_stop = reader.result()
    final = engine.ask("quit")
    engine.rss.pop(), engine.load.pop()  # after stop(): the final files' writing is not the session's
    reader.say(f"stop {len(engine.sends)}")
    return mid, before_stop, final, reader.result()


def soak(minutes: float, model: str, seed: int, period: int = 64, record: str | None = None, repl: bool = True,
         n_segments: int = 6) -> dict:
    """The whole soak (module docstring): the figures `figures` reports, per segment too, with the
    run's settings; the recording (record: a .mid path, or None) read back."""
    rng = random.Random(seed)
    server = start_jack(period)
    env = {**server.env, "MIDO_BACKEND": br.JACK_BACKEND}
    res: dict = {"minutes": minutes, "transport": "jack", "jack_period": period, "model": model, "seed": seed,
                 "record": record, "repl_typist": repl, "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime())}
    engine = player = None
    tally = Tally()
    try:
        player = Proc("player", "SoakKeys", env)
        engine = Proc("engine", f"jack,{record or ''},{int(repl)},{model}", env)
        reader = br.Child("reader", "SoakOut", env)
        time.sleep(1.0)
        tally.player_sent = player.ask(f"play phrase {rng.randrange(1 << 30)}")  # warm up: the model's first steps allocate
        time.sleep(2.0)
        rss0 = engine.ask("stats")["rss_mb"]
        start_s = time.perf_counter()
        play_segments(engine, player, rng, minutes, tally)
        mid, before_stop, final, got = stop_engine(engine, reader)
        if engine.p.wait(timeout=60) != 0 or final.get("error"):
            tally.crashes += 1
    finally:
        for proc in (player, engine):
            if proc is not None and proc.p.poll() is None:
                try:
                    proc.ask("quit") if proc is player else None
                except Exception:
                    pass
                proc.p.kill()
        server.stop()
    tally.sends, final_heard = engine.sends, final["heard_ons"]
    whole, errors = sf.figures(tally, rss0, mid, final, got, before_stop)
    segs = sf.segments(start_s, minutes * 60 / n_segments, n_segments, errors, engine.steps, engine.flushes,
                       engine.rss, engine.load)
    res.update(whole, jack_xruns=server.xruns(), per_segment=segs, last_over_first=sf.flat(segs))
    if record:
        res["recording"] = rec = sf.read_recording(record)
        ons = rec.get("mido_note_ons", {})
        res["recording_agent_missing"] = res["output_notes"] - ons.get("agent", 0)  # note-ons at the reader, not in the file
        res["recording_human_missing"] = final_heard - ons.get("human", 0)  # heard by the jam, not in the file
    return res


KEYS = ["minutes", "input_events", "output_notes", "stuck_notes", "left_open_after_stop", "lost_events", "jack_xruns",
        "inbox_overflow", "late_messages", "faults_survived", "crashes", "port_removals", "reconnects", "mode_changes",
        "repl_keys", "rss_start_mb", "rss_end_mb", "rss_growth_mb", "longest_note_beats", "longest_note_beats_as_sent",
        "latency_p50_ms", "latency_p99_ms", "latency_max_ms", "stop_s", "recording_agent_missing",
        "recording_human_missing"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--json", metavar="OUT")
    ap.add_argument("--model", default=str(ROOT / "models" / "default"))
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--jack-period", type=int, default=64, help="frames per JACK cycle at 48 kHz (default 64)")
    ap.add_argument("--record", nargs="?", const="", metavar="FILE.mid",
                    help="record the session as `antiphon play --record` does (default file: in a new temporary folder)")
    ap.add_argument("--segments", type=int, default=6, help="segments the run is cut into (default 6: 10 minutes of an hour)")
    ap.add_argument("--no-repl", action="store_true", help="no REPL typist on the engine")
    br.add_role_args(ap)
    a = ap.parse_args(argv)
    if br.run_role(a, {"player": role_player, "engine": role_engine, "reader": br.role_reader}):
        return 0
    record = None if a.record is None else str(Path(a.record or Path(tempfile.mkdtemp(prefix="antiphon-soak-")) /
                                                    "session.mid").resolve())
    res = soak(a.minutes, a.model, a.seed, a.jack_period, record, not a.no_repl, a.segments)
    for k in KEYS:
        v = res.get(k)
        print(f"  {k:26} {v:.3f}" if isinstance(v, float) else f"  {k:26} {v}")
    if "recording" in res:
        print(f"  recording: {json.dumps(res['recording'])}")
    sf.print_segments(res["per_segment"], res["last_over_first"])
    br.write_results(res, a.json)
    return 0 if res["stuck_notes"] == 0 and res["crashes"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
