"""The session recorder: what it writes is what was played, read back by mido and by music21."""
from __future__ import annotations

import os

import mido
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.music.tempomap import FakeClock, TempoMap
from agent.errors import AntiphonError
from agent.session.recorder import Recorder
from agent.session.storage import check_writable, free_path
from helpers import read_musicxml_parts

T0 = 1000.0  # the fake clock's start: the recording's time 0
RES = 12


def spaced(notes, min_len_s, min_gap_s):
    """Keep notes that last min_len_s and leave min_gap_s before the same pitch sounds again (a keyboard's notes)."""
    kept, busy = [], {}
    for pitch, start, length, vel in sorted(notes, key=lambda n: n[1]):
        if length >= min_len_s and start >= busy.get(pitch, -1.0):
            kept.append((pitch, start, start + length, vel))
            busy[pitch] = start + length + min_gap_s
    return kept


def play(rec, parts, clock):
    """Feed the recorder on/off events in time order (offs first at one instant), as the hooks would."""
    evs = [(t, 0 if off else 1, part, p, 0 if off else v) for part, ns in parts.items()
           for p, a, b, v in ns for t, off in ((a, False), (b, True))]
    for t, _, part, pitch, vel in sorted(evs):
        clock.set(T0 + t)
        rec.note(part, pitch, vel, T0 + t)


def beat_at(t, bpm, change):
    """The test's own tempo arithmetic: beats at t seconds, with one optional (time, bpm) change."""
    t = (T0 + t) - T0  # the time as the recorder holds it (clock time less its start), rounding included
    if change is None or t < (T0 + change[0]) - T0:
        return t * bpm / 60
    c = (T0 + change[0]) - T0
    return c * bpm / 60 + (t - c) * change[1] / 60


def midi_notes(path):
    """mido's reading: (channel, pitch, start_s, end_s, velocity), seconds through the file's tempo map."""
    t, open_, out = 0.0, {}, []
    for msg in mido.MidiFile(path):
        t += msg.time
        if msg.type == "note_on" and msg.velocity > 0:
            open_[(msg.channel, msg.note)] = (t, msg.velocity)
        elif msg.type in ("note_on", "note_off"):
            a, v = open_.pop((msg.channel, msg.note))
            out.append((msg.channel, msg.note, a, t, v))
    assert not open_  # every note closed
    return sorted(out)


NOTE = st.tuples(st.integers(21, 108), st.floats(0, 20), st.floats(0.005, 3), st.integers(1, 127))


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(human=st.lists(NOTE, max_size=25), agent=st.lists(NOTE, max_size=25), bpm=st.floats(60, 180),
       change=st.one_of(st.none(), st.tuples(st.floats(0.5, 15), st.floats(60, 180))))
def test_mido_and_music21_read_back_the_notes_recorded(tmp_path_factory, human, agent, bpm, change):
    grid_s = 60 / 180 / RES  # one grid tick at the fastest tempo: notes and re-strikes at least two apart
    parts = {"human": spaced(human, 2 * grid_s, 2 * grid_s), "agent": spaced(agent, 2 * grid_s, 2 * grid_s)}
    clock = FakeClock(T0)
    rec = Recorder(bpm, clock=clock, resolution=RES)
    if change is not None:
        rec.on_tempo(change[1], T0 + change[0])
    play(rec, parts, clock)
    clock.advance(0.5)
    d = tmp_path_factory.mktemp("rec")
    rec.write_midi(d / "s.mid")
    rec.write_musicxml(d / "s.musicxml")

    # mido: every note at its recorded time (to within one MIDI tick), on its part's channel, velocity kept
    got = midi_notes(d / "s.mid")
    want = sorted((ch, p, a, b, v) for ch, part in enumerate(("human", "agent")) for p, a, b, v in parts[part])
    assert [(c, p, v) for c, p, _, _, v in got] == [(c, p, v) for c, p, _, _, v in want]
    tick_s = 60 / min(bpm, change[1] if change else bpm) / 480
    for (_, _, a, b, _), (_, _, wa, wb, _) in zip(got, want):
        assert a == pytest.approx(wa, abs=tick_s) and b == pytest.approx(wb, abs=tick_s)
    names = [tr.name for tr in mido.MidiFile(d / "s.mid").tracks]
    assert names == ["tempo", "human", "agent"]

    # music21: the same notes on the token grid (beats from the test's own tempo arithmetic)
    xml = read_musicxml_parts(d / "s.musicxml")
    assert list(xml) == ["human", "agent"]
    for part, ns in parts.items():
        expect = []
        for p, a, b, _ in ns:  # in grid ticks
            qa = round(beat_at(a, bpm, change) * RES)
            expect.append((p, qa, max(qa + 1, round(beat_at(b, bpm, change) * RES))))
        assert sorted((p, round(a * RES), round(b * RES)) for p, a, b, _ in xml[part]) == sorted(expect)


