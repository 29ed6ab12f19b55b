"""Fuzz the file reader + tokenizer and the listener + jam policy (hypothesis).

    python scripts/fuzz.py [--count 100000] [--target midi|stream|both] [--json OUT]

midi:   mutated MIDI files (real ones from music21's wheel and small made
        ones; byte flips, inserts, deletes, truncation, header fields) through
        `music.notes.read_midi`, `music.tokens.encode` and `decode`. The only error
        allowed is MidiReadError (one clear line); the token stream must be
        valid ids and bounded by the file's length.
stream: random byte streams parsed by mido (any message it can build: sysex,
        running status, clock, out-of-range data dropped by the parser) at
        random times into the Listener and the Jam policy in a random mode and
        temperature, on a fake clock (no sleeping), over the real Predictor
        and Sampler with a noise backend (random logits: every token the
        masks allow gets drawn). After the stream the clock runs on 4 s:
        no exception, no hang, nothing stuck at the receiving port (nothing
        sounding there that the scheduler does not hold, and nothing at all
        once the agent is idle), never more than max_polyphony agent notes at
        once, no agent note longer than max_note_beats, every buffer bounded.

Prints a table and one JSON line (counts, failures, seconds, the slowest
example). Exit status 1 if any example failed. tests/test_fuzz.py runs the
same checks a few thousand times in CI.
"""
from __future__ import annotations

import argparse
import io
import json
import logging
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np


import mido
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from agent.bench.fakerun import ListOut
from agent.music.tempomap import FakeClock, TempoMap
from agent.config import load_config
from agent.live.controls import LiveControls
from agent.music.tokens import decode, encode
from agent.live.jam.policy import Jam
from agent.live.listener import EchoFilter, Listener
from agent.model.predictor import PITCH_MEMORY, Predictor
from agent.model.runtime.base import Backend
from agent.live.scheduler import Scheduler
from agent.music.notes import MAX_BEATS, MidiReadError, read_midi

CFG = load_config()
VOCAB = CFG.vocab()


