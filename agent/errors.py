"""The one base class for errors a user can fix; the CLI prints them without a traceback."""


class AntiphonError(Exception):
    """Bad input or setup: the message says what was wrong and where. CLI exit status 2."""
