"""agent/midi/watch.py: what the port watcher does while a port is gone."""
from __future__ import annotations

import time

from scripted import ScriptedPredictor  # noqa: E402

from agent.config import load_config
from agent.live.engine import Engine
from agent.midi.ports import Ports
from fakes import Loopback
from helpers import wait_for


class SlowListing(Loopback):
    """Listing ports takes a while (under JACK a new client's listing took 70-90 ms here) and
    notes whether the engine's port lock was held meanwhile."""

    engine = None

    def __init__(self) -> None:
        super().__init__()
        self.listings: list[bool] = []

    def names(self) -> list[str]:
        if self.engine is not None:
            self.listings.append(self.engine._port_lock.locked())
            time.sleep(0.03)
        return super().names()


def test_while_a_port_is_gone_the_watcher_lists_ports_without_the_engines_port_lock():
    """The lock is the engine thread's too (`connect out` swaps the output under it): a listing
    under it stalled the engine thread on every poll for as long as the port was away."""
    cfg = load_config(overrides=["timing.bpm=240.0", "jam.silence_ms=150.0", "midi.port_check_s=0.02"])
    loop = SlowListing()
    lines: list[str] = []
    eng = Engine(cfg, ScriptedPredictor(cfg.vocab()), ports=Ports("loopback", loop=loop), input_name="keyboard",
                 virtual_name="Antiphon", report=lines.append).start()
    try:
        Ports("loopback", loop=loop).open_output("keyboard")
        loop.engine = eng
        loop.break_bus("keyboard")
        assert wait_for(lambda: any("is gone" in line for line in lines))
        assert wait_for(lambda: len(loop.listings) >= 3)  # it looks for the port again, and again
        loop.restore_bus("keyboard")
        assert wait_for(lambda: any("is back" in line for line in lines))
    finally:
        eng.stop()
    assert loop.listings and not any(loop.listings), loop.listings
