"""State out: what the agent is doing, sent to an OSC client and/or as a CC, for a DAW or a light rig.

`StateOut(engine, cfg.osc)` runs one small thread that looks at the engine
every `interval_s` (attribute reads: the jam's answer in progress, the tempo
map, the key the sampler heard) and sends what changed:

    /antiphon/state STATE                  silent | listening | answering | accompanying | solo
    /antiphon/state/tempo BPM CONFIDENCE SOURCE   the tempo in use (confidence -1 unless followed
                                           from the player; SOURCE as timing.source)
    /antiphon/state/key NAME               the key in use or heard ("D minor"; "none" before one is)
    /antiphon/state/answer/start BEAT IN_S the first note of an answer (or a run): its beat in the
                                           tempo map, and in how many seconds it sounds (< 0: it did)
    /antiphon/state/answer/end BEAT IN_S NOTES HOW   an answer finished ("done", "barged": the player
                                           came in, "stopped": cut by a mode change or panic)

(under /antiphon/state, so a control surface's widget for /antiphon/tempo or /antiphon/key, which
set them, is not moved by what the agent reports)

and, with `[osc] state_cc` >= 0, the state as that CC (value = its index in STATES) on
`[osc] state_channel`, queued on the scheduler like any other message. Nothing here
runs on the output thread or the engine thread: the jam's observer (called on the
engine thread at each finished answer) only appends to a deque this thread empties.
"""
from __future__ import annotations

import threading
from collections import deque

import mido

from agent.config import host_port

STATES = ("silent", "listening", "answering", "accompanying", "solo")  # the CC value is the index
KIND_STATE = {"call": "answering", "accompany": "accompanying", "solo": "solo"}


def jam_state(jam) -> str:
    """One of STATES: what the jam is doing now (an attribute read, safe from any thread)."""
    if jam is None or jam.held is not None:
        return "silent"
    g = jam.gen
    return "listening" if g is None else KIND_STATE.get(g.kind, "answering")


def key_in_use(engine) -> str:
    """The key the agent keeps to: the configured one, or the one heard ("none" before any)."""
    key = engine.controls.cfg.sampling.key
    if key.strip().lower() != "auto":
        return key
    heard = getattr(getattr(engine.predictor, "sampler", None), "key_heard", None)
    if heard is None:
        return "none"
    from agent.music.keys import key_name

    return key_name(heard)


class StateOut:
    """Sends the engine's state when it changes: OSC to `send_to` ("HOST:PORT") and/or a CC."""

    def __init__(self, engine, osc_cfg, interval_s: float = 0.02) -> None:
        self.engine = engine
        self.interval_s = interval_s
        self.client = None
        if osc_cfg.send_to:
            from pythonosc.udp_client import SimpleUDPClient

            host, port = host_port(osc_cfg.send_to)
            self.client = SimpleUDPClient(host, port)
        self.cc = osc_cfg.state_cc
        self.channel = osc_cfg.state_channel - 1
        self.sent = 0  # OSC messages and CCs sent
        self._last: dict[str, object] = {}
        self._started: float | None = None  # the first note (seconds) of the last answer whose start was sent
        self._ended: deque[tuple[float | None, dict]] = deque(maxlen=256)  # (first note s, record) per answer
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def on_answer(self, kind: str, t_s, info: dict) -> None:  # a jam observer, on the engine thread
        if kind == "answer":
            self._ended.append((t_s, info))

    def start(self) -> "StateOut":
        if self.engine.jam is not None:
            self.engine.jam.observers.append(self.on_answer)
        self._thread = threading.Thread(target=self._run, name="antiphon-state-out", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2.0)
        jam = self.engine.jam
        if jam is not None and self.on_answer in jam.observers:
            jam.observers.remove(self.on_answer)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.poll()
            except Exception as exc:  # a closed socket, a port gone: say it once a change, never stop the show
                self.engine.report(f"state out: {type(exc).__name__}: {exc}")

    # -- what is sent ------------------------------------------------------------------
    def _send(self, address: str, *args) -> None:
        if self.client is not None:
            self.client.send_message(address, list(args))
            self.sent += 1

    def _changed(self, what: str, value) -> bool:
        if self._last.get(what) == value:
            return False
        self._last[what] = value
        return True

    def poll(self) -> None:
        """Send whatever changed since the last look (the thread calls this every interval_s)."""
        eng = self.engine
        now = eng.clock.now()
        state = jam_state(eng.jam)
        if self._changed("state", state):
            self._send("/antiphon/state", state)
            if self.cc >= 0 and eng.scheduler is not None:
                eng.scheduler.schedule(now, mido.Message("control_change", channel=self.channel, control=self.cc,
                                                         value=STATES.index(state)))
                self.sent += 1
        st = eng.tempo_status()
        conf = st["tempo_confidence"]
        tempo = (round(st["bpm"], 1), -1.0 if conf is None else round(conf, 2), st["tempo_source"])
        if self._changed("tempo", tempo):
            self._send("/antiphon/state/tempo", *tempo)
        key = key_in_use(eng)
        if self._changed("key", key):
            self._send("/antiphon/state/key", key)
        self._answers(now)

    def _start(self, first_s: float, now: float) -> None:
        if first_s != self._started:
            self._started = first_s
            self._send("/antiphon/state/answer/start", self.engine.tempo.beat(first_s), first_s - now)

    def _answers(self, now: float) -> None:
        g = self.engine.jam.gen if self.engine.jam is not None else None
        first_s = getattr(g, "first_note_t", None)
        if first_s is not None:
            self._start(first_s, now)
        while self._ended:
            first_s, rec = self._ended.popleft()
            end_s = rec.get("end_t")
            if first_s is None or end_s is None:
                continue  # nothing sounded: there was no answer to end
            self._start(first_s, now)  # one that began and ended between two looks still has a start
            how = "barged" if rec.get("barged") else "stopped" if rec.get("stopped") else "done"
            self._send("/antiphon/state/answer/end", self.engine.tempo.beat(end_s), end_s - now,
                       int(rec.get("notes", 0)), how)
