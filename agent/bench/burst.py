"""Reading a JACK MIDI input under load: mido's callback port against Antiphon's polled port, side by side.

    python scripts/bench_input.py [--bursts 400] [--burst 5] [--hogs 2] [--json OUT]

One JACK dummy server (-p 64); a sender plays bursts of distinct messages (`--burst` in one JACK
cycle, 3 ms apart); a reader process opens the sender's port either as mido does (a Python
callback in JACK's process thread) or as Antiphon does (agent/midi/rtinput.py: rtmidi's queue, polled),
while `--hogs` Python threads in the reader keep the GIL busy, as the engine's own threads do.
Both readers run on the same bursts, one after the other, in one run.

Reported per reader: messages sent, received, received intact and in place (the same bytes at the
same index), duplicates, lost, and the delay from send to the reader's arrival stamp (p50/p99/max,
ms; sender and reader share CLOCK_MONOTONIC via perf_counter).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from collections import Counter
from pathlib import Path


from agent.bench import harness  # JackServer, Child, the roles
from agent.live.figures import pct


def role_reader(spec: str) -> None:
    """spec 'KIND,PART,HOGS': read port PART the KIND way ('mido' | 'antiphon') with HOGS busy threads."""
    import mido

    kind, part, hogs = spec.split(",")
    got: list[tuple[float, list[int]]] = []
    if kind == "mido":
        name = next(n for n in mido.get_input_names() if part in n)
        port = mido.open_input(name, callback=lambda m: got.append((time.perf_counter(), m.bytes())))
    else:
        from agent.midi.ports import Ports

        port = Ports("auto").open_input(part, lambda m, t: got.append((t, m.bytes())))
    done = threading.Event()

    def hog() -> None:
        x = 0
        while not done.is_set():
            for i in range(100_000):
                x += i

    for _ in range(int(hogs)):
        threading.Thread(target=hog, daemon=True).start()
    print("ready", flush=True)
    want = int(sys.stdin.readline())
    deadline = time.monotonic() + 5.0
    while len(got) < want and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)
    done.set()
    port.close()
    print(json.dumps(got), flush=True)


def run(kind: str, out, env: dict, bursts: int, burst: int, hogs: int) -> dict:
    import mido

    reader = harness.Child("reader", f"{kind},BenchInput,{hogs}", env, module=__name__)
    time.sleep(0.3)
    sent: list[tuple[float, list[int]]] = []
    for k in range(bursts):
        t = time.perf_counter()
        for j in range(burst):
            i = (k * burst + j) % (16 * 128)  # distinct: channel x key
            data = [0x90 | (i // 128), i % 128, 1 + j % 127]
            out.send(mido.Message.from_bytes(data))
            sent.append((t, data))
        time.sleep(0.003)
    reader.say(str(len(sent)))
    got = reader.result()
    reader.p.wait(timeout=10)
    first_sent: dict[tuple, float] = {}
    for t, d in sent:
        first_sent.setdefault(tuple(d), t)
    counts = Counter(tuple(b) for _, b in got)
    delays = sorted((t - first_sent[tuple(b)]) * 1e3 for t, b in got if tuple(b) in first_sent)
    return {"reader": kind, "sent": len(sent), "received": len(got),
            "intact_in_place": sum(1 for (_, a), (_, b) in zip(sent, got) if a == b),
            "duplicates": sum(c - 1 for c in counts.values() if c > 1),
            "lost": sum(1 for _, d in sent if tuple(d) not in counts),
            "delay_p50_ms": pct(delays, 50), "delay_p99_ms": pct(delays, 99),
            "delay_max_ms": delays[-1] if delays else None}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bursts", type=int, default=400)
    ap.add_argument("--burst", type=int, default=5, help="messages per burst (one JACK cycle)")
    ap.add_argument("--hogs", type=int, default=2, help="busy Python threads in the reader")
    ap.add_argument("--json", metavar="OUT")
    a, done = harness.parse_jack_bench(ap, argv, {"reader": role_reader}, "bench_input")
    if done is not None:
        return done
    import mido

    server = harness.JackServer().start()
    env = {**server.env, "MIDO_BACKEND": harness.JACK_BACKEND}
    os.environ.update(env)
    try:
        out = mido.Backend(harness.JACK_BACKEND, load=True).open_output("BenchInput", virtual=True)
        rows = [run(kind, out, env, a.bursts, a.burst, a.hogs) for kind in ("mido", "antiphon")]
        out.close()
    finally:
        server.stop()
    res = {"date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()), "jack_period": 64, "bursts": a.bursts,
           "burst": a.burst, "hogs": a.hogs, "loadavg": os.getloadavg(), "rows": rows}
    keys = ("sent", "received", "intact_in_place", "duplicates", "lost", "delay_p50_ms", "delay_p99_ms", "delay_max_ms")
    print(f"{a.bursts} bursts of {a.burst} messages into one JACK input, {a.hogs} busy threads in the reader")
    print(f"  {'':<18}" + "".join(f"{r['reader']:>12}" for r in rows))
    for k in keys:
        cells = "".join(f"{r[k]:>12.3f}" if isinstance(r[k], float) else f"{str(r[k]):>12}" for r in rows)
        print(f"  {k:<18}{cells}")
    print(json.dumps(res))
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
