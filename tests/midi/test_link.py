"""Ableton Link (issue 23 item 2): the agent and a second peer, each a process of its own.

Link finds peers by multicast on every interface, so these run only inside a
network namespace that has nothing but loopback (`unshare -n`, as root), with
both peers inside (tests/support/link_ns.py); where one cannot be made they
skip and say so. Never on the machine's real interfaces.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from scripted import ScriptedPredictor  # noqa: E402

from agent.config import load_config
from agent.errors import AntiphonError
from agent.live.engine import Engine
from agent.midi.link import INSTALL, wrap
from agent.midi.ports import Loopback, Ports

NS = Path(__file__).resolve().parents[1] / "support" / "link_ns.py"


def namespace_or_skip() -> None:
    try:
        import link  # noqa: F401
    except ImportError:
        pytest.skip("LinkPython-extern is not installed (pip install 'antiphon[link]')")
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("ip"):
        pytest.skip("a network namespace needs root, unshare and ip: Link is never run on the real interfaces")
    probe = subprocess.run(["unshare", "-n", "ip", "link", "set", "lo", "up"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot make a network namespace here: {probe.stderr.strip()}")


def in_namespace(scenario: str) -> dict:
    namespace_or_skip()
    run = subprocess.run(["unshare", "-n", sys.executable, str(NS), scenario], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


def off_bar_s(t_us: float, bar_us: float, bar_s: float) -> float:
    """Seconds from t to the nearest bar line of a grid through bar_us, bar_s apart."""
    return wrap((t_us - bar_us) / 1e6, bar_s)


@pytest.mark.slow
def test_a_second_peer_sees_the_followed_tempo_and_the_agents_bar_phase():
    out = in_namespace("player")
    agent, peer = out["agent"], out["peer"]
    assert agent["peers"] == 1 and peer["peers"] == 1
    assert agent["bpm"] == pytest.approx(84.0, abs=2.0)  # followed from a chorale played at 84 bpm
    assert peer["bpm"] == pytest.approx(agent["bpm"], abs=0.5)
    assert abs(off_bar_s(agent["bar_us"], peer["bar_us"], peer["bar_s"])) <= 0.005
    assert agent["published"] >= 1


@pytest.mark.slow
def test_with_source_link_the_agent_follows_the_peers_120_and_answers_on_its_bar_lines():
    out = in_namespace("link")
    agent, peer = out["agent"], out["peer"]
    assert peer["bpm"] == pytest.approx(120.0, abs=1e-6)
    assert agent["bpm"] == pytest.approx(120.0, abs=0.5)
    assert abs(off_bar_s(agent["bar_us"], peer["bar_us"], peer["bar_s"])) <= 0.005
    assert abs(off_bar_s(agent["answer_us"], peer["bar_us"], peer["bar_s"])) <= 0.005
    assert agent["published"] == 0  # following, never leading


def test_without_the_binding_link_true_says_how_to_install_it_and_starts_nothing(monkeypatch):
    monkeypatch.setitem(sys.modules, "link", None)  # import link raises ImportError
    cfg = load_config(overrides=["sync.link=true"])
    eng = Engine(cfg, ScriptedPredictor(cfg.vocab()), ports=Ports("loopback", loop=Loopback()), input_name="keyboard",
                 virtual_name="Antiphon", report=lambda line: None)
    with pytest.raises(AntiphonError) as info:
        eng.start()
    assert str(info.value) == INSTALL and "pip install 'antiphon[link]'" in INSTALL
    assert eng.stopped.is_set() and eng.synced == []


@pytest.mark.parametrize("x,q,want", [(0.25, 4.0, 0.25), (3.75, 4.0, -0.25), (-3.9, 4.0, 0.1), (2.0, 4.0, -2.0)])
def test_wrap_takes_the_shortest_way_round_the_bar(x, q, want):
    assert wrap(x, q) == pytest.approx(want)
