"""Session memory: this session's material, indexed so that an answer can build on the call.

Every onset heard is kept per part (the player's, and the agent's own apart)
as (stream tick, pitch, velocity). The player's onsets are also indexed over
transposition-invariant units, unit = (interval in semitones, inter-onset
time in ticks) from one onset to the next: a variable-order Markov model
(Pachet's Continuator) as a dict from the last 1..MAX_ORDER units to where
in the player's line they were followed, and what by. A second index over
intervals alone is the back-off when the agent's rhythm matched nothing.

The *call* is the player's latest run of onsets with no answer between them
(no pause of ANSWERED_GAP_BEATS with agent onsets in it, none over
CALL_GAP_BEATS), at most CALL_NOTES long; the
*answer* is the agent's onsets since the player's last. `expect(form, tick)`
says what the player's material suggests for the agent's next onset at
stream tick `tick` (agent/model/echo.py turns it into a logit offset):

- continue: the index's continuation of the line call + answer so far (the
  answer goes on as the player's material went on, transposed);
- echo: the call again, unit by unit from the answer's first note: its
  intervals (a semitone either side weighs less, for the key to choose:
  the motif transposed to fit) and its rhythm;
- vary: the call's rhythm and contour (up, down, same) with other intervals;
- contrast: away from the call's register and inter-onset times.
Register (the call's range) and dynamics (its velocity at that point) go
with every form but contrast. No form copies more than MAX_VERBATIM notes
of the call as they were: the note that would be one more comes later.

The agent's onsets are heard as they are sampled (a rollback is undone
lazily: onsets past the stream's frontier, or past an onset heard since,
are dropped). On the engine thread; `related` (the last answer's pitch-class
cosine with its call) is a float the REPL may read.
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, replace

from agent.model.echo import FORMS, Expectation
from agent.music.tokens import Vocab

MAX_ORDER = 4  # the longest context of units the index matches
KEEP = 2048  # onsets kept per part; past it the older half goes (and the index is rebuilt)
CALL_NOTES = 32  # the most onsets a call holds (its last ones)
CALL_GAP_BEATS = 8.0  # a pause this long between the player's onsets starts a new call
ANSWERED_GAP_BEATS = 2.0  # and one this long with the agent's onsets in it (an answer; accompanying notes
# between the player's do not cut the call)
CANDIDATES = 16  # the most recent matches of a context that vote for the next unit
START = {0: 1.0, 12: 0.6, -12: 0.6, 7: 0.4, -5: 0.4, 5: 0.3, -7: 0.3}  # echo: where the motif may start again
MAX_VERBATIM = 4  # notes an answer may copy as they were (same pitches and rhythm); the next comes later
ANCHOR = 1.0  # continue: the weight of the pitch class the player played where the line is found
NEIGHBOUR = {0: 1.0, 1: 0.35, -1: 0.35, 2: 0.1, -2: 0.1}  # echo: semitones off the call's interval -> weight


@dataclass(frozen=True)
class Onset:
    tick: int  # the stream's tick
    pitch: int
    velocity: int


def _unit(a: Onset, b: Onset, cap: int) -> tuple[int, int]:
    return b.pitch - a.pitch, min(b.tick - a.tick, cap)


def pc_cosine(a, b) -> float:
    """Cosine of the pitch-class histograms of two pitch sequences (0.0 when either is empty)."""
    ha, hb = Counter(p % 12 for p in a), Counter(p % 12 for p in b)
    na, nb = math.sqrt(sum(x * x for x in ha.values())), math.sqrt(sum(x * x for x in hb.values()))
    if na == 0 or nb == 0:
        return 0.0
    return sum(ha[k] * hb[k] for k in ha) / (na * nb)


class SessionMemory:
    def __init__(self, vocab: Vocab) -> None:
        self.vocab = vocab
        self.cap = vocab.max_shift  # inter-onset times are capped at the longest shift (4 beats at 12)
        self.gap = round(CALL_GAP_BEATS * vocab.resolution)
        self.answered_gap = round(ANSWERED_GAP_BEATS * vocab.resolution)
        self.player: list[Onset] = []
        self.agent: list[Onset] = []
        self.units: list[tuple[int, int]] = []  # units[j]: from player[j] to player[j + 1]
        self.joint: dict[tuple, list[int]] = {}  # last k units -> positions j of the unit that followed
        self.intervals: dict[tuple, list[int]] = {}  # the same over intervals alone
        self.call_start = 0  # index in `player` of the call's first onset
        self.related: float | None = None  # the latest answer's pitch-class cosine with its call
        self._version = 0  # counts changes of the material: `expect` works out each form once per change
        self._cached: tuple = (None, None)  # ((form, version), what _expect found)

    # -- hearing ------------------------------------------------------------------
    def hear(self, pitch: int, tick: int, velocity: int, part: str) -> None:
        """One onset at stream tick `tick`; part "player" or "agent"."""
        o = Onset(int(tick), int(pitch), int(velocity))
        self._version += 1
        if part == "agent":
            self.forget_after(o.tick)
            self.agent.append(o)
            self._relate()
            return
        if part != "player":
            raise ValueError(f"part {part!r}: must be 'player' or 'agent'")
        prev = self.player[-1] if self.player else None
        self.player.append(o)
        if prev is not None and (o.tick - prev.tick > self.gap or (o.tick - prev.tick >= self.answered_gap and
                                                                  self._agent_between(prev.tick, o.tick))):
            self.call_start = len(self.player) - 1
        if prev is not None:
            self._index(_unit(prev, o, self.cap))
        if len(self.player) > KEEP:
            self._trim()

    def _agent_between(self, lo: int, hi: int) -> bool:
        for a in reversed(self.agent):
            if a.tick < hi:
                return a.tick > lo
        return False

    def _index(self, u: tuple[int, int]) -> None:
        units, j = self.units, len(self.units)
        units.append(u)
        for k in range(1, min(MAX_ORDER, j) + 1):
            ctx = units[j - k:j]
            self.joint.setdefault(tuple(ctx), []).append(j)
            self.intervals.setdefault(tuple(x for x, _ in ctx), []).append(j)

    def _trim(self) -> None:
        drop = len(self.player) - KEEP // 2
        kept = self.player[drop:]
        self.player, self.units, self.joint, self.intervals = kept[:1], [], {}, {}
        for o in kept[1:]:
            self._index(_unit(self.player[-1], o, self.cap))
            self.player.append(o)
        self.call_start = max(0, self.call_start - drop)
        self.agent = self.agent[-KEEP // 2:]

    def forget_after(self, tick: int) -> None:
        """Drop the agent's onsets past `tick` (rolled back: they will not sound)."""
        while self.agent and self.agent[-1].tick > tick:
            self.agent.pop()
            self._version += 1

    # -- what the call and the answer are --------------------------------------------
    def call(self) -> list[Onset]:
        return self.player[max(self.call_start, len(self.player) - CALL_NOTES):]

    def answer(self) -> list[Onset]:
        """The agent's onsets since the player's last."""
        last = self.player[-1].tick if self.player else -1
        i = len(self.agent)
        while i > 0 and self.agent[i - 1].tick > last:
            i -= 1
        return self.agent[i:]

    def _relate(self) -> None:
        ans = self.answer()
        if ans:
            self.related = round(pc_cosine([o.pitch for o in ans], [o.pitch for o in self.call()]), 3)

    # -- what comes next ----------------------------------------------------------------
    def expect(self, form: str, tick: int) -> Expectation | None:
        """What the player's material suggests for the agent's next onset at stream tick `tick`; None: nothing
        to go on (no call yet). Worked out once per form and change of the material; each step adds the time."""
        if form not in FORMS:
            raise ValueError(f"answer form {form!r}: one of {', '.join(FORMS)}")
        self.forget_after(tick)
        key = (form, self._version)
        if key != self._cached[0]:
            self._cached = key, self._expect(form)
        found = self._cached[1]
        if found is None:
            return None
        e, ioi, last_tick = found
        if last_tick is None:
            return e
        if form == "contrast":
            return replace(e, elapsed_ticks=tick - last_tick)
        return e if ioi is None else replace(e, wait_ticks=max(ioi - (tick - last_tick), 0))

    def _expect(self, form: str) -> tuple[Expectation, int | None, int | None] | None:
        """(the expectation but for the time, the inter-onset ticks expected from the agent's last onset,
        that onset's tick); None: no call yet."""
        call = self.call()
        if not call:
            return None
        ans = self.answer()
        register = (min(o.pitch for o in call), max(o.pitch for o in call))
        last_tick = ans[-1].tick if ans else None
        if form == "contrast":
            waits = frozenset(b.tick - a.tick for a, b in zip(call, call[1:]) if b.tick > a.tick)
            return Expectation(register=register, contrast=True, avoid_waits=waits), None, last_tick
        vel = self.vocab.velocity_bin(call[min(len(ans), len(call) - 1)].velocity)
        if not ans:  # the answer's first note: its time is the jam's; its pitch goes on from the call (continue),
            # starts the motif again on the call's first pitch, an octave or a fifth away (echo: the key bias
            # picks the one that keeps it in key), or is the model's
            pitches = (self._continue(call, ans)[0] if form == "continue" else
                       {call[0].pitch + d: w for d, w in START.items()} if form == "echo" else None)
            return Expectation(pitches=pitches, register=register, velocity_bin=vel), None, None
        pitches, ioi = self._continue(call, ans) if form == "continue" else self._aligned(call, ans, form)
        copying = self._copy_goes_on(call, ans)
        if pitches and ioi is not None and copying & {max(pitches, key=pitches.get)}:
            # MAX_VERBATIM notes copied as they were and the likeliest next note copies one more: the
            # pitches stay (the player's), the note comes an eighth later (no longer a copy)
            ioi = min(ioi + self.vocab.resolution // 2, self.cap)
        return Expectation(pitches=pitches, register=register, velocity_bin=vel), ioi, last_tick

    @staticmethod
    def _copy_goes_on(call: list[Onset], ans: list[Onset]) -> set[int]:
        """The pitches that would make the answer's last MAX_VERBATIM notes, a copy of the call's as they
        were (same pitches, same inter-onset times), one note longer."""
        m = MAX_VERBATIM
        if len(ans) < m:
            return set()
        tail = ans[-m:]
        steps = [(b.pitch, b.tick - a.tick) for a, b in zip(tail, tail[1:])]
        out = set()
        for j in range(m - 1, len(call) - 1):
            seg = call[j - m + 1:j + 1]
            if seg[0].pitch == tail[0].pitch and [(b.pitch, b.tick - a.tick) for a, b in zip(seg, seg[1:])] == steps:
                out.add(call[j + 1].pitch)
        return out

    def _aligned(self, call: list[Onset], ans: list[Onset], form: str) -> tuple[dict | None, int | None]:
        """echo / vary: the call's unit that leads to its onset number len(ans) (wrapping round)."""
        k = len(ans) % len(call)
        if k == 0:  # round again, after the call's most common inter-onset time: echo starts the motif anew
            ioi = Counter(b.tick - a.tick for a, b in zip(call, call[1:])).most_common(1)
            ioi = min(max(ioi[0][0], 1), self.cap) if ioi else None
            return ({call[0].pitch + d: w for d, w in START.items()} if form == "echo" else None), ioi
        di, ioi = _unit(call[k - 1], call[k], self.cap)
        last = ans[-1].pitch
        if form == "echo":
            return {last + di + d: w for d, w in NEIGHBOUR.items()}, ioi
        if di == 0:
            return {last: 1.0, last - 1: 0.5, last + 1: 0.5, last - 2: 0.5, last + 2: 0.5}, ioi
        sign, span = (1 if di > 0 else -1), max(abs(di) + 2, 5)
        return {last + sign * d: (0.3 if d == abs(di) else 1.0) for d in range(1, span + 1)}, ioi

    def _continue(self, call: list[Onset], ans: list[Onset]) -> tuple[dict | None, int | None]:
        """The index's continuation of the line call + answer: (pitch -> weight, inter-onset ticks)."""
        line = call + ans
        ctx = [_unit(a, b, self.cap) for a, b in zip(line[-MAX_ORDER - 1:], line[-MAX_ORDER:])]
        found = self._match(self.joint, ctx) or self._match(self.intervals, [x for x, _ in ctx])
        if found:  # each match's next unit, and the pitch the player played there
            units = [(*self.units[j], self.player[j + 1].pitch) for j in found]
        else:
            units = [(*_unit(a, b, self.cap), None) for a, b in zip(call, call[1:])]
        if not units:
            return None, None
        votes: Counter = Counter()
        iois: Counter = Counter()
        last = line[-1].pitch
        for n, (di, ioi, played) in enumerate(units):
            w = 1.0 + n / len(units)  # the more recent, the more it counts
            for d, x in NEIGHBOUR.items():  # a semitone off weighs less: the key may pick it (a transposed line)
                votes[last + di + d] += w * x
            if played is not None and (last + di - played) % 12:  # the player's own pitch class, nearest
                votes[last + di + (played - last - di + 6) % 12 - 6] += w * ANCHOR
            iois[ioi] += w
        return dict(votes), iois.most_common(1)[0][0]

    @staticmethod
    def _match(index: dict, ctx: list) -> list[int]:
        for k in range(min(MAX_ORDER, len(ctx)), 0, -1):
            found = index.get(tuple(ctx[-k:]))
            if found:
                return found[-CANDIDATES:]
        return []