# -- MIDI files ----------------------------------------------------------------
def seed_files() -> list[bytes]:
    """Real MIDI files from music21's wheel (several tempos, resolutions, tracks) and two made here."""
    seeds = []
    try:
        import music21

        folder = Path(music21.__file__).parent / "midi" / "testPrimitive"
        seeds = [p.read_bytes() for p in sorted(folder.glob("*.mid")) if p.stat().st_size < 4_000][:12]
    except ImportError:
        pass
    for tpb in (96, 480):
        mid = mido.MidiFile(type=1, ticks_per_beat=tpb)
        tr = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=600_000, time=0)])
        for k, p in enumerate((60, 64, 67, 72, 71, 67)):
            tr += [mido.Message("note_on", channel=k % 2, note=p, velocity=40 + 10 * k, time=tpb // 4),
                   mido.Message("control_change", control=64, value=127 * (k % 2), time=0),
                   mido.Message("note_off", channel=k % 2, note=p, time=tpb // 2)]
        mid.tracks.append(tr)
        buf = io.BytesIO()
        mid.save(file=buf)
        seeds.append(buf.getvalue())
    return seeds


SEEDS = seed_files()
mutation = st.tuples(st.floats(0.0, 1.0), st.sampled_from(["flip", "set", "insert", "delete", "cut", "header"]),
                     st.integers(0, 255))
midi_case = st.tuples(st.integers(0, len(SEEDS) - 1), st.lists(mutation, min_size=1, max_size=8))


def mutate(data: bytes, muts) -> bytes:
    b = bytearray(data)
    for pos, op, val in muts:
        if not b:
            break
        i = min(int(pos * len(b)), len(b) - 1)
        if op == "flip":
            b[i] ^= 1 << (val % 8)
        elif op == "set":
            b[i] = val
        elif op == "insert":
            b[i:i] = bytes([val]) * (1 + val % 4)
        elif op == "delete":
            del b[i:i + 1 + val % 8]
        elif op == "cut":
            del b[i:]
        else:  # the header's format, track count and division: the fields readers trust most
            j = 8 + val % 6
            if j < len(b):
                b[j] = (b[j] + 1 + val) % 256
    return bytes(b)


def check_midi(data: bytes, path: Path) -> str:
    """One mutated file through the reader and the tokenizer; raises on anything but a clean refusal."""
    path.write_bytes(data)
    try:
        piece = read_midi(path)
    except MidiReadError as exc:
        msg = str(exc)
        assert str(path) in msg and "\n" not in msg, msg  # one line, naming the file
        return "refused"
    ids = encode(piece.notes, VOCAB)
    assert all(0 <= i < VOCAB.size for i in ids)
    length = max((n.end for n in piece.notes), default=0.0)
    assert length <= MAX_BEATS + 1
    # a bound on the stream: shifts for the length, at most 4 tokens a note, START/END
    assert len(ids) <= length * VOCAB.resolution / VOCAB.max_shift + len(piece.notes) * 4 + 8 + length + 1
    decode(ids, VOCAB)
    return "read"


# -- live streams --------------------------------------------------------------
class NoiseBackend(Backend):
    """Random logits (seeded): with the real sampler's masks, every allowed token gets drawn."""

    name = "noise"

    def __init__(self, vocab_size: int, seed: int) -> None:
        super().__init__(vocab_size, 1, 1)
        self.rng = np.random.default_rng(seed)

    def initial_state(self):
        return 0

    def step(self, token: int, state):
        return self.rng.normal(0.0, 3.0, self.vocab_size).astype(np.float32), state + 1


stream_case = st.tuples(
    st.sampled_from(["call", "accompany", "solo"]),
    st.floats(0.1, 2.0),  # temperature: the CC range
    st.integers(0, 2**32 - 1),  # seed of the noise model
    # (gap before it in seconds, bytes): dense, flood-like streams; a few long gaps let phrases end
    st.lists(st.tuples(st.one_of(st.floats(0.0, 0.02), st.floats(0.0, 0.8)), st.binary(min_size=1, max_size=12)),
             min_size=1, max_size=30),
)


MODE_CFG = {m: load_config(overrides=[f'jam.mode="{m}"', "jam.held_note_timeout_s=1.0", "jam.end_phrase_cc=20",
                                      "jam.temperature_cc=21", 'timing.source="clock"'])
            for m in ("call", "accompany", "solo")}  # parsed once: load_config costs ~40 ms


PREDICTOR = Predictor(NoiseBackend(VOCAB.size, 0), VOCAB, seed=0, context_tokens=CFG.jam.context_tokens)


@dataclass
class StreamRig:
    """One stream example's agent, wired as the engine wires it, on a fake clock."""

    cfg: object
    clock: FakeClock
    out: ListOut
    sched: Scheduler
    controls: LiveControls
    tempo: TempoMap
    pred: Predictor
    jam: Jam
    echo: EchoFilter
    li: Listener
    sent: list = field(default_factory=list)  # (sent at, message, seconds per beat then)
    wake: float | None = None

    def run_until(self, t_s: float) -> None:
        """Let the fake clock run to t_s, waking the scheduler and the policy as they ask."""
        for _ in range(100_000):  # a hang shows as this running out
            nd = self.sched.next_due()
            nxt = min(x for x in (self.wake, nd, t_s) if x is not None)
            self.clock.set(max(nxt, self.clock.now()))
            self.sched.pump()
            self.wake = self.jam.tick(self.clock.now())
            if nxt >= t_s:
                return
        raise AssertionError("the policy never let time reach its target (a hang)")


def build_stream_rig(mode: str, temperature: float, seed: int) -> StreamRig:
    """The listener, policy and scheduler in `mode` at `temperature`, over the noise model seeded with `seed`."""
    base = MODE_CFG[mode]
    cfg = replace(base, sampling=replace(base.sampling, temperature=round(temperature, 3)))
    clock = FakeClock(100.0)
    out = ListOut(clock)
    sched = Scheduler(out, clock, max_polyphony=cfg.sampling.max_polyphony)
    controls = LiveControls(cfg)
    tempo = TempoMap(cfg.timing.bpm, clock.now(), cfg.timing.beats_per_bar)
    pred = PREDICTOR  # one, re-seeded and reset: building a sampler costs ~2 ms
    pred.backend = NoiseBackend(VOCAB.size, seed)
    pred.sampler.rng = np.random.default_rng(seed % 1000)
    pred.reset()
    jam = Jam(pred, sched, tempo, controls, clock, VOCAB)
    echo = EchoFilter()
    sched.sending_hooks.append(echo.sending)
    # as the engine wires it: a note may sound max_note_beats at the tempo of its note-on
    sched.max_note_s = lambda: controls.cfg.sampling.max_note_beats * tempo.seconds_per_beat()
    sent: list = []
    sched.hooks.append(lambda m, due, t: sent.append((t, m, tempo.seconds_per_beat())))

    def on_cc(control, value, t_s):
        if control == cfg.jam.temperature_cc:
            controls.temperature_from_cc(value)

    def on_tempo(bpm, t_s):
        tempo.set_bpm(min(max(bpm, 20.0), 400.0), t_s)

    li = Listener(jam, clock, echo=echo, end_phrase_cc=cfg.jam.end_phrase_cc, on_control=on_cc, on_tempo=on_tempo)
    return StreamRig(cfg, clock, out, sched, controls, tempo, pred, jam, echo, li, sent)


def drive_stream(rig: StreamRig, chunks) -> None:
    """Feed the byte chunks through mido's parser at their gaps, then let the clock run on 4 s."""
    parser = mido.Parser()
    rig.wake = rig.jam.tick(rig.clock.now())
    for gap, data in chunks:
        rig.run_until(rig.clock.now() + gap)
        parser.feed(data)
        for msg in parser:
            rig.li.handle(msg, rig.clock.now())
        rig.wake = rig.jam.tick(rig.clock.now())
    rig.run_until(rig.clock.now() + 4.0)  # held notes time out (1 s), answers end


def check_heard(rig: StreamRig) -> dict:
    """What the receiver heard: polyphony, note lengths, nothing stuck; then every buffer within its bound."""
    cfg, sched, jam = rig.cfg, rig.sched, rig.jam
    # stuck: agent notes still sounding at the receiver (solo plays on: only the length is checked there)
    open_: dict[int, tuple[float, float]] = {}  # pitch -> (sent at, seconds per beat then)
    most = longest = 0.0
    for t, m, spb in rig.sent:
        if m.type == "note_on" and m.velocity > 0:
            assert m.note not in open_, "a note-on for a pitch already sounding at the receiver"
            open_[m.note] = (t, spb)
            most = max(most, len(open_))
        elif m.type in ("note_on", "note_off") and m.note in open_:
            t0, spb0 = open_.pop(m.note)
            longest = max(longest, (t - t0) / spb0)
    now = rig.clock.now()
    longest = max([longest] + [(now - t0) / spb0 for t0, spb0 in open_.values()])
    assert most <= cfg.sampling.max_polyphony, f"{most} notes at once"
    # in beats at the tempo when the note began (MIDI clock may move it mid-note): the scheduler's bound
    assert longest <= cfg.sampling.max_note_beats + 1e-6, f"a note of {longest:.3f} beats"
    # what the receiver still hears is what the scheduler knows it holds; with no answer running, nothing
    assert set(open_) <= {n for _, n in sched.open_notes}, f"stuck at the receiver: {sorted(open_)}"
    if jam.gen is None:
        assert not open_, f"stuck at the receiver with the agent idle: {sorted(open_)}"
    jam.cut(rig.clock.now())
    assert not sched.open_notes and sched.pending() == 0
    # bounds
    assert rig.li.inbox.qsize() == 0 and len(rig.echo._sent) <= 512
    assert len(rig.pred.history) <= cfg.jam.context_tokens and len(rig.pred.pitches) <= PITCH_MEMORY
    assert len(jam.player_onset) <= 128 and len(jam.agent_onset) <= 128
    return {"messages": rig.li.received, "agent_notes": sum(1 for _, m in rig.out.sent if m.type == "note_on"),
            "longest_beats": longest, "most_at_once": most}


def check_stream(mode: str, temperature: float, seed: int, chunks) -> dict:
    """One random stream through the listener and the policy; raises on any broken check."""
    rig = build_stream_rig(mode, temperature, seed)
    drive_stream(rig, chunks)
    return check_heard(rig)


# -- runners -------------------------------------------------------------------
def run_midi(opts, one, path: Path) -> dict:
    """The midi target's examples, each through `one`; how many files were read and how many refused."""
    outcomes = {"read": 0, "refused": 0}

    @opts
    @given(midi_case)
    def prop(case):
        r = one(check_midi, mutate(SEEDS[case[0]], case[1]), path)
        if r:
            outcomes[r] += 1

    prop()
    return outcomes


def run_stream(opts, one) -> dict:
    """The stream target's examples, each through `one`; the totals and maxima of what they heard."""
    agg = {"messages": 0, "agent_notes": 0, "longest_beats": 0.0, "most_at_once": 0}

    @opts
    @given(stream_case)
    def prop(case):
        r = one(check_stream, *case)
        if r:
            agg["messages"] += r["messages"]
            agg["agent_notes"] += r["agent_notes"]
            agg["longest_beats"] = max(agg["longest_beats"], r["longest_beats"])
            agg["most_at_once"] = max(agg["most_at_once"], r["most_at_once"])

    prop()
    return agg


def run(target: str, count: int, progress: bool = True) -> dict:
    """`count` hypothesis examples of one target. Returns counts, failures and timing."""
    stats = {"target": target, "count": 0, "failures": 0, "first_failure": None, "slowest_s": 0.0}
    tmp = Path(tempfile.mkdtemp(prefix="antiphon-fuzz-"))
    path = tmp / "case.mid"
    t_start = time.perf_counter()

    def one(fn, *args):
        t0 = time.perf_counter()
        try:
            res = fn(*args)
        except Exception as exc:  # recorded, not raised: the run goes on and reports them all
            stats["failures"] += 1
            if stats["first_failure"] is None:
                stats["first_failure"] = f"{type(exc).__name__}: {exc}"[:500]
            res = None
        stats["count"] += 1
        stats["slowest_s"] = max(stats["slowest_s"], time.perf_counter() - t0)
        if progress and stats["count"] % 5000 == 0:
            print(f"  {target}: {stats['count']} examples, {stats['failures']} failures, "
                  f"{time.perf_counter() - t_start:.0f} s", file=sys.stderr, flush=True)
        return res

    # generate only: no shrinking (a failure is recorded, not minimised) and no mutation of earlier
    # examples, which costs hypothesis more than the checks themselves
    opts = settings(max_examples=count, deadline=None, database=None, derandomize=False, phases=[Phase.generate],
                    suppress_health_check=list(HealthCheck))
    extra = run_midi(opts, one, path) if target == "midi" else run_stream(opts, one)
    stats.update(extra, seconds=round(time.perf_counter() - t_start, 1))
    try:
        path.unlink(missing_ok=True)
        tmp.rmdir()
    except OSError:
        pass
    return stats


def rss_mb() -> float:
    try:
        with open(f"/proc/{os.getpid()}/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024
    except (OSError, StopIteration):
        return float("nan")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=100_000, help="examples per target (default 100000)")
    ap.add_argument("--target", choices=["midi", "stream", "both"], default="both")
    ap.add_argument("--json", metavar="OUT", help="also write the results as JSON")
    args = ap.parse_args(argv)
    logging.disable(logging.WARNING)  # the agent logs every held note it releases: thousands of lines here
    results = []
    rss0 = rss_mb()
    for target in (["midi", "stream"] if args.target == "both" else [args.target]):
        results.append(run(target, args.count))
    rss1 = rss_mb()
    print(f"\n{'target':8} {'examples':>9} {'failures':>8} {'seconds':>8} {'slowest s':>9}  details")
    for r in results:
        details = {k: v for k, v in r.items() if k not in ("target", "count", "failures", "seconds", "slowest_s",
                                                             "first_failure")}
        print(f"{r['target']:8} {r['count']:9d} {r['failures']:8d} {r['seconds']:8.1f} {r['slowest_s']:9.3f}  {details}")
        if r["first_failure"]:
            print(f"  first failure: {r['first_failure']}")
    out = {"results": results, "rss_start_mb": round(rss0, 1), "rss_end_mb": round(rss1, 1),
           "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()), "loadavg": os.getloadavg()}
    print(json.dumps(out))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    return 1 if any(r["failures"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
