"""The scheduler on a fake clock: ordering, late policy, re-strike, cut, panic, stop, a lost port."""
from __future__ import annotations

import time

import mido
import pytest

from agent.music.tempomap import FakeClock, RealClock
from agent.midi.ports import LoopbackOutput, PortLost
from fakes import Loopback
from agent.live.scheduler import Scheduler
from helpers import ListOut, wait_for


def on(n, v=100):
    return mido.Message("note_on", note=n, velocity=v)


def off(n):
    return mido.Message("note_off", note=n)


@pytest.fixture
def rig():
    clock = FakeClock(10.0)
    out = ListOut(clock)
    return clock, out, Scheduler(out, clock, late_tolerance_s=0.02)


def test_messages_go_out_in_due_order_never_early(rig):
    clock, out, s = rig
    s.schedule(10.3, off(60))
    s.schedule(10.1, on(60))
    s.schedule(10.2, on(64))
    s.schedule(10.2, off(64))  # same due time: queue order is kept
    assert s.pump() == 0
    for t in (10.1, 10.2, 10.3):
        clock.set(t)
        s.pump()
    assert [(t, m.type, m.note) for t, m in out.sent] == [
        (10.1, "note_on", 60), (10.2, "note_on", 64), (10.2, "note_off", 64), (10.3, "note_off", 60)]
    assert max(s.errors_s) == 0.0 and not s.open_notes


def test_late_note_on_is_dropped_but_its_note_off_is_kept(rig):
    clock, out, s = rig
    s.schedule(10.0, on(60))
    s.schedule(10.5, off(60))
    s.schedule(10.1, on(62))
    s.schedule(10.2, off(62))
    clock.set(10.01)  # 10 ms late: within tolerance, sent
    s.pump()
    clock.set(10.2)  # on(62) is 100 ms late: dropped; its off finds nothing sounding
    s.pump()
    clock.set(10.6)  # off(60) 100 ms late: still sent, counted late
    s.pump()
    assert [(m.type, m.note) for _, m in out.sent] == [("note_on", 60), ("note_off", 60)]
    assert s.dropped_late == 1 and s.late == 1 and not s.open_notes


def test_restrike_closes_the_sounding_note_first(rig):
    clock, out, s = rig
    s.schedule(10.0, on(60))
    s.schedule(10.1, on(60))
    s.schedule(10.2, off(60))
    for t in (10.0, 10.1, 10.2):
        clock.set(t)
        s.pump()
    assert [m.type for _, m in out.sent] == ["note_on", "note_off", "note_on", "note_off"]


def test_channel_and_velocity_scaling(rig):
    clock, out, s = rig
    s.channel, s.velocity_scale = 9, 2.0
    s.schedule(10.0, on(60, 100))
    s.schedule(10.0, on(61, 10))
    s.schedule(10.0, mido.Message("note_on", note=60, velocity=0))  # a note-off in disguise
    s.pump()
    assert [(m.type, m.channel, m.velocity) for _, m in out.sent] == [
        ("note_on", 9, 127), ("note_on", 9, 20), ("note_off", 9, 0)]


def test_cut_drops_the_queue_and_closes_open_notes_now(rig):
    clock, out, s = rig
    for i, n in enumerate((60, 64, 67)):
        s.schedule(10.0, on(n))
        s.schedule(11.0 + i, off(n))
    s.schedule(10.5, on(72))
    s.pump()
    assert s.open_notes == {(0, 60), (0, 64), (0, 67)}
    assert s.cut() == [60, 64, 67]
    assert s.pending() == 0 and not s.open_notes
    assert [m.type for _, m in out.sent[-3:]] == ["note_off"] * 3


def test_panic_sends_all_notes_and_sound_off_on_16_channels(rig):
    clock, out, s = rig
    s.schedule(10.0, on(60))
    s.pump()
    s.panic()
    ccs = {(m.channel, m.control) for _, m in out.sent if m.type == "control_change"}
    assert ccs == {(ch, cc) for ch in range(16) for cc in (120, 123)}
    assert out.sent[1][1].type == "note_off" and not s.open_notes


def test_cancel_after_keeps_what_is_due_by_then(rig):
    clock, out, s = rig
    s.schedule(10.1, on(60))
    s.schedule(10.2, off(60))
    s.schedule(10.3, on(62))
    assert s.cancel_after(10.2) == 1 and s.pending() == 2


