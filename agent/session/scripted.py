"""The scripted player: phrases a person might play, played into the engine with no keyboard.

`antiphon demo` and `antiphon repl` use it. A phrase is a list of
(pitch, start_beats, length_beats), beats from the phrase's first beat:

- `TUNES`: the openings of a few well-known tunes; `corpus_phrases`: two
  bars at a time of a music21 corpus piece's top line.
- `play_on_grid` (demo): a phrase handed to the engine's listener in real
  time, each message stamped with its exact grid time, as a perfectly steady
  player would be: a busy machine's timing jitter cannot change what the
  model hears (same seed, same answer).
- `ScriptedPlayer` (repl): the tunes in a loop into a (loopback) keyboard
  port on its own thread, on absolute deadlines, a pause after each for the
  answer, and the mod wheel moving so `cc learn` has a controller to learn.
"""
from __future__ import annotations

import threading

import mido

from agent.errors import AntiphonError
from agent.music.tempomap import RealClock

Phrase = list[tuple[int, float, float]]  # (pitch, start_beats, length_beats)
VELOCITY = 80  # every scripted note-on
DETACHED = 0.95  # a note is released after this share of its length, as people play

# Short phrases in beats: the openings of well-known tunes (public domain).
TUNES: list[Phrase] = [
    # Ode to Joy: E E F G | G F E D
    [(64, 0, 1), (64, 1, 1), (65, 2, 1), (67, 3, 1), (67, 4, 1), (65, 5, 1), (64, 6, 1), (62, 7, 1)],
    # Frere Jacques: C D E C | C D E C
    [(60, 0, 1), (62, 1, 1), (64, 2, 1), (60, 3, 1), (60, 4, 1), (62, 5, 1), (64, 6, 1), (60, 7, 1)],
    # Greensleeves (A minor): A | C D E. F E | D B
    [(57, 0, 1), (60, 1, 2), (62, 3, 1), (64, 4, 1.5), (65, 5.5, 0.5), (64, 6, 1), (62, 7, 2), (59, 9, 1)],
]


def corpus_phrases(name: str, beats_per_bar: int, n: int) -> list[Phrase]:
    """Up to `n` phrases of two bars each from the top line of music21 corpus piece `name`."""
    import music21

    from agent.music.notes import notes_from_music21

    try:
        score = music21.corpus.parse(name)
    except Exception as exc:  # music21 raises its own types
        raise AntiphonError(f"corpus piece {name!r}: {exc}") from exc
    top = score.parts[0] if getattr(score, "parts", None) else score
    notes = notes_from_music21(top)
    span = 2 * beats_per_bar
    out = []
    for i in range(n):
        lo = i * span
        ph = [(x.pitch, x.start - lo, min(x.end, lo + span) - x.start) for x in notes if lo <= x.start < lo + span]
        if ph:
            out.append(ph)
    if not out:
        raise AntiphonError(f"corpus piece {name!r} has no notes to play")
    return out


def key(on: bool, pitch: int) -> mido.Message:
    """A scripted key going down (`on`) or up."""
    return mido.Message("note_on" if on else "note_off", note=pitch, velocity=VELOCITY if on else 0)


def phrase_events(phrase: Phrase, start_s: float, spb: float) -> list[tuple[float, int, int]]:
    """A phrase played from start_s at `spb` seconds a beat: (time_s, on 1 | off 0, pitch), in time order;
    each note is released a little early (DETACHED)."""
    events = []
    for pitch, b, d in phrase:
        events += [(start_s + b * spb, 1, pitch), (start_s + (b + d * DETACHED) * spb, 0, pitch)]
    return sorted(events)


def grid_phrase(phrase: Phrase, res: int) -> list[tuple[int, int, int]]:
    """A phrase as (tick, on 1 | off 0, pitch) on the model's grid (`res` ticks a beat), ticks from the
    phrase's first; each note is released a tick early (detached, as people play)."""
    evs = []
    for pitch, b, d in phrase:
        on = round(b * res)
        evs.append((on, 1, pitch))
        evs.append((max(on + 1, round((b + d) * res) - 1), 0, pitch))
    return sorted(evs)


def play_on_grid(listener, phrase: Phrase, start_s: float, spb: float, resolution: int, clock) -> float:
    """Send a phrase to `listener.receive(msg, t_s)` in real time at the player's own steady tempo
    (`spb` seconds a beat, whatever the agent makes of it), each message stamped with its exact grid
    time. Returns the time of the last note-off (seconds)."""
    t = start_s
    for tick, on, pitch in grid_phrase(phrase, resolution):
        t = start_s + tick * spb / resolution
        clock.sleep_until(t)
        listener.receive(key(on, pitch), t)
    return t


class ScriptedPlayer:
    """Plays the tunes into `send` (a keyboard port's), on absolute deadlines, until stopped,
    and moves the mod wheel (CC1) every two beats, so `cc learn` has a controller to learn.

    `bpm_of()` is the tempo to play at, read at each phrase; `gap_beats` the pause after a phrase;
    `phrases` how many (None: on and on)."""

    def __init__(self, send, bpm_of, gap_beats: float = 8.0, phrases: int | None = None) -> None:
        self.send, self.bpm_of, self.gap_beats, self.phrases = send, bpm_of, gap_beats, phrases
        self.stopped = threading.Event()
        self.clock = RealClock()
        self.notes = 0

    def start(self) -> "ScriptedPlayer":
        threading.Thread(target=self._run, name="antiphon-scripted-player", daemon=True).start()
        threading.Thread(target=self._wheel, name="antiphon-scripted-wheel", daemon=True).start()
        return self

    def _wheel(self) -> None:
        value = 0
        while not self.stopped.wait(120.0 / self.bpm_of()):
            value = (value + 16) % 128
            self.send(mido.Message("control_change", control=1, value=value))

    def _run(self) -> None:
        t = self.clock.now() + 0.5
        i = 0
        while not self.stopped.is_set() and (self.phrases is None or i < self.phrases):
            spb = 60.0 / self.bpm_of()
            events = phrase_events(TUNES[i % len(TUNES)], t, spb)
            self._play(events)
            t = events[-1][0] + self.gap_beats * spb
            i += 1

    def _play(self, events) -> None:
        sounding = set()
        for at, on, pitch in events:
            while not self.stopped.is_set() and at - self.clock.now() > 0.002:
                self.stopped.wait(min(0.05, at - self.clock.now() - 0.002))
            if self.stopped.is_set():
                break
            self.clock.sleep_until(at)
            self.send(key(on, pitch))
            (sounding.add if on else sounding.discard)(pitch)
            self.notes += on
        for pitch in sorted(sounding):  # stopped mid-phrase: let go of the keys
            self.send(key(False, pitch))

    def stop(self) -> None:
        self.stopped.set()
