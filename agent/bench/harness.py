"""The plumbing the benchmarks share: a JACK dummy server of their own, roles in child processes, results out.

A benchmark module is also the program of its helper processes: started as
`python -m MODULE --role ROLE --role-arg ARG`, it runs that role (a player,
a reader, the engine) and speaks to its parent line by line on stdin/stdout
(`Child`). perf_counter is CLOCK_MONOTONIC on Linux, so the processes' time
stamps compare directly.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

JACK_BACKEND = "mido.backends.rtmidi/UNIX_JACK"


# -- JACK dummy server ---------------------------------------------------------
class JackServer:
    """`jackd -d dummy` under its own server name; `start()` waits until jack_lsp answers."""

    def __init__(self, name: str | None = None, period: int = 64, rate: int = 48000) -> None:
        self.name = name or f"antiphon{os.getpid()}"
        self.period, self.rate = period, rate
        self.proc: subprocess.Popen | None = None
        self.env = {**os.environ, "JACK_DEFAULT_SERVER": self.name, "JACK_NO_AUDIO_RESERVATION": "1"}

    @staticmethod
    def available() -> str | None:
        """None if jackd and jack_lsp are installed, else why not."""
        missing = [b for b in ("jackd", "jack_lsp") if shutil.which(b) is None]
        return f"{', '.join(missing)} not installed (apt-get install -y jackd2)" if missing else None

    def start(self, timeout_s: float = 15.0) -> "JackServer":
        self.log = tempfile.NamedTemporaryFile("w+", prefix="jackd-", suffix=".log", delete=False)
        self.proc = subprocess.Popen(["jackd", "-d", "dummy", "-r", str(self.rate), "-p", str(self.period)],
                                     env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            r = subprocess.run(["jack_lsp"], env=self.env, capture_output=True, timeout=10)
            if r.returncode == 0 and b"system:" in r.stdout:
                return self
            time.sleep(0.2)
        self.stop()
        self.log.seek(0)
        raise RuntimeError(f"jackd did not start: {self.log.read()[-500:]}")

    def xruns(self) -> int:
        """Cycles in which jackd saw a client miss its deadline (its log's XRun lines): in such a
        cycle JACK itself may drop that client's MIDI events, whoever sent them."""
        try:
            with open(self.log.name, errors="replace") as f:
                return sum(1 for line in f if "XRun" in line)
        except (AttributeError, OSError):
            return 0

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


# -- roles in child processes ---------------------------------------------------
def add_role_args(ap: argparse.ArgumentParser) -> None:
    """The hidden options by which a benchmark starts its own subprocesses in a role."""
    ap.add_argument("--role", help=argparse.SUPPRESS)
    ap.add_argument("--role-arg", help=argparse.SUPPRESS)


def run_role(a: argparse.Namespace, roles: dict) -> bool:
    """Run the role this process was started in (True), or False for the benchmark itself."""
    if a.role is None:
        return False
    if a.role not in roles:
        raise SystemExit(f"unknown role {a.role!r}: one of {', '.join(roles)}")
    roles[a.role](a.role_arg)
    return True


def needs_jack(name: str) -> bool:
    """False, having said why on stderr, where JACK is not installed."""
    why = JackServer.available()
    if why:
        print(f"{name} needs JACK: {why}", file=sys.stderr)
    return not why


def parse_jack_bench(ap: argparse.ArgumentParser, argv, roles: dict, name: str) -> tuple[argparse.Namespace, int | None]:
    """Parse argv for a benchmark that needs JACK: (args, None) to go on, or (args, exit status) when
    this process ran one of its roles (0) or JACK is not installed (2, having said why)."""
    add_role_args(ap)
    a = ap.parse_args(argv)
    if run_role(a, roles):
        return a, 0
    return a, None if needs_jack(name) else 2


def write_results(res: dict, path: str | None) -> None:
    """The results as one JSON line on stdout, and indented into path when one is given."""
    print(json.dumps(res))
    if path:
        Path(path).write_text(json.dumps(res, indent=2) + "\n")


class Child:
    """A role of a benchmark module (agent.bench.realtime's player and reader by default) in its own
    process (`python -m MODULE --role ROLE`, from the repository), spoken to line by line."""

    def __init__(self, role: str, arg: str, env: dict, module: str = "agent.bench.realtime") -> None:
        from agent.config import ROOT

        self.p = subprocess.Popen([sys.executable, "-m", module, "--role", role, "--role-arg", arg], env=env,
                                  cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = self.p.stdout.readline().strip()
        if line != "ready":
            raise RuntimeError(f"{role} process did not start ({line!r})")

    def say(self, text: str) -> None:
        self.p.stdin.write(text + "\n")
        self.p.stdin.flush()

    def result(self):
        return json.loads(self.p.stdout.readline())
