"""The player's feel as a time warp: straight beats (what the model hears and plays) <-> swung beats (the player's).

The model was trained on straight written eighths, so a swung player is
heard through a warp: within each beat, the straight position x (0 <= x < 1)
sits at w(x) of the player's beat,

    w(x) = x * 2o                    for x in [0, .5]
    w(x) = o + (x - .5) * 2(1 - o)   for x in [.5, 1)       o = s / (1 + s)

where s is the swing ratio (long/short, 1.0 straight: then w is the
identity). A straight off-beat eighth (x = .5) lands at o (2/3 of the beat at
s = 2, the triplet feel). w is piecewise linear, continuous and strictly
increasing for any s > 0, so notes keep their order and no length turns
negative; `unwarp` is its exact inverse. Beats are whole-beat aligned: the
warp repeats every beat of the tempo map.

The grid the agent keeps to is the player's subdivision of the (straight)
beat: eighths (division 2, swung or not) or thirds (division 3: triplets and
the compound metres, 6/8, 9/8, 12/8 felt at the dotted quarter).
"""
from __future__ import annotations

import math

SWING_MIN = 1.2  # a ratio below this is played straight: a tracker's noise on straight eighths is not a feel
SWING_MAX = 3.0  # above this is a dotted rhythm, not swing (issue 20: swing up to 2.5)


def off_beat(swing: float) -> float:
    """Where the off-beat eighth falls in a beat of the player's (0.5 straight, 2/3 at swing 2.0)."""
    return swing / (1.0 + swing)


def warp(beat: float, swing: float) -> float:
    """A straight beat position -> the player's (swung) beat position; the identity at swing 1.0."""
    if swing == 1.0:
        return beat
    n = math.floor(beat)
    x, o = beat - n, off_beat(swing)
    return n + (x * 2.0 * o if x <= 0.5 else o + (x - 0.5) * 2.0 * (1.0 - o))


def unwarp(beat: float, swing: float) -> float:
    """The player's (swung) beat position -> the straight one: the inverse of `warp`."""
    if swing == 1.0:
        return beat
    n = math.floor(beat)
    y, o = beat - n, off_beat(swing)
    return n + (y / (2.0 * o) if y <= o else 0.5 + (y - o) / (2.0 * (1.0 - o)))


def played_swing(division: int, swing: float) -> float:
    """The swing ratio the agent plays for a tracked feel: 1.0 (straight) in triple divisions and below
    SWING_MIN, else the ratio, at most SWING_MAX."""
    if division != 2 or swing < SWING_MIN:
        return 1.0
    return min(float(swing), SWING_MAX)


def grid_points(division: int, swing: float) -> list[float]:
    """The player's grid within a beat (beat fractions, 0 first): [0, o] for eighths at `swing`, [0, 1/3, 2/3]
    for thirds."""
    if division == 3:
        return [0.0, 1.0 / 3.0, 2.0 / 3.0]
    return [0.0, off_beat(swing)]


def grid_distance(beat: float, division: int, swing: float) -> float:
    """How far (beats) the player's beat position `beat` is from the player's subdivision grid."""
    x = beat - math.floor(beat)
    return min(min(abs(x - p) for p in grid_points(division, swing)), 1.0 - x)
