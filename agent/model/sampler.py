"""From logits to one token id: every live sampling control, in numpy.

The controls (`SamplingControls`) are plain validated values, read at every
step, so the REPL can change them while the agent plays. The `Sampler` turns
logits into a token in two parts:

1. an additive *bias* over the vocabulary, built from the controls and the
   context (recent note-on pitches and the pitches sounding now; live, the
   player's and the agent's apart, see `Sampler.parts`):
   pitch range (hard mask), key/scale (soft penalty, or a hard mask at
   key_strength >= 100), polyphony cap (no new pitch while the cap is
   reached), anti-collapse (penalty per recent repeat of a pitch), long-rest
   bias, per-token bias, and a mask on NOTE_OFFs of pitches not sounding;
2. the *draw*: entropy-adaptive temperature, temperature, top-k, top-p, then
   one draw from the seeded generator.

Device backends (CUDA) compute the bias here and do the draw on their device
(same formulas, see runtime/torch_backend.py).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields
from dataclasses import replace as _replace
from typing import AbstractSet, Sequence

import numpy as np

from agent.errors import AntiphonError
from agent.model.echo import FORMS, EchoBias, keep_group_mass
from agent.music.keys import KEYS, KeyNameError, estimate_key, parse_key, scale_pitch_classes
from agent.music.tokens import Vocab

HARD = 100.0  # key_strength at or above this masks off-key notes outright
KEY_WINDOW = 64  # recent note-ons the key estimate looks at


class SamplingError(AntiphonError, ValueError):
    """A sampling control has a value it cannot take; the message names it."""


@dataclass(frozen=True)
class SamplingControls:
    """Every sampling control (config [sampling], less the seed, which the Sampler takes).

    token_bias: extra (token id, logit offset) pairs, e.g. to make END rarer.
    """

    temperature: float = 1.0  # > 0
    top_k: int = 0  # 0 = off
    top_p: float = 1.0  # 0 < p <= 1; 1 = off
    adaptive: bool = False  # entropy-adaptive temperature
    adaptive_min: float = 0.6  # adaptive temperature range at temperature 1
    adaptive_max: float = 1.5
    key: str = "none"  # "none" | "auto" | "D minor" ...
    key_strength: float = 0.0  # logit penalty off the scale; >= 100 masks
    pitch_min: int = 21  # MIDI pitches the agent may start
    pitch_max: int = 108
    max_polyphony: int = 8  # most notes sounding at once
    repeat_penalty: float = 0.0  # logits per recent note-on of the same pitch
    repeat_window: int = 16  # recent note-ons the penalty looks at
    rest_bias: float = 0.0  # added to SHIFTs of a beat or more; < 0 = fewer long rests
    token_bias: tuple[tuple[int, float], ...] = ()
    echo: float = 0.0  # 0..1: how much the answer takes from the session memory (config jam.echo; 0 = off)
    form: str = "continue"  # what it takes (jam.form): continue | echo | vary | contrast (model/echo.py)

    def __post_init__(self) -> None:
        def bad(name: str, why: str) -> SamplingError:
            return SamplingError(f"sampling.{name} = {getattr(self, name)!r}: {why}")

        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, float) and not math.isfinite(v):
                raise bad(f.name, "must be a finite number")
        if not self.temperature > 0:
            raise bad("temperature", "must be > 0")
        if self.top_k < 0:
            raise bad("top_k", "must be >= 0 (0 = off)")
        if not 0 < self.top_p <= 1:
            raise bad("top_p", "must be in (0, 1]")
        if not 0 < self.adaptive_min <= self.adaptive_max:
            raise bad("adaptive_min", f"must be > 0 and <= adaptive_max ({self.adaptive_max})")
        try:
            parse_key(self.key)
        except KeyNameError as exc:
            raise SamplingError(str(exc)) from None
        if self.key_strength < 0:
            raise bad("key_strength", "must be >= 0")
        if not 0 <= self.pitch_min <= self.pitch_max <= 127:
            raise bad("pitch_min", f"range {self.pitch_min}..{self.pitch_max} must lie in 0..127, low <= high")
        if self.max_polyphony < 1:
            raise bad("max_polyphony", "must be >= 1")
        if self.repeat_penalty < 0:
            raise bad("repeat_penalty", "must be >= 0")
        if self.repeat_window < 1:
            raise bad("repeat_window", "must be >= 1")
        if not 0 <= self.echo <= 1:  # set as jam.echo and jam.form
            raise SamplingError(f"jam.echo = {self.echo!r}: must be in 0..1 (0 = off)")
        if self.form not in FORMS:
            raise SamplingError(f"jam.form = {self.form!r}: must be one of {', '.join(FORMS)}")
        for pair in self.token_bias:
            if len(pair) != 2 or not math.isfinite(pair[1]):
                raise bad("token_bias", "must be (token id, finite logit offset) pairs")

    @classmethod
    def from_config(cls, sampling, jam=None) -> "SamplingControls":
        """From a config.SamplingConfig (its `seed` belongs to the Sampler, not here), and the
        config.JamConfig's echo and form when `jam` is given."""
        names = {f.name for f in fields(cls)}
        given = {f.name: getattr(sampling, f.name) for f in fields(sampling) if f.name in names}
        if jam is not None:
            given.update(echo=jam.echo, form=jam.form)
        return cls(**given)

    def replace(self, **changes) -> "SamplingControls":
        """A copy with some controls changed, validated; unknown names are errors."""
        unknown = set(changes) - {f.name for f in fields(self)}
        if unknown:
            raise SamplingError(f"unknown sampling control(s) {', '.join(sorted(unknown))}")
        if "token_bias" in changes:
            changes["token_bias"] = tuple((int(i), float(b)) for i, b in changes["token_bias"])
        return _replace(self, **changes)

    @property
    def parsed_key(self):
        return parse_key(self.key)


