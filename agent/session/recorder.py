"""Session recording: both parts, tempo changes and phrase/answer markers -> MIDI, MusicXML, PNG.

`Recorder` is fed by the engine's hooks (`attach(engine)`): the player's
notes as the listener hands them on (after the sustain pedal and the echo
filter, velocities kept), the agent's notes as the scheduler sent them, the
tempo map's changes and the jam's phrase/answer reports. Times are the
clock's seconds, kept exactly; beats come from the recorded tempo changes.
Attached to an engine, the recording starts on the followed bar line at or
before its first note (the tempo map's beat and `bar_beat` as they were
followed then): the .mid's tick 0, the score's bar 1 and the piano roll's
first bar line are that bar line, so all three put bars where the player's were.

Outputs:
- a type-1 MIDI file: a tempo track (tempo changes, time signature,
  markers), then `human` (channel 1) and `agent` (channel 2), each with its
  own General MIDI instrument; every note is closed (one still sounding at
  the end ends there);
- MusicXML through music21: the two parts quantised to the token grid
  (1/resolution of a beat) at the session tempo;
- a piano-roll PNG: the two parts in two colours, bar lines, markers.

Real time: a hook appends one tuple to a deque and returns; the output and
input threads never wait on the recorder. The flush thread takes what they
handed over (sorting only that batch) and encodes each part's track event by
event as it grows (agent/session/midistream.py), so a flush costs the file's
size in bytes written, not a re-sort and re-encoding of the session.

Crash safety: `start(path)` runs a daemon thread that writes the MIDI file
every `flush_s` seconds, each time to a temporary file renamed over the old
one (os.replace is atomic), so `kill -9` loses at most flush_s and a reader
never sees half a file. `stop()` writes the final files the same way. A
flush that fails (a full disk) keeps the session in memory and says once how
much is unsaved; the end writes what it can and says, one line each, what it
could not. `check_writable` refuses a folder without room before a session.
music21 and matplotlib are imported only when their file is written.

Beside it: agent/session/grid.py (notes paired and put on the score's grid, the followed
beat for bar lines) and agent/session/storage.py (atomic writes, where takes go, free space).
"""
from __future__ import annotations

import bisect
import logging
import threading
from collections import deque
from pathlib import Path

import mido

from agent.music.tempomap import RealClock, TickMap
from agent.errors import AntiphonError
from agent.session import midistream, storage
from agent.session.grid import FollowedBeats, TimedNote, on_grid, pair_notes
from agent.session.midistream import NoteTrack

log = logging.getLogger(__name__)
PARTS = ("human", "agent")
CHANNELS = {"human": 0, "agent": 1}  # MIDI channels 1 and 2
PROGRAMS = {"human": 0, "agent": 11}  # General MIDI: acoustic grand piano, vibraphone
COLOURS = {"human": "tab:blue", "agent": "tab:orange"}

NOTE, TEMPO, MARKER, BEAT = 0, 1, 2, 3  # what a hook handed over: (clock s, kind, ...)


