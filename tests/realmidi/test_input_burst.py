"""Bursts into an input on a real JACK server while other Python threads keep the GIL busy.

mido's own rtmidi input reads with a Python callback in JACK's process thread; under load it
delivers the first event of a cycle again in place of the rest (see agent/midi/rtinput.py). Antiphon's
inputs are polled there instead: every message that JACK delivers must arrive once, in order,
stamped no earlier than it was sent."""
from __future__ import annotations

import threading
import time

import pytest

pytestmark = pytest.mark.realmidi


def test_a_jack_input_keeps_every_message_of_bursts_while_the_gil_is_busy(bench, jack_env):
    import mido

    from agent.midi.ports import Ports

    jack = mido.Backend(bench.JACK_BACKEND, load=True)
    out = jack.open_output("BurstSource", virtual=True)
    got = []
    inp = Ports("jack").open_input("BurstSource", lambda m, t: got.append((t, m.bytes())))
    busy = threading.Event()

    def hog() -> None:  # pure Python: holds the GIL for the whole switch interval each time
        x = 0
        while not busy.is_set():
            for i in range(100_000):
                x += i

    hogs = [threading.Thread(target=hog, daemon=True) for _ in range(2)]
    sent = []
    try:
        assert inp.polled, "a JACK input must be polled, not read by a callback in JACK's thread"
        time.sleep(0.3)
        for h in hogs:
            h.start()
        for k in range(300):
            t = time.perf_counter()
            for j in range(5):  # 5 messages in one JACK cycle: 1,500 distinct messages in all
                i = k * 5 + j
                data = [0x90 | (i // 128), i % 128, 1 + j]
                out.send(mido.Message.from_bytes(data))
                sent.append((t, data))
            time.sleep(0.003)
        deadline = time.monotonic() + 5
        while len(got) < len(sent) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        busy.set()
        inp.close()
        out.close()
    # JACK itself drops a whole cycle of events when a client misses its deadline (an xrun: on these
    # shared 2-core machines, under load, every reader loses the same cycle); what a reader must never
    # do is hand over a message twice, garbled, or out of order
    index = {tuple(d): i for i, (_, d) in enumerate(sent)}
    at = [index.get(tuple(b)) for _, b in got]
    assert None not in at, "a message that was never sent"
    assert at == sorted(set(at)), "duplicated or out of order"
    assert len(got) >= 0.9 * len(sent), f"{len(sent) - len(got)} of {len(sent)} lost"
    stamps = [t for t, _ in got]
    assert stamps == sorted(stamps)
    early = [(sent[i][0], t) for i, (t, _) in zip(at, got) if t < sent[i][0]]
    assert not early, f"stamped before it was sent: {early[:3]}"


def test_bench_input_reports_both_readers_side_by_side(tmp_path, jack):  # jack: skipped where JACK is missing
    import json
    import subprocess
    import sys

    out = tmp_path / "input.json"
    r = subprocess.run([sys.executable, "scripts/bench_input.py", "--bursts", "40", "--hogs", "1", "--json", str(out)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    rows = {row["reader"]: row for row in json.loads(out.read_text())["rows"]}
    assert set(rows) == {"mido", "antiphon"} and rows["antiphon"]["sent"] == 200
    assert rows["antiphon"]["duplicates"] == 0 and rows["antiphon"]["lost"] <= 20  # an xrun may drop a cycle
    assert "intact_in_place" in r.stdout
