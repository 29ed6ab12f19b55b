"""Real-time benchmark: scripted phrases into the live engine over JACK (or loopback).

    python scripts/bench_realtime.py [--json OUT] [--quick] [--transport jack|loopback] [--model DIR]
                                     [--clock-out] [--osc-flood RATE]

Over JACK it starts its own dummy server (JACK_DEFAULT_SERVER, so it cannot
clash with another), and runs three processes: this one runs the engine on
real rtmidi virtual ports; a player process plays the keyboard's part into a
virtual port the engine listens to; a reader process connects to the
agent's virtual output and stamps what arrives. perf_counter is
CLOCK_MONOTONIC on Linux, so the three processes' stamps compare directly
(agent/bench/harness.py has the server and the process plumbing).

Measured: (a) response onset, bar alignment off: from the moment the silence
threshold is reached (the player's last note-off as the engine stamped it,
plus the threshold) to the first agent note-on the reader receives;
(b) scheduling error: reader's receive time minus the scheduler's due time,
every agent message, each received message paired with the one sent by
identity (its bytes, in order among equal ones), so one lost message does
not misalign the rest; (c) stuck notes: notes still sounding at the reader
after the run, counted BEFORE the engine's stop() closes them (a note held
for minutes is stuck even if stop() ends it), and `left_open_after_stop`;
lost events (sent by one side, not received by the other);
(d) accompany mode: fraction of player events that rolled the predictor
back, and the time to resample up to the lookahead.
With --clock-out both modes run again with `[sync] clock_out` on, the same
figures beside those without it, and a reader process on the clock port
gives the clock's pulse interval jitter (agent/bench/clock.py).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

# JackServer, Child and the role plumbing live in harness; they are named here too, as the
# benchmarks, scripts and realmidi tests have always called them (realtime.JackServer, ...).
from agent.bench.harness import JACK_BACKEND, Child, JackServer, add_role_args, run_role, write_results
from agent.bench.oscflood import OscFlood
from agent.live.figures import pct  # the nearest-rank percentile the live figures use
BPM, SILENCE_MS, BEATS = 200.0, 300.0, 4  # fast phrases keep 50 of them under three minutes
PHRASE_PERIOD_BEATS = 12  # a 1-bar phrase, the pause, a 1-bar answer, and room to spare


# -- the player's script -------------------------------------------------------
def phrase_events(n: int, start_s: float) -> list[tuple[float, list[int]]]:
    """(time_s, message bytes) for n one-bar phrases, from the demo's real tunes."""
    from agent.session.scripted import TUNES as PHRASES

    spb = 60.0 / BPM
    out = []
    for k in range(n):
        t0 = start_s + k * PHRASE_PERIOD_BEATS * spb
        for pitch, b, d in PHRASES[k % len(PHRASES)]:
            if b >= BEATS:
                continue
            end = min(b + d, BEATS) * 0.95
            out.append((t0 + b * spb, [0x90, pitch, 80]))
            out.append((t0 + end * spb, [0x80, pitch, 0]))
    return sorted(out)


def play_script(send, events) -> list[tuple[float, list[int]]]:
    """Send on absolute deadlines (sleep, then spin the last millisecond); returns (sent_s, bytes)."""
    log = []
    for t, data in events:
        while True:
            d = t - time.perf_counter()
            if d <= 0:
                break
            time.sleep(d - 0.001) if d > 0.002 else None
        send(data)
        log.append((time.perf_counter(), data))
    return log


def role_player(name: str) -> None:
    import mido

    out = mido.open_output(name, virtual=True)
    print("ready", flush=True)
    start_s, n = sys.stdin.readline().split()
    log = play_script(lambda d: out.send(mido.Message.from_bytes(d)), phrase_events(int(n), float(start_s)))
    print(json.dumps(log), flush=True)
    sys.stdin.readline()
    out.close()


def role_reader(part: str) -> None:
    from agent.midi.ports import Ports

    got = []  # read as Antiphon reads (agent/midi/rtinput.py): a Python callback in JACK's thread garbles bursts
    port = Ports("auto").open_input(part, lambda m, t: got.append((t, m.bytes())))
    print("ready", flush=True)

    def wait_for(want: int) -> None:  # up to 2 s for the note messages the engine says it sent
        deadline = time.perf_counter() + 2.0
        while time.perf_counter() < deadline and sum(1 for _, b in got if b[0] & 0xF0 in (0x80, 0x90)) < want:
            time.sleep(0.01)
        time.sleep(0.05)

    # "mark N": the engine has sent N note messages so far (before its stop()): once they are
    # here, answer how many messages had arrived, so stuck notes are counted before stop() closes them.
    # "stop N": the same, then the whole log, and the reader ends.
    while True:
        words = sys.stdin.readline().split()
        want = int(words[1]) if len(words) > 1 else 0
        wait_for(want)
        if words and words[0] == "mark":
            print(json.dumps(len(got)), flush=True)
            continue
        break
    port.close()
    print(json.dumps(got), flush=True)