@dataclass(frozen=True)
class SamplingContext:
    """What the controls look at besides the logits (read-only views are fine).

    pitches: recent NOTE_ON pitches, oldest first (anyone's: player's and agent's).
    sounding: pitches whose NOTE_ON has not been followed by a NOTE_OFF (anyone's).
    Live, the key and the polyphony cap read the player's and the agent's apart (`Sampler.parts`).
    """

    pitches: Sequence[int] = ()
    sounding: AbstractSet[int] = frozenset()


class Sampler:
    """Seeded sampling over one vocabulary. Not thread-safe (one owner, like the predictor)."""

    def __init__(self, vocab: Vocab, seed: int | None = None) -> None:
        self.vocab = vocab
        self.seed = None if seed is None or seed < 0 else int(seed)
        self.rng = np.random.default_rng(self.seed)
        v = vocab
        self._on = slice(v.note_on_base, v.note_off_base)
        self._off = slice(v.note_off_base, v.shift_base)
        self._pitch_pcs = np.arange(v.pitch_lo, v.pitch_hi + 1) % 12
        # which note-ons fall outside each of the 24 keys: [n_pitches] bool, built once
        self._off_key = {k: ~np.isin(self._pitch_pcs, list(scale_pitch_classes(k))) for k in KEYS}
        self._key_for: bytes = b""
        self._key_est: tuple[int, str] | None = None
        self._static_for: SamplingControls | None = None
        self._static = np.zeros(v.size)
        self._auto_key = False  # the cached controls' key is "auto" (however it was spelt)
        self.last_temperature = 1.0  # the temperature the last draw used (for the REPL)
        # Live, whose notes are whose (the jam's stream): an object with `player_pitches` (the player's
        # recent note-ons, oldest first) and `agent_sounding` (the agent's own pitches sounding). The
        # key is then estimated from the player's notes alone (`hear_key`, at each note the player
        # plays) and the polyphony cap counts the agent's notes alone. None (offline): anyone's.
        self.parts = None
        # Live, the session memory (live/jam/memory.py: `expect(form, tick)`, `hear(...)`): with
        # controls.echo > 0 its expectation is mixed in (model/echo.py); it hears the agent's note-ons
        # as they are drawn here. None (offline, or echo never used): today's sampling exactly.
        self.memory = None
        self._echo: EchoBias | None = None
        self._echo_last: tuple | None = None  # (expectation, echo, register followed) -> its offset

    # -- bias ----------------------------------------------------------------
    def _static_bias(self, c: SamplingControls) -> np.ndarray:
        """The part of the bias that depends on the controls alone (cached)."""
        if c == self._static_for:
            return self._static
        v = self.vocab
        b = np.zeros(v.size)
        pitches = np.arange(v.pitch_lo, v.pitch_hi + 1)
        b[self._on][(pitches < c.pitch_min) | (pitches > c.pitch_max)] = -np.inf
        key = c.parsed_key
        if isinstance(key, tuple):
            b[self._on] += self._key_penalty(key, c.key_strength)
        first_long = v.shift_base + min(v.resolution, v.max_shift) - 1  # SHIFT(resolution): one beat
        b[first_long:v.velocity_base] += c.rest_bias
        for token_id, offset in c.token_bias:
            if not 0 <= token_id < v.size:
                raise SamplingError(f"sampling.token_bias: token id {token_id} outside the vocabulary (size {v.size})")
            b[token_id] += offset
        self._static_for, self._static, self._auto_key = c, b, key == "auto"
        return b

    @property
    def key_heard(self) -> tuple[int, str] | None:
        """The key last estimated (for `key auto`), or None: not enough notes heard yet."""
        return self._key_est

    def hear_key(self, pitches: Sequence[int] | None = None) -> tuple[int, str] | None:
        """Estimate the key from the last KEY_WINDOW of `pitches` (default: the player's, from
        `parts`); the estimate is redone only when the notes changed. Returns it."""
        if pitches is None:
            pitches = self.parts.player_pitches if self.parts is not None else ()
        window = np.fromiter(pitches, np.int64)[-KEY_WINDOW:]
        stamp = window.tobytes()
        if stamp != self._key_for:  # the estimate changes only when the notes do
            self._key_for, self._key_est = stamp, estimate_key(window)
        return self._key_est

    def _key_penalty(self, key: tuple[int, str], strength: float) -> np.ndarray:
        return np.where(self._off_key[key], -np.inf if strength >= HARD else -strength, 0.0)

    def bias(self, c: SamplingControls, ctx: SamplingContext) -> np.ndarray:
        """Additive logit bias [vocab] (float64, -inf = masked) for these controls and context; with
        echo, the session memory's offset added as it is (a device backend draws from this; the host's
        draw also keeps each group's mass, see `_weights`)."""
        b = self._bias(c, ctx)
        echo = self._echo_offset(c)
        if echo is not None:
            b += echo[0]
        return b

    def _echo_offset(self, c: SamplingControls):
        """(offset [vocab], groups) from the session memory at the stream's frontier, or None (echo 0,
        offline, nothing heard yet)."""
        if c.echo <= 0 or self.memory is None or self.parts is None:
            return None
        e = self.memory.expect(c.form, self.parts.enc.tick)
        if e is None:
            return None
        if self._echo is None:
            self._echo = EchoBias(self.vocab)
        v = self.vocab
        follow_register = c.pitch_min <= v.pitch_lo and c.pitch_max >= v.pitch_hi  # a range set is kept
        key = (e, c.echo, follow_register)
        if self._echo_last is None or self._echo_last[0] != key:  # a note-off or a velocity: the same again
            self._echo_last = key, self._echo.bias(e, c.echo, follow_register)
        return self._echo_last[1]

    def _bias(self, c: SamplingControls, ctx: SamplingContext) -> np.ndarray:
        v = self.vocab
        b = self._static_bias(c).copy()
        auto_key = self._auto_key and c.key_strength > 0
        on, off = b[self._on], b[self._off]  # views into b
        sounding = np.fromiter((p - v.pitch_lo for p in ctx.sounding), np.int64, len(ctx.sounding))
        not_sounding = np.ones(v.n_pitches, bool)
        not_sounding[sounding] = False
        off[not_sounding] = -np.inf  # a NOTE_OFF for a silent pitch says nothing
        if self.parts is not None:  # live: the cap is on the agent's notes, not the player's pedalled ones
            own = np.fromiter((p - v.pitch_lo for p in self.parts.agent_sounding if v.pitch_lo <= p <= v.pitch_hi),
                              np.int64)
            not_own = np.ones(v.n_pitches, bool)
            not_own[own] = False
        else:
            own, not_own = sounding, not_sounding
        if len(own) >= c.max_polyphony:
            on[not_own] = -np.inf  # re-striking a sounding pitch of its own keeps the count
        if ctx.pitches and c.repeat_penalty > 0:
            recent = np.fromiter(ctx.pitches, np.int64, len(ctx.pitches))
            counts = np.bincount(recent[-c.repeat_window:] - v.pitch_lo, minlength=v.n_pitches)
            on -= c.repeat_penalty * counts
        if auto_key:
            key = self._key_est if self.parts is not None else self.hear_key(ctx.pitches)  # live: heard as played
            if key is not None:
                off_key = self._off_key[key]
                if c.key_strength >= HARD:
                    on[off_key] = -np.inf
                else:
                    on[off_key] -= c.key_strength
        return b

    # -- draw ----------------------------------------------------------------
    def temperature(self, z: np.ndarray, c: SamplingControls) -> float:
        """The temperature for biased logits z: fixed, or entropy-adaptive.

        Adaptive: H is the entropy of softmax(z) over the tokens not masked,
        normalised by log(their count) to [0, 1]. A confident model (H near 0)
        gets adaptive_max, an unsure one (H near 1) adaptive_min, linearly in
        between; `temperature` scales the result, so at temperature 1 it stays
        within [adaptive_min, adaptive_max].
        """
        z = np.asarray(z, dtype=np.float64)
        d = z - z.max()
        return self._temperature(d, np.exp(d), c)

    @staticmethod
    def _temperature(d: np.ndarray, e: np.ndarray, c: SamplingControls) -> float:
        """`temperature` given d = z - max(z) and e = exp(d) (shared with the draw: fewer numpy calls)."""
        if not c.adaptive:
            return c.temperature
        n = int(np.count_nonzero(e))  # masked tokens have e == 0
        if n < 2:
            return c.temperature * c.adaptive_max
        total = float(e.sum())
        # H = log(sum e) - sum(e * d) / sum(e); -inf is clipped so that 0 * d stays 0
        h = math.log(total) - float(np.dot(e, np.maximum(d, -1e300))) / total
        h_norm = min(max(h / math.log(n), 0.0), 1.0)
        return c.temperature * (c.adaptive_max - (c.adaptive_max - c.adaptive_min) * h_norm)

    def _weights(self, logits, c: SamplingControls, ctx: SamplingContext) -> np.ndarray:
        """Unnormalised probabilities [vocab] (float64) after every control."""
        z = self._bias(c, ctx) + np.asarray(logits).reshape(-1)  # float64: the bias is
        echo = self._echo_offset(c)
        if echo is not None:  # the memory moves mass within a group, the model's total for it kept
            keep_group_mass(z, *echo)
        top = z.max()
        if top == -np.inf:  # everything masked: cannot happen (SHIFTs never are), but be safe
            z = np.asarray(logits, dtype=np.float64).reshape(-1)
            top = z.max()
        z -= top
        p = np.exp(z)
        t = self._temperature(z, p, c)
        self.last_temperature = t
        if t != 1.0:
            p **= 1.0 / t  # exp(d)^(1/t) == exp(d/t), without a second exp
        n = p.size
        if 0 < c.top_k < n:
            kth = np.partition(p, n - c.top_k)[n - c.top_k]
            p[p < kth] = 0.0
        if c.top_p < 1.0:
            order = np.argsort(-p, kind="stable")
            cs = np.cumsum(p[order])
            cut = int(np.searchsorted(cs, c.top_p * cs[-1]))  # smallest set holding top_p of the mass
            p[order[cut + 1:]] = 0.0
        return p

    def distribution(self, logits, c: SamplingControls, ctx: SamplingContext = SamplingContext()) -> np.ndarray:
        """The probabilities [vocab] the next draw uses (float64, sums to 1)."""
        p = self._weights(logits, c, ctx)
        return p / p.sum()

    def choose(self, logits, c: SamplingControls, ctx: SamplingContext = SamplingContext()) -> int:
        """One token id drawn from `distribution` with the seeded generator."""
        cs = np.cumsum(self._weights(logits, c, ctx))
        i = min(int(np.searchsorted(cs, self.rng.random() * cs[-1], side="right")), cs.size - 1)
        v = self.vocab
        if self.memory is not None and self.parts is not None and v.note_on_base <= i < v.note_off_base:
            self.hear_own(i)
        return i

    def hear_own(self, token: int) -> None:
        """The session memory hears a note-on the agent drew, at the stream's frontier."""
        v, enc = self.vocab, self.parts.enc
        vel = v.bin_velocity(enc.velocity_bin) if enc.velocity_bin is not None else 64
        self.memory.hear(token - v.note_on_base + v.pitch_lo, enc.tick, vel, "agent")
