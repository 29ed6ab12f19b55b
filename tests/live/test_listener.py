"""The listener: sustain pedal, echo filter, CCs, MIDI clock, and messages it must ignore."""
from __future__ import annotations

import mido

from agent.music.tempomap import FakeClock
from agent.live.listener import EchoFilter, Listener
from agent.live.scheduler import Scheduler


class RecJam:
    def __init__(self):
        self.notes, self.ends = [], []

    def player_note(self, pitch, velocity, on, t_s):
        self.notes.append((pitch, on, t_s))

    def phrase_end(self, t_s):
        self.ends.append(t_s)

    def tick(self, now):
        return now + 1


def cc(n, v):
    return mido.Message("control_change", control=n, value=v)


def test_sustain_pedal_holds_released_notes_until_it_lifts():
    jam = RecJam()
    li = Listener(jam, FakeClock())
    li.handle(mido.Message("note_on", note=60, velocity=80), 1.0)
    li.handle(cc(64, 127), 1.1)
    li.handle(mido.Message("note_off", note=60), 1.2)  # held by the pedal: still sounding
    li.handle(mido.Message("note_on", note=64, velocity=80), 1.3)
    li.handle(mido.Message("note_on", note=64, velocity=0), 1.4)  # velocity-0 note-on is a note-off
    assert jam.notes == [(60, True, 1.0), (64, True, 1.3)]
    li.handle(cc(64, 0), 2.0)
    assert jam.notes[2:] == [(60, False, 2.0), (64, False, 2.0)]


def test_echo_of_our_own_output_is_not_the_players():
    jam = RecJam()
    echo = EchoFilter(window_s=0.1)
    li = Listener(jam, FakeClock(), echo=echo)
    echo.sending(mido.Message("note_on", note=72, velocity=90), 5.0)
    echo.sending(mido.Message("note_off", note=72), 5.5)
    echo.sending(mido.Message("note_on", note=60, velocity=90), 6.0)
    li.handle(mido.Message("note_on", note=72, velocity=90), 5.01)  # the loop brings it back
    li.handle(mido.Message("note_off", note=72), 5.51)  # and its note-off
    li.handle(mido.Message("note_on", note=72, velocity=90), 5.6)  # a second one is the player's
    li.handle(mido.Message("note_off", note=72), 5.8)
    li.handle(mido.Message("note_on", note=60, velocity=70), 6.2)  # same pitch, long after: the player's
    assert jam.notes == [(72, True, 5.6), (72, False, 5.8), (60, True, 6.2)] and echo.echoes == 2


def test_an_echo_is_known_by_pitch_and_timing_whatever_a_thru_does_to_its_channel_and_velocity():
    """Issue 21 item 10: a DAW's thru that moves the agent's notes to another channel and puts them
    through a velocity curve sent them back as the player's (the answer withdrawn, again and again)."""
    jam = RecJam()
    echo = EchoFilter(window_s=0.02)
    li = Listener(jam, FakeClock(), echo=echo)
    echo.sending(mido.Message("note_on", channel=0, note=72, velocity=90), 5.0)
    echo.sending(mido.Message("note_off", channel=0, note=72), 5.5)
    li.handle(mido.Message("note_on", channel=3, note=72, velocity=64), 5.004)  # thru: channel 4, a curve
    li.handle(mido.Message("note_on", channel=3, note=72, velocity=0), 5.505)  # its note-off as a zero note-on
    assert jam.notes == [] and echo.echoes == 2
    echo.sending(mido.Message("note_on", channel=0, note=60, velocity=90), 6.0)
    li.handle(mido.Message("note_on", channel=3, note=62, velocity=90), 6.002)  # another pitch: the player's
    li.handle(mido.Message("note_off", channel=3, note=60), 6.003)  # a release is never a note-on's echo
    li.handle(mido.Message("note_on", channel=3, note=60, velocity=30), 6.05)  # outside the window: the player's
    assert jam.notes == [(62, True, 6.002), (60, False, 6.003), (60, True, 6.05)] and echo.echoes == 2