def test_thread_sends_on_time_and_stop_closes_notes():
    loop = Loopback()
    got = []
    from agent.midi.ports import LoopbackInput
    LoopbackInput(loop, "out", lambda m, t: got.append((t, m)))
    s = Scheduler(LoopbackOutput(loop, "out"), RealClock(), spin_s=0.001).start()
    t0 = time.perf_counter() + 0.02
    for i in range(5):
        s.schedule(t0 + i * 0.01, on(60 + i))
    s.schedule(t0 + 10, off(60))
    assert wait_for(lambda: len(got) >= 5, 10), got  # the five note-ons arrived (the deadline only bounds a failure)
    assert [m.note for _, m in got] == [60, 61, 62, 63, 64]
    assert all(e >= 0 for e in s.errors_s)  # never early (lateness is for the benchmark, not a unit test)
    assert sorted(s.stop()) == [60, 61, 62, 63, 64]
    assert [m.type for _, m in got[5:10]] == ["note_off"] * 5
    # then all-notes-off on the channel played, twice (a JACK xrun may drop one cycle of events), the
    # second a cycle later: a lower bound set by stop()'s own wait, which a loaded machine only lengthens
    assert [(m.type, m.control, m.channel) for _, m in got[10:]] == [("control_change", 123, 0)] * 2
    assert got[11][0] - got[10][0] >= 0.009


def test_a_lost_port_stops_the_thread_and_reports():
    loop = Loopback()
    errors = []
    s = Scheduler(LoopbackOutput(loop, "gone"), RealClock(), on_error=errors.append).start()
    s.schedule(time.perf_counter(), on(60))
    assert wait_for(lambda: s.open_notes == {(0, 60)}, 10), s.open_notes  # the thread sent it
    loop.break_bus("gone")
    s.schedule(time.perf_counter(), on(62))
    assert wait_for(lambda: errors, 10), "the lost port was not reported"
    assert isinstance(errors[0], PortLost) and isinstance(s.error, PortLost)
    assert not s.open_notes  # bookkeeping cleared: nothing left to close on a dead port


def test_never_more_than_max_polyphony_notes_sound_at_once(rig):
    clock, out, s = rig
    s.max_polyphony = 3
    for i, p in enumerate((60, 62, 64, 65, 67)):
        s.schedule(10.0 + i * 0.01, on(p))
    s.schedule(10.1, off(65))  # its note-on was dropped: nothing to close
    s.schedule(10.1, off(60))
    s.schedule(10.2, on(69))  # room again
    for t in (10.0, 10.01, 10.02, 10.03, 10.04, 10.1, 10.2):
        clock.set(t)
        s.pump()
    sent = [(m.type, m.note) for _, m in out.sent]
    assert sent == [("note_on", 60), ("note_on", 62), ("note_on", 64), ("note_off", 60), ("note_on", 69)]
    assert s.dropped_polyphony == 2 and len(s.open_notes) == 3


def test_a_note_sounding_past_max_note_s_is_closed_on_time_by_the_scheduler(rig):
    clock, out, s = rig
    s.max_note_s = lambda: 2.0
    s.schedule(10.0, on(60))
    s.schedule(10.5, on(64))
    s.schedule(11.0, off(64))  # 64 ends on its own
    s.schedule(15.0, off(60))  # 60's note-off comes far too late (the deciding thread was held up)
    for t in (10.0, 10.5, 11.0, 11.9, 11.988, 12.5, 15.0):
        clock.set(t)
        s.pump()
    # closed BACKSTOP_MARGIN_S (12 ms) before the limit: heard within it after a transport's cycle
    assert [(t, m.type, m.note) for t, m in out.sent] == [
        (10.0, "note_on", 60), (10.5, "note_on", 64), (11.0, "note_off", 64), (11.988, "note_off", 60)]
    assert s.limited == 1 and not s.open_notes  # 64's deadline (12.5) found it closed: nothing sent


def test_a_restruck_note_gets_a_fresh_deadline(rig):
    clock, out, s = rig
    s.max_note_s = lambda: 2.0
    s.schedule(10.0, on(60))
    s.schedule(11.5, on(60))  # re-strike: off, on; the first deadline (12.0) must not cut the new note
    for t in (10.0, 11.5, 11.988, 13.0, 13.488):
        clock.set(t)
        s.pump()
    assert [(t, m.type) for t, m in out.sent] == [
        (10.0, "note_on"), (11.5, "note_off"), (11.5, "note_on"), (13.488, "note_off")]
    assert s.limited == 1
