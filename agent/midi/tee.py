"""One output that sends to several: the agent's port and the extra outputs a session adds."""
from __future__ import annotations


class Tee:
    """One output that sends to several (e.g. loopback + a real virtual port)."""

    def __init__(self, *outputs) -> None:
        self.outputs = outputs
        self.name = " + ".join(o.name for o in outputs)

    def send(self, msg) -> None:
        """Every output gets msg even if one fails (a note-off must still reach the others); then it raises."""
        self._each(lambda o: o.send(msg))

    def close(self) -> None:
        self._each(lambda o: o.close())

    def _each(self, fn) -> None:
        error = None
        for o in self.outputs:
            try:
                fn(o)
            except Exception as exc:
                error = error or exc
        if error is not None:
            raise error