class Recorder:
    """Collects a session and writes it; the hooks are safe to call from any thread and never wait.

    A hook appends one tuple to a deque (atomic, no lock): the scheduler's and the listener's
    threads never wait on the recorder. Whoever reads or writes the session (the flush thread,
    stop(), snapshot()) first takes what the hooks handed over, under `_take_lock`, a lock no
    hook takes; each batch is sorted by time as it is taken (the batch only), and the MIDI
    tracks are encoded event by event as they grow (agent/session/midistream.py), so a flush
    writes the bytes it has, in time proportional to the file's size, with nothing to sort.
    """

    def __init__(self, bpm: float, *, beats_per_bar: int = 4, resolution: int = 12, clock=None,
                 flush_s: float = 5.0, ticks_per_beat: int = 480, report=None) -> None:
        self.clock = clock or RealClock()
        self.t0 = self.clock.now()  # the recording's time 0 (clock seconds): attached to an engine, the
        # followed bar line at or before the first note (set when that note is taken)
        self._origin_open = False  # attached, no note yet: t0 is still to be put on the followed bar line
        self.beats_per_bar = beats_per_bar
        self.resolution = resolution
        self.flush_s = flush_s
        self.ticks_per_beat = ticks_per_beat
        self.report = report or (lambda line: None)
        self.path: Path | None = None
        self.flushes = 0
        self.unsaved_since_s: float | None = None  # a flush failed: the file lacks what came since (recording s)
        self._saved_s, self._saved_ons, self._last_error = 0.0, 0, ""  # the last good save: when, note-ons in it
        self._inbox: deque = deque()  # (clock s, kind, a, b, c) from the hooks: appended without a lock
        # the session as taken from the inbox: touched only with _take_lock held
        self._events: dict[str, list[tuple[float, int, int]]] = {p: [] for p in PARTS}  # (t_s, pitch, vel); 0 = off
        self._tempo: list[tuple[float, float]] = [(0.0, float(bpm))]  # (t_s from t0, bpm), in time order
        self._markers: list[tuple[float, str, str]] = []  # (t_s from t0, kind, text), in time order
        self._ticks = TickMap(self._tempo, ticks_per_beat)
        self._tracks = {p: NoteTrack(p, CHANNELS[p], PROGRAMS[p]) for p in PARTS}
        self._followed: FollowedBeats | None = None  # the engine's tempo map as followed (attached)
        self._map = None
        self._done_s = 0.0  # the latest note time encoded into a track: an earlier tempo change applies from here
        self._end_s: float | None = None
        self._take_lock = threading.Lock()  # never taken by a hook
        self._write_lock = threading.Lock()  # the flush thread and stop() never write at once
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._detach = []

    # -- input (any thread; never waits) --------------------------------------------------
    def note(self, part: str, pitch: int, velocity: int, t_s: float) -> None:
        """A note-on (velocity > 0) or note-off (velocity 0) of `part` at clock time t_s."""
        if self._end_s is None:
            self._inbox.append((t_s, NOTE, part, int(pitch), int(velocity)))

    def on_human(self, msg: mido.Message, t_s: float) -> None:
        """listener.player_hooks: the player's notes as the jam hears them."""
        if msg.type == "note_on":
            self.note("human", msg.note, msg.velocity, t_s)
        elif msg.type == "note_off":
            self.note("human", msg.note, 0, t_s)

    def on_agent(self, msg: mido.Message, due_s: float, sent_s: float) -> None:
        """scheduler.hooks: the agent's notes when they were sent (on the output thread: one append)."""
        if msg.type == "note_on":
            self._inbox.append((sent_s, NOTE, "agent", msg.note, msg.velocity))
        elif msg.type == "note_off":
            self._inbox.append((sent_s, NOTE, "agent", msg.note, 0))

    def on_tempo(self, bpm: float, t_s: float) -> None:
        """TempoMap.listeners: a tempo change (config, MIDI clock, the REPL)."""
        if self._end_s is None:
            self._inbox.append((t_s, TEMPO, float(bpm), None, None))
            if self._map is not None:  # where the followed beat is at the change (on the setter's thread)
                self._inbox.append(self._beat_sample(t_s))

    def on_jam(self, kind: str, t_s: float | None, info: dict) -> None:
        """jam.observers: kind "phrase" (t_s: its first note) or "answer" (t_s: its first note)."""
        if t_s is None or self._end_s is not None:
            return
        if kind == "phrase":
            text = f"phrase {info.get('phrase', '?')} ({info.get('heard_notes', 0)} notes)"
        else:  # an answer to a phrase, or an accompany/solo run (no phrase)
            label = f"answer {info['phrase']}" if "phrase" in info else info.get("kind", "answer")
            text = f"{label} ({info.get('notes', 0)} notes)"
        self._inbox.append((t_s, MARKER, kind, text, None))

    def attach(self, engine) -> None:
        """Hook into a started engine's listener, scheduler, tempo map and jam."""
        hooks = [(engine.listener.player_hooks, self.on_human), (engine.scheduler.hooks, self.on_agent),
                 (engine.tempo.listeners, self.on_tempo), (engine.jam.observers, self.on_jam)]
        for lst, fn in hooks:
            lst.append(fn)
        self._detach = hooks
        self._map, self._followed = engine.tempo, FollowedBeats(engine.tempo.beats_per_bar)
        self._origin_open = not any(self._tracks[p].note_ons for p in PARTS)
        self._inbox.append(self._beat_sample(self.clock.now()))
        if engine.tempo.bpm != self._tempo[-1][1]:
            self.on_tempo(engine.tempo.bpm, self.clock.now())

    def _beat_sample(self, t_s: float) -> tuple:
        """Where the followed beat and bar line are at t_s, for FollowedBeats."""
        m = self._map
        return (t_s, BEAT, m.beat(t_s), m.bpm, m.bar_beat)

    def detach(self) -> None:
        for lst, fn in self._detach:
            if fn in lst:
                lst.remove(fn)
        self._detach = []

    # -- taking what the hooks handed over (_take_lock held) ------------------------------
    def _take(self) -> None:
        if self._map is not None and self._end_s is None:  # the followed beat now, as this batch ends
            self._inbox.append(self._beat_sample(self.clock.now()))
        batch = []
        try:
            while True:
                batch.append(self._inbox.popleft())
        except IndexError:
            pass
        batch.sort(key=lambda e: e[0])  # this batch only; stable: one instant keeps its order
        for t_s, kind, a, b, c in batch:
            if kind == BEAT:
                self._followed.add(t_s, a, b, c)
        if self._origin_open:
            first = next((e[0] for e in batch if e[1] == NOTE), None)
            if first is not None:
                self._move_origin(self._followed.time(self._followed.bar_before(first)))
        end = self._end_s
        for t_s, kind, a, b, c in batch:
            if kind == BEAT:
                continue
            t = max(0.0, t_s - self.t0)
            if end is not None and t > end:
                continue
            if kind == NOTE:
                evs = self._events[a]
                if evs and t < evs[-1][0]:
                    evs.insert(bisect.bisect_right(evs, t, key=lambda e: e[0]), (t, b, c))
                else:
                    evs.append((t, b, c))
                self._tracks[a].note(self._ticks.tick(t), b, c)
                self._done_s = max(self._done_s, t)
            elif kind == TEMPO:
                t = max(t, self._done_s)  # the notes already encoded keep their ticks
                if t <= 0.0:  # at (or before) the start: the recording's first tempo, not a second one
                    self._tempo = [(0.0, a)] + [x for x in self._tempo if x[0] > 0.0]
                else:
                    self._tempo.insert(bisect.bisect_right(self._tempo, t, key=lambda e: e[0]), (t, a))
                self._ticks = TickMap(self._tempo, self.ticks_per_beat)
            else:
                self._markers.insert(bisect.bisect_right(self._markers, t, key=lambda e: e[0]), (t, a, b))

    def _move_origin(self, t0: float) -> None:
        """The recording's time 0 is now t0 (clock seconds; no note is recorded yet): the tempo
        changes and markers so far move with it, those before it folded into time 0."""
        d, self.t0, self._origin_open = self.t0 - t0, t0, False
        before = [bpm for t, bpm in self._tempo if t + d <= 0]
        self._tempo = [(0.0, before[-1] if before else self._tempo[0][1])] + [
            (t + d, bpm) for t, bpm in self._tempo if t + d > 0]
        self._markers = [(max(0.0, t + d), k, x) for t, k, x in self._markers]
        self._ticks = TickMap(self._tempo, self.ticks_per_beat)
        self._saved_s = max(0.0, self._saved_s + d)

    # -- the session as data --------------------------------------------------------
    def snapshot(self, end_s: float | None = None):
        """(notes per part, tempo changes, markers, end_s); notes still sounding end at end_s."""
        with self._take_lock:
            self._take()
            events = {p: list(evs) for p, evs in self._events.items()}
            tempo, markers = list(self._tempo), list(self._markers)
            if end_s is None:
                end_s = self._end_s if self._end_s is not None else self._rel(self.clock.now())
        last = max([end_s] + [evs[-1][0] for evs in events.values() if evs])
        return {p: pair_notes(evs, last) for p, evs in events.items()}, tempo, markers, last

    def _rel(self, t_s: float) -> float:
        return max(0.0, t_s - self.t0)

    def notes(self, part: str) -> list[TimedNote]:
        return self.snapshot()[0][part]

    def note_ons(self) -> dict[str, int]:
        """Note-ons recorded so far, per part."""
        with self._take_lock:
            self._take()
            return {p: tr.note_ons for p, tr in self._tracks.items()}

    # -- files --------------------------------------------------------------------------
    def midi_bytes(self, end_s: float | None = None) -> bytes:
        """The session as a type-1 Standard MIDI File: the parts' tracks as encoded so far (their
        notes still sounding closed at the end), and the tempo track (tempo changes and markers:
        few) encoded afresh."""
        with self._take_lock:
            self._take()
            if end_s is None:
                end_s = self._end_s if self._end_s is not None else self._rel(self.clock.now())
            tm = self._ticks
            meta = [(0, 0, _meta(0x03, b"tempo")), (0, 0, _meta(0x58, bytes([self.beats_per_bar, 2, 24, 8])))]
            meta += [(tm.tick(t), 1, _meta(0x51, round(60e6 / bpm).to_bytes(3, "big"))) for t, bpm in self._tempo]
            meta += [(tm.tick(t), 2, _meta(0x06, text.encode("latin-1", "replace"))) for t, _, text in self._markers]
            end_tick = tm.tick(max(end_s, self._done_s))
            parts = [self._tracks[p].chunk(end_tick) for p in PARTS]
        return b"".join([midistream.header(1 + len(parts), self.ticks_per_beat), midistream.chunk(_track_bytes(meta)),
                         *parts])

    def write_midi(self, path: str | Path, end_s: float | None = None) -> Path:
        data = self.midi_bytes(end_s)
        return storage.atomic_write(Path(path), lambda f: f.write(data))

    def score_grid(self, tempo: list[tuple[float, float]]):
        """Recording seconds -> score ticks (1/resolution of a beat): the followed beat where the
        recorder was attached to an engine (bar lines where the player's bars were), else the
        recorded tempo changes from time 0."""
        with self._take_lock:
            f = self._followed
            if f is not None and f.times:
                return f.grid(self.t0, self.resolution)
        return TickMap(tempo, self.resolution)

    def grid_notes(self, end_s: float | None = None) -> tuple[dict[str, list[tuple[int, float, float, int]]], list, float]:
        """Notes per part as (pitch, start_beat, end_beat, velocity) on the token grid; markers in beats."""
        notes, tempo, markers, end = self.snapshot(end_s)
        tm = self.score_grid(tempo)
        res = self.resolution
        out = {}
        for part, ns in notes.items():
            out[part] = [(p, a / res, b / res, v) for p, a, b, v in on_grid(ns, tm)]
        beat_markers = [(tm.tick(t) / res, kind, text) for t, kind, text in markers]
        return out, beat_markers, tm.tick(end) / res

    def write_musicxml(self, path: str | Path, end_s: float | None = None, title: str = "Antiphon session") -> Path:
        from agent.music.scores import musicxml_score

        notes, markers, _ = self.grid_notes(end_s)
        _, tempo, _, _ = self.snapshot(end_s)
        tm = self.score_grid(tempo)
        tempos = [(0.0 if i == 0 else tm.tick(t) / self.resolution, bpm) for i, (t, bpm) in enumerate(tempo)]
        score = musicxml_score(notes, tempos, markers, beats_per_bar=self.beats_per_bar, title=title)
        path = Path(path)
        return storage.atomic_write(path, lambda f: f.write(storage.musicxml_bytes(score)))

    def write_png(self, path: str | Path, end_s: float | None = None) -> Path:
        from agent.music.scores import pianoroll_png

        notes, markers, end_beat = self.grid_notes(end_s)
        return storage.atomic_write(Path(path), lambda f: pianoroll_png(
            notes, markers, f, beats_per_bar=self.beats_per_bar, end_beat=end_beat, colours=COLOURS))

    def write_all(self, path: str | Path, end_s: float | None = None) -> list[Path]:
        """session.mid, then .musicxml and .png beside it; what cannot be written is reported in one
        line each (the MIDI file's with how much of the session it lacks), the others still written."""
        path = Path(path)
        written = []
        for suffix, fn in ((".mid", self.write_midi), (".musicxml", self.write_musicxml), (".png", self.write_png)):
            target = path if suffix == ".mid" else path.with_suffix(suffix)
            try:
                written.append(fn(target, end_s))
            except Exception as exc:  # the MIDI file matters most: never lose it to a failing picture
                why = exc.strerror if isinstance(exc, OSError) and exc.strerror else f"{type(exc).__name__}: {exc}"
                lost = ""
                if suffix == ".mid":
                    lost = f"; {self._unsaved_words()} not saved" if self.flushes else "; nothing of it saved"
                log.info("writing %s", target, exc_info=True)  # the traceback only where logging is turned up
                self.report(f"recording: could not write {target} ({why}){lost}")
        return written

    # -- the session's lifetime -------------------------------------------------------
    def start(self, path: str | Path) -> Path:
        """Record to `path`: the MIDI file is rewritten every flush_s seconds until stop(). A file
        that cannot be written even empty raises AntiphonError, before anything is recorded."""
        self.path = Path(path)
        if not self.flush():  # a valid (empty) file from the first moment
            self.path, self.unsaved_since_s = None, None
            raise AntiphonError(f"cannot record to {path}: {self._last_error}")
        if self.flush_s > 0 and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="antiphon-recorder", daemon=True)
            self._thread.start()
        return self.path

    def flush(self) -> bool:
        """Write the MIDI file as it stands (atomically: a reader never sees half a file). False when
        it could not be written (a full disk): the session stays in memory, the file as it last was;
        said once (how much is unsaved), and again when it is saved after all."""
        if self.path is None:
            return True
        with self._write_lock:
            if self._end_s is not None:
                return True
            try:
                self.write_midi(self.path)
            except OSError as exc:
                self._last_error = exc.strerror or str(exc)
                if self.unsaved_since_s is None:
                    self.unsaved_since_s = self._saved_s
                    if self.flushes:  # start() says it itself
                        self.report(f"recording: cannot save {self.path} ({self._last_error}): "
                                    f"{self._unsaved_words()} unsaved, kept in memory and saved when there is room")
                return False
            self.flushes += 1
            self._saved_s, self._saved_ons = self._rel(self.clock.now()), sum(self.note_ons().values())
            if self.unsaved_since_s is not None:
                self.unsaved_since_s = None
                self.report(f"recording: {self.path} saved again, nothing lost")
            return True

    def _unsaved_words(self) -> str:
        """How much of the session the file on disk lacks, in words."""
        n = sum(self.note_ons().values()) - self._saved_ons
        return f"{n} note{'s' * (n != 1)} since {_clock_words(self._saved_s)}"

    def _run(self) -> None:
        while not self._stop.wait(self.flush_s):
            try:
                self.flush()
            except Exception as exc:  # a bug here must not end the session; the final write will say so
                log.error("recording flush failed: %s: %s", type(exc).__name__, exc)

    def stop(self) -> list[Path]:
        """End the recording now; write the final MIDI, MusicXML and PNG. Safe to call twice."""
        with self._take_lock:
            self._take()  # what was handed over before the end
            first = self._end_s is None
            if first:
                self._end_s = self._rel(self.clock.now())
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5.0)
        if not first or self.path is None:
            return []
        with self._write_lock:
            return self.write_all(self.path)


def _clock_words(t_s: float) -> str:
    """Seconds into the recording as m:ss."""
    return f"{int(t_s // 60)}:{int(t_s % 60):02d}"


_meta, _track_bytes = midistream.meta, midistream.track_bytes
