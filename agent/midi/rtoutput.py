"""An rtmidi output of our own, so that a send the backend reports failing raises PortLost.

mido's rtmidi output lets rtmidi's own errors through as they come (or only logs them), so a
lost port never reached the scheduler as PortLost and the port watcher heard of it at its
next poll at best. What each backend reports when a send fails:

- WinMM: a driver error (a USB device unplugged): python-rtmidi raises SystemError.
- ALSA, CoreMIDI: "sendMessage: error sending MIDI message ..." as a warning to the error
  callback (the default one only logs it).
- JACK: nothing. A send to a destination that has gone, or after the server has gone, is
  written to our own port and succeeds; the watcher's poll of the port's own client is
  what finds that loss.

Each of the first two raises PortLost from `send`, and the scheduler tells the watcher at once.
"""
from __future__ import annotations

import logging

import mido

from agent.errors import PortLost
from agent.midi.rtinput import open_port

log = logging.getLogger(__name__)


class RtOutput:
    """An opened rtmidi output: `.name`, `.send(msg)`, `.close()`, `.closed`, `._rt` (for liveness checks)."""

    def __init__(self, rt, name: str) -> None:
        import rtmidi

        self._rt, self.name = rt, name
        self.closed = False
        self._failed: str | None = None  # what the error callback said during the send under way
        self._warnings = (rtmidi.ERRORTYPE_WARNING, rtmidi.ERRORTYPE_DEBUG_WARNING)
        rt.set_error_callback(self._on_error)

    def _on_error(self, etype, msg: str, _data=None) -> None:
        """rtmidi's error callback, called within the rtmidi call that failed (on that call's thread)."""
        if etype in self._warnings and "sendMessage" not in msg:
            log.warning("MIDI output %r: %s", self.name, msg)
            return
        self._failed = msg

    def send(self, msg: mido.Message) -> None:
        if self.closed:
            raise PortLost(f"MIDI output {self.name!r} is closed")
        self._failed = None
        try:
            self._rt.send_message(msg.bytes())
        except OSError as exc:  # rtmidi.RtMidiError and its SystemError are OSErrors
            raise PortLost(f"MIDI output {self.name!r}: {exc}") from exc
        if self._failed is not None:
            raise PortLost(f"MIDI output {self.name!r}: {self._failed}")

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._rt.close_port()
        self._rt.delete()


def open_rt_output(api: str | None, name: str, *, virtual: bool) -> RtOutput:
    """Open the output `name` (or create the virtual output `name`) on rtmidi API `api` ('UNIX_JACK'...)."""
    import rtmidi

    api_id = getattr(rtmidi, f"API_{api}") if api else rtmidi.API_UNSPECIFIED
    rt = rtmidi.MidiOut(api_id)
    open_port(rt, name, virtual)
    return RtOutput(rt, name)
