"""Scripted stand-ins for tests: a predictor, and a player that sends a phrase to a port.

`ScriptedPredictor` is a deterministic stand-in for agent.model.predictor.Predictor
(same interface), for policy tests. `sample()` walks a fixed script of token ids (cycling) and feeds what it
returns, exactly as the real predictor does; `fed` is every token the model
would have seen, so a test can check the stream after rollbacks.
"""
from __future__ import annotations

from agent.music.tokens import Vocab, token_ids_from_names
from agent.session.scripted import key, phrase_events

PHRASE = "VEL(8) NOTE_ON(60) SHIFT(6) NOTE_OFF(60) NOTE_ON(64) SHIFT(6) NOTE_OFF(64) NOTE_ON(67) SHIFT(12) NOTE_OFF(67)"


class ScriptedPredictor:
    def __init__(self, vocab: Vocab, script: str = PHRASE, *, fail_after: int | None = None) -> None:
        self.vocab = vocab
        self.script = token_ids_from_names(script, vocab)
        self.pos = 0
        self.fed: list[int] = []
        self.sounding: set[int] = set()
        self.fail_after = fail_after  # raise on the n-th sample (an exception path)
        self.samples = 0
        self.steps = 0  # model steps since the last reset or re-prime, as the real predictor counts them
        self.reprimes = 0

    def feed(self, token: int) -> None:
        t = self.vocab.token(token)
        if t.kind == "NOTE_ON":
            self.sounding.add(t.value)
        elif t.kind == "NOTE_OFF":
            self.sounding.discard(t.value)
        self.fed.append(int(token))
        self.steps += 1

    def feed_many(self, tokens) -> None:
        for t in tokens:
            self.feed(t)

    def sample(self, controls) -> int:
        self.samples += 1
        if self.fail_after is not None and self.samples > self.fail_after:
            raise RuntimeError("scripted model failure")
        tok = self.script[self.pos % len(self.script)]
        self.pos += 1
        self.feed(tok)
        return tok

    def probabilities(self, controls):
        """All the mass on the token the script plays next (or on `next_probs` if a test set it)."""
        import numpy as np

        if getattr(self, "next_probs", None) is not None:
            return np.asarray(self.next_probs, dtype=float)
        p = np.zeros(self.vocab.size)
        p[self.script[self.pos % len(self.script)]] = 1.0
        return p

    def snapshot(self):
        return (len(self.fed), self.pos, frozenset(self.sounding))

    def rollback(self, snap) -> None:
        n, self.pos, sounding = snap
        del self.fed[n:]
        self.sounding = set(sounding)

    def reset(self) -> None:
        self.fed.clear()
        self.sounding.clear()
        self.feed(self.vocab.START)

    def reprime(self) -> None:
        """The state is rebuilt from the context: the stream the test reads (`fed`) is unchanged."""
        self.reprimes += 1
        self.steps = 0

    # a re-prime in the idle time: done at the first slice (the script has no state to rebuild)
    repriming = False

    def begin_reprime(self) -> None:
        self.repriming = True

    def advance_reprime(self, max_steps: int) -> bool:
        if not self.repriming:
            return False
        self.repriming = False
        self.reprime()
        return True

    def prime(self, tokens) -> None:
        self.reset()
        self.feed_many(tokens)

    def names(self, start: int = 0) -> str:
        return self.vocab.names(self.fed[start:])


def play_phrase(send, phrase, start_s: float, spb: float, clock) -> float:
    """Send one phrase (agent/session/scripted.py's form, `spb` seconds a beat) to `send` on absolute
    deadlines from start_s, as a player on a port would; returns the time of its last note-off (seconds)."""
    events = phrase_events(phrase, start_s, spb)
    for t, on, pitch in events:
        clock.sleep_until(t)
        send(key(on, pitch))
    return events[-1][0]
