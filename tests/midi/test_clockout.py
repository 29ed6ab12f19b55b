"""MIDI clock out: 24 pulses a beat on the tempo map's beat; start, stop and song position; smooth
tempo and phase changes (fake clock, pump); the thread and the engine's wiring on loopback ports."""
from __future__ import annotations

import mido
import pytest

from agent.config import load_config
from agent.live.engine import Engine
from agent.midi.clockout import SLEW, ClockOut, open_clock_port
from agent.midi.ports import Loopback, Ports
from agent.music.tempomap import FakeClock, RealClock, TempoMap
from helpers import wait_for
from scripted import ScriptedPredictor

T0 = 1000.0


class ListOutput:
    def __init__(self, name: str = "list", fail_after: int = -1) -> None:
        self.name, self.got, self.closed, self.fail_after = name, [], False, fail_after

    def send(self, msg) -> None:
        if len(self.got) == self.fail_after:
            raise OSError("the port went away")
        self.got.append(msg)

    def close(self) -> None:
        self.closed = True


def rig(bpm: float = 120.0):
    clock = FakeClock(T0)
    tempo = TempoMap(bpm, T0)
    out = ListOutput()
    return clock, tempo, out, ClockOut(out, tempo, clock)


def run(co: ClockOut, clock: FakeClock, until_s: float, step_s: float = 0.0005) -> None:
    """Advance the fake clock to until_s, pumping as the thread would."""
    while clock.now() < until_s:
        clock.advance(step_s)
        co.pump()


def clocks(co: ClockOut) -> list[float]:
    return [due for due, _, status in co.sent if status == 0xF8]


def test_play_starts_on_the_next_bar_line_and_pulses_24_a_beat_on_the_maps_beat():
    clock, tempo, out, co = rig(120.0)
    clock.advance(0.3)  # beat 0.6: the next bar line is beat 4
    co.play()
    run(co, clock, T0 + 4.0)
    kinds = [m.type for m in out.got]
    assert kinds[:2] == ["start", "clock"] and set(kinds[2:]) == {"clock"}
    ts = clocks(co)
    assert ts[0] == pytest.approx(tempo.time(4.0), abs=1e-9)
    assert len(ts) == 4 * 24 + 1  # beats 4..8 at 120 bpm, both ends
    assert max(abs(t - tempo.time(4.0 + n / 24)) for n, t in enumerate(ts)) == pytest.approx(0.0, abs=1e-9)


def test_a_tempo_change_reaches_the_clock_at_the_next_pulse_and_no_interval_jumps_more_than_it():
    clock, tempo, out, co = rig(120.0)
    co.play()
    run(co, clock, T0 + 3.0)
    tempo.set_bpm(90.0, clock.now())  # the REPL's `tempo 90`, between two pulses
    run(co, clock, T0 + 8.0)
    ts = clocks(co)
    gaps = [b - a for a, b in zip(ts, ts[1:])]
    after = [g for a, g in zip(ts, gaps) if a > T0 + 3.0]
    # 90 bpm from the next pulse; the pulse in flight was planned at 120, so the clock is a little early on
    # the map's beat and corrects that by at most SLEW of an interval per pulse: gone within a beat
    assert after[1:] == pytest.approx([60 / 90 / 24] * (len(after) - 1), rel=SLEW + 1e-9)
    assert after[24:] == pytest.approx([60 / 90 / 24] * (len(after) - 24), abs=1e-6)
    steps = [b / a for a, b in zip(gaps, gaps[1:])]
    assert max(steps) <= 120 / 90 * (1 + SLEW) + 1e-9  # the follower's own change (and the phase's SLEW), no more


def test_when_the_follower_moves_the_beat_the_clock_catches_up_smoothly():
    clock, tempo, out, co = rig(100.0)
    co.play()
    run(co, clock, T0 + 4.0)
    t = clock.now()
    tempo.align(100.0, t + 0.3 * 0.6)  # the follower puts a beat 0.3 beat later than the map had it
    moved = tempo.beat(t)
    run(co, clock, T0 + 40.0)
    ts = clocks(co)
    nominal = 60 / 100 / 24
    gaps = [b - a for a, b in zip(ts, ts[1:])]
    assert max(abs(g / nominal - 1) for g in gaps) <= SLEW + 1e-9  # never more than SLEW off the tempo
    n = len(ts) - 1  # the last pulse sits on the map's beat again
    assert ts[-1] - tempo.time(4.0 + n / 24) == pytest.approx(0.0, abs=0.0005), moved


