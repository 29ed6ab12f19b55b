"""agent/midi/ports.py on real rtmidi ports under JACK: names already taken, a lost port raises PortLost."""
from __future__ import annotations

import pytest

from agent.errors import PortError

pytestmark = [pytest.mark.realmidi]


def test_a_virtual_port_name_already_taken_is_refused_by_name(jack_env):
    """Two instances with the same virtual port names: JACK would rename the second's client and a
    player would reach only one of them, so the second is refused, naming the port that has it."""
    from agent.midi.ports import Ports

    first = Ports("jack")
    out = first.open_output(virtual_name="Antiphon")
    inp = first.open_input("Antiphon in", lambda m, t: None, virtual=True)
    try:
        second = Ports("jack")
        with pytest.raises(PortError, match=r"a MIDI output named 'Antiphon' exists already \(.*:Antiphon\)"):
            second.open_output(virtual_name="Antiphon")
        with pytest.raises(PortError, match=r"a MIDI input named 'Antiphon in' exists already"):
            second.open_input("Antiphon in", lambda m, t: None, virtual=True)
        other = second.open_output(virtual_name="Antiphon 2")  # another name is fine
        other.close()
    finally:
        out.close()
        inp.close()


class _Failing:
    """A real rtmidi client whose sends fail as WinMM's do when the device is unplugged."""

    def __init__(self, rt) -> None:
        self.rt = rt

    def send_message(self, data) -> None:
        import rtmidi

        raise rtmidi.SystemError("MidiOutWinMM::sendMessage: error sending MIDI message.")

    def __getattr__(self, name):
        return getattr(self.rt, name)


def test_a_send_the_backend_reports_failing_raises_port_lost(jack_env):
    """So that the scheduler tells the port watcher at once, with real ports as with the loopback."""
    import mido

    from agent.errors import PortLost
    from agent.midi.ports import Ports

    ports = Ports("jack")
    synth = ports.open_input("Synth", lambda m, t: None, virtual=True)
    out = ports.open_output("Synth")
    try:
        out.send(mido.Message("note_on", note=60))  # a working port sends
        out._rt = _Failing(out._rt)
        with pytest.raises(PortLost, match="Synth"):
            out.send(mido.Message("note_on", note=61))
    finally:
        out._rt = getattr(out._rt, "rt", out._rt)
        out.close()
        synth.close()