def test_a_note_still_sounding_at_the_end_is_closed_there_and_stray_offs_are_ignored(tmp_path):
    clock = FakeClock(T0)
    rec = Recorder(120.0, clock=clock)
    rec.note("human", 60, 90, T0 + 0.5)
    rec.note("human", 62, 0, T0 + 0.6)  # a note-off for nothing (its note-on came before the recording)
    rec.note("agent", 67, 70, T0 + 1.0)
    rec.note("agent", 67, 75, T0 + 1.5)  # struck again while sounding: the first one ends here
    clock.set(T0 + 2.0)
    assert rec.stop() == []  # no path: nothing written, and the end is now fixed at 2.0 s
    rec.note("human", 64, 80, T0 + 2.5)  # after stop: not recorded
    assert [(n.pitch, n.start_s, n.end_s) for n in rec.notes("human")] == [(60, 0.5, 2.0)]
    assert [(n.pitch, n.start_s, n.end_s, n.velocity) for n in rec.notes("agent")] == [
        (67, 1.0, 1.5, 70), (67, 1.5, 2.0, 75)]
    rec.write_midi(tmp_path / "s.mid")
    assert [(c, p, round(a, 3), round(b, 3)) for c, p, a, b, _ in midi_notes(tmp_path / "s.mid")] == [
        (0, 60, 0.5, 2.0), (1, 67, 1.0, 1.5), (1, 67, 1.5, 2.0)]


