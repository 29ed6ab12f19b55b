"""Small helpers several test modules share (tests/ is on pytest's pythonpath)."""
from __future__ import annotations

import importlib.util
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def load_script(name: str):
    """scripts/NAME.py as a module (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def wait_for(cond, timeout_s: float = 10.0, poll_s: float = 0.01) -> bool:
    """Poll cond() until it is true or timeout_s passes; returns whether it came true."""
    end = time.perf_counter() + timeout_s
    while time.perf_counter() < end:
        if cond():
            return True
        time.sleep(poll_s)
    return bool(cond())


class ListOut:
    """An output port that records (clock time, message) for every send."""

    name = "list"

    def __init__(self, clock):
        self.clock, self.sent = clock, []

    def send(self, msg):
        self.sent.append((self.clock.now(), msg))

    def close(self):
        pass
