"""Recording a live `antiphon play` session (loopback, a scripted player): kills, names, folders."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mido
import pytest

from agent.music.tokens import Note
from agent.music.notes import write_midi
from helpers import wait_for

ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}
SCALE = [60, 62, 64, 65, 67, 69, 71, 72, 71, 69, 67, 65, 64, 62] * 3  # the fed player's pitches, in order


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    import tiny

    return tiny.make_model_dir(tmp_path_factory.mktemp("rec_model"), hidden=32, embedding=16)


@pytest.fixture(scope="module")
def legato(tmp_path_factory):
    """A player's part at 100 bpm, one beat (0.6 s) a note, legato: some note is always sounding."""
    path = tmp_path_factory.mktemp("feed") / "legato.mid"
    write_midi([Note(p, i, i + 1, 70) for i, p in enumerate(SCALE)], path, bpm=100.0)
    return path


@pytest.fixture
def start_play(model_dir, legato):
    """start_play(*args) -> (process, banner): `antiphon play` fed the legato part; killed at teardown if a
    failed assert left it running."""
    started = []

    def start(*args):
        p = _start_play(model_dir, legato, *args)
        started.append(p[0])
        return p

    yield start
    for p in started:
        if p.poll() is None:
            p.kill()
            p.communicate(timeout=30)


def _start_play(model_dir, feed, *args):
    p = subprocess.Popen([sys.executable, "-m", "agent", "play", "--backend", "loopback", "--model", str(model_dir),
                          "--feed", str(feed), "--set", "sampling.seed=1", *args],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    banner = p.stdout.readline()
    assert "listening on" in banner and "Recording to" in banner, banner + p.stderr.read()
    return p, banner


def notes_of(path):
    """{track name: [(pitch, start_s, end_s)]} as mido reads the file; fails if a note is left open."""
    mid = mido.MidiFile(path)
    names = [tr.name for tr in mid.tracks]
    t, open_, out = 0.0, {}, {n: [] for n in names[1:]}
    for msg in mid:
        t += msg.time
        part = names[1 + msg.channel] if msg.type in ("note_on", "note_off") else None
        if msg.type == "note_on" and msg.velocity > 0:
            open_[(part, msg.note)] = t
        elif part:
            out[part].append((msg.note, open_.pop((part, msg.note)), t))
    assert not open_
    return names, {k: sorted(v, key=lambda n: n[1]) for k, v in out.items()}, mid.length


def flushed(path, **least):
    """A predicate for wait_for: the file as last flushed holds at least least[part] notes in each part
    named (read whole each time: a flush renames over it, so a reader never sees half a file). The notes
    read last are kept in .notes."""
    def cond():
        cond.notes = notes_of(path)[1]
        return all(len(cond.notes[part]) >= n for part, n in least.items())

    cond.notes = {}
    return cond


def test_sigterm_mid_phrase_writes_the_final_files_with_the_held_note_closed(start_play, tmp_path):
    rec = tmp_path / "take.mid"
    p, _ = start_play("--record", str(rec), "--mode", "call", "--set", "record.flush_s=0.5")
    # two human notes flushed: the feed is playing, and legato it sounds some note until its last one ends
    assert wait_for(flushed(rec, human=2), 60, poll_s=0.05), "no human notes were recorded"
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    assert f"recorded {rec}" in out and "0 left open" in out
    names, notes, length = notes_of(rec)
    assert names == ["tempo", "human", "agent"]
    pitches = [n[0] for n in notes["human"]]
    assert len(pitches) >= 2 and pitches == SCALE[:len(pitches)]  # what was played, in order, nothing lost
    assert len(pitches) < len(SCALE)  # the signal came mid-feed: a note was held at it
    assert notes["human"][-1][2] == pytest.approx(length, abs=0.01)  # the note held at the kill ends at the end
    from helpers import read_musicxml_parts

    xml = read_musicxml_parts(rec.with_suffix(".musicxml"))
    assert [n[0] for n in xml["human"]] == pitches
    assert rec.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"


def test_sigkill_leaves_a_valid_file_with_what_was_played_before_the_last_flush(start_play, tmp_path):
    rec = tmp_path / "take.mid"
    p, _ = start_play("--record", str(rec), "--mode", "solo", "--set", "record.flush_s=0.5")
    seen = flushed(rec, human=10, agent=1)  # solo: the agent plays too
    assert wait_for(seen, 60, poll_s=0.05), f"not flushed: {seen.notes}"
    p.kill()
    p.communicate(timeout=30)
    assert p.returncode == -signal.SIGKILL
    names, notes, _ = notes_of(rec)  # mido reads it whole: never half-written
    assert names == ["tempo", "human", "agent"]
    pitches = [n[0] for n in notes["human"]]
    assert pitches == SCALE[:len(pitches)] and len(pitches) >= 10
    assert notes["agent"]  # solo: the agent's part was kept too
    # every note of the flush read before the kill is in the file the kill left (a later flush may
    # have let a note held then sound on), at the same time
    for part, old in seen.notes.items():
        for pitch, start, end in old:
            assert any(q == pitch and abs(a - start) < 0.005 and b > end - 0.005 for q, a, b in notes[part]), \
                (part, pitch, start, end, notes[part])


def test_record_never_overwrites_and_config_records_by_date(start_play, tmp_path):
    (tmp_path / "take.mid").write_bytes(b"keep me")
    p, banner = start_play("--record", str(tmp_path / "take.mid"), "--set", "record.flush_s=0.5")
    assert str(tmp_path / "take-1.mid") in banner
    assert wait_for(flushed(tmp_path / "take-1.mid", human=1), 60, poll_s=0.05), "no human notes were recorded"
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    assert (tmp_path / "take.mid").read_bytes() == b"keep me"
    assert notes_of(tmp_path / "take-1.mid")[1]["human"]
    # a --seconds session ends by itself (what it recorded is not the point here: only where)
    folder = tmp_path / "sessions"
    p, banner = start_play("--seconds", "1.0", "--set", "record.enabled=true",
                           "--set", f'record.folder="{folder}"', "--set", 'record.name="jam-%Y.mid"')
    p.communicate(timeout=60)
    assert p.returncode == 0
    assert [f.name for f in sorted(folder.iterdir())] == [f"jam-{time.strftime('%Y')}{s}" for s in (".mid", ".musicxml", ".png")]


def test_an_unwritable_record_folder_is_an_error_before_the_session_starts(model_dir, legato, tmp_path):
    (tmp_path / "a-file").write_text("")
    r = subprocess.run([sys.executable, "-m", "agent", "play", "--backend", "loopback", "--model", str(model_dir),
                        "--record", str(tmp_path / "a-file" / "take.mid")], capture_output=True, text=True, env=ENV,
                       timeout=60)
    assert r.returncode == 2 and "cannot record to" in r.stderr and "a-file" in r.stderr
    assert "listening" not in r.stdout and "Traceback" not in r.stderr


def test_feed_needs_the_loopback_backend(model_dir, legato):
    r = subprocess.run([sys.executable, "-m", "agent", "play", "--backend", "jack", "--model", str(model_dir),
                        "--feed", str(legato)], capture_output=True, text=True, env=ENV, timeout=60)
    assert r.returncode == 2 and "--feed" in r.stderr
