"""What the session memory expects next, as a logit offset over the vocabulary (the `echo` mixture).

The session memory (agent/live/jam/memory.py) says what the player's material
suggests for the agent's next onset: an `Expectation` (which pitches, how
many ticks from now, in which register, how loud). `echo_bias` turns it into
an additive logit offset over the token vocabulary, a product of experts:

    p(token) ~ p_model(token) * q(token) ** (GAIN * echo)

where q is the memory's weight for the token, floored at FLOOR so that no
token the model wants is ruled out. It is applied per group of tokens (the
note-ons; the note-ons with the time shifts when the memory has an opinion
on timing; the velocities), and the sampler keeps each group's total mass
as the model gave it (`Sampler._weights`): the memory redistributes within
"which pitch / when / how loud", the model still decides between a note,
a note-off or a velocity change. echo 0 adds nothing (the sampler skips it).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from agent.music.tokens import Vocab

FORMS = ("continue", "echo", "vary", "contrast")  # jam.form: what an answer makes of its call
GAIN = 3.5  # q ** (GAIN * echo): at echo 1 a token the memory does not expect loses ~13.7 logits, at 0.5 ~6.8
FLOOR = 0.02  # the least weight q gives any token (log 0.02 ~ -3.9)
PARTIAL_SHIFT = 0.3  # a shift that stops short of the expected onset (a grid step on the way): this weight
REGISTER_SLACK = 2  # semitones beyond the call's range that still count as its register
REGISTER_FALL = 3.0  # outside it, the weight falls by 1/e every this many semitones
AVOID = 0.15  # contrast: the weight of what the call did (its register, its inter-onset times)
VELOCITY_WIDTH = 1.5  # bins: the weight falls by 1/e this far from the expected velocity bin


@dataclass(frozen=True)
class Expectation:
    """The memory's opinion on the agent's next onset; None anywhere = no opinion on that.

    pitches: MIDI pitch -> weight (relative) for a note-on now.
    wait_ticks: ticks until the next onset is due (0 = now).
    register: (low, high) MIDI pitches of the call, to keep to (or, with contrast, to leave).
    velocity_bin: the velocity bin expected (the call's at that point).
    avoid_waits: contrast: onsets this many ticks after the agent's last one are what the call did.
    elapsed_ticks: ticks since the agent's last onset (contrast's rhythm test).
    """

    pitches: Mapping[int, float] | None = None
    wait_ticks: int | None = None
    register: tuple[int, int] | None = None
    contrast: bool = False
    velocity_bin: int | None = None
    avoid_waits: frozenset[int] = frozenset()
    elapsed_ticks: int | None = None


class EchoBias:
    """Builds the offset for one vocabulary; the index arrays are made once."""

    def __init__(self, vocab: Vocab) -> None:
        self.vocab = v = vocab
        self.on = slice(v.note_on_base, v.note_off_base)
        self.shift = slice(v.shift_base, v.velocity_base)
        self.vel = slice(v.velocity_base, v.size)
        self._waits: dict[int, np.ndarray] = {}  # ticks to wait -> weights of SHIFT(1..max_shift)
        self._pitches = np.arange(v.pitch_lo, v.pitch_hi + 1)
        self._bins = np.arange(v.velocity_bins)
        self._ks = np.arange(1, v.max_shift + 1)
        self._registers: dict[tuple, np.ndarray] = {}  # (low, high, contrast) -> weights over pitches

    def _register(self, lo: int, hi: int, contrast: bool) -> np.ndarray:
        """Weights over the pitches for keeping to (contrast: leaving) the range lo..hi; cached (a call's
        register is the same for the whole answer)."""
        r = self._registers.get((lo, hi, contrast))
        if r is None:
            p = self._pitches
            if contrast:
                r = np.where((p >= lo) & (p <= hi), AVOID, 1.0)
            else:
                r = np.exp(-np.maximum(np.maximum(lo - REGISTER_SLACK - p, p - hi - REGISTER_SLACK), 0) / REGISTER_FALL)
            if len(self._registers) > 256:
                self._registers.clear()
            self._registers[(lo, hi, contrast)] = r
        return r

    def _pitch_weights(self, e: Expectation, follow_register: bool) -> np.ndarray | None:
        w = None
        if e.pitches:
            w = np.zeros(self._pitches.size)
            lo, n = self.vocab.pitch_lo, self._pitches.size
            for p, x in e.pitches.items():
                if 0 <= p - lo < n:
                    w[p - lo] += x
            top = w.max()
            w = w / top if top > 0 else None  # the likeliest pitch 1; the register may lower it
        if e.register is not None and (follow_register or e.contrast):
            r = self._register(*e.register, e.contrast)
            w = r if w is None else w * r
        return w

    def _timing(self, e: Expectation) -> tuple[float, np.ndarray] | None:
        """(weight of an onset now, weights of SHIFT(1..max_shift)), or None: no opinion on time."""
        if e.contrast and e.avoid_waits and e.elapsed_ticks is not None:
            now = AVOID if e.elapsed_ticks in e.avoid_waits else 1.0
            later = np.where(np.isin(e.elapsed_ticks + self._ks, list(e.avoid_waits)), AVOID, 1.0)
            return now, later
        if e.wait_ticks is None:
            return None
        target = min(max(e.wait_ticks, 0), self.vocab.max_shift)
        later = self._waits.get(target)
        if later is None:  # 0: none (a note now); else the shift that reaches it, or part of the way
            later = np.where(self._ks == target, 1.0, np.where(self._ks < target, PARTIAL_SHIFT, 0.0))
            self._waits[target] = later
        return (1.0 if target == 0 else 0.0), later

    def bias(self, e: Expectation, echo: float, follow_register: bool = True,
             follow_velocity: bool = True) -> tuple[np.ndarray, list[tuple[slice, ...]]]:
        """(additive logit offset [vocab], the token groups whose total mass the sampler keeps, each a
        tuple of slices of the vocabulary)."""
        v = self.vocab
        out = np.zeros(v.size)
        groups: list[tuple[slice, ...]] = []
        power = GAIN * echo
        pw = self._pitch_weights(e, follow_register)
        timing = self._timing(e)
        if timing is not None:
            now, later = timing
            out[self.on] = power * np.log(FLOOR + (1 - FLOOR) * (now * (1.0 if pw is None else pw)))
            out[self.shift] = power * np.log(FLOOR + (1 - FLOOR) * later)
            groups.append((self.on, self.shift))
        elif pw is not None:
            out[self.on] = power * np.log(FLOOR + (1 - FLOOR) * pw)
            groups.append((self.on,))
        if e.velocity_bin is not None and follow_velocity and not e.contrast:
            q = np.exp(-np.abs(self._bins - e.velocity_bin) / VELOCITY_WIDTH)
            out[self.vel] = power * np.log(FLOOR + (1 - FLOOR) * q)
            groups.append((self.vel,))
        return out, groups


def keep_group_mass(z: np.ndarray, offset: np.ndarray, groups: list[tuple[slice, ...]]) -> np.ndarray:
    """z + offset, each group (a tuple of slices) shifted so that its total probability is what z gave
    it (z: logits with the bias, -inf = masked; changed in place and returned)."""
    for g in groups:
        top = max(z[s].max() for s in g)
        if top == -math.inf:
            continue
        before = after = 0.0
        for s in g:
            e = np.exp(z[s] - top)
            before += e.sum()
            after += np.dot(e, np.exp(offset[s]))
        shift = math.log(before / after) if after > 0 else 0.0
        for s in g:
            z[s] += offset[s] + shift
    return z
