"""OSC control in (issue 23 item 3): a real python-osc client in another process steers a live engine.

Every address in the README's table changes its setting, read back through
/antiphon/status (each live setting, then the state); a bad value gets one
/antiphon/error reply naming it, and every setting is as it was.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from scripted import ScriptedPredictor  # noqa: E402

from agent.config import load_config
from agent.live.engine import Engine
from agent.midi.ports import Loopback, Ports
from agent.ui.osc import OscControl, coalesce, line_of, word

def close_to(value):
    """A number within float32's precision (OSC sends floats as float32), anything else as it is."""
    return pytest.approx(value, rel=1e-6) if isinstance(value, float) else value


PEER = Path(__file__).resolve().parents[1] / "support" / "osc_peer.py"


@pytest.fixture(scope="module")
def peer():
    proc = subprocess.Popen([sys.executable, str(PEER)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def ask(osc: OscControl, address: str = "", *args, many=None) -> dict:
        req = {"port": osc.address[1], "address": address, "args": list(args), "many": many}
        proc.stdin.write(json.dumps(req) + "\n")
        proc.stdin.flush()
        line = proc.stdout.readline()
        assert line, f"the OSC peer died (exit {proc.poll()})"
        return json.loads(line)

    yield ask
    proc.stdin.close()
    proc.wait(timeout=10)


@pytest.fixture
def engine():
    cfg = load_config(overrides=['jam.mode="call"', "timing.bpm=300.0"])
    eng = Engine(cfg, ScriptedPredictor(cfg.vocab()), ports=Ports("loopback", loop=Loopback()),
                 input_name="keyboard", virtual_name="Antiphon", report=lambda line: None).start()
    eng.osc = OscControl(eng, "127.0.0.1", 0).start()
    eng.synced.append(eng.osc)
    yield eng
    eng.stop()


# the README's table: address, arguments -> the settings it sets (and a message sent first, where the
# default is the value the address sets)
GOOD = [
    ("/antiphon/temp", [0.8], {"sampling.temperature": 0.8}),
    ("/antiphon/top-p", [0.9], {"sampling.top_p": 0.9}),
    ("/antiphon/top-k", [40], {"sampling.top_k": 40}),
    ("/antiphon/adaptive", ["on"], {"sampling.adaptive": True}),
    ("/antiphon/adaptive", [1.0], {"sampling.adaptive": True}),  # a toggle's 1
    ("/antiphon/mode", ["accompany"], {"jam.mode": "accompany"}),
    ("/antiphon/mode", ["solo"], {"jam.mode": "solo"}),
    ("/antiphon/tempo", [96], {"timing.bpm": 96.0, "timing.source": "fixed"}),
    ("/antiphon/tempo", ["follow"], {"timing.source": "player"}, ("/antiphon/tempo", "fixed")),
    ("/antiphon/tempo", ["clock"], {"timing.source": "clock"}),
    ("/antiphon/tempo", ["link"], {"timing.source": "link"}),
    ("/antiphon/tempo", ["fixed"], {"timing.source": "fixed"}),
    ("/antiphon/key", ["D minor"], {"sampling.key": "D minor"}),
    ("/antiphon/key", ["none"], {"sampling.key": "none"}),
    ("/antiphon/length", [4, "bars"], {"jam.response_bars": 4.0}),
    ("/antiphon/length", ["same"], {"jam.response_bars": 0.0}, ("/antiphon/length", 2, "bars")),
    ("/antiphon/silence", [2.5, "beats"], {"jam.silence_beats": 2.5}),
    ("/antiphon/silence", [400, "ms"], {"jam.silence_ms": 400.0, "jam.silence_beats": 0.0}),
    ("/antiphon/range", [48, 84], {"sampling.pitch_min": 48, "sampling.pitch_max": 84}),
    ("/antiphon/channel", [2], {"midi.channel": 2}),
    ("/antiphon/velocity", [0.8], {"midi.velocity_scale": 0.8}),
    ("/antiphon/set", ["sampling.top_p", 0.9], {"sampling.top_p": 0.9}),
    ("/antiphon/set", ["jam.lookahead_ms", 150], {"jam.lookahead_ms": 150.0}),
    ("/antiphon/set", ["rest-bias", -1.5], {"sampling.rest_bias": -1.5}),
]


@pytest.mark.parametrize("address,args,want,first", [(*g, None)[:4] for g in GOOD],
                         ids=[f"{g[0]} {g[1]}" for g in GOOD])
def test_each_address_changes_its_setting_read_back_through_status(engine, peer, address, args, want, first):
    if first is not None:  # from another value than the default, so the change is seen
        peer(engine.osc, *first)
    before = peer(engine.osc, "/antiphon/status")["settings"]
    got = peer(engine.osc, address, *args)
    assert [r for r in got["replies"] if r[0] == "/antiphon/error"] == []
    for key, value in want.items():
        assert before[key] != close_to(value), f"{key} was already {value}: the test proves nothing"
        assert got["settings"][key] == close_to(value)
        assert engine.controls.get(key) == close_to(value)
    unchanged = {k: v for k, v in before.items() if k not in want}
    assert {k: got["settings"][k] for k in unchanged} == unchanged


def test_mode_off_and_panic_silence_the_agent_and_a_mode_ends_it(engine, peer):
    assert peer(engine.osc, "/antiphon/status")["state"] == "listening"
    assert peer(engine.osc, "/antiphon/mode", "off")["state"] == "silent"
    assert peer(engine.osc, "/antiphon/mode", "call")["state"] == "listening"
    got = peer(engine.osc, "/antiphon/panic", 1.0)  # a button's press
    assert got["state"] == "silent"
    assert got["replies"] == [["/antiphon/reply", "panic: all notes off; silent until you play or give a mode"]]


def test_a_buttons_release_does_nothing(engine, peer):
    got = peer(engine.osc, "/antiphon/panic", 0.0)
    assert got["replies"] == [] and got["state"] == "listening"


def test_cc_mapping_reset_and_at_bar_reach_the_engine(engine, peer):
    got = peer(engine.osc, "/antiphon/cc", "temp", 74)
    assert "cc: CC74 -> sampling.temperature [0.1 2]" in got["status"]
    assert engine.controls.ccmap.maps[74].key == "sampling.temperature"
    assert "cc: learning midi.velocity_scale" in peer(engine.osc, "/antiphon/cc/learn", "velocity")["status"]
    peer(engine.osc, "/antiphon/cc/off", 74)
    assert 74 not in engine.controls.ccmap.maps
    assert peer(engine.osc, "/antiphon/reset")["replies"] == [["/antiphon/reply", "model state cleared"]]
    engine.controls.set("timing.bpm", 30.0)  # a bar of 8 s: still pending when status is read
    got = peer(engine.osc, "/antiphon/at/bar/temp", 1.5)
    assert [line.split(": ", 1)[1] for line in got["status"] if line.startswith("pending")] == ["temp 1.5"]
    assert got["settings"]["sampling.temperature"] == pytest.approx(1.0)


BAD = [  # address, arguments -> what the error names
    ("/antiphon/temp", [-3.0], "-3.0"),
    ("/antiphon/temp", ["hot"], "'hot'"),
    ("/antiphon/top-p", [1.5], "1.5"),
    ("/antiphon/mode", ["jazz"], "'jazz'"),
    ("/antiphon/tempo", [0], "0.0"),
    ("/antiphon/key", ["H major"], "'H major'"),
    ("/antiphon/channel", [17], "17"),
    ("/antiphon/range", [84, 48], "84 48"),
    ("/antiphon/set", ["model.path", "elsewhere"], "cannot change while playing"),
    ("/antiphon/set", ["jam.nothing", 1], "unknown setting"),
    ("/antiphon/frobnicate", [3], "unknown command 'frobnicate'"),
    ("/antiphon/status", ["now"], "takes no arguments"),
    ("/antiphon", [], "say /antiphon/COMMAND"),
    ("/mixer/fader1", [0.5], "/mixer/fader1: not an Antiphon address"),
    ("/antiphon/get", ["jam.nothing"], "unknown setting 'jam.nothing'"),
]


@pytest.mark.parametrize("address,args,names", BAD, ids=[f"{a} {args}" for a, args, _ in BAD])
def test_a_bad_value_is_refused_with_a_reply_naming_it_and_nothing_changes(engine, peer, address, args, names):
    before = peer(engine.osc, "/antiphon/status")
    got = peer(engine.osc, address, *args)
    errors = [r for r in got["replies"] if r[0] == "/antiphon/error"]
    assert len(errors) == 1 and names in errors[0][1], got["replies"]
    assert got["settings"] == before["settings"] and got["state"] == before["state"]
    assert not engine.controls.pending.items() and not engine.controls.ccmap.maps


def test_quit_stops_the_session_and_later_commands_are_refused(engine, peer):
    peer(engine.osc, "/antiphon/quit")
    assert engine.stopped.is_set()
    got = peer(engine.osc, "/antiphon/temp", 0.5)
    assert got["replies"] == [["/antiphon/error", "/antiphon/temp: the session has stopped"]]
    assert got["settings"]["sampling.temperature"] == pytest.approx(1.0)


def test_words_keep_a_float32s_digits_and_toggles_read_as_on_off():
    assert word(0.800000011920929) == "0.8"  # 0.8 as a float32 arrives so
    assert word(0.123456789012) == "0.123456789012"  # a double keeps its digits
    assert line_of("/antiphon/at/bar/mode", ["accompany"]) == "at bar mode accompany"
    assert line_of("/antiphon/adaptive", [0.0]) == "adaptive off"
    assert line_of("/antiphon/reset", [1]) == "reset"
    assert line_of("/antiphon/reset", [0]) is None


def test_a_port_in_use_is_a_one_line_error(engine):
    from agent.errors import AntiphonError

    with pytest.raises(AntiphonError, match=rf"\[osc\] cannot listen on 127.0.0.1:{engine.osc.address[1]}: "):
        OscControl(engine, "127.0.0.1", engine.osc.address[1])


def test_a_burst_of_one_fader_ends_on_its_last_value_and_each_message_is_run_or_superseded(engine, peer):
    values = [round(0.5 + (i % 150) / 100, 2) for i in range(100)]  # few enough that UDP drops none
    got = peer(engine.osc, many=[["/antiphon/temp", [v]] for v in values])
    assert got["settings"]["sampling.temperature"] == pytest.approx(values[-1], rel=1e-6)
    osc = engine.osc
    assert osc.received == 100 + 2  # the burst, the fence and the status request
    assert len([r for r in got["replies"] if r[0] == "/antiphon/reply"]) == 100 - osc.superseded


def test_coalesce_keeps_the_last_of_each_setting_and_every_action():
    a, b = ("127.0.0.1", 1), ("127.0.0.1", 2)
    batch = [(a, "/antiphon/temp", (0.5,)), (a, "/antiphon/panic", (1.0,)), (a, "/antiphon/temp", (0.7,)),
             (b, "/antiphon/temp", (0.9,)), (a, "/antiphon/set", ("sampling.top_p", 0.9)),
             (a, "/antiphon/set", ("jam.lookahead_ms", 150)), (a, "/antiphon/set", ("sampling.top_p", 0.8)),
             (a, "/antiphon/panic", (0.0,)), (a, "/antiphon/at/bar/temp", (1.0,)), (a, "/antiphon/at/bar/temp", (1.2,))]
    keep, dropped = coalesce(batch)
    assert keep == [batch[i] for i in (1, 2, 3, 5, 6, 7, 8, 9)] and dropped == 2


def test_a_datagram_that_is_not_osc_is_answered_with_an_error(engine):
    import socket

    from pythonosc.osc_message import OscMessage

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(10)
        s.sendto(b"hello", tuple(engine.osc.address))
        reply = OscMessage(s.recv(4096))
    assert (reply.address, reply.params) == ("/antiphon/error", ["a datagram of 5 bytes that is not OSC; nothing done"])


def test_the_benchmarks_flood_sender_is_taken_whole_and_changes_nothing(engine):
    from agent.bench.oscflood import OscFlood

    flood = OscFlood(1000, 0.5)  # bench_realtime --osc-flood 1000 --osc-flood-s 0.5
    engine.synced.remove(engine.osc)
    engine.osc.stop()
    flood.start(engine)
    got = flood.figures()
    assert got["osc_sent"] == 500 and got["osc_handled"] == 500 and got["osc_refused"] == 0
    assert engine.controls.get("sampling.temperature") == pytest.approx(1.0)


def layout_messages() -> list[tuple[str, list]]:
    """What each control of examples/antiphon-open-stage-control.json sends (its preArgs, then its
    first value: a dropdown's first entry, a fader's top, a button's press)."""
    path = Path(__file__).resolve().parents[2] / "examples" / "antiphon-open-stage-control.json"
    layout = json.loads(path.read_text())
    out = []
    for w in layout["content"]["widgets"]:
        if w["type"] == "text":
            continue
        value = {"dropdown": lambda: list(w["values"].values())[0], "fader": lambda: w["range"]["max"],
                 "button": lambda: w["on"]}[w["type"]]()
        out.append((w["address"], [*w["preArgs"], value] if w.get("preArgs") else [value]))
    return out


def test_every_control_of_the_example_layout_is_a_command_the_agent_takes(engine, peer):
    sent = layout_messages()
    assert len(sent) == 12
    got = peer(engine.osc, many=[[a, args] for a, args in sent])
    assert [r for r in got["replies"] if r[0] == "/antiphon/error"] == []
    assert got["settings"]["sampling.top_p"] == pytest.approx(1.0) and got["settings"]["jam.response_bars"] == 8.0
    assert got["settings"]["timing.bpm"] == 240.0 and got["state"] == "silent"  # panic was pressed
