"""antiphon repl: the live REPL with no keyboard and no MIDI system.

The engine runs on in-process loopback ports; the scripted player
(agent/session/scripted.py) plays a few tunes into it in a loop (a phrase,
then a pause for the answer), so every command can be tried and heard in
the status line. `--trace FILE`
writes what happened as JSON when the session ends: every message the
engine scheduled (due time, the temperature its sample used), every message
that reached the output port, and every setting change (for the tests).
"""
from __future__ import annotations

import json
import time

from agent.ui.cli import common_options
from agent.errors import AntiphonError
from agent.session.scripted import ScriptedPlayer
from agent.ui.commands.play import configure, load_predictor, run_until_stopped, run_with_repl, use_repl

HELP = "try the live REPL with no keyboard: loopback ports and a scripted player"


def add_arguments(p) -> None:
    p.add_argument("--mode", choices=["call", "accompany", "solo"], help="jam mode (default: [jam] mode)")
    p.add_argument("--model", metavar="DIR", help="model folder (default: [model] path)")
    p.add_argument("--no-player", action="store_true", help="no scripted player: only what you type")
    p.add_argument("--gap-beats", type=float, default=8.0, help="the player's pause after a phrase (default 8)")
    p.add_argument("--phrases", type=int, help="phrases the player plays (default: on and on; 0: only the mod wheel)")
    p.add_argument("--trace", metavar="FILE.json", help="write scheduled/sent messages and changes here at the end")
    p.add_argument("--seconds", type=float, help="stop by itself after this many seconds")
    p.add_argument("--headless", action="store_true", help="no REPL even on a terminal")
    common_options(p)


class Trace:
    """What the engine scheduled and sent, and the setting changes, kept in memory, written at the end."""

    def __init__(self, engine) -> None:
        self.engine = engine
        self.scheduled: list = []
        self.received: list = []
        self.changes: list = []
        sched = engine.scheduler
        inner = sched.schedule

        def schedule(due_s, msg):  # on the engine thread, straight after the sample that made msg
            sampler = getattr(engine.predictor, "sampler", None)
            self.scheduled.append([time.perf_counter(), due_s, msg.hex(), getattr(sampler, "last_temperature", None)])
            inner(due_s, msg)

        sched.schedule = schedule
        engine.controls.listeners.append(lambda k, v: self.changes.append([time.perf_counter(), k, v]))

    def on_output(self, msg, t_s: float) -> None:
        self.received.append([t_s, msg.hex()])

    def write(self, path: str) -> None:
        with open(path, "w") as f:
            json.dump({"scheduled": self.scheduled, "received": self.received, "changes": self.changes,
                       "pending_done": list(self.engine.controls.pending.done),
                       "bpm": self.engine.tempo.bpm, "beats_per_bar": self.engine.tempo.beats_per_bar}, f)


def run(args) -> int:
    from agent.live.engine import Engine
    from agent.midi.ports import Loopback, Ports
    from agent.ui.osc import osc_control

    if not use_repl(args) and not args.seconds:
        raise AntiphonError("antiphon repl needs a terminal (or --seconds N, to run with no prompt)")
    cfg = configure(args)
    predictor = load_predictor(cfg)
    loop = Loopback()
    ports = Ports("loopback", loop=loop)
    engine = Engine(cfg, predictor, ports=ports, input_name="keyboard", virtual_name="Antiphon",
                    report=lambda line: print(line, flush=True))
    engine.start()
    try:
        osc = osc_control(engine)  # [osc] port: the OSC addresses, tried with no keyboard
    except BaseException:
        engine.stop()
        raise
    if osc is not None:
        engine.synced.append(osc)  # stopped with the engine
    trace = Trace(engine) if args.trace else None
    if trace:
        ports.open_input("Antiphon", trace.on_output)
    player = None
    if not args.no_player:
        keyboard = ports.open_output("keyboard")
        player = ScriptedPlayer(keyboard.send, lambda: engine.tempo.bpm, args.gap_beats, args.phrases).start()
    banner = (f"antiphon repl: loopback ports, {'no player' if player is None else 'a scripted player'}; "
              f"mode {cfg.jam.mode}, {cfg.timing.bpm:g} bpm, model {cfg.model_dir()}."
              + (f" OSC control on {osc.address[0]}:{osc.address[1]}." if osc is not None else ""))
    try:
        if use_repl(args):
            return run_with_repl(engine, banner, args.seconds)
        return run_until_stopped(engine, args.seconds, banner)
    finally:
        if player:
            player.stop()
        engine.stop()
        if trace:
            trace.write(args.trace)
            print(f"trace written to {args.trace}", flush=True)
