"""What the REPL shows: the bottom toolbar and `status`, read from the engine as copies.

Nothing here waits on the engine or walks what its threads append to: attribute
reads (the figures the engine publishes, e.g. the last answer's onset), and
the scheduler's open notes and the pending list, each copied under its lock.
"""
from __future__ import annotations


def state_of(engine) -> str:
    j = engine.jam
    if j is None:
        return "stopped"
    if j.held is not None:
        return "silent (mode off)" if j.held == "mode" else "silent"
    g = j.gen
    if g is None:
        return "listening"
    return {"call": "answering", "accompany": "playing along", "solo": "playing solo"}.get(g.kind, g.kind)


def key_text(engine) -> str:
    key = engine.controls.cfg.sampling.key
    if key.strip().lower() != "auto":
        return key
    sampler = getattr(engine.predictor, "sampler", None)
    est = getattr(sampler, "key_heard", None)  # the player's key, estimated as they play
    if est is None:
        return "auto (none heard yet)"
    from agent.music.keys import key_name

    return f"{key_name(est)} (heard)"


def tempo_source(engine) -> str:
    """Where the tempo comes from: "set", "MIDI clock", or "followed, confidence 0.83"."""
    st = engine.tempo_status()
    if st["tempo_source"] == "player":
        return f"followed, confidence {st['tempo_confidence']:.2f}"
    return {"clock": "MIDI clock", "fixed": "set", "link": "Ableton Link"}[st["tempo_source"]]


def echo_text(engine) -> str:
    """"echo 0.6 vary, related 0.82": the echo, the answer form, and how related the last answer was (the
    cosine of its pitch classes with its call's, the session memory's figure; "-" before any answer)."""
    j = engine.controls.cfg.jam
    related = getattr(getattr(engine.jam, "memory", None), "related", None)
    return f"echo {j.echo:g} {j.form}, related " + (f"{related:.2f}" if related is not None else "-")


def over_budget(engine, step_ms: float | None) -> str:
    """" (over the 2 ms budget)" when a model step's p99 (ms) does not fit latency.step_budget_ms, else ""."""
    budget = engine.controls.cfg.latency.step_budget_ms
    return f" (over the {budget:g} ms budget)" if step_ms is not None and step_ms > budget else ""


def status_lines(engine) -> list[str]:
    c = engine.controls.cfg
    s, j = c.sampling, c.jam
    mode = "off" if engine.jam is not None and engine.jam.held == "mode" else j.mode
    lines = [f"mode {mode} ({state_of(engine)}); model {engine.model_name}"
             + (f" (loading {engine.loading})" if engine.loading else ""),
             f"temperature {s.temperature:g}, top-p {s.top_p:g}, top-k {s.top_k}, adaptive "
             f"{'on' if s.adaptive else 'off'}; key {key_text(engine)}; range {s.pitch_min}..{s.pitch_max}",
             f"tempo {engine.tempo.bpm:g} bpm ({tempo_source(engine)}), {engine.tempo.beats_per_bar} beats a bar; "
             f"silence {f'{j.silence_beats:g} beats' if j.silence_beats > 0 else f'{j.silence_ms:g} ms'}; "
             f"length {f'{j.response_bars:g} bars' if j.response_bars > 0 else 'same'}; "
             f"channel {c.midi.channel}, velocity x{c.midi.velocity_scale:g}; {echo_text(engine)}"]
    if engine.input is not None and engine.output is not None:
        lines.append(f"listening on {engine.input.name!r}, playing on {engine.output.name!r}")
    now, ccmap = engine.clock.now(), engine.controls.ccmap
    for due, label in engine.controls.pending.items():
        lines.append(f"pending in {1e3 * (due - now):.0f} ms: {label}")
    for m in sorted(ccmap.maps.values(), key=lambda m: m.control):
        lines.append(f"cc: {m.describe()}")
    learning = ccmap.learning
    if learning:
        lines.append(f"cc: learning {learning}")
    step = engine.figures.p99_ms("steps") if engine.figures is not None else None
    if over_budget(engine, step):
        lines.append(f"model step p99 {step:.2f} ms:{over_budget(engine, step)[1:-1]} (latency.step_budget_ms)")
    if engine.scheduler is not None:
        st = engine.stats()
        lines.append(f"{st['phrases']} phrases heard, {st['answers']} answers, {st['sent']} messages sent, "
                     f"{st['dropped_late']} late note-ons dropped, {st['open_notes']} notes held")
    return lines


def toolbar_text(engine) -> str:
    """Mode and state, temperature, tempo, key, last onset, step and scheduling p99, late, held."""
    c = engine.controls.cfg
    j = engine.jam
    mode = "off" if j is not None and j.held == "mode" else c.jam.mode
    sampler = getattr(engine.predictor, "sampler", None)
    used = getattr(sampler, "last_temperature", None)
    temp = f"temp {c.sampling.temperature:.2f}" + (f" (used {used:.2f})" if c.sampling.adaptive and used else "")
    parts = [f"{mode}: {state_of(engine)}", temp, f"{engine.tempo.bpm:g} bpm ({tempo_source(engine)})",
             f"key {key_text(engine)}"]
    if c.jam.echo > 0:
        parts.append(echo_text(engine))
    f = engine.figures
    if f is not None:
        onset = f.onset_ms  # the last answer's, published by the jam's observer: no walk over its answers
        if onset is not None:
            parts.append(f"onset {onset:+.1f} ms")
        step, err = f.p99_ms("steps"), f.p99_ms("errors")
        parts.append(f"step p99 {step:.2f} ms{over_budget(engine, step)}" if step is not None else "step p99 -")
        parts.append(f"sched p99 {err:.2f} ms" if err is not None else "sched p99 -")
    s = engine.scheduler
    if s is not None:
        parts.append(f"late {s.dropped_late}")
        parts.append(f"held {len(s.open_notes)}")
    pending = engine.controls.pending.items()
    if pending:
        parts.append(f"pending {len(pending)}")
    return " | ".join(parts)
