"""Soak: the live engine for M minutes over real JACK ports with randomised players.

    python scripts/soak.py --minutes 10 [--json OUT] [--model DIR] [--seed N] [--jack-period 64]

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
"""
from __future__ import annotations

import argparse
import bisect
import json
import os
import random
import sys
import time
from dataclasses import dataclass, field

from agent.config import ROOT

from agent.bench import realtime as br  # JackServer, the reader role, pairing, sounding

BPM = 100.0
TEMPERATURE_CC = 21
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
def rss_mb(pid: int | None = None) -> float:
    try:
        with open(f"/proc/{pid or os.getpid()}/status") as f:
            return next(int(x.split()[1]) for x in f if x.startswith("VmRSS")) / 1024
    except (OSError, StopIteration):
        return float("nan")


def role_engine(spec: str) -> None:
    """The engine on `transport` ports; stdin: 'set KEY VALUE' | 'stats' | 'quit'."""
    transport, model = spec.split(",", 1)
    from agent.config import load_config
    from agent.live.engine import Engine
    from agent.midi.ports import Ports
    from agent.model.predictor import Predictor

    cfg = load_config(overrides=[f"timing.bpm={BPM}", f"jam.temperature_cc={TEMPERATURE_CC}", 'jam.mode="call"',
                                 "midi.port_check_s=0.5", f'model.path="{model}"', "jam.held_note_timeout_s=10.0"])
    lines: list[str] = []
    eng = Engine(cfg, Predictor.from_config(cfg), ports=Ports(transport), input_name="SoakKeys",
                 virtual_name="SoakOut", report=lines.append)
    sends: list = []
    eng.start()
    # each note message with the engine's beat length then (it follows the player's tempo, not BPM)
    eng.scheduler.hooks.append(lambda m, d, s: sends.append((m.bytes(), d, s, eng.tempo.seconds_per_beat()))
                               if m.type.startswith("note") else None)
    print("ready", flush=True)

    def stats() -> dict:
        st = eng.stats()
        s, li, j = eng.scheduler, eng.listener, eng.jam
        st.update(rss_mb=rss_mb(), faults=li.faults + s.faults, overflow=li.overflow, late=s.late,
                  notes_limited=j.notes_limited, held_released=j.held_released, reprimes=j.reprimes,
                  losses=eng.watcher.losses, reconnects=eng.watcher.reconnects, note_messages_sent=len(sends),
                  stopped=eng.stopped.is_set(), error=repr(eng.error) if eng.error else None,
                  dropped_polyphony=s.dropped_polyphony, unclosed=s.unclosed, limited_by_scheduler=s.limited, lines=lines[-5:],
                  received=li.received, queued=li.inbox.qsize(), idle=j.gen is None)
        return st

    for line in sys.stdin:
        cmd = line.split(maxsplit=2)
        if cmd[0] == "set":
            try:
                eng.controls.set(cmd[1], cmd[2].strip())
            except Exception as exc:  # a bad command never stops the music
                lines.append(f"set failed: {exc}")
            print(json.dumps(stats()), flush=True)
        elif cmd[0] == "stats":
            print(json.dumps(stats()), flush=True)
        elif cmd[0] == "quit":
            t = time.perf_counter()
            closed = eng.stop()
            st = stats()
            st.update(closed_at_stop=len(closed), stop_s=time.perf_counter() - t, all_lines=lines,
                      sends=[(list(b), d, s_, spb) for b, d, s_, spb in sends])
            print(json.dumps(st), flush=True)
            return


class Proc(br.Child):
    """A role of this script in its own process, spoken to line by line."""

    def __init__(self, role: str, arg: str, env: dict) -> None:
        super().__init__(role, arg, env, module=__name__)

    def ask(self, text: str):
        self.say(text)
        line = self.p.stdout.readline()
        if not line:
            raise RuntimeError(f"the process ended (exit status {self.p.wait()})")
        return json.loads(line)


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
    reader.say(f"mark {mid['note_messages_sent']}")
    before_stop = reader.result()
    final = engine.ask("quit")
    reader.say(f"stop {len(final['sends'])}")
    return mid, before_stop, final, reader.result()


def soak(minutes: float, model: str, seed: int, period: int = 64) -> dict:
    """The whole soak (module docstring): the figures `figures` reports, with the run's settings."""
    rng = random.Random(seed)
    server = start_jack(period)
    env = {**server.env, "MIDO_BACKEND": br.JACK_BACKEND}
    res: dict = {"minutes": minutes, "transport": "jack", "jack_period": period, "model": model, "seed": seed,
                 "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime())}
    engine = player = None
    tally = Tally()
    try:
        player = Proc("player", "SoakKeys", env)
        engine = Proc("engine", f"jack,{model}", env)
        reader = br.Child("reader", "SoakOut", env)
        time.sleep(1.0)
        tally.player_sent = player.ask(f"play phrase {rng.randrange(1 << 30)}")  # warm up: the model's first steps allocate
        time.sleep(2.0)
        rss0 = engine.ask("stats")["rss_mb"]
        play_segments(engine, player, rng, minutes, tally)
        mid, before_stop, final, got = stop_engine(engine, reader)
        if engine.p.wait(timeout=30) != 0 or final.get("error"):
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
    res.update(figures(tally, rss0, mid, final, got, before_stop), jack_xruns=server.xruns())
    return res


# -- the figures ---------------------------------------------------------------------
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


def figures(tally: Tally, rss0: float, mid: dict, final: dict, got: list, before_stop: int) -> dict:
    """The soak's figures (module docstring) from its tally, the engine's stats before stop (mid) and
    at the end (final, with every note message it sent), and what the reader got."""
    notes_got = [g for g in got if g[1][0] & 0xF0 in (0x80, 0x90)]
    sends = [(tuple(b), d, s_) for b, d, s_, _ in final["sends"]]
    beat_at = [(s_, spb) for _, _, s_, spb in final["sends"]]  # the engine's seconds per beat, by send time
    pairs, lost_out = br.pair_by_identity(sends, notes_got, window_s=1.0)
    err_ms = sorted((g[0] - s[1]) * 1e3 for s, g in pairs)
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
        loadavg=os.getloadavg())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--json", metavar="OUT")
    ap.add_argument("--model", default=str(ROOT / "models" / "default"))
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--jack-period", type=int, default=64, help="frames per JACK cycle at 48 kHz (default 64)")
    br.add_role_args(ap)
    a = ap.parse_args(argv)
    if br.run_role(a, {"player": role_player, "engine": role_engine, "reader": br.role_reader}):
        return 0
    res = soak(a.minutes, a.model, a.seed, a.jack_period)
    keys = ["minutes", "input_events", "output_notes", "stuck_notes", "left_open_after_stop", "lost_events",
            "jack_xruns", "inbox_overflow", "late_messages", "faults_survived", "crashes", "port_removals", "reconnects",
            "mode_changes", "rss_start_mb", "rss_end_mb", "rss_growth_mb", "longest_note_beats",
            "longest_note_beats_as_sent", "latency_p50_ms",
            "latency_p99_ms", "latency_max_ms", "stop_s"]
    for k in keys:
        v = res[k]
        print(f"  {k:22} {v:.3f}" if isinstance(v, float) else f"  {k:22} {v}")
    br.write_results(res, a.json)
    return 0 if res["stuck_notes"] == 0 and res["crashes"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