# -- one run -------------------------------------------------------------------
def note_count(sends) -> int:
    return sum(1 for s in sends if s[0][0] & 0xF0 in (0x80, 0x90))


def sounding(got) -> set[tuple[int, int]]:
    """(channel, pitch) still sounding at a reader after the messages got [(t, bytes)], as a synth
    hears them: a note-off ends its note, all-notes-off (CC123) and all-sound-off (CC120) every note
    of their channel."""
    open_: set[tuple[int, int]] = set()
    for _, b in got:
        kind, key = b[0] & 0xF0, (b[0] & 0x0F, b[1])
        if kind == 0x90 and b[2] > 0:
            open_.add(key)
        elif kind in (0x80, 0x90):
            open_.discard(key)
        elif kind == 0xB0 and b[1] in (120, 123):
            open_ = {k for k in open_ if k[0] != key[0]}
    return open_


def pair_by_identity(sent, got, window_s: float | None = None) -> tuple[list, int]:
    """Pairs (sent, received) by the message itself (its bytes, in order among equal ones), not by
    position, so one lost message does not misalign the rest. With window_s, a send more than that
    older than a received copy of it is taken as lost rather than paired with a later one.
    sent: (bytes, due_s, sent_s); got: (t_s, bytes). Returns (pairs, sent but never received)."""
    from collections import defaultdict, deque

    waiting: dict[tuple, deque] = defaultdict(deque)
    for s in sent:
        waiting[tuple(s[0])].append(s)
    pairs, lost = [], 0
    for g in got:
        q = waiting.get(tuple(g[1]))
        while q and window_s is not None and q[0][2] < g[0] - window_s:
            q.popleft()
            lost += 1
        if q:
            pairs.append((q.popleft(), g))
    return pairs, lost + sum(len(q) for q in waiting.values())


def start_engine(cfg, pred, ports, input_name: str, sends: list, on_start=None):
    """The engine listening to input_name, on virtual output "Antiphon"; every message its scheduler
    sends is logged into sends as (bytes, due_s, sent_s). Engine is looked up when called, so a
    caller may wrap it (scripts/bench_repl.py does). `on_start(engine)`: e.g. an OSC flood."""
    from agent.live.engine import Engine

    eng = Engine(cfg, pred, ports=ports, input_name=input_name, virtual_name="Antiphon", report=lambda s: None)
    eng.start()
    eng.scheduler.hooks.append(lambda m, d, s: sends.append((m.bytes(), d, s)))
    if on_start is not None:
        on_start(eng)
    return eng


def run_jack(cfg, pred, n: int, env: dict, sends: list, on_start=None) -> tuple:
    """n phrases from a player process, heard by a reader process, over JACK:
    (engine, played, got, messages got before stop(), notes stop() closed)."""
    from agent.midi.ports import Ports

    os.environ.update(env)
    player = Child("player", "BenchKeyboard", env)
    eng = start_engine(cfg, pred, Ports("jack"), "BenchKeyboard", sends, on_start)
    reader = Child("reader", "Antiphon", env)
    player.say(f"{time.perf_counter() + 0.5} {n}")
    played = player.result()
    time.sleep(PHRASE_PERIOD_BEATS * 60 / BPM)
    reader.say(f"mark {note_count(sends)}")
    before_stop = reader.result()
    closed = eng.stop()
    reader.say(f"stop {note_count(sends)}")
    got = reader.result()
    player.say("quit")
    for c in (player, reader):
        c.p.wait(timeout=10)
    return eng, played, got, before_stop, closed


def run_loopback(cfg, pred, n: int, env: dict, sends: list, on_start=None) -> tuple:
    """The same as run_jack on in-process loopback ports, player and reader in this process."""
    import mido

    from agent.midi.ports import Loopback, Ports

    ports = Ports("loopback", loop=Loopback())
    eng = start_engine(cfg, pred, ports, "keyboard", sends, on_start)
    got: list = []
    ports.open_input("Antiphon", lambda m, t: got.append((time.perf_counter(), m.bytes())))
    kbd = ports.open_output("keyboard")
    played = play_script(lambda d: kbd.send(mido.Message.from_bytes(d)), phrase_events(n, time.perf_counter() + 0.5))
    time.sleep(PHRASE_PERIOD_BEATS * 60 / BPM)
    before_stop = len(got)
    return eng, played, got, before_stop, eng.stop()


