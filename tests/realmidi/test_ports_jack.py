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
