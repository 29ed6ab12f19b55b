"""Two Ableton Link peers in a network namespace of their own, for tests/midi/test_link.py.

Run as root inside `unshare -n`: `python link_ns.py player|link` brings up loopback with multicast,
starts the agent (a live Engine on loopback MIDI ports with [sync] link = true) and a second peer
(a bare LinkPython-extern peer), each a process of its own, and prints one JSON line with both
reports: {"agent": {...}, "peer": {...}}, each {"bpm", "bar_us": the next bar line in Link's clock
(microseconds), "bar_s": a bar's length, "peers"}.

- player: the agent follows a chorale played into it at 84 bpm and publishes; the peer reports
  what the session says.
- link: the peer sets 120 bpm once it sees the agent; the agent (timing.source = "link") follows;
  a phrase is played into it from a bar line, and the agent's answer ("answer_us": its first note
  as heard on its output port, in Link's clock) comes in on one of the session's bar lines.
"""
from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parents[1]))


def peer_report(lk, state, q: float = 4.0) -> dict:
    m = lk.clock().micros()
    nb = math.ceil(state.beatAtTime(m, q) / q) * q
    return {"bpm": state.tempo(), "bar_us": state.timeAtBeat(nb, q), "bar_s": 60.0 * q / state.tempo(),
            "peers": lk.numPeers()}


def peer(scenario: str) -> None:
    import link

    lk = link.Link(120.0)
    lk.enabled = True
    if scenario == "link":  # the DAW leads: once it sees the agent, it sets 120 bpm
        while lk.numPeers() == 0:
            time.sleep(0.01)
        state = lk.captureAppSessionState()
        state.setTempo(120.0, lk.clock().micros())
        lk.commitAppSessionState(state)
    print("ready", flush=True)
    for _ in sys.stdin:
        print(json.dumps(peer_report(lk, lk.captureAppSessionState())), flush=True)


def agent(scenario: str) -> None:
    from scripted import ScriptedPredictor, play_phrase

    from agent.config import load_config
    from agent.live.engine import Engine
    from agent.midi.ports import Loopback, Ports
    from agent.music.tempomap import RealClock
    from agent.session.scripted import corpus_phrases

    cfg = load_config(overrides=["sync.link=true", 'jam.mode="call"', 'jam.align="bar"', 'jam.turn="silence"', "timing.bpm=100.0",
                                 f'timing.source="{"link" if scenario == "link" else "player"}"'])
    loop = Loopback()
    eng = Engine(cfg, ScriptedPredictor(cfg.vocab()), ports=Ports("loopback", loop=loop), input_name="keyboard",
                 virtual_name="Antiphon", report=lambda line: None).start()
    sync = eng.synced[0]
    if scenario == "player":  # four bars of a chorale's top line, played at 84 bpm without a pause
        kbd = Ports("loopback", loop=loop).open_output("keyboard")
        t = time.perf_counter() + 0.1
        for phrase in corpus_phrases("bach/bwv66.6", 4, 2):
            play_phrase(kbd.send, phrase, t, 60 / 84, RealClock())
            t += 8 * 60 / 84
    else:  # once on the session's tempo, a phrase played from its next bar line; the answer comes on one
        heard = []
        Ports("loopback", loop=loop).open_input("Antiphon", lambda m, t: heard.append((time.perf_counter(), m)))
        while sync.peers == 0 or abs(eng.tempo.bpm - 120.0) > 0.01:
            time.sleep(0.01)
        kbd = Ports("loopback", loop=loop).open_output("keyboard")
        first, second = corpus_phrases("bach/bwv66.6", 4, 2)  # two bars and the next bar's downbeat
        call = first + [(pitch, start + 8.0, length) for pitch, start, length in second[:1]]
        play_phrase(kbd.send, call, eng.tempo.next_bar(time.perf_counter() + 0.2), 0.5, RealClock())
        while not any(m.type == "note_on" for _, m in heard):
            time.sleep(0.01)
    time.sleep(1.0)
    print("ready", flush=True)
    for _ in sys.stdin:
        now, micros = sync.now()
        bar = eng.tempo.next_bar(now)
        first = next((t for t, m in heard if m.type == "note_on"), None) if scenario == "link" else None
        print(json.dumps({"bpm": eng.tempo.bpm, "bar_us": micros + (bar - now) * 1e6,
                          "bar_s": 60.0 * eng.tempo.beats_per_bar / eng.tempo.bpm, "peers": sync.peers,
                          "published": sync.published, "followed": sync.followed,
                          "answer_us": None if first is None else micros + (first - now) * 1e6}), flush=True)
    eng.stop()


def main(scenario: str) -> None:
    for cmd in ("ip link set lo up", "ip link set lo multicast on", "ip route add 224.0.0.0/4 dev lo"):
        subprocess.run(cmd.split(), check=True)
    procs = {role: subprocess.Popen([sys.executable, __file__, role, scenario], stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, text=True) for role in ("peer", "agent")}
    for p in procs.values():
        assert p.stdout.readline().strip() == "ready"
    out = {}
    for role, p in procs.items():  # one after the other: each says where its next bar line falls
        p.stdin.write("report\n")
        p.stdin.flush()
        out[role] = json.loads(p.stdout.readline())
    for p in procs.values():
        p.stdin.close()
        p.wait(timeout=20)
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    if sys.argv[1] in ("peer", "agent"):
        (peer if sys.argv[1] == "peer" else agent)(sys.argv[2])
    else:
        main(sys.argv[1])