@pytest.mark.parametrize("shift", [0.3, -0.3])
def test_a_big_change_of_the_followers_tempo_and_phase_is_caught_up_in_two_beats_and_no_jump_exceeds_it(shift):
    clock, tempo, out, co = rig(84.0)
    co.play()
    run(co, clock, T0 + 5.0)
    t = clock.now()
    tempo.align(126.0, t + shift * 60 / 84)  # the player went to 126: the follower's beat 0.3 beat later (earlier)
    run(co, clock, T0 + 12.0)
    ts = clocks(co)
    gaps = [b - a for a, b in zip(ts, ts[1:])]
    steps = [max(b / a, a / b) for a, b in zip(gaps, gaps[1:])]
    assert max(steps) <= 126 / 84 * (1 + SLEW) + 1e-9  # no jump larger than the follower's own change
    after = [(x, n) for n, x in enumerate(ts) if x > t]
    n0 = after[0][1]
    off_map = [abs(x - tempo.time(4.0 + n / 24)) for x, n in after]  # 143 or 214 ms at the change
    assert max(off_map[48:]) == pytest.approx(0.0, abs=0.001)  # two beats after the change, and on
    assert max(off_map[72:]) == pytest.approx(0.0, abs=0.00005)
    assert gaps[n0 + 48:] == pytest.approx([60 / 126 / 24] * len(gaps[n0 + 48:]), rel=SLEW + 1e-6)


def test_a_jump_sends_stop_then_the_song_position_and_continue_on_the_next_beat():
    clock, tempo, out, co = rig(120.0)
    co.play()
    run(co, clock, T0 + 3.0)
    tempo.locate(18.0 - 0.3, clock.now())  # clock in: continue at bar 5 beat 3, a little before the beat
    co.jump()
    co.pump()
    assert out.got[-1].type == "stop"
    run(co, clock, T0 + 4.0)
    i = [m.type for m in out.got].index("stop")
    assert [m.type for m in out.got[i + 1:i + 4]] == ["songpos", "continue", "clock"]
    assert out.got[i + 1].pos == 72  # sixteenths: beat 18
    assert clocks(co)[-24 * 0 - 1] >= tempo.time(18.0) - 1e-9
    first = [d for d, _, s in co.sent if s == 0xFB][0]
    assert first == pytest.approx(tempo.time(18.0), abs=1e-9)


def test_halt_sends_stop_and_close_sends_stop_once_and_closes_the_port():
    clock, tempo, out, co = rig(120.0)
    co.play()
    run(co, clock, T0 + 3.0)
    co.halt()
    run(co, clock, T0 + 4.0)
    assert out.got[-1].type == "stop" and co.next_due() is None
    co.play()
    run(co, clock, T0 + 6.0)
    co.close()
    co.close()
    assert out.got[-1].type == "stop" and [m.type for m in out.got].count("stop") == 2 and out.closed


def test_the_thread_sends_start_pulses_and_stop_and_a_lost_port_stops_only_the_clock():
    tempo = TempoMap(600.0, RealClock().now())  # 4.2 ms pulses: a few hundred in well under a second
    out = ListOutput()
    errors = []
    co = ClockOut(out, tempo, RealClock(), on_error=errors.append).start()
    co.play()
    assert wait_for(lambda: len(out.got) >= 60)
    co.close()
    kinds = [m.type for m in out.got]
    assert kinds[0] == "start" and kinds[-1] == "stop" and set(kinds[1:-1]) == {"clock"}
    failing = ListOutput(fail_after=10)
    co = ClockOut(failing, tempo, RealClock(), on_error=errors.append).start()
    co.play()
    assert wait_for(lambda: errors)
    assert len(errors) == 1 and not co._thread.is_alive()
    co.close()
    assert failing.closed


def test_the_clock_port_is_ours_made_virtual_or_an_existing_one_found_by_part_of_its_name():
    loop = Loopback()
    ports = Ports("loopback", loop=loop)
    ports.open_output("Drum Machine MIDI 1")
    ports.open_input("Antiphon In", lambda m, t: None)
    assert open_clock_port(ports, "Antiphon", virtual_name="Antiphon", exclude=["Antiphon In"]).name == "Antiphon"
    assert open_clock_port(ports, "virtual", virtual_name="Antiphon").name == "Antiphon Clock"
    assert open_clock_port(ports, "drum", virtual_name="Antiphon").name == "Drum Machine MIDI 1"
    assert open_clock_port(ports, "Sync Out", virtual_name="Antiphon").name == "Sync Out"


