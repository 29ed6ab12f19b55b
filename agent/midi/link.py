"""Ableton Link: publish the tempo map's tempo and bar phase to a Link session, or follow the session's.

`[sync] link = true` joins the session on the local network with
LinkPython-extern (the `[link]` extra: `pip install 'antiphon[link]'`), a
synchronous binding of Ableton's Link library. `LinkSync` runs one thread
that looks every `period_s`:

- `timing.source` other than "link" (the player leads, or MIDI clock, or a
  set tempo): the session's tempo and phase are made the tempo map's. Its
  quantum is `timing.beats_per_bar` and its bar lines are the map's bar
  lines (`bar_beat`), so a DAW's bar starts where the player's does.
- `timing.source = "link"` (the DAW leads): the tempo map is aligned to the
  session's tempo, beat and bar lines (quantum = beats_per_bar), so answers
  land on the session's grid.

Nothing is sent or aligned while the two agree (0.005 bpm, 0.5 ms), so a
steady session costs a capture every period. Link's clock (microseconds,
its own monotonic one) is mapped to the engine's by reading both around each
look. Link finds peers by multicast on every interface.
"""
from __future__ import annotations

import math
import threading

from agent.errors import AntiphonError

INSTALL = "[sync] link = true needs Ableton Link's binding: pip install 'antiphon[link]' (LinkPython-extern)"
TEMPO_EPS_BPM = 0.005  # closer than this, the tempo is left alone
PHASE_EPS_S = 0.0005  # closer than this, the phase is left alone


def load_link():
    """The LinkPython-extern module, or AntiphonError saying how to install it."""
    try:
        import link
    except ImportError:
        raise AntiphonError(INSTALL) from None
    return link


def wrap(x: float, q: float) -> float:
    """x folded into [-q/2, q/2): the shortest way round a bar of q beats."""
    return (x + q / 2) % q - q / 2


class LinkSync:
    """One Link peer kept in step with `tempo` (a TempoMap) on `clock` (seconds, the engine's).

    `source()` says where the tempo comes from now ("link": follow the session; else publish)."""

    def __init__(self, tempo, clock, source, *, period_s: float = 0.01, report=print) -> None:
        self.tempo, self.clock, self.source = tempo, clock, source
        self.period_s = period_s
        self.report = report
        self.link = load_link().Link(tempo.bpm)
        self.published = self.followed = 0  # commits to the session, alignments of the tempo map
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def peers(self) -> int:
        return self.link.numPeers()

    def start(self) -> "LinkSync":
        self.link.enabled = True
        self._thread = threading.Thread(target=self._run, name="antiphon-link", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2.0)
        self.link.enabled = False

    def _run(self) -> None:
        failed = False
        while not self._stop.wait(self.period_s):
            try:
                self.step()
                failed = False
            except Exception as exc:  # say it once; the music goes on without the session
                if not failed:
                    self.report(f"link: {type(exc).__name__}: {exc}")
                failed = True

    def now(self) -> tuple[float, int]:
        """(the engine's clock, Link's microseconds) at one moment: Link's read between two of ours."""
        t0 = self.clock.now()
        micros = self.link.clock().micros()
        t1 = self.clock.now()
        return (t0 + t1) / 2, micros

    def step(self) -> None:
        """One look: follow the session (source "link") or publish to it."""
        now, micros = self.now()
        state = self.link.captureAppSessionState()
        q = float(self.tempo.beats_per_bar)
        if self.source() == "link":
            self._follow(state, now, micros, q)
        else:
            self._publish(state, now, micros, q)

    def _publish(self, state, now: float, micros: int, q: float) -> None:
        bpm = self.tempo.bpm
        ours = self.tempo.beat(now) - self.tempo.bar_beat  # beats since a bar line of ours
        off_s = wrap(state.beatAtTime(micros, q) - ours, q) * 60.0 / bpm
        if abs(state.tempo() - bpm) > TEMPO_EPS_BPM or abs(off_s) > PHASE_EPS_S:
            state.setTempo(bpm, micros)
            state.forceBeatAtTime(ours, micros, q)
            self.link.commitAppSessionState(state)
            self.published += 1

    def _follow(self, state, now: float, micros: int, q: float) -> None:
        bpm = state.tempo()
        phase = state.phaseAtTime(micros, q)  # beats since the session's bar line, 0 <= phase < q
        off_s = wrap(phase - self.tempo.bar_position(now), q) * 60.0 / bpm
        if abs(bpm - self.tempo.bpm) > TEMPO_EPS_BPM or abs(off_s) > PHASE_EPS_S:
            beat_s = now - (phase - math.floor(phase)) * 60.0 / bpm  # the session's last beat
            self.tempo.align(bpm, beat_s, downbeat_s=now - phase * 60.0 / bpm)
            self.followed += 1
