"""What the engine starts beside its threads to talk time and state to the studio, per the config:
Ableton Link (`[sync] link`) and the state out (`[osc] send_to`, `[osc] state_cc`).

Each is an object with `stop()`; the engine stops them first at its stop.
"""
from __future__ import annotations


def start_sync(engine, cfg) -> list:
    """Start what `cfg` asks for on a started engine; returns them (to stop). A missing Link binding
    raises AntiphonError with the one line that says how to install it."""
    started = []
    try:
        if cfg.sync.link:
            from agent.midi.link import LinkSync

            started.append(LinkSync(engine.tempo, engine.clock, lambda: engine.controls.cfg.timing.source,
                                    report=engine.report).start())
        if cfg.osc.send_to or cfg.osc.state_cc >= 0:
            from agent.live.state_out import StateOut

            started.append(StateOut(engine, cfg.osc).start())
    except BaseException:
        stop_sync(started)
        raise
    return started


def stop_sync(started: list) -> None:
    for item in reversed(started):
        item.stop()
    started.clear()
