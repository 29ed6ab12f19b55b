"""Bursts into an input on a real JACK server while other Python threads keep the GIL busy.

mido's own rtmidi input reads with a Python callback in JACK's process thread; under load it
delivers the first event of a cycle again in place of the rest (see agent/rtinput.py). Antiphon's
inputs are polled there instead: every message must arrive once, in order, stamped no earlier than
it was sent."""
from __future__ import annotations

import threading
import time

import pytest

pytestmark = pytest.mark.realmidi


def test_a_jack_input_keeps_every_message_of_bursts_while_the_gil_is_busy(bench, jack_env):
    import mido

    from agent.ports import Ports

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
    assert [b for _, b in got] == [d for _, d in sent]
    stamps = [t for t, _ in got]
    assert stamps == sorted(stamps)
    early = [(s, t) for (s, _), (t, _) in zip(sent, got) if t < s]
    assert not early, f"stamped before it was sent: {early[:3]}"