def test_an_echo_that_arrives_before_the_send_returns_is_still_ours():
    # a loop that delivers inside output.send (loopback; a fast DAW thru): the listener sees the
    # echo before the scheduler's send has returned, so the filter must have been told before it
    clock, jam, echo = FakeClock(), RecJam(), EchoFilter(window_s=0.1)
    li = Listener(jam, clock, echo=echo)

    class LoopOut:
        name = "loop"

        def send(self, msg):
            li.handle(msg, clock.now())

    sched = Scheduler(LoopOut(), clock)
    sched.sending_hooks.append(echo.sending)
    t0 = clock.now()
    sched.schedule(t0, mido.Message("note_on", note=67, velocity=100))
    sched.schedule(t0 + 0.5, mido.Message("note_off", note=67))
    sched.pump()
    clock.advance(0.5)
    sched.pump()
    assert jam.notes == [] and echo.echoes == 2


def test_non_note_messages_are_ignored_without_crashing():
    jam = RecJam()
    li = Listener(jam, FakeClock())
    for msg in [mido.Message("active_sensing"), mido.Message("sysex", data=[1, 2, 3]),
                mido.Message("aftertouch", value=3), mido.Message("polytouch", note=60, value=3),
                mido.Message("program_change", program=5), mido.Message("pitchwheel", pitch=100),
                mido.Message("reset")]:
        li.handle(msg, 1.0)
    assert jam.notes == [] and sum(li.ignored.values()) == 7  # (song position is the clock in's: test_clockin)


def test_end_phrase_and_temperature_ccs_and_midi_clock():
    jam = RecJam()
    controls, tempos, transport = [], [], []
    li = Listener(jam, FakeClock(), end_phrase_cc=20, on_control=lambda c, v, t: controls.append((c, v)),
                  on_tempo=lambda bpm, t: tempos.append(bpm), on_transport=lambda k, t: transport.append(k))
    li.handle(cc(20, 127), 3.0)
    li.handle(cc(20, 0), 3.1)  # release: not a second end
    li.handle(cc(21, 64), 3.2)
    assert jam.ends == [3.0] and (21, 64) in controls
    li.handle(mido.Message("start"), 4.0)
    for i in range(49):  # two beats of 24 ppq clock at 150 bpm
        li.handle(mido.Message("clock"), 4.0 + i * 60 / 150 / 24)
    li.handle(mido.Message("stop"), 6.0)
    assert transport == ["start", "stop"] and abs(tempos[-1] - 150) < 0.5


def test_the_thread_feeds_queued_messages_in_order_and_stops():
    import time
    from agent.music.tempomap import RealClock

    jam = RecJam()
    li = Listener(jam, RealClock()).start()
    for i in range(20):
        li.receive(mido.Message("note_on", note=40 + i, velocity=50), float(i))
    deadline = time.perf_counter() + 2
    while len(jam.notes) < 20 and time.perf_counter() < deadline:
        time.sleep(0.01)
    li.stop()
    assert [n for n, _, _ in jam.notes] == list(range(40, 60)) and not li.alive


def test_the_echo_filter_forgets_sends_too_old_to_come_back():
    echo = EchoFilter(window_s=0.1)
    for k in range(100):
        echo.sending(mido.Message("note_on", note=60 + k % 12, velocity=90), k * 0.01)
    # a note long after: nothing it could be an echo of is kept, and it is the player's
    assert not echo.is_echo(mido.Message("note_on", note=60, velocity=90), 5.0)
    assert len(echo._sent) == 0


def test_the_players_unison_with_the_agent_is_not_taken_for_an_echo():
    """Accompany: the player hits the agent's pitch (even at its velocity) 40 ms after the agent."""
    jam = RecJam()
    echo = EchoFilter()  # the default window
    li = Listener(jam, FakeClock(), echo=echo)
    echo.sending(mido.Message("note_on", note=64, velocity=90), 5.0)
    li.handle(mido.Message("note_on", note=64, velocity=90), 5.001)  # the loop brings the agent's note back
    li.handle(mido.Message("note_on", note=64, velocity=90), 5.04)  # the player's own, in unison
    li.handle(mido.Message("note_off", note=64), 5.3)  # the player lets go; the agent still holds it
    assert jam.notes == [(64, True, 5.04), (64, False, 5.3)] and echo.echoes == 1
    echo.sending(mido.Message("note_off", note=64), 5.5)
    li.handle(mido.Message("note_off", note=64), 5.501)  # the agent's note-off, echoed
    assert len(jam.notes) == 2 and echo.echoes == 2
    # no MIDI loop at all (the usual rig): a unison 40 ms after the agent's note is the player's
    echo.sending(mido.Message("note_on", note=67, velocity=90), 6.0)
    li.handle(mido.Message("note_on", note=67, velocity=90), 6.04)
    assert jam.notes[-1] == (67, True, 6.04) and echo.echoes == 2
