"""The one base class for errors a user can fix (the CLI prints them without a traceback), and the
port errors, here so that a live thread can catch a lost port without importing the MIDI ports."""


class AntiphonError(Exception):
    """Bad input or setup: the message says what was wrong and where. CLI exit status 2."""


class PortError(AntiphonError):
    """A MIDI port could not be found, opened or created; the message says which and why."""


class PortLost(PortError, OSError):
    """A MIDI port went away while in use (device unplugged, server gone)."""
