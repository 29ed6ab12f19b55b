"""The demo's ending: session.wav through fluidsynth, and a summary a person can read."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

# General MIDI soundfonts where Debian/Ubuntu (fluid-soundfont-gm, timgm6mb-soundfont), Fedora and Homebrew put them
SOUNDFONTS = ["/usr/share/sounds/sf2/FluidR3_GM.sf2", "/usr/share/sounds/sf2/default-GM.sf2",
              "/usr/share/soundfonts/FluidR3_GM.sf2", "/usr/share/soundfonts/default.sf2",
              "/usr/share/sounds/sf2/TimGM6mb.sf2", "/usr/local/share/soundfonts/default.sf2",
              "/opt/homebrew/share/soundfonts/default.sf2"]


def soundfont() -> Path | None:
    """A General MIDI soundfont: $ANTIPHON_SOUNDFONT, else the first of SOUNDFONTS that exists."""
    for cand in [os.environ.get("ANTIPHON_SOUNDFONT", "")] + SOUNDFONTS:
        if cand and Path(cand).is_file():
            return Path(cand)
    return None


def render_wav(mid: Path, wav: Path, sf2: Path | None) -> list[Path]:
    """Render `mid` to `wav` with fluidsynth (44.1 kHz); [wav], or [] with a one-line note why not."""
    exe = shutil.which("fluidsynth")
    if exe is None or sf2 is None:
        print("note: no session.wav: " + ("fluidsynth is not installed" if exe is None else "no General MIDI "
              "soundfont found (set ANTIPHON_SOUNDFONT=FILE.sf2)") + "; apt install fluidsynth fluid-soundfont-gm")
        return []
    tmp = wav.with_name(f".{wav.name}.tmp.wav")
    try:
        r = subprocess.run([exe, "-ni", "-q", "-g", "0.8", "-r", "44100", "-F", str(tmp), str(sf2), str(mid)],
                           capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        r = None
    if r is None or r.returncode != 0 or not tmp.exists():
        why = "timed out" if r is None else (r.stderr.strip().splitlines() or [f"exit {r.returncode}"])[-1]
        print(f"note: no session.wav: fluidsynth failed: {why}")
        tmp.unlink(missing_ok=True)
        return []
    os.replace(tmp, wav)
    return [wav]


def _ms(xs) -> str:
    import numpy as np

    if not xs:
        return "n/a"
    a = np.asarray(xs) * 1e3
    return f"p50 {np.percentile(a, 50):.1f} ms, p99 {np.percentile(a, 99):.1f} ms, max {a.max():.1f} ms"


def summary(engine, recorder, ends: list[float], closed: list[int], files: list[Path]) -> str:
    """Per phrase: notes in and out and when the answer began; the key heard; latency; the files."""
    from agent.music.keys import estimate_key, key_name

    jam, sched = engine.jam, engine.scheduler
    human, agent = recorder.notes("human"), recorder.notes("agent")
    lines = ["", "summary"]
    onsets = []
    sent = sorted(recorder.t0 + n.start_s for n in agent)  # when each agent note actually went out
    for resp, end_t in zip(jam.responses, ends):
        first = resp.get("first_note_t")  # when it was due
        when = "no notes"
        out = next((t for t in sent if t >= first - 0.001), None) if first is not None else None
        if out is not None:
            onsets.append(out - resp["threshold_t"])
            when = (f"first note sent {1e3 * (out - end_t):.0f} ms after the phrase's last note "
                    f"({1e3 * (out - resp['threshold_t']):+.1f} ms after the {jam.silence_s() * 1e3:.0f} ms pause)")
        lines.append(f"  phrase {resp.get('phrase', '?')}: {resp.get('heard_notes', 0)} notes in, "
                     f"{resp['notes']} notes out; {when}")
    key = estimate_key([n.pitch for n in human])
    lines.append(f"  key heard: {key_name(key) if key else 'not enough notes to tell'} "
                 f"(from the player's {len(human)} notes)")
    lines.append(f"  answer's first note sent after the pause: {_ms(onsets)}")
    lines.append(f"  scheduler send error: {_ms(list(sched.errors_s))} over {sched.sent} messages; "
                 f"{sched.dropped_late} late note-ons dropped; {len(closed)} notes closed at stop, "
                 f"{len(sched.open_notes)} left open")
    lines.append(f"  agent pitches: {' '.join(str(n.pitch) for n in agent) or '(none)'}")
    lines.append(f"  human {len(human)} notes, agent {len(agent)} notes; files:")
    lines += [f"    {p}" for p in files]
    return "\n".join(lines)
