"""The predictor: sole owner of the model state.

One token in, one LSTM step, state carried: `feed` costs one step, never a
re-run of a window. Besides the backend state it keeps the logits for the
next token, a rolling context of the token ids it has seen (to re-prime
from), the recent note-on pitches and the pitches sounding now (for the
sampler's key estimate, anti-collapse guard and polyphony cap), from every
token fed, the player's and its own.

Not thread-safe, by design: one thread owns a Predictor (the listener or the
jam thread); other threads talk to that thread through queues, or hold a lock
for one call. Nothing here sleeps or blocks.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from agent.music.tokens import Vocab, VocabMismatch
from agent.model.folder import ModelDir
from agent.model.runtime import Backend, load_backend
from agent.model.sampler import Sampler, SamplingContext, SamplingControls

PITCH_MEMORY = 256  # recent note-ons kept for the key estimate and the repeat guard


@dataclass
class _Shadow:
    """A re-prime under way: its state and logits, the tokens it has still to hear, steps taken."""

    state: Any
    logits: Any
    todo: deque
    steps: int


@dataclass(frozen=True)
class Snapshot:
    """Everything `rollback` needs; cheap (references, small copies)."""

    state: Any
    logits: Any
    history: tuple[int, ...]
    pitches: tuple[int, ...]
    sounding: frozenset[int]
    steps: int
    rng: Any  # the sampler's generator state, and the device sampler's where there is one


class Predictor:
    """feed / sample / snapshot / rollback / reset / prime over one backend.

    `steps` counts LSTM steps since the last reset (a re-prime counts its own).
    """

    def __init__(self, backend: Backend, vocab: Vocab, *, seed: int | None = None, context_tokens: int = 512) -> None:
        if backend.vocab_size != vocab.size:
            where = getattr(backend, "path", None)
            raise VocabMismatch(f"{where or 'the model'} has {backend.vocab_size} outputs but its vocab.json "
                                f"describes {vocab.size} tokens: the model folder mixes files of two models")
        self.backend = backend
        self.vocab = vocab
        self.sampler = Sampler(vocab, seed)
        self.history: deque[int] = deque(maxlen=context_tokens)
        self.pitches: deque[int] = deque(maxlen=PITCH_MEMORY)
        self.sounding: set[int] = set()
        self.state = None
        self.logits = None
        self.steps = 0
        self._rekey = False  # set by a rollback: the next sample re-keys the generators
        self._shadow: _Shadow | None = None  # a re-prime under way, a few steps at a time
        self.reset()

    # -- construction ----------------------------------------------------------
    @classmethod
    def load(cls, model_dir: str | Path, *, backend: str = "auto", threads: int = 1, quantized: bool = False,
             seed: int | None = None, context_tokens: int = 512) -> "Predictor":
        """A predictor over a model folder (models/<name>), backend by name (see agent.model.runtime)."""
        md = ModelDir.resolve(model_dir)
        vocab = md.vocab()
        be = load_backend(md.path, backend, threads=threads, quantized=quantized, seed=seed)
        return cls(be, vocab, seed=seed, context_tokens=context_tokens)

    @classmethod
    def from_config(cls, cfg, *, seed: int | None = None) -> "Predictor":
        """From a Config: [model] path/backend/threads/quantized, [sampling] seed, [jam] context_tokens."""
        s = cfg.sampling.seed if seed is None else seed
        return cls.load(cfg.model_dir(), backend=cfg.model.backend, threads=cfg.model.threads,
                        quantized=cfg.model.quantized, seed=None if s < 0 else s,
                        context_tokens=cfg.jam.context_tokens)

    # -- the step ----------------------------------------------------------------
    def feed(self, token: int) -> None:
        """One token (anyone's) through the model; the state and the bookkeeping advance."""
        token = int(token)
        v = self.vocab
        if not 0 <= token < v.size:
            raise ValueError(f"token id {token} outside the vocabulary (size {v.size})")
        self.logits, self.state = self.backend.step(token, self.state)
        self.steps += 1
        self.history.append(token)
        if self._shadow is not None:
            self._shadow.todo.append(token)  # the re-primed state must hear it too
        if v.note_on_base <= token < v.note_off_base:
            p = token - v.note_on_base + v.pitch_lo
            self.pitches.append(p)
            self.sounding.add(p)
        elif v.note_off_base <= token < v.shift_base:
            self.sounding.discard(token - v.note_off_base + v.pitch_lo)
        elif token in (v.START, v.END):
            self.sounding.clear()

    def feed_many(self, tokens: Iterable[int]) -> None:
        for t in tokens:
            self.feed(t)

    def context(self) -> SamplingContext:
        """A read-only view for the sampler (no copies: valid until the next feed)."""
        return SamplingContext(self.pitches, self.sounding)

    def sample(self, controls: SamplingControls) -> int:
        """Draw the next token from the current logits, feed it (the state advances), return it."""
        if self._rekey:
            self._rekey_generators()
        ctx = self.context()
        if self.backend.samples_on_device:
            token = self.backend.sample(self.logits, self.sampler.bias(controls, ctx), controls)
        else:
            token = self.sampler.choose(self.logits, controls, ctx)
        self.feed(token)
        return token

    def probabilities(self, controls: SamplingControls):
        """The distribution the next `sample` would draw from (numpy [vocab]); for tests and displays."""
        return self.sampler.distribution(self.backend.to_host(self.logits), controls, self.context())

    # -- state management ---------------------------------------------------------
    def snapshot(self) -> Snapshot:
        be = self.backend
        return Snapshot(be.clone_state(self.state), be.clone_state(self.logits), tuple(self.history),
                        tuple(self.pitches), frozenset(self.sounding), self.steps,
                        (self.sampler.rng.bit_generator.state, be.rng_state()))

    def rollback(self, snap: Snapshot) -> None:
        """Back to a snapshot; the snapshot stays usable for another rollback."""
        be = self.backend
        self._shadow = None  # it heard tokens that are now undone: begin again later
        self.state, self.logits = be.clone_state(snap.state), be.clone_state(snap.logits)
        self.history.clear()
        self.history.extend(snap.history)
        self.pitches.clear()
        self.pitches.extend(snap.pitches)
        self.sounding = set(snap.sounding)
        self.steps = snap.steps
        # Draws that were undone must not move the generators: how far speculation ran ahead
        # depends on the clock, and a seed should repeat whatever was rolled back. Nor may they be
        # drawn again as they were: the next sample re-keys the generators from this state and what
        # was fed since (accompany rolls back at every player event; replaying one stream of draws
        # after each, the same draw met every event, and an unlucky one kept the agent silent).
        self.sampler.rng.bit_generator.state, device_rng = snap.rng
        be.set_rng_state(device_rng)
        self._rekey = True

    def reseed(self, seed: int | None) -> None:
        """The sampler's generator (and a device sampler's) restarted from `seed` (None or < 0: unseeded)."""
        s = None if seed is None or seed < 0 else int(seed)
        self.sampler.seed, self.sampler.rng = s, np.random.default_rng(s)
        if s is not None:
            self.backend.seed_rng(s)
        self._rekey = False  # a seed given is where the draws start, whatever was rolled back before

    def _rekey_generators(self) -> None:
        """New generators after a rollback, keyed by the restored one's next draw, the step and the
        last token fed: the same seed and the same events give the same draws however far
        speculation ran, and each resample after a different event draws afresh."""
        self._rekey = False
        key = [int(self.sampler.rng.integers(2**63)), self.steps, self.history[-1] if self.history else -1]
        self.sampler.rng = np.random.default_rng(key)
        self.backend.seed_rng(int(np.random.SeedSequence(key).generate_state(1, np.uint64)[0] % 2**63))

    def reset(self) -> None:
        """The state of a piece's beginning: zero state, then START fed (as in training)."""
        self.state = self.backend.initial_state()
        self._shadow = None
        self.history.clear()
        self.pitches.clear()
        self.sounding.clear()
        self.steps = 0
        self.feed(self.vocab.START)

    def prime(self, tokens: Iterable[int]) -> None:
        """Reset, then feed `tokens` (a leading START is not fed twice)."""
        tokens = list(tokens)
        self.reset()
        if tokens and tokens[0] == self.vocab.START:
            tokens = tokens[1:]
        self.feed_many(tokens)

    def _reprime_tokens(self) -> list[int]:
        """What a re-prime feeds after START: the rolling context, led by the NOTE_ONs of pitches
        sounding now whose NOTE_ON has left it (the sampler masks the NOTE_OFF of a pitch not
        sounding, so they could never end otherwise)."""
        v = self.vocab
        tokens = list(self.history)
        if tokens and tokens[0] == v.START:
            tokens = tokens[1:]
        opened = {t - v.note_on_base + v.pitch_lo for t in tokens if v.note_on_base <= t < v.note_off_base}
        return [v.note_on(p) for p in sorted(self.sounding - opened)] + tokens

    def reprime(self) -> None:
        """Re-prime from the rolling context now (after a model reload, or against drift); the
        pitch memory is kept as it was. Costs one step per context token: see begin_reprime."""
        pitches = list(self.pitches)
        self.prime([self.vocab.START, *self._reprime_tokens()])
        self.pitches.clear()
        self.pitches.extend(pitches)

    # -- re-priming in the gaps -----------------------------------------------------
    def begin_reprime(self) -> None:
        """Start a re-prime that runs beside the live state, `advance_reprime` steps at a time (in
        the thread's idle time), hearing every token fed meanwhile; when it has caught up its
        state replaces the live one. The result is the state `reprime()` would give then, without
        stopping the music for a whole context's worth of steps."""
        be = self.backend
        keep = be.clone_state(self.state), be.clone_state(self.logits)  # a CUDA graph steps in place
        logits, state = be.step(self.vocab.START, be.initial_state())
        self._shadow = _Shadow(be.clone_state(state), be.clone_state(logits), deque(self._reprime_tokens()), 1)
        self.state, self.logits = keep

    @property
    def repriming(self) -> bool:
        return self._shadow is not None

    def advance_reprime(self, max_steps: int) -> bool:
        """Up to max_steps steps of the re-prime under way; True when it has just taken over."""
        sh = self._shadow
        if sh is None:
            return False
        be = self.backend
        keep = be.clone_state(self.state), be.clone_state(self.logits)  # a CUDA graph steps in place
        for _ in range(min(max_steps, len(sh.todo))):
            sh.logits, sh.state = be.step(sh.todo.popleft(), sh.state)
            sh.steps += 1
        sh.state, sh.logits = be.clone_state(sh.state), be.clone_state(sh.logits)
        self.state, self.logits = keep
        if sh.todo:
            return False
        self.state, self.logits, self.steps = sh.state, sh.logits, sh.steps
        self._shadow = None
        return True

    def describe(self) -> dict:
        return self.backend.describe()
