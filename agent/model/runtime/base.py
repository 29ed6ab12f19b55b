"""The one small interface every inference backend offers.

A backend runs one LSTM step for one token and hands back the logits and the
new state. The state is opaque to callers: (h, c) numpy arrays for the CPU
backends, device tensors for CUDA. Callers never mutate a state; they keep
the one `step` returned, and a snapshot of the model is just a reference to
it, unless the backend reuses buffers (the CUDA graph does), in which case
`clone_state` makes a real copy.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from agent.errors import AntiphonError

State = Any  # opaque to callers; see the module docstring


class BackendError(AntiphonError):
    """A backend cannot be loaded here (missing file, package or device)."""


class Backend(ABC):
    """`step(token, state) -> (logits, state)` and `initial_state()`.

    `logits` is a float32 array of shape [vocab] (numpy on the CPU backends).
    A backend that samples on its device sets `samples_on_device` and offers
    `sample(logits, bias, controls)`; the predictor then never copies logits
    to the host.
    """

    name: str = "?"
    samples_on_device: bool = False

    def __init__(self, vocab_size: int, layers: int, hidden: int) -> None:
        self.vocab_size = vocab_size
        self.layers = layers
        self.hidden = hidden

    @abstractmethod
    def initial_state(self) -> State:
        """The zero state a piece starts from."""

    @abstractmethod
    def step(self, token: int, state: State) -> tuple[Any, State]:
        """Run one token through the LSTM: (logits [vocab], new state). The old state stays valid."""

    def clone_state(self, state: State) -> State:
        """A copy that later steps cannot change (identity where states are never reused)."""
        return state

    def rng_state(self) -> Any:
        """The device sampler's generator state (None where the host samples)."""
        return None

    def set_rng_state(self, state: Any) -> None:
        """Back to a state `rng_state` returned."""

    def seed_rng(self, seed: int) -> None:
        """Restart the device sampler's generator from `seed` (nothing where the host samples)."""

    def to_host(self, logits) -> "Any":
        """Logits as a numpy float32 array [vocab] (a copy for device backends)."""
        return logits

    def describe(self) -> dict:
        """What a benchmark or a log line should say about this backend."""
        return {"backend": self.name, "layers": self.layers, "hidden": self.hidden, "vocab": self.vocab_size}