def answer_onsets_ms(responses, notes) -> list[float]:
    """Per answer: its first note-on at the reader minus the moment the silence threshold was reached."""
    onsets = []
    for r in responses:
        if r.get("threshold_t") is None:
            continue
        firsts = [t for t, b in notes if b[0] & 0xF0 == 0x90 and b[2] > 0 and t >= r["threshold_t"]]
        if firsts and (r["end_t"] is None or firsts[0] <= r["end_t"] + 0.01):
            onsets.append((firsts[0] - r["threshold_t"]) * 1e3)
    return onsets


def figures(mode: str, n: int, eng, sends, played, got, before_stop: int, closed) -> dict:
    """What one run measured (the module docstring's (a) to (d)), as the JSON keys the reports use."""
    jam, li = eng.jam, eng.listener
    notes = [g for g in got if g[1][0] & 0xF0 in (0x80, 0x90)]
    sent_notes = [s for s in sends if s[0][0] & 0xF0 in (0x80, 0x90)]
    pairs, lost_out = pair_by_identity(sent_notes, notes)
    sched_err = [(g[0] - s[1]) * 1e3 for s, g in pairs]
    send_err = [(s[2] - s[1]) * 1e3 for s in sent_notes]  # the scheduler's part: sent minus due
    delivery = [(g[0] - s[2]) * 1e3 for s, g in pairs]  # the transport's part
    onsets = answer_onsets_ms(jam.responses, notes)
    player_notes = sum(1 for _, b in played if b[0] & 0xF0 in (0x80, 0x90))
    lost_in = player_notes - li.notes_in
    out = {"mode": mode, "phrases": n, "answers": len(onsets), "player_events": player_notes,
           "agent_messages": len(sent_notes),
           "stuck_notes": len(sounding(got[:before_stop])),  # still sounding at the reader before stop() closed it
           "left_open_after_stop": len(sounding(got)), "lost_events": lost_in + lost_out,
           "lost_in": lost_in, "lost_out": lost_out, "echoes": li.echo.echoes if li.echo else 0,
           "closed_at_stop": len(closed), "dropped_late": eng.scheduler.dropped_late,
           "scheduler_sched_fifo": eng.scheduler.rt_granted,
           "sched_err_p50_ms": pct(sched_err, 50), "sched_err_p99_ms": pct(sched_err, 99),
           "sched_err_max_ms": max(sched_err, default=None),
           "send_err_p99_ms": pct(send_err, 99), "delivery_p50_ms": pct(delivery, 50),
           "delivery_p99_ms": pct(delivery, 99),
           "onset_p50_ms": pct(onsets, 50), "onset_p99_ms": pct(onsets, 99), "onset_max_ms": max(onsets, default=None)}
    if mode == "accompany":
        rs = [x * 1e3 for x in jam.resample_s]
        out.update(rollback_fraction=jam.rollbacks / max(1, jam.player_events),
                   resample_p50_ms=pct(rs, 50), resample_p99_ms=pct(rs, 99))
    return out


