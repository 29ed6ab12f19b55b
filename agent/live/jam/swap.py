"""A model loaded while playing, primed beside the live one in slices, then swapped in.

`Swap(old, new, vocab)` is the jam's, on the engine thread. Priming a model
from the rolling context costs one step per token (100-300 ms for 512 tokens
on a busy 2-core machine): done at once it would stop the music mid-phrase,
so, as a re-prime does (limits.py), it runs `advance(n)` steps at a time in
the thread's idle time. First the context the live model had when the swap
began (led, like a re-prime, by the NOTE_ONs of pitches still sounding whose
NOTE_ON has left it); then whatever the live model has heard since, read
from its history: nothing is hooked into the live model, so a rollback,
a reset or a re-prime of it is seen as its history no longer following what
the new one heard. The new one then rolls back to the latest of its own
snapshots (`marks`, one a slice) still on the live history, or starts over.

`caught_up`: the new model has heard exactly the live one's context since
the swap began; the jam swaps it in then (see Jam.take_over for when).
"""
from __future__ import annotations

from collections import deque

MARKS = 32  # the new model's snapshots kept, one per slice of what the live one heard


class Swap:
    def __init__(self, old, new, vocab) -> None:
        self.old, self.new, self.vocab = old, new, vocab
        # a stand-in predictor with no history (tests' scripted one) has nothing to prime from
        self.mirrors = hasattr(old, "history") and hasattr(new, "snapshot")
        self.restarts = -1
        self.todo: deque[int] = deque()
        self._restart()

    def _restart(self) -> None:
        """Begin again from the live model's context now (the new one reset)."""
        self.restarts += 1
        self.marks: deque[tuple[int, tuple[int, ...], object]] = deque(maxlen=MARKS)
        if not self.mirrors:
            return
        v, old = self.vocab, self.old
        hist = list(old.history)
        tokens = hist[1:] if hist and hist[0] == v.START else hist
        opened = {t - v.note_on_base + v.pitch_lo for t in tokens if v.note_on_base <= t < v.note_off_base}
        self.new.reset()
        self.todo = deque([v.note_on(p) for p in sorted(set(old.sounding) - opened)] + tokens)
        self.mark = old.steps  # the live model's step count that the new one will have heard up to
        self.heard = deque(hist, maxlen=old.history.maxlen)  # the live history as of `mark`

    def _since(self, mark: int, heard) -> list[int] | None:
        """The tokens the live model heard after step `mark`, if its history still starts with
        `heard` (what it was at `mark`); None if it went another way since (a rollback past it,
        a reset, a re-prime, which counts steps anew)."""
        d = self.old.steps - mark
        hist = list(self.old.history)
        if d < 0 or d > len(hist):
            return None
        before = hist[:len(hist) - d]
        heard = list(heard)
        if len(before) > len(heard) or before != heard[len(heard) - len(before):]:
            return None
        return hist[len(hist) - d:]

    def _resync(self) -> list[int] | None:
        """What the new model has still to hear, after rolling it back to the latest mark the live
        history still follows; None: none does (the caller starts over)."""
        extras = self._since(self.mark, self.heard)
        while extras is None and self.marks:
            mark, heard, snap = self.marks[-1]
            extras = self._since(mark, heard)
            if extras is None:
                self.marks.pop()
            else:
                self.new.rollback(snap)
                self.mark, self.heard = mark, deque(heard, maxlen=self.heard.maxlen)
        return extras

    def advance(self, max_steps: int) -> bool:
        """Up to max_steps steps of the new model; True: there is more to do now."""
        if not self.mirrors:
            return False
        if self.todo:
            for _ in range(min(max_steps, len(self.todo))):
                self.new.feed(self.todo.popleft())
            if not self.todo:  # the context as it was heard: the first mark
                self.marks.append((self.mark, tuple(self.heard), self.new.snapshot()))
            return True
        extras = self._resync()
        if extras is None:
            self._restart()
            return True
        done = extras[:max_steps]
        for t in done:
            self.new.feed(t)
        if done:
            self.heard.extend(done)
            self.mark += len(done)
            self.marks.append((self.mark, tuple(self.heard), self.new.snapshot()))
        return len(extras) > len(done)

    @property
    def caught_up(self) -> bool:
        """The new model has heard what the live one has (nothing left to feed it)."""
        return not self.mirrors or not self.todo and self._since(self.mark, self.heard) == []
