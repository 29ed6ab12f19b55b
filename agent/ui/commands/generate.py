"""antiphon generate [--model DIR] [--prime FILE.mid] --bars N --out OUT.mid [--musicxml X] [--pianoroll P]

Offline generation with the live agent's own Predictor and Sampler: prime
the model with a MIDI file (or nothing), sample until N bars of new music
exist, and write MIDI (tracks "primer" and "generated"), MusicXML (piano
staves, treble and bass) and a piano-roll PNG. The same seed and options give
the same files. music21 and matplotlib are imported only when their output
is asked for.

A piano-roll model (card.json "kind": "roll", see agent/model/roll.py) generates
on its frame grid instead: each frame's keys drawn with their probabilities
(a Bernoulli draw per key for the sigmoid head, key by key for the nade
head), at --temp; keys held over frames become notes. The token sampling
controls other than --temp do not apply to it.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from agent.ui.cli import common_options
from agent.config import load_config
from agent.live.jam.limits import limit_ticks, notes_over
from agent.errors import AntiphonError
from agent.music.tokens import Note, decode, duration_ticks, encode
from agent.model.sampler import SamplingControls, SamplingError

HELP = "continue a MIDI file (or start from nothing) and write MIDI, MusicXML and a piano roll"
SPLIT_PITCH = 60  # middle C and above on the treble staff
TOKENS_PER_BEAT_LIMIT = 64  # a runaway guard: no real music needs this many tokens per beat
BOUNDARY_BIAS = -50.0  # START/END mid-piece would end the music early: make them (nearly) impossible

# option -> (SamplingControls field, type, help)
CONTROL_OPTIONS = {
    "--temp": ("temperature", float, "temperature (> 0)"),
    "--top-k": ("top_k", int, "keep the k likeliest tokens (0 = off)"),
    "--top-p": ("top_p", float, "nucleus sampling, 0 < p <= 1"),
    "--adaptive-min": ("adaptive_min", float, "lower bound of the adaptive temperature"),
    "--adaptive-max": ("adaptive_max", float, "upper bound of the adaptive temperature"),
    "--key": ("key", str, "'none', 'auto' or e.g. 'D minor'"),
    "--key-strength": ("key_strength", float, "logit penalty off the key (>= 100 masks)"),
    "--pitch-min": ("pitch_min", int, "lowest MIDI pitch to play"),
    "--pitch-max": ("pitch_max", int, "highest MIDI pitch to play"),
    "--max-polyphony": ("max_polyphony", int, "most notes sounding at once"),
    "--repeat-penalty": ("repeat_penalty", float, "logit penalty per recent repeat of a pitch"),
    "--repeat-window": ("repeat_window", int, "recent note-ons the penalty looks at"),
    "--rest-bias": ("rest_bias", float, "added to shifts of a beat or more (< 0: fewer long rests)"),
}


def add_arguments(p) -> None:
    p.add_argument("--model", metavar="DIR", help="model folder (default: config [model] path, models/default)")
    p.add_argument("--prime", metavar="FILE.mid", help="MIDI file to continue (default: start from nothing)")
    p.add_argument("--prime-bars", type=float, default=0.0, metavar="N",
                   help="use only the primer's first N bars (default: all of it)")
    p.add_argument("--bars", type=float, default=8.0, metavar="N", help="bars of new music (default 8)")
    p.add_argument("--out", required=True, metavar="OUT.mid", help="MIDI file to write")
    p.add_argument("--musicxml", metavar="OUT.musicxml", help="also write MusicXML (treble and bass staves)")
    p.add_argument("--pianoroll", metavar="OUT.png", help="also write a piano-roll picture")
    p.add_argument("--seed", type=int, help="random seed (default: config sampling.seed; -1 = random)")
    p.add_argument("--backend", help="onnx | torch-cpu | torch-cuda | auto (default: config model.backend)")
    p.add_argument("--bpm", type=float, help="tempo written to the files (default: the primer's, else config)")
    for opt, (_, typ, text) in CONTROL_OPTIONS.items():
        metavar = {int: "N", float: "X"}.get(typ, "KEY")
        p.add_argument(opt, type=typ, help=text, dest=opt[2:].replace("-", "_"), metavar=metavar)
    p.add_argument("--adaptive", action="store_true", default=None, help="entropy-adaptive temperature")
    common_options(p)


@dataclass
class Generation:
    primer_ids: list[int]
    generated_ids: list[int]
    primer: list[Note]  # beats from 0
    generated: list[Note]  # beats, continuing after the primer
    start_beat: float


def generate(predictor, controls: SamplingControls, primer: list[Note], bars: float, beats_per_bar: int,
             max_note_beats: float | None = None) -> Generation:
    """Prime with `primer`, then sample until `bars` bars of new time have passed.

    With `max_note_beats` (the live agent's `sampling.max_note_beats`), a generated note still held
    that long is closed by the live agent's rule (limits.notes_over, in ticks only: offline there are
    no seconds): its NOTE_OFF is fed to the model (so the state knows it ended) and the written note
    ends at that length."""
    v = predictor.vocab
    primer_ids = encode(primer, v)[:-1]  # START ... without END: the piece goes on
    predictor.prime(primer_ids)
    start_tick = duration_ticks(primer_ids, v)
    target = round(bars * beats_per_bar * v.resolution)
    limit = max(64, round(bars * beats_per_bar * TOKENS_PER_BEAT_LIMIT))
    max_ticks = limit_ticks(max_note_beats, v.resolution) if max_note_beats else 0
    controls = controls.replace(token_bias=controls.token_bias + ((v.START, BOUNDARY_BIAS), (v.END, BOUNDARY_BIAS)))
    on0, off0, n = v.note_on_base, v.note_off_base, v.n_pitches
    out: list[int] = []
    sounding: dict[int, tuple[int, float]] = {}  # a sounding generated pitch -> (its onset tick, 0 s)
    ticks = 0
    while ticks < target and len(out) < limit:
        t = predictor.sample(controls)
        out.append(t)
        ticks += v.ticks(t)
        if on0 <= t < on0 + n:
            sounding[t - on0] = (ticks, 0.0)
        elif off0 <= t < off0 + n:
            sounding.pop(t - off0, None)
        elif max_ticks and v.ticks(t):
            for k in notes_over(sounding, ticks, 0.0, max_ticks):
                del sounding[k]
                predictor.feed(off0 + k)
                out.append(off0 + k)
    # One decode of the whole stream, so the primer's last VEL carries into the new notes (VEL is sent
    # only on a change). The primer closes every note by its last tick, so onsets split the two cleanly.
    notes = decode(primer_ids + out, v)
    start_beat = start_tick / v.resolution
    new = [n for n in notes if n.start >= start_beat]
    if max_ticks:  # a shift may carry a note past its limit: it ends at the limit, as live
        new = [Note(x.pitch, x.start, min(x.end, x.start + max_ticks / v.resolution), x.velocity) for x in new]
    return Generation(primer_ids, out, [n for n in notes if n.start < start_beat], new, start_beat)


def controls_from(args, cfg) -> SamplingControls:
    c = SamplingControls.from_config(cfg.sampling)
    changes = {f: getattr(args, opt[2:].replace("-", "_")) for opt, (f, _, _) in CONTROL_OPTIONS.items()}
    changes = {k: val for k, val in changes.items() if val is not None}
    if args.adaptive:
        changes["adaptive"] = True
    try:
        return c.replace(**changes)
    except SamplingError as exc:
        raise AntiphonError(str(exc)) from None


def run(args) -> int:
    from agent.model.predictor import Predictor
    from agent.music.notes import read_midi, write_midi

    cfg = load_config(args.config, args.overrides)
    if args.bars <= 0:
        raise AntiphonError(f"--bars {args.bars}: must be > 0")
    if args.bpm is not None and args.bpm <= 0:
        raise AntiphonError(f"--bpm {args.bpm}: must be > 0")
    controls = controls_from(args, cfg)
    seed = cfg.sampling.seed if args.seed is None else args.seed
    bpm = cfg.timing.bpm
    primer: list[Note] = []
    if args.prime:
        piece = read_midi(args.prime)
        primer, bpm = piece.notes, piece.bpm
        if args.prime_bars > 0:
            cut = args.prime_bars * cfg.timing.beats_per_bar
            primer = [Note(n.pitch, n.start, min(n.end, cut), n.velocity) for n in primer if n.start < cut]
    if args.bpm:
        bpm = args.bpm
    model_path = Path(args.model) if args.model else cfg.model_dir()
    if is_roll_model(model_path):
        return run_roll(args, cfg, model_path, controls, primer, bpm, seed)
    predictor = Predictor.load(args.model or cfg.model_dir(), backend=args.backend or cfg.model.backend,
                               threads=cfg.model.threads, quantized=cfg.model.quantized,
                               seed=None if seed < 0 else seed, context_tokens=cfg.jam.context_tokens)
    g = generate(predictor, controls, primer, args.bars, cfg.timing.beats_per_bar,
                 max_note_beats=cfg.sampling.max_note_beats)
    out = write_midi([], args.out, bpm=bpm, tracks={"primer": g.primer, "generated": g.generated})
    print(f"wrote {out}: {len(g.primer)} primer notes, {len(g.generated)} new notes "
          f"({len(g.generated_ids)} tokens, {args.bars:g} bars at {bpm:.0f} bpm, backend {predictor.backend.name}, "
          f"seed {seed})")
    bpb = cfg.timing.beats_per_bar
    if args.musicxml:
        print(f"wrote {write_musicxml(g.primer + g.generated, args.musicxml, bpm=bpm, beats_per_bar=bpb)}")
    if args.pianoroll:
        png = write_pianoroll(g.primer, g.generated, args.pianoroll, beats_per_bar=bpb, split_beat=g.start_beat)
        print(f"wrote {png}")
    return 0


def is_roll_model(path: Path) -> bool:
    from agent.model.folder import ModelDir

    try:
        md = ModelDir.resolve(path)
    except AntiphonError:
        return False  # Predictor.load names the problem
    return md.card_path.exists() and md.card().get("kind") == "roll"


def run_roll(args, cfg, model_path: Path, controls: SamplingControls, primer: list[Note], bpm: float,
             seed: int) -> int:
    """Sample `args.bars` bars of frames from a roll model after the primer; write MIDI (+ MusicXML, PNG)."""
    from agent.model import roll
    from agent.model.folder import ModelDir
    from agent.music.notes import write_midi

    md = ModelDir.resolve(model_path)
    model = roll.RollModel.load(md.path, threads=cfg.model.threads or 1)
    fpb = model.frames_per_beat
    bpb = cfg.timing.beats_per_bar
    primer_frames = roll.notes_to_frames(primer, fpb, lowest=model.lowest_pitch)
    start_beat = len(primer_frames) / fpb
    n_frames = max(1, round(args.bars * bpb * fpb))
    frames = roll.generate_frames(model, n_frames, primer=primer_frames, temperature=controls.temperature,
                                  seed=None if seed < 0 else seed)
    generated = roll.frames_to_notes(frames, fpb, start_beat=start_beat, lowest=model.lowest_pitch)
    out = write_midi([], args.out, bpm=bpm, tracks={"primer": primer, "generated": generated})
    print(f"wrote {out}: {len(primer)} primer notes, {len(generated)} new notes ({n_frames} frames of "
          f"1/{fpb:g} beat, {args.bars:g} bars at {bpm:.0f} bpm, {md.path.name} {model.nade and 'nade' or 'sigmoid'} "
          f"head, temperature {controls.temperature:g}, seed {seed})")
    if args.musicxml:
        print(f"wrote {write_musicxml(primer + generated, args.musicxml, bpm=bpm, beats_per_bar=bpb)}")
    if args.pianoroll:
        png = write_pianoroll(primer, generated, args.pianoroll, beats_per_bar=bpb, split_beat=start_beat)
        print(f"wrote {png}")
    return 0


# -- outputs ------------------------------------------------------------------
def write_musicxml(notes: list[Note], path: str | Path, *, bpm: float, beats_per_bar: int = 4) -> Path:
    """Notes (beats) -> a piano score: treble staff (>= middle C) over bass staff.

    Each staff is chordified (simultaneous notes become chords, overlaps are
    tied), so the file has one voice per staff and MuseScore opens it as is.
    """
    from music21 import chord, clef, layout, meter, note, stream, tempo

    def staff(ns: list[Note], the_clef) -> stream.PartStaff:
        raw = stream.Part()
        for n in ns:
            m = note.Note(n.pitch, quarterLength=n.end - n.start)
            m.volume.velocity = n.velocity
            raw.insert(n.start, m)
        part = stream.PartStaff()
        part.insert(0, the_clef)
        part.insert(0, meter.TimeSignature(f"{beats_per_bar}/4"))
        if ns:
            for el in raw.chordify().flatten().notesAndRests:
                at = el.offset  # read it here: a new Note below has no offset of its own
                if isinstance(el, chord.Chord) and len(el.pitches) == 1:
                    el = note.Note(el.pitches[0], quarterLength=el.quarterLength, tie=el.tie)
                part.insert(at, el)
        else:
            part.insert(0, note.Rest(quarterLength=float(beats_per_bar)))
        return part

    treble = staff([n for n in notes if n.pitch >= SPLIT_PITCH], clef.TrebleClef())
    bass = staff([n for n in notes if n.pitch < SPLIT_PITCH], clef.BassClef())
    treble.insert(0, tempo.MetronomeMark(number=round(bpm)))
    score = stream.Score()
    score.insert(0, treble)
    score.insert(0, bass)
    score.insert(0, layout.StaffGroup([treble, bass], symbol="brace", barTogether=True))
    path = Path(path)
    score.write("musicxml", fp=str(path))
    return path


def write_pianoroll(primer: list[Note], generated: list[Note], path: str | Path, *, beats_per_bar: int = 4,
                    split_beat: float | None = None) -> Path:
    """A piano roll (beats across, MIDI pitch up): primer grey, new notes blue, bar lines, a line at `split_beat`."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch, Rectangle

    notes = primer + generated
    end = max((n.end for n in notes), default=float(beats_per_bar))
    lo = min((n.pitch for n in notes), default=60) - 2
    hi = max((n.pitch for n in notes), default=72) + 2
    fig, ax = plt.subplots(figsize=(min(40, 4 + end / 4), 5), dpi=100)
    handles = []
    for ns, color, label in ((primer, "0.6", "primer"), (generated, "tab:blue", "generated")):
        for n in ns:
            ax.add_patch(Rectangle((n.start, n.pitch - 0.4), n.end - n.start, 0.8, color=color, lw=0))
        handles.append(Patch(color=color, label=f"{label} ({len(ns)} notes)"))
    for b in range(0, int(end) + beats_per_bar, beats_per_bar):
        ax.axvline(b, color="0.85", lw=0.6, zorder=0)
    if split_beat:
        ax.axvline(split_beat, color="k", lw=1)
    ax.set_xlim(0, end)
    ax.set_ylim(lo, hi)
    ax.set_xlabel("beats")
    ax.set_ylabel("MIDI pitch")
    ax.legend(handles=handles, loc="upper right")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path
