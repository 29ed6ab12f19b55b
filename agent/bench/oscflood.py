"""An OSC flood for bench_realtime (`--osc-flood RATE`): does control in keep the music on time?

`OscFlood(rate, seconds).start(engine)` serves OSC on the engine (agent/ui/osc.py, as `antiphon
play` does with `[osc] port`) and starts a sender process that sends `/antiphon/temp 1.0` (the
temperature the run already has, so the music is the same as a quiet run's) `rate` times a
second on absolute deadlines for `seconds` (each millisecond the ten due: it sleeps between, as
a controller app would, rather than spin a core), never reading the replies. `figures()` says how many
were sent, how many the server took (UDP drops what the server cannot take in time), and how late
the sender ran behind its own schedule.

    python -m agent.bench.oscflood PORT RATE SECONDS    the sender (prints its figures as JSON)
"""
from __future__ import annotations

import json
import subprocess
import sys
import time


def send(port: int, rate: float, seconds: float, tick_s: float = 0.001) -> dict:
    """Send rate * seconds messages to 127.0.0.1:port on absolute deadlines: every tick_s, those due
    by then (10 a millisecond at 10,000 a second), sleeping between, as a controller app would."""
    from pythonosc.osc_message_builder import build_msg
    from pythonosc.udp_client import SimpleUDPClient

    client = SimpleUDPClient("127.0.0.1", port)
    msg = build_msg("/antiphon/temp", [1.0])
    n, sent = int(rate * seconds), 0
    start, worst = time.perf_counter(), 0.0
    while sent < n:
        now = time.perf_counter()
        due = min(n, int((now - start) * rate) + 1)
        worst = max(worst, now - (start + sent / rate))
        for _ in range(due - sent):
            client.send(msg)
        sent = due
        time.sleep(max(0.0, start + sent / rate + tick_s - time.perf_counter()))
    return {"osc_sent": n, "osc_send_s": time.perf_counter() - start, "osc_sender_late_max_ms": worst * 1e3}


class OscFlood:
    def __init__(self, rate: float, seconds: float = 10.0) -> None:
        self.rate, self.seconds = rate, seconds
        self.osc = self.proc = None

    def start(self, engine) -> None:
        from agent.ui.osc import OscControl

        self.osc = OscControl(engine, "127.0.0.1", 0).start()
        engine.synced.append(self.osc)  # stopped with the engine
        self.proc = subprocess.Popen([sys.executable, "-m", "agent.bench.oscflood", str(self.osc.address[1]),
                                      str(self.rate), str(self.seconds)], stdout=subprocess.PIPE, text=True)

    def figures(self) -> dict:
        out, _ = self.proc.communicate(timeout=self.seconds + 60)
        sender = json.loads(out.strip().splitlines()[-1])
        return {"osc_flood_rate": self.rate, "osc_flood_s": self.seconds, **sender,
                "osc_handled": self.osc.received, "osc_superseded": self.osc.superseded,
                "osc_refused": self.osc.refused}


if __name__ == "__main__":
    print(json.dumps(send(int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]))), flush=True)
