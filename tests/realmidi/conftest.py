"""Fixtures for the real-MIDI tier: a JACK dummy server of our own, a small model, the bench's helpers."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from helpers import load_script

ROOT = Path(__file__).resolve().parents[2]
JACK = "mido.backends.rtmidi/UNIX_JACK"


def bench_module():
    """scripts/bench_realtime.py as a module: its JackServer and player/reader processes."""
    return load_script("bench_realtime")


@pytest.fixture(scope="session")
def bench():
    return bench_module()


@pytest.fixture(scope="session")
def jack(bench):
    """`jackd -d dummy -r 48000 -p 64` under its own server name; skipped only if it cannot start."""
    why = bench.JackServer.available()
    if why:
        pytest.skip(f"real-MIDI tier needs JACK: {why}")
    srv = bench.JackServer(name=f"antiphon-test-{os.getpid()}")
    try:
        srv.start()
    except (RuntimeError, OSError) as exc:
        pytest.skip(f"jackd cannot start on this machine: {exc}")
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory):
    sys.path.insert(0, str(ROOT / "tests" / "runtime"))
    import tiny

    return tiny.make_model_dir(tmp_path_factory.mktemp("realmidi_model"), hidden=64, embedding=32)


@pytest.fixture
def jack_env(jack, monkeypatch):
    monkeypatch.setenv("JACK_DEFAULT_SERVER", jack.name)
    monkeypatch.setenv("MIDO_BACKEND", JACK)
    monkeypatch.setenv("JACK_NO_AUDIO_RESERVATION", "1")
    return {**os.environ}