def test_flushes_replace_the_file_whole_and_stop_writes_all_three(tmp_path):
    clock = FakeClock(T0)
    rec = Recorder(100.0, clock=clock, flush_s=0)  # flush by hand: no thread, no timing
    path = rec.start(tmp_path / "take.mid")
    assert midi_notes(path) == []  # a valid file from the first moment
    rec.note("human", 60, 80, T0 + 0.1)
    clock.set(T0 + 1.0)
    rec.flush()
    assert [(p, round(a, 3), round(b, 3)) for _, p, a, b, _ in midi_notes(path)] == [(60, 0.1, 1.0)]  # closed at the flush
    rec.note("human", 60, 0, T0 + 1.2)
    rec.on_jam("phrase", T0 + 0.1, {"phrase": 1, "heard_notes": 1})
    rec.on_jam("answer", None, {"phrase": 1, "notes": 0})  # an answer with no notes has no marker
    clock.set(T0 + 2.0)
    files = rec.stop()
    assert [f.name for f in files] == ["take.mid", "take.musicxml", "take.png"]
    assert sorted(os.listdir(tmp_path)) == ["take.mid", "take.musicxml", "take.png"]  # no temporary file left
    assert [(p, round(a, 3), round(b, 3)) for _, p, a, b, _ in midi_notes(path)] == [(60, 0.1, 1.2)]
    markers = [m.text for m in mido.MidiFile(path).tracks[0] if m.type == "marker"]
    assert markers == ["phrase 1 (1 notes)"]
    assert (tmp_path / "take.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert read_musicxml_parts(tmp_path / "take.musicxml")["human"] == [(60, 0.0 + 2 / 12, 2.0, 80)]
    assert rec.stop() == []  # twice is harmless


def test_tempo_changes_reach_the_recorder_through_the_tempo_map(tmp_path):
    clock = FakeClock(T0)
    tempo = TempoMap(100.0, T0)
    rec = Recorder(100.0, clock=clock)
    tempo.listeners.append(rec.on_tempo)
    tempo.set_bpm(150.0, T0 + 3.0)
    rec.note("agent", 72, 64, T0 + 3.0)
    rec.note("agent", 72, 0, T0 + 3.4)
    rec.write_midi(tmp_path / "s.mid")
    mid = mido.MidiFile(tmp_path / "s.mid")
    tempos = [(m.time, round(mido.tempo2bpm(m.tempo), 3)) for m in mid.tracks[0] if m.type == "set_tempo"]
    assert tempos == [(0, 100.0), (5 * 480, 150.0)]  # 3 s at 100 bpm = 5 beats
    on = next(m for m in mid.tracks[2] if m.type == "note_on")
    assert on.time == 5 * 480


def test_a_new_name_instead_of_overwriting(tmp_path):
    assert free_path(tmp_path / "take.mid") == tmp_path / "take.mid"
    (tmp_path / "take.mid").write_bytes(b"x")
    assert free_path(tmp_path / "take.mid") == tmp_path / "take-1.mid"
    (tmp_path / "take-1.png").write_bytes(b"x")  # a picture of that name would be overwritten too
    assert free_path(tmp_path / "take.mid") == tmp_path / "take-2.mid"
    assert free_path(tmp_path / "jam") == tmp_path / "jam.mid"


def test_a_folder_that_cannot_be_written_is_named(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(AntiphonError, match="cannot record to .*a-file/sub"):
        check_writable(blocker / "sub")
    assert check_writable(tmp_path / "new" / "folder").is_dir()


def test_the_hooks_never_wait_on_the_recorder(tmp_path):
    """The scheduler calls on_agent on the output thread: whatever the recorder is doing (a flush
    holding every lock it has), the hook returns, and what it handed over is in the next file."""
    import threading

    clock = FakeClock(T0)
    rec = Recorder(120.0, clock=clock, flush_s=0)
    rec.start(tmp_path / "s.mid")
    locks = [v for v in vars(rec).values() if isinstance(v, type(threading.Lock()))]
    for lock in locks:  # a flush in progress, as long as it likes
        lock.acquire()
    hook = threading.Thread(target=lambda: (rec.on_agent(mido.Message("note_on", note=64, velocity=70), T0 + 0.5, T0 + 0.5),
                                            rec.on_agent(mido.Message("note_off", note=64), T0 + 0.9, T0 + 0.9)))
    hook.start()
    hook.join(timeout=5.0)
    returned = not hook.is_alive()
    for lock in locks:
        lock.release()
    hook.join()
    assert locks and returned
    clock.set(T0 + 1.0)
    rec.flush()
    assert [(p, round(a, 3), round(b, 3)) for _, p, a, b, _ in midi_notes(tmp_path / "s.mid")] == [(64, 0.5, 0.9)]


def test_a_flush_writes_what_came_in_any_order_and_every_note_on_is_kept(tmp_path):
    """Handed over out of order (two threads), and a pitch struck again at one instant (the
    scheduler's re-strike): every note-on that reached the port is in the file, in time order."""
    clock = FakeClock(T0)
    rec = Recorder(120.0, clock=clock, flush_s=0)
    path = rec.start(tmp_path / "s.mid")
    rec.note("agent", 60, 80, T0 + 1.0)
    rec.note("human", 50, 80, T0 + 0.5)  # earlier, handed over later
    rec.note("agent", 60, 0, T0 + 1.0)  # a note of no length...
    rec.note("agent", 60, 90, T0 + 1.0)  # ... and the same pitch again at once
    clock.set(T0 + 1.5)
    rec.flush()
    rec.note("agent", 62, 70, T0 + 1.2)  # a straggler from before the flush: placed after what was written
    rec.note("agent", 62, 0, T0 + 1.6)
    clock.set(T0 + 2.0)
    rec.stop()
    mid = mido.MidiFile(path)
    ons = {tr.name: [m.note for m in tr if m.type == "note_on" and m.velocity > 0] for tr in mid.tracks}
    assert ons == {"tempo": [], "human": [50], "agent": [60, 60, 62]}
    assert len(midi_notes(path)) == 4  # every note closed


def test_a_folder_without_room_is_refused_before_the_session(tmp_path, monkeypatch):
    from collections import namedtuple

    from agent.session import storage

    usage, real = namedtuple("usage", "total used free"), storage.shutil.disk_usage
    monkeypatch.setattr(storage.shutil, "disk_usage", lambda p: usage(100 << 20, 99 << 20, 1 << 20))
    with pytest.raises(AntiphonError, match=r"cannot record to .*: only 1.0 MB free there \(8 MB needed\)"):
        check_writable(tmp_path / "takes")
    monkeypatch.setattr(storage.shutil, "disk_usage", real)
    assert check_writable(tmp_path / "takes") == tmp_path / "takes"


def test_a_disk_that_fills_mid_session_is_said_once_and_nothing_is_lost_from_memory(tmp_path, monkeypatch, caplog):
    import errno

    from agent.session import storage

    lines = []
    clock = FakeClock(T0)
    rec = Recorder(120.0, clock=clock, flush_s=0, report=lines.append)
    path = rec.start(tmp_path / "take.mid")
    rec.note("human", 60, 80, T0 + 0.5)
    rec.note("human", 60, 0, T0 + 0.8)
    clock.set(T0 + 1.0)
    assert rec.flush()
    real = storage.atomic_write

    def full(p, write):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(storage, "atomic_write", full)
    for k in range(3):  # the disk is full: three flushes fail, said once
        rec.note("agent", 64 + k, 70, T0 + 1.5 + k)
        rec.note("agent", 64 + k, 0, T0 + 1.8 + k)
        clock.set(T0 + 2.0 + k)
        assert not rec.flush()
    assert lines == [f"recording: cannot save {path} (No space left on device): 1 note since 0:01 unsaved, "
                     "kept in memory and saved when there is room"]
    assert len(midi_notes(path)) == 1  # the last good file
    monkeypatch.setattr(storage, "atomic_write", real)
    assert rec.flush()  # room again: everything kept is saved
    assert lines[-1] == f"recording: {path} saved again, nothing lost"
    assert [p for _, p, _, _, _ in midi_notes(path)] == [60, 64, 65, 66]
    monkeypatch.setattr(storage, "atomic_write", full)
    rec.note("agent", 70, 70, T0 + 5.5)
    clock.set(T0 + 6.0)
    del lines[:]
    assert rec.stop() == []
    assert lines == [f"recording: could not write {path} (No space left on device); 1 note since 0:04 not saved",
                     f"recording: could not write {path.with_suffix('.musicxml')} (No space left on device)",
                     f"recording: could not write {path.with_suffix('.png')} (No space left on device)"]
    assert "Traceback" not in caplog.text


def _engine_with(tempo):
    """What Recorder.attach hooks into: an engine's hook lists and its tempo map."""
    from types import SimpleNamespace

    return SimpleNamespace(listener=SimpleNamespace(player_hooks=[]), scheduler=SimpleNamespace(hooks=[]),
                           tempo=tempo, jam=SimpleNamespace(observers=[]))


def test_a_live_recordings_bar_lines_follow_the_tempo_map_as_it_was_followed(tmp_path):
    """The recorder is made mid-bar of the followed grid; then the follower moves the beat's phase
    (a player a little late) without changing the tempo. The score's bars are the map's bars."""
    clock = FakeClock(T0)
    tempo = TempoMap(120.0, T0 - 0.8)  # the map's bar 0 began 0.8 s (1.6 beats) before the recorder
    rec = Recorder(120.0, clock=clock, flush_s=0)  # flushed by hand below, as its thread would
    rec.attach(_engine_with(tempo))
    rec.start(tmp_path / "take.mid")
    downbeats = [tempo.time(4.0), tempo.time(8.0)]  # bars 1 and 2 of the map
    for t in downbeats:
        clock.set(t)
        rec.note("human", 60, 80, t)
        rec.note("human", 60, 0, t + 0.25)
        clock.set(t + 0.5)
        rec.flush()
    clock.set(T0 + 4.6)
    tempo.align(120.0, T0 + 4.8)  # beat 11 is now at 4.8 s, not 4.7: 0.1 s (a fifth of a beat) later, same tempo
    rec.flush()
    late_downbeat = tempo.time(12.0)
    clock.set(late_downbeat)
    rec.note("human", 62, 80, late_downbeat)
    rec.note("human", 62, 0, late_downbeat + 0.25)
    clock.set(late_downbeat + 1.0)
    rec.stop()
    notes, _, _ = rec.grid_notes()
    starts = [a for _, a, _, _ in notes["human"]]
    assert all(a % 4 == 0 for a in starts), starts  # every one on a bar line of the score
    assert [b - starts[0] for b in starts] == [0.0, 4.0, 8.0]


def test_after_a_midi_clock_restart_the_bars_go_on_from_the_next_whole_bar(tmp_path):
    clock = FakeClock(T0)
    tempo = TempoMap(120.0, T0)
    rec = Recorder(120.0, clock=clock, flush_s=0)
    rec.attach(_engine_with(tempo))
    rec.start(tmp_path / "take.mid")
    for t in (T0, T0 + 2.0):  # bars 0 and 1
        clock.set(t)
        rec.note("agent", 60, 80, t)
        rec.note("agent", 60, 0, t + 0.2)
        clock.set(t + 0.3)
        rec.flush()
    tempo.restart(T0 + 2.9)  # MIDI clock start, mid-bar: beat 0 is now
    for t in (T0 + 2.9, T0 + 4.9):
        clock.set(t)
        rec.note("agent", 62, 80, t)
        rec.note("agent", 62, 0, t + 0.2)
        clock.set(t + 0.3)
        rec.flush()
    rec.stop()
    starts = [a for _, a, _, _ in rec.grid_notes()[0]["agent"]]
    assert starts == [0.0, 4.0, 8.0, 12.0]


def test_a_live_recording_starts_on_the_followed_bar_line_in_the_mid_and_the_score(tmp_path):
    """The followed map's bar lines are at beats 1, 5, 9... (the player's downbeat, bar_beat 1); the
    recorder is attached mid-bar, the first note is on beat 3 of a bar, the next on the next bar's
    beat 1. The .mid starts at the bar line before the first note: the notes read back at ticks
    960 and 1920 (480 a beat), and the score's grid has them at beats 2 and 4."""
    clock = FakeClock(T0)
    tempo = TempoMap(120.0, T0 - 0.8)  # beat 0 at T0 - 0.8 s; the recorder comes at beat 1.6
    tempo.align(120.0, T0 - 0.8, downbeat_s=T0 - 0.3)  # a bar line at beat 1
    assert tempo.bar_beat == 1.0
    rec = Recorder(120.0, clock=clock, flush_s=0)
    rec.attach(_engine_with(tempo))
    rec.start(tmp_path / "take.mid")
    for beat in (7.0, 9.0):  # beat 3 of the bar from beat 5; beat 1 of the next
        t = tempo.time(beat)
        clock.set(t)
        rec.note("human", 60, 80, t)
        rec.note("human", 60, 0, t + 0.25)
        clock.set(t + 0.4)
        rec.flush()
    rec.stop()
    tick, ons = 0, []
    for msg in mido.MidiFile(tmp_path / "take.mid").tracks[1]:
        tick += msg.time
        if msg.type == "note_on" and msg.velocity > 0:
            ons.append(tick)
    assert ons == [960, 1920]
    starts = [a for _, a, _, _ in rec.grid_notes()[0]["human"]]
    assert starts == [2.0, 4.0]


def test_a_tempo_change_before_the_first_note_is_the_recordings_tempo_at_tick_0(tmp_path):
    """The REPL sets 90 bpm before the player's first note, which is on a bar line of the map: the
    .mid starts there at 90 bpm (one tempo event, at tick 0) with the note at tick 0."""
    clock = FakeClock(T0)
    tempo = TempoMap(120.0, T0)
    rec = Recorder(120.0, clock=clock, flush_s=0)
    rec.attach(_engine_with(tempo))
    rec.start(tmp_path / "take.mid")
    clock.set(T0 + 1.0)
    tempo.set_bpm(90.0, T0 + 1.0)  # beat 2 at T0 + 1 s; then 90 bpm: bar 1 (beat 4) at T0 + 1 + 2 * 2/3 s
    t = tempo.time(8.0)  # bar 2's downbeat
    clock.set(t)
    rec.note("human", 60, 80, t)
    rec.note("human", 60, 0, t + 0.5)
    clock.set(t + 1.0)
    rec.stop()
    tempos, ons, tick = [], [], 0
    mid = mido.MidiFile(tmp_path / "take.mid")
    for msg in mid.tracks[0]:
        tick += msg.time
        if msg.type == "set_tempo":
            tempos.append((tick, round(mido.tempo2bpm(msg.tempo), 3)))
    tick = 0
    for msg in mid.tracks[1]:
        tick += msg.time
        if msg.type == "note_on" and msg.velocity > 0:
            ons.append(tick)
    assert tempos == [(0, 90.0)]
    assert ons == [0]
