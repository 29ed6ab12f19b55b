"""Port selection and the in-process loopback; real backends are exercised in tests/realmidi."""
from __future__ import annotations

import mido
import pytest

from agent.midi.ports import PortError, PortLost, Ports, backend_name
from fakes import Loopback


def test_backend_choice(monkeypatch):
    monkeypatch.delenv("MIDO_BACKEND", raising=False)
    assert backend_name("jack") == "mido.backends.rtmidi/UNIX_JACK"
    assert backend_name("alsa") == "mido.backends.rtmidi/LINUX_ALSA"
    assert backend_name("auto") == "mido.backends.rtmidi"
    monkeypatch.setenv("MIDO_BACKEND", "mido.backends.rtmidi/UNIX_JACK")
    assert backend_name("auto") == "mido.backends.rtmidi/UNIX_JACK"
    assert backend_name("loopback") == "loopback"
    with pytest.raises(PortError, match="unknown MIDI backend 'bogus'"):
        backend_name("bogus")


def test_substring_match_names_what_exists():
    names = ["Midi Through:0", "USB Keystation 61:0"]
    assert Ports.match(names, "keystation", "input") == "USB Keystation 61:0"
    with pytest.raises(PortError, match="no MIDI input port matching 'nord'.*Keystation"):
        Ports.match(names, "nord", "input")


def test_loopback_delivers_stamped_messages_and_reports_a_lost_port():
    ports = Ports("loopback", loop=Loopback())
    got = []
    inp = ports.open_input("kbd", lambda m, t: got.append((m, t)))
    out = ports.open_output("kbd")
    out.send(mido.Message("note_on", note=60))
    assert got[0][0].note == 60 and got[0][1] > 0
    assert "kbd" in ports.input_names()
    inp.close()
    out.send(mido.Message("note_on", note=61))
    assert len(got) == 1
    ports.loop.break_bus("kbd")
    with pytest.raises(PortLost):
        out.send(mido.Message("note_off", note=60))


def test_virtual_output_names_the_port():
    ports = Ports("loopback", loop=Loopback())
    assert ports.open_output(virtual_name="Antiphon").name == "Antiphon"


def test_arrivals_are_stamped_on_the_clock_passed_in():
    from agent.music.tempomap import FakeClock

    clock = FakeClock(123.0)
    ports = Ports("loopback", loop=Loopback())
    got = []
    ports.open_input("kbd", lambda m, t: got.append(t), clock=clock)
    out = ports.open_output("kbd")
    out.send(mido.Message("note_on", note=60))
    clock.advance(0.5)
    out.send(mido.Message("note_on", note=61))
    assert got == [123.0, 123.5]


def test_port_part_is_the_name_a_virtual_port_was_given():
    from agent.midi.ports import port_part

    assert port_part("RtMidiOut Client-01:Antiphon") == "Antiphon"  # JACK renames the second client
    assert port_part("RtMidiOut Client:Antiphon 130:0") == "Antiphon"  # ALSA
    assert port_part("Antiphon") == "Antiphon"  # CoreMIDI
    assert port_part("Midi Through:Midi Through Port-0 14:0") == "Midi Through Port-0"
