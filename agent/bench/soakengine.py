"""The soak's engine process (agent/bench/soak.py): the live engine over real ports, with what the
soak measures hooked in, driven line by line over stdin the way the REPL drives LiveControls.

Its answers (one JSON line each) hand over what came since the last answer: the note messages
the scheduler sent (with the engine's beat length then), the model's step times, the recorder's
flush times; so the process whose memory the soak watches keeps none of its own measuring. A REPL
session (bench_repl's Typist: prompt_toolkit, a typist at 10 keys a second) is open on the engine.
"""
from __future__ import annotations

import json
import os
import sys
import time

from agent.bench import soakfigures as sf
from agent.bench.soakfigures import BPM  # the player's tempo, and the engine's to start with

TEMPERATURE_CC = 21

REPL_SCRIPT = ["sta\t\n", "help sil\t\n", "cc\n", "temp 1.0\n", "key au\t\n", "top-p 0.95\n", "status\n",
               "se\t sampling.top_k 0\n", "panic\n", "\x1b[A\n"]  # what the soak's REPL typist types (no mode:
# the soak changes modes itself; panic silences the agent until the player's next note)


class SoakEngine:
    """The engine on `transport` ports, with what the soak measures hooked in: its note messages,
    the model's step times, the recorder's flush times (record: the .mid to record to, as `antiphon
    play --record` does, or empty), the player's note-ons heard, and a REPL typist (repl)."""

    def __init__(self, transport: str, record: str, repl: bool, model: str) -> None:
        from collections import deque

        from agent.config import load_config
        from agent.live.engine import Engine
        from agent.midi.ports import Ports
        from agent.model.predictor import Predictor

        cfg = load_config(overrides=[f"timing.bpm={BPM}", f"jam.temperature_cc={TEMPERATURE_CC}", 'jam.mode="call"',
                                     "midi.port_check_s=0.5", f'model.path="{model}"', "jam.held_note_timeout_s=10.0"])
        self.lines: list[str] = []
        self.eng = eng = Engine(cfg, Predictor.from_config(cfg), ports=Ports(transport), input_name="SoakKeys",
                                virtual_name="SoakOut", report=self.lines.append)
        self.sends: deque = deque()  # drained by each stats answer
        self.flushes: deque = deque()
        eng.start()
        # each note message with the engine's beat length then (it follows the player's tempo, not BPM)
        eng.scheduler.hooks.append(lambda m, d, s: self.sends.append((m.bytes(), d, s, eng.tempo.seconds_per_beat()))
                                   if m.type.startswith("note") else None)
        self.figs = eng.measure()  # the engine thread's model steps, timed
        self.heard, self.last_step = 0, 0.0  # the player's note-ons the jam heard (the recording's human part)
        eng.listener.player_hooks.append(self._heard)
        if record:
            from agent.ui.commands.play import start_recording

            start_recording(eng, record)
            sf.time_flushes(eng.recorder, self.flushes)
        self.typist = None
        if repl:
            from agent.bench.repl import Typist

            self.typist = Typist(eng, script=REPL_SCRIPT).start()

    def _heard(self, msg, t_s: float) -> None:
        if msg.type == "note_on" and msg.velocity > 0:
            self.heard += 1

    def stats(self) -> dict:
        """The engine's counts, and what came since the last answer (sends, steps, flushes)."""
        eng = self.eng
        st = eng.stats()
        s, li, j = eng.scheduler, eng.listener, eng.jam
        steps = [x for x in list(self.figs.steps) if x[0] > self.last_step]
        self.last_step = steps[-1][0] if steps else self.last_step
        st.update(rss_mb=sf.rss_mb(), faults=li.faults + s.faults, overflow=li.overflow, late=s.late,
                  notes_limited=j.notes_limited, held_released=j.held_released, reprimes=j.reprimes,
                  losses=eng.watcher.losses, reconnects=eng.watcher.reconnects,
                  stopped=eng.stopped.is_set(), error=repr(eng.error) if eng.error else None,
                  dropped_polyphony=s.dropped_polyphony, unclosed=s.unclosed, limited_by_scheduler=s.limited,
                  lines=self.lines[-5:], received=li.received, queued=li.inbox.qsize(), idle=j.gen is None,
                  steps=steps, heard_ons=self.heard, flushes=sf.drain(self.flushes),
                  sends=[(list(b), d, s_, spb) for b, d, s_, spb in sf.drain(self.sends)])
        return st

    def quit(self) -> dict:
        """Stop the typist and the engine (which writes the recording's final files); the last stats."""
        t = self.typist
        if t is not None:
            t.stop()
        t0 = time.perf_counter()
        closed = self.eng.stop()
        st = self.stats()
        st.update(closed_at_stop=len(closed), stop_s=time.perf_counter() - t0, all_lines=self.lines,
                  repl_keys=t.keys if t else 0, repl_errors=[x for x in t.lines if x.startswith("error")][:5] if t else [])
        return st


def role_engine(spec: str) -> None:
    """A SoakEngine; stdin: 'set KEY VALUE' | 'stats' | 'quit', each answered with its stats. spec:
    "transport,record,repl,model" (record: the .mid, or empty; repl: 1 for a typist). Each answer
    hands over what came since the last, so the engine process keeps none of it."""
    transport, record, repl, model = spec.split(",", 3)
    sys.stdout.flush()
    out = os.fdopen(os.dup(1), "w")  # the answers' own pipe: whatever else prints (the REPL's
    os.dup2(2, 1)  # patch_stdout writes to the real stdout) goes to stderr instead

    def answer(text: str) -> None:
        out.write(text + "\n")
        out.flush()

    se = SoakEngine(transport, record, repl == "1", model)
    answer("ready")
    for line in sys.stdin:
        cmd = line.split(maxsplit=2)
        if cmd[0] == "set":
            try:
                se.eng.controls.set(cmd[1], cmd[2].strip())
            except Exception as exc:  # a bad command never stops the music
                se.lines.append(f"set failed: {exc}")
        if cmd[0] == "quit":
            answer(json.dumps(se.quit()))
            return
        answer(json.dumps(se.stats()))
