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
GAIN = 2.5  # q ** (GAIN * echo): at echo 1 a token the memory does not expect loses ~10 logits
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
        self.on = np.arange(v.note_on_base, v.note_off_base)
        self.shift = np.arange(v.shift_base, v.velocity_base)
        self.vel = np.arange(v.velocity_base, v.size)
        self.on_shift = np.concatenate([self.on, self.shift])
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
            later = np.array([AVOID if e.elapsed_ticks + k in e.avoid_waits else 1.0 for k in self._ks])
            return now, later
        if e.wait_ticks is None:
            return None
        if e.wait_ticks <= 0:
            return 1.0, np.zeros(self._ks.size)
        target = min(e.wait_ticks, self.vocab.max_shift)
        later = np.where(self._ks == target, 1.0, np.where(self._ks < target, PARTIAL_SHIFT, 0.0))
        return 0.0, later

    def bias(self, e: Expectation, echo: float, follow_register: bool = True,
             follow_velocity: bool = True) -> tuple[np.ndarray, list[np.ndarray]]:
        """(additive logit offset [vocab], the token groups whose total mass the sampler keeps)."""
        v = self.vocab
        out = np.zeros(v.size)
        groups: list[np.ndarray] = []
        power = GAIN * echo
        pw = self._pitch_weights(e, follow_register)
        timing = self._timing(e)
        if timing is not None:
            now, later = timing
            q = np.concatenate([np.broadcast_to(now * (1.0 if pw is None else pw), self.on.size), later])
            out[self.on_shift] = power * np.log(FLOOR + (1 - FLOOR) * q)
            groups.append(self.on_shift)
        elif pw is not None:
            out[self.on] = power * np.log(FLOOR + (1 - FLOOR) * pw)
            groups.append(self.on)
        if e.velocity_bin is not None and follow_velocity and not e.contrast:
            q = np.exp(-np.abs(self._bins - e.velocity_bin) / VELOCITY_WIDTH)
            out[self.vel] = power * np.log(FLOOR + (1 - FLOOR) * q)
            groups.append(self.vel)
        return out, groups


def keep_group_mass(z: np.ndarray, offset: np.ndarray, groups: list[np.ndarray]) -> np.ndarray:
    """z + offset, each group shifted so that its total probability is what z gave it (z: logits
    with the bias, -inf = masked; changed in place and returned)."""
    for g in groups:
        before, after = z[g], z[g] + offset[g]
        top = before.max()
        if top == -math.inf:
            continue
        lse_before = top + math.log(np.exp(before - top).sum())
        top2 = after.max()
        lse_after = top2 + math.log(np.exp(after - top2).sum())
        z[g] = after + (lse_before - lse_after)
    return z
