"""agent/midi/rtoutput.py: what each backend reports on a failed send becomes PortLost (rtmidi stand-in)."""
from __future__ import annotations

import mido
import pytest

rtmidi = pytest.importorskip("rtmidi")

from agent.errors import PortLost  # noqa: E402
from agent.midi.rtoutput import RtOutput  # noqa: E402


class StandIn:
    """Calls the error callback as rtmidi does: within the failing call, on its thread."""

    def __init__(self, report=None, raises=None) -> None:
        self.report, self.raises, self.sent, self.callback = report, raises, [], None

    def set_error_callback(self, fn) -> None:
        self.callback = fn

    def send_message(self, data) -> None:
        if self.raises:
            raise self.raises
        if self.report:
            self.callback(*self.report)
            return
        self.sent.append(data)


def test_alsa_and_coremidi_report_a_failed_send_as_a_warning():
    out = RtOutput(StandIn(report=(rtmidi.ERRORTYPE_WARNING, "MidiOutAlsa::sendMessage: error sending MIDI message to port.")), "Synth")
    with pytest.raises(PortLost, match="'Synth'.*error sending"):
        out.send(mido.Message("note_on", note=60))


def test_winmm_raises_a_driver_error():
    out = RtOutput(StandIn(raises=rtmidi.SystemError("MidiOutWinMM::sendMessage: error sending MIDI message.")), "X")
    with pytest.raises(PortLost, match="'X'"):
        out.send(mido.Message("note_on", note=60))


def test_a_good_send_goes_out_and_an_unrelated_warning_is_only_logged(caplog):
    rt = StandIn()
    out = RtOutput(rt, "Synth")
    out.send(mido.Message("note_on", note=60, velocity=90))
    rt.callback(rtmidi.ERRORTYPE_WARNING, "MidiInJack::openPort: something else")
    out.send(mido.Message("note_off", note=60))
    assert rt.sent == [[0x90, 60, 90], [0x80, 60, 64]] and "something else" in caplog.text