def run_once(transport: str, mode: str, n: int, model: str, env: dict, sets: list[str] = (), flood=None) -> dict:
    """One run of n phrases in mode over transport ("jack" | "loopback"): the figures of `figures`
    (and with `flood`, an agent.bench.oscflood.OscFlood or a clock.ClockReader: started with the
    engine, its figures too)."""
    from agent.config import load_config
    from agent.model.predictor import Predictor

    cfg = load_config(overrides=[f"timing.bpm={BPM}", f"jam.silence_ms={SILENCE_MS}", f'jam.mode="{mode}"',
                                 "jam.response_bars=1.0", 'jam.align="beat"', "sampling.seed=7",
                                 f'model.path="{model}"', *sets])
    sends: list = []  # (msg, due_s, sent_s) from the scheduler
    run = run_jack if transport == "jack" else run_loopback
    eng, played, got, before_stop, closed = run(cfg, Predictor.from_config(cfg), n, env, sends,
                                                 flood.start if flood else None)
    out = figures(mode, n, eng, sends, played, got, before_stop, closed)
    return {**out, **flood.figures()} if flood else out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", metavar="OUT", help="also write the results as JSON here")
    ap.add_argument("--quick", action="store_true", help="10 phrases instead of 50")
    ap.add_argument("--phrases", type=int, help="phrases to play (default 50, or 10 with --quick)")
    ap.add_argument("--transport", choices=["jack", "loopback"], help="default: jack if jackd is installed")
    ap.add_argument("--model", default="models/default", help="model folder (default models/default)")
    ap.add_argument("--jack-server", help="use this running JACK server instead of starting one")
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="SECTION.KEY=VALUE",
                    help="config override for the engine (repeatable), e.g. scheduler.spin_ms=2")
    ap.add_argument("--osc-flood", type=float, default=0, metavar="RATE",
                    help="the call run also serves OSC and takes RATE /antiphon/temp messages a second "
                         "for its first --osc-flood-s seconds (agent/bench/oscflood.py)")
    ap.add_argument("--osc-flood-s", type=float, default=10.0, metavar="S", help="how long the flood lasts")
    ap.add_argument("--clock-out", action="store_true",
                    help="run both modes again with [sync] clock_out on, a reader process on the clock port: "
                         "the figures with clock out beside those without, and the clock's jitter")
    add_role_args(ap)
    a = ap.parse_args(argv)
    if run_role(a, {"player": role_player, "reader": role_reader}):
        return 0
    n = a.phrases or (10 if a.quick else 50)
    transport = a.transport or ("jack" if JackServer.available() is None else "loopback")
    if transport == "loopback":
        print("transport: in-process loopback ports (not JACK)", file=sys.stderr)
    server = None
    env = {}
    if transport == "jack":
        if a.jack_server:
            env = {"JACK_DEFAULT_SERVER": a.jack_server, "MIDO_BACKEND": JACK_BACKEND}
        else:
            server = JackServer().start()
            env = {**server.env, "MIDO_BACKEND": JACK_BACKEND}
        env = {**os.environ, **env}
    try:
        flood = OscFlood(a.osc_flood, a.osc_flood_s) if a.osc_flood else None
        call = run_once(transport, "call", n, a.model, env, a.sets, flood)
        acc = run_once(transport, "accompany", max(2, n // 5), a.model, env, a.sets)
        clock = clock_out_runs(transport, n, a.model, env, a.sets) if a.clock_out else None
    finally:
        if server:
            server.stop()
    res = {"transport": transport, "jack_period": 64 if transport == "jack" else None, "bpm": BPM,
           "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()), "loadavg": os.getloadavg(),
           "silence_ms": SILENCE_MS, "model": a.model, "sets": a.sets, **call,
           "accompany": acc, "rollback_fraction": acc.get("rollback_fraction"),
           "resample_p50_ms": acc.get("resample_p50_ms"), "resample_p99_ms": acc.get("resample_p99_ms"),
           **({"clock_out": clock} if clock else {})}
    print_table(transport, n, call, acc, clock)
    write_results(res, a.json)
    return 0


def print_table(transport: str, n: int, call: dict, acc: dict, clock: dict | None) -> None:
    """The readable table: call and accompany (and with --clock-out, the same with clock out on)."""
    fmt = lambda v: "-" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))  # noqa: E731
    print(f"transport {transport}; {n} phrases at {BPM:g} bpm, silence {SILENCE_MS:g} ms")
    for k in ("onset_p50_ms", "onset_p99_ms", "onset_max_ms", "sched_err_p50_ms", "sched_err_p99_ms",
              "sched_err_max_ms", "send_err_p99_ms", "delivery_p50_ms", "delivery_p99_ms", "stuck_notes", "lost_events", "answers", "dropped_late"):
        print(f"  {k:<20} {fmt(call[k]):>10}   accompany {fmt(acc[k]):>10}" + (
            f"   clock out on: {fmt(clock['call'][k]):>10}   accompany {fmt(clock['accompany'][k]):>10}" if clock else ""))
    for k in ("rollback_fraction", "resample_p50_ms", "resample_p99_ms"):
        print(f"  {k:<20} {fmt(acc[k]):>10}")
    for k in ("osc_flood_rate", "osc_sent", "osc_handled", "osc_superseded", "osc_refused", "osc_sender_late_max_ms"):
        if k in call:  # --osc-flood
            print(f"  {k:<20} {fmt(call[k]):>10}")
    for k in ("pulses_sent", "pulses_got", "clock_jitter_p50_ms", "clock_jitter_p99_ms", "clock_jitter_max_ms",
              "clock_send_late_p99_ms", "clock_off_beat_p50_ms", "clock_off_beat_p99_ms") if clock else ():
        print(f"  {k:<20} {fmt(clock['call'][k]):>10}   accompany {fmt(clock['accompany'][k]):>10}")


def clock_out_runs(transport: str, n: int, model: str, env: dict, sets) -> dict:
    """--clock-out: both modes again with [sync] clock_out = "virtual", a reader on the clock port."""
    from agent.bench.clock import ClockReader

    on = [*sets, 'sync.clock_out="virtual"']
    return {"call": run_once(transport, "call", n, model, env, on, ClockReader(env)),
            "accompany": run_once(transport, "accompany", max(2, n // 5), model, env, on, ClockReader(env))}


if __name__ == "__main__":
    sys.exit(main())
