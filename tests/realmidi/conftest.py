"""Fixtures for the real-MIDI tier: a JACK dummy server of our own, a small model, the bench's helpers."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
JACK = "mido.backends.rtmidi/UNIX_JACK"


def bench_module():
    """agent.bench.realtime (what scripts/bench_realtime.py runs): its JackServer and player/reader processes."""
    from agent.bench import realtime

    return realtime


@pytest.fixture(scope="session")
def bench():
    return bench_module()


@pytest.fixture(scope="session")
def jack(bench):
    """`jackd -d dummy -r 48000 -p 256` under its own server name; skipped only if it cannot start.

    256 frames (5.3 ms), not the benchmarks' 64 (1.3 ms): on a loaded 2-core CI machine the dummy
    driver's clients miss 1.3 ms deadlines often, and JACK drops the MIDI of a missed cycle for
    every client, whoever sent it (issue 13's soak, same player and seed: 14,077 XRun lines and 47
    events lost at 64; 602 and none lost at 256). The tier tests what Antiphon does; what JACK
    drops at xruns is JACK's, and a DAW user's buffer is 128-512 frames anyway. Assertion messages
    carry `jack.xruns()` so a failure can be told from a dropped cycle.
    """
    why = bench.JackServer.available()
    if why:
        pytest.skip(f"real-MIDI tier needs JACK: {why}")
    period = int(os.environ.get("ANTIPHON_TEST_JACK_PERIOD", 256))
    srv = bench.JackServer(name=f"antiphon-test-{os.getpid()}", period=period)
    try:
        srv.start()
    except (RuntimeError, OSError) as exc:
        pytest.skip(f"jackd cannot start on this machine: {exc}")
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory):
    import tiny

    return tiny.make_model_dir(tmp_path_factory.mktemp("realmidi_model"), hidden=64, embedding=32)


@pytest.fixture
def jack_env(jack, monkeypatch):
    monkeypatch.setenv("JACK_DEFAULT_SERVER", jack.name)
    monkeypatch.setenv("MIDO_BACKEND", JACK)
    monkeypatch.setenv("JACK_NO_AUDIO_RESERVATION", "1")
    return {**os.environ}
