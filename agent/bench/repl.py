"""Does typing in the REPL move the real-time figures? bench_realtime with and without a typist, in one run.

    python scripts/bench_repl.py [--json OUT] [--quick] [--rounds N] [--transport jack|loopback] [--model DIR]

Each round runs scripts/bench_realtime.py's call-mode measurement twice on
the same JACK server (or loopback): once with the engine alone, once with a
REPL session open on it (prompt_toolkit, toolbar refreshed 4 times a second,
rendering to a 160x40 VT100 screen that goes to /dev/null) while a scripted
typist presses 10 keys a second: commands typed letter by letter, Tab to
complete, Enter to run (`status`, `help temp`, `cc`, setting commands that
re-set the values the benchmark runs with, so the music is the same). The
order alternates between rounds, so drift in the machine's load falls on
both. Printed: each run's onset and scheduling-error p50/p99 and the pooled
difference (with REPL minus without); the issue asks for |difference| of
the p99s under 0.5 ms.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path


from agent.bench import realtime as br

KEYS_PER_S = 10.0
# what the typist types ("\t" = Tab, "\n" = Enter); settings are re-set to what the benchmark runs with
SCRIPT = ["sta\t\n", "help sil\t\n", "cc\n", "temp 1.0\n", "mo\t call\n", "set jam.look\t 200\n", "top-p 1.0\n",
          "key au\t\n", "se\t sampling.top_k 0\n", "status\n", "tempo 200\n", "\x1b[A\n"]  # Up: the last line again


class Typist:
    """A REPL session on `engine` in its own thread, fed one key every 1/KEYS_PER_S seconds."""

    def __init__(self, engine, keys_per_s: float = KEYS_PER_S, script: list[str] | None = None) -> None:
        self.engine, self.period = engine, 1.0 / keys_per_s
        self.script = SCRIPT if script is None else script  # what is typed, over and over
        self.keys = 0
        self.lines: list[str] = []
        self._stop = threading.Event()

    def start(self) -> "Typist":
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run_repl, args=(ready,), name="bench-repl", daemon=True)
        self._thread.start()
        ready.wait(10.0)
        self._keys = threading.Thread(target=self._type, name="bench-typist", daemon=True)
        self._keys.start()
        return self

    def _run_repl(self, ready: threading.Event) -> None:
        import asyncio

        from prompt_toolkit.data_structures import Size
        from prompt_toolkit.input import create_pipe_input
        from prompt_toolkit.output.vt100 import Vt100_Output

        from agent.ui.repl.app import Repl

        asyncio.set_event_loop(asyncio.new_event_loop())
        screen = open(os.devnull, "w")
        out = Vt100_Output(screen, lambda: Size(rows=40, columns=160), term="xterm")
        with create_pipe_input() as inp:
            self.input = inp
            repl = Repl(self.engine, input=inp, output=out, history=False, say=self.lines.append)
            ready.set()
            cpu0, wall0 = time.thread_time(), time.perf_counter()
            repl.run()  # prompt_toolkit's event loop, its rendering and the commands all run on this thread
            self.cpu_s, self.wall_s = time.thread_time() - cpu0, time.perf_counter() - wall0
        screen.close()

    def _type(self) -> None:
        t = time.perf_counter()
        i = 0
        text = "".join(self.script)
        while not self._stop.is_set():
            t += self.period
            d = t - time.perf_counter()
            if d > 0:
                self._stop.wait(d)
            if self._stop.is_set():
                break
            key = text[i % len(text)]
            if key == "\x1b":  # an escape sequence goes as one key press
                key, i = text[i:i + 3], i + 2
            self.input.send_text(key)
            self.keys += 1
            i += 1

    def stop(self) -> None:
        self._stop.set()
        self._keys.join(2.0)
        try:
            self.input.send_text("\x15quit\n")  # Ctrl-U clears a half-typed line
        except Exception:
            pass
        self._thread.join(5.0)


def run_pair(transport: str, n: int, model: str, env: dict, sets: list[str], with_repl: bool) -> dict:
    """bench_realtime.run_once in call mode, the engine's start/stop wrapped to open and close a typist."""
    import agent.live.engine

    plain = agent.live.engine.Engine
    typists: list[Typist] = []

    class EngineWithRepl(plain):
        def start(self):
            super().start()
            typists.append(Typist(self).start())
            return self

        def stop(self):
            if typists:
                typists[-1].stop()
            return super().stop()

    agent.live.engine.Engine = EngineWithRepl if with_repl else plain
    try:
        res = br.run_once(transport, "call", n, model, env, sets)
    finally:
        agent.live.engine.Engine = plain
    if with_repl:
        t = typists[-1]
        res.update(keys_typed=t.keys, repl_lines=len(t.lines), repl_cpu_fraction=t.cpu_s / t.wall_s,
                   repl_errors=[x for x in t.lines if x.startswith("error")][:3])
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", metavar="OUT", help="also write the results as JSON here")
    ap.add_argument("--quick", action="store_true", help="10 phrases a run instead of 30, one round")
    ap.add_argument("--phrases", type=int, help="phrases per run (default 30; 10 with --quick)")
    ap.add_argument("--rounds", type=int, help="pairs of runs (default 2; 1 with --quick)")
    ap.add_argument("--transport", choices=["jack", "loopback"], help="default: jack if jackd is installed")
    ap.add_argument("--model", default="models/default", help="model folder (default models/default)")
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="SECTION.KEY=VALUE")
    a = ap.parse_args(argv)
    n = a.phrases or (10 if a.quick else 30)
    rounds = a.rounds or (1 if a.quick else 2)
    transport = a.transport or ("jack" if br.JackServer.available() is None else "loopback")
    server, env = None, {}
    if transport == "jack":
        server = br.JackServer().start()
        env = {**os.environ, **server.env, "MIDO_BACKEND": br.JACK_BACKEND}
    runs = []
    try:
        for r in range(rounds):
            for with_repl in ((False, True) if r % 2 == 0 else (True, False)):
                res = run_pair(transport, n, a.model, env, a.sets, with_repl)
                res.update(round=r, repl=with_repl)
                runs.append(res)
                print(f"round {r} {'REPL + typist' if with_repl else 'engine alone '}: onset p99 "
                      f"{res['onset_p99_ms']:.2f} ms, sched err p99 {res['sched_err_p99_ms']:.2f} ms, "
                      f"{res['answers']}/{n} answers, stuck {res['stuck_notes']}, lost {res['lost_events']}"
                      + (f", {res['keys_typed']} keys typed, REPL thread CPU {100 * res['repl_cpu_fraction']:.1f}% "
                         f"of a core, {res['repl_lines']} REPL replies, errors "
                         f"{res['repl_errors'] or 'none'}" if with_repl else ""), flush=True)
    finally:
        if server:
            server.stop()

    def pooled(repl: bool, key: str):
        xs = [x[key] for x in runs if x["repl"] == repl and x[key] is not None]
        return sum(xs) / len(xs) if xs else None

    summary = {}
    print(f"\ntransport {transport}; {rounds} round(s) of {n} phrases at {br.BPM:g} bpm; typist {KEYS_PER_S:g} keys/s")
    print(f"  {'':<18} {'alone':>8} {'REPL':>8} {'REPL - alone':>13}")
    for key in ("onset_p50_ms", "onset_p99_ms", "sched_err_p50_ms", "sched_err_p99_ms", "send_err_p99_ms"):
        a0, a1 = pooled(False, key), pooled(True, key)
        summary[key] = {"alone": a0, "repl": a1, "diff": None if a0 is None or a1 is None else a1 - a0}
        print(f"  {key:<18} {a0:>8.3f} {a1:>8.3f} {a1 - a0:>+13.3f}")
    res = {"transport": transport, "phrases": n, "rounds": rounds, "bpm": br.BPM, "keys_per_s": KEYS_PER_S,
           "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()), "loadavg": os.getloadavg(),
           "model": a.model, "summary": summary, "runs": runs}
    print(json.dumps({"summary": summary, "loadavg": res["loadavg"]}))
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