def test_the_engine_sends_clock_while_it_plays_and_stop_when_it_stops():
    loop = Loopback()
    cfg = load_config(overrides=['sync.clock_out="virtual"', 'timing.source="fixed"', "timing.bpm=300.0"])
    eng = Engine(cfg, ScriptedPredictor(cfg.vocab()), ports=Ports("loopback", loop=loop), input_name="keyboard",
                 virtual_name="Antiphon", report=lambda s: None)
    heard = []
    Ports("loopback", loop=loop).open_input("Antiphon Clock", lambda m, t: heard.append(m))
    eng.start()
    try:
        assert wait_for(lambda: sum(m.type == "clock" for m in heard) >= 48)
    finally:
        eng.stop()
    kinds = [m.type for m in heard]
    assert kinds[0] == "start" and kinds[-1] == "stop" and set(kinds[1:-1]) == {"clock"}


def test_following_midi_clock_in_the_clock_out_follows_its_start_song_position_and_stop():
    loop = Loopback()
    cfg = load_config(overrides=['sync.clock_out="virtual"', 'timing.source="clock"'])
    eng = Engine(cfg, ScriptedPredictor(cfg.vocab()), ports=Ports("loopback", loop=loop), input_name="keyboard",
                 virtual_name="Antiphon", report=lambda s: None)
    heard = []
    Ports("loopback", loop=loop).open_input("Antiphon Clock", lambda m, t: heard.append(m))
    eng.start()
    try:
        daw = Ports("loopback", loop=loop).open_output("keyboard")
        daw.send(mido.Message("songpos", pos=36))  # bar 3, beat 2
        daw.send(mido.Message("continue"))
        for _ in range(2 * 24 + 1):  # two beats of clock at 120 bpm
            daw.send(mido.Message("clock"))
            RealClock().sleep_until(RealClock().now() + 60 / 120 / 24)
        daw.send(mido.Message("stop"))
        assert wait_for(lambda: heard and heard[-1].type == "stop")
    finally:
        eng.stop()
    kinds = [m.type for m in heard]
    assert "start" not in kinds and kinds.count("continue") >= 1  # not from the beginning: where the DAW is
    spp = [m.pos for m in heard if m.type == "songpos"]
    assert spp[0] == 40  # the next whole beat after the DAW's position (beat 9: bar 3, beat 2), in sixteenths


def test_the_readers_figures_pair_pulses_from_the_last_and_take_the_planned_intervals_out():
    from agent.bench.clock import clock_bpm, clock_figures

    due = [10.0 + 0.02 * i + (0.005 if i > 50 else 0.0) for i in range(100)]  # the plan moved 5 ms once
    sent = [(9.99, 9.99, 0xFA)] + [(d, d, 0xF8) for d in due] + [(12.5, 12.5, 0xFC)]
    late = {60: 0.0021}  # one pulse heard 2.1 ms late; the reader joined after the first 10
    got = [(d + 0.001 + late.get(i, 0.0), [0xF8]) for i, d in enumerate(due) if i >= 10] + [(12.501, [0xFC])]
    fig = clock_figures(sent, got)
    assert (fig["pulses_sent"], fig["pulses_got"]) == (100, 90)
    assert fig["clock_jitter_max_ms"] == pytest.approx(2.1, abs=1e-6)  # the moved plan is not jitter
    assert fig["clock_first"] == 0xFC and fig["clock_last"] == 0xFC  # it never heard the Start
    assert clock_bpm([0.02 * i for i in range(25)])[0][1] == pytest.approx(125.0, abs=1e-9)


def test_ctrl_c_in_antiphon_play_sends_stop_last_and_closes_the_clock_port(capsys):
    """play's run loop, interrupted as Ctrl-C interrupts it (KeyboardInterrupt in the main thread) once
    the clock runs: Stop is the last message, the port is closed and the clock's thread has ended."""
    import _thread
    import threading

    from agent.ui.commands.play import run_until_stopped

    loop = Loopback()
    cfg = load_config(overrides=['sync.clock_out="virtual"', 'timing.source="fixed"', "timing.bpm=300.0"])
    eng = Engine(cfg, ScriptedPredictor(cfg.vocab()), ports=Ports("loopback", loop=loop), input_name="keyboard",
                 virtual_name="Antiphon", report=lambda s: None)
    heard = []
    Ports("loopback", loop=loop).open_input("Antiphon Clock", lambda m, t: heard.append(m))
    eng.start()
    out = eng.clock_sync.out

    def ctrl_c() -> None:
        wait_for(lambda: sum(m.type == "clock" for m in heard) >= 48)
        _thread.interrupt_main()

    threading.Thread(target=ctrl_c, daemon=True).start()
    assert run_until_stopped(eng, seconds=30.0) == 0
    kinds = [m.type for m in heard]
    assert kinds[0] == "start" and kinds[-1] == "stop" and kinds.count("clock") >= 48
    assert out.output.closed and not out._thread.is_alive()
