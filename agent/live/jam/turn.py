"""Turn-taking: when has the player's phrase ended, and when does the answer come in.

Three policies with one method, `end_time(phrase, now) -> seconds`: the
moment the agent may take its turn (the answer's first note then goes on the
next grid point at or after it, see `place`), and one hook, `heard`, for every
note the player plays in call mode.

- `SilenceTurn` ("silence"): the plain rule. The phrase has ended after the
  silence threshold (`jam.silence_beats` of the followed tempo, or
  `jam.silence_ms` when silence_beats is 0), or when the end-of-phrase CC
  was pressed.
- `ModelTurn` ("model"): when the player's last notes have been released it
  weighs what it knows at that moment:
    * the model's own prediction: the probability it gives to the player
      resting for a beat or more before the next note (`p_rest`, summed over
      the time-shift tokens of at least a beat, against all note-ons and
      shifts: the mass the model puts on "the player stops here");
    * phrase-final lengthening: a last note held clearly longer than the
      phrase's usual inter-onset interval (and at least `LONG_NOTE_BEATS`)
      is what a cadence sounds like; a breath is a note cut short;
    * the beat position of the last onset (cadences land on the beat).
  If the evidence says the phrase is over, the turn is the release (no sooner
  than `MIN_GAP_BEATS`); if not, it waits for the silence threshold as
  SilenceTurn does, so a breath inside a phrase is heard out and the
  player's next note (the phrase going on) cancels the prepared answer.
- `PhraseTurn` ("phrase", the default): ModelTurn, and the phrase-end
  classifier (agent/music/phrase_end.py, the model folder's phrase_end.json)
  fed every note of the call as it is played, on the player's bar grid. At the
  release of the melody's last note its note-off head says whether the phrase
  ended there: a chorale's fermata quarter, a reel's last eighth, a short note
  on a strong beat, which neither the held-note rule nor the silence sees in
  time. If it says so the phrase ends at the release and the answer comes in
  at the next phrase slot; if not, the silence decides. Without the file (or
  with one that cannot be read) it is ModelTurn.

Where the answer comes in (`place`, jam.align): "phrase" (default) the next
phrase slot, the call's first beat + k whole bars (the downbeat after the
call when it began on a downbeat; the pickup's place in the bar when it began
on a pickup), never more than a bar after the call's end, else the next beat;
"bar" the next bar line of the tempo map (the player's tracked downbeat, the
MIDI clock's or Link's bars); "beat" the next beat; "none" at once. Bars and
slots need a beat to count on: while the tempo follower is unsure of the
player's beat (`trusted` False) "phrase" and "bar" come in on the next beat.
Bars are `timing.beats_per_bar` beats: the tracked metre is not used (it is
right in ~90 % of 4/4 runs but 61 % of 3/4 and 39 % of 6/8 ones, bench_beat),
and 4 felt beats are whole bars in 4/4, 2/4, 6/8 and 12/8 alike; a player in
3/4 or 9/8 sets 3.

Beat figures use the jam's tempo map (followed from the player by default).
"""
from __future__ import annotations

import math
from statistics import median

from agent.model.folder import ModelDir, ModelDirError
from agent.model.sampler import SamplingControls
from agent.music.phrase_end import Grid, PhraseModelError, PhraseTracker, load_model

LONG_NOTE_BEATS = 1.6  # a final note at least this long (and longer than the phrase's usual IOI) is a cadence
MIN_ONSETS = 4  # a phrase of fewer onsets is not over however long its note (a long first note is no cadence)
ON_BEAT_BEATS = 0.12  # an onset this close to a beat is on it
MIN_GAP_BEATS = 0.05  # the answer never starts sooner than this after the release
END_SCORE = 0.6  # evidence needed to answer on the next beat
W_LONG, W_ON_BEAT, W_MODEL = 0.45, 0.15, 1.0
NEUTRAL = SamplingControls()  # the model's own distribution: the user's sampling controls don't apply
END_P = 0.55  # the classifier's p(end) from which the jam ends a phrase early: over its head's F1-best
# threshold (0.44), as a false end is heard (an answer withdrawn as the player goes on at the slot) while a
# missed one is answered after the silence. On 40 chorales' lines: found 87 % -> 84 %, internal false ends
# 0.127 -> 0.067 a call
SLACK_BEATS = 0.01  # rounding room on "no more than a bar after the call's end"


def rest_probability(predictor, vocab) -> float:
    """The model's probability that the next thing in the stream is a rest of a beat or more
    (against note-ons and shorter shifts), from the predictor's state as it is now."""
    v = vocab
    probs = predictor.probabilities(NEUTRAL)
    ons = float(probs[v.note_on_base:v.note_off_base].sum())
    shifts = probs[v.shift_base:v.shift_base + v.max_shift]
    total = ons + float(shifts.sum())
    return float(shifts[v.resolution - 1:].sum()) / total if total > 0 else 0.0


def align_of(jam_cfg) -> str:
    """The grid an answer comes in on: jam.align ("phrase" | "beat" | "bar" | "none")."""
    return jam_cfg.align


def call_first_beat(tempo, phrase) -> int:
    """The call's first beat on the tempo map: its first onset to the nearest beat (a pickup of less
    than half a beat belongs to the beat after it). The beat counted when it was played where that
    was trusted (`phrase.first_beat`), else its place on the map as it is now."""
    b = phrase.first_beat if phrase.first_beat is not None else tempo.beat(phrase.first_t)
    return math.floor(b + 0.5)


def written_end_s(tempo, phrase) -> float:
    """The call's written end (seconds), taken as the first point of the player's subdivision at or
    after its last release (a breath is taken out of a note's length: the release comes a little early)."""
    return tempo.next_beat(phrase.last_t - 1e-6, every=1.0 / max(1, tempo.division))


def latest_s(tempo, phrase) -> float:
    """The latest an answer may come in (seconds): one bar after the call's written end."""
    return written_end_s(tempo, phrase) + (tempo.beats_per_bar + SLACK_BEATS) * tempo.seconds_per_beat()


def phrase_slot(tempo, t_s: float, phrase) -> float | None:
    """The next phrase slot at or after t_s (seconds): the call's first beat + k whole bars (the
    point that completes its period); None when that is more than a bar after the call's end."""
    slot = tempo.next_beat(t_s, every=float(tempo.beats_per_bar), origin=call_first_beat(tempo, phrase))
    return slot if slot <= latest_s(tempo, phrase) else None


def place(tempo, t_s: float, align: str, phrase=None, trusted: bool = True) -> float:
    """The first grid point (jam.align) at or after t_s (seconds): the call's next phrase slot, the
    tempo map's next bar line, the next beat, or t_s itself ("none"). A slot or bar line more than a
    bar after the call's end, or while the beat is not `trusted`, gives way to the next beat."""
    if align == "none":
        return t_s
    if trusted and phrase is not None and align == "phrase":
        slot = phrase_slot(tempo, t_s, phrase)
        if slot is not None:
            return slot
    elif trusted and align == "bar":
        bar = tempo.next_bar(t_s)
        if phrase is None or bar <= latest_s(tempo, phrase):
            return bar
    return tempo.next_beat(t_s)


def answer_bars(tempo, phrase) -> int:
    """The call's length in whole bars, for an answer as long as it (phrase alignment): from its first
    beat to its written end, a bar begun counted (a tenth of a bar's slack), at least one."""
    beats = tempo.beat(written_end_s(tempo, phrase)) - call_first_beat(tempo, phrase)
    return max(1, math.ceil(beats / tempo.beats_per_bar - 0.1))


class SilenceTurn:
    name = "silence"

    def __init__(self, jam) -> None:
        self.jam = jam

    def heard(self, pitch: int, on: bool, t_s: float, fresh: bool) -> None:
        """A note of the call (fresh: its first). The silence rule needs nothing but the phrase's times."""

    def end_time(self, p, now: float) -> float:
        return p.forced_t if p.forced_t is not None else p.last_t + self.jam.silence_s()


class ModelTurn(SilenceTurn):
    name = "model"

    def __init__(self, jam) -> None:
        super().__init__(jam)
        self._seen: tuple | None = None  # (phrase index, last_t) the evidence was computed for
        self._early: bool = False
        self.last: dict = {}  # the last decision's evidence, for reports and tests

    def end_time(self, p, now: float) -> float:
        if p.forced_t is not None:
            return p.forced_t
        key = (p.index, p.last_t)
        if key != self._seen:  # the release just happened: weigh it once
            self._seen = key
            self._early = self.decide(p)
        late = p.last_t + self.jam.silence_s()
        if self._early:
            return min(p.last_t + MIN_GAP_BEATS * self.jam.tempo.seconds_per_beat(), late)
        return late

    def decide(self, p) -> bool:
        """Whether the phrase ended at its last release (else the silence decides)."""
        return self.evidence(p) >= END_SCORE

    def evidence(self, p) -> float:
        tempo = self.jam.tempo
        spb = tempo.seconds_per_beat()
        held = (p.last_t - p.last_on_t) / spb
        iois = [(b - a) / spb for a, b in zip(p.onsets, p.onsets[1:])]
        usual = median(iois) if iois else 1.0
        long_note = held >= max(LONG_NOTE_BEATS, 1.3 * usual) and len(p.onsets) >= MIN_ONSETS
        b = tempo.beat(p.last_on_t)
        on_beat = abs(b - round(b)) <= ON_BEAT_BEATS
        p_rest = rest_probability(self.jam.predictor, self.jam.vocab)
        score = W_LONG * long_note + W_ON_BEAT * on_beat + W_MODEL * p_rest
        self.last = {"held_beats": held, "usual_ioi_beats": usual, "long_note": long_note, "on_beat": on_beat,
                     "p_rest": p_rest, "score": score, "early": score >= END_SCORE}
        return score


def load_phrase_model(model_path, report=None):
    """The model folder's phrase-end classifier (phrase_end.json), or None: no folder, no file, or a
    file that cannot be used (said through `report`, one line)."""
    try:
        f = ModelDir.resolve(model_path).phrase_end
    except ModelDirError:
        return None
    if not f.exists():
        return None
    try:
        return load_model(f)
    except PhraseModelError as e:
        if report is not None:
            report(f"{e}; phrase ends are heard by the model turn's rule")
        return None


class PhraseTurn(ModelTurn):
    name = "phrase"

    def __init__(self, jam, model=None) -> None:
        super().__init__(jam)
        if model is None:
            model = load_phrase_model(jam.controls.cfg.model.path, jam.report)
        self.tracker = PhraseTracker(model) if model is not None else None
        self._release: tuple[float, float] | None = None  # (t_s, p) at the melody's last release

    def grid(self) -> Grid:
        """The player's beat and bar line for the classifier: a MIDI clock's or Link's bars; from the
        player, the first beat after the call's first onset is taken for a downbeat (the call begins
        on a pickup of up to a beat). On 40 Bach chorales' phrases (72 bpm, 150 calls after the first)
        that finds 87 % of the ends at the last release, with a false end inside 9 % of the calls (at the
        head's threshold); the tracked downbeat 87 % (13 %) since f5ecc99's bar scorer, 60 % (24 %)
        before it; the true bar line 91 % (15 %)."""
        tempo, p = self.jam.tempo, self.jam.phrase
        if p is None or self.jam.controls.cfg.timing.source in ("clock", "link"):
            bar = tempo.bar_beat
        else:
            first = p.first_beat if p.first_beat is not None else tempo.beat(p.first_t)
            bar = math.floor(first + ON_BEAT_BEATS) + 1
        return Grid(tempo.seconds_per_beat(), tempo.time(bar), tempo.beats_per_bar)

    def heard(self, pitch: int, on: bool, t_s: float, fresh: bool) -> None:
        if self.tracker is None:
            return
        if fresh:
            self.tracker.new_phrase(skip=self._answered_s())
            self._release = None
        if on:
            self.tracker.note_on(t_s, pitch, self.grid())
            return
        p_end = self.tracker.note_off(t_s, pitch, self.grid())
        if p_end is not None:
            self._release = (t_s, p_end)

    def _answered_s(self) -> float:
        """How long the agent's last answer sounded (seconds) if it came after the player's last note."""
        last = self.jam.responses[-1] if self.jam.responses else None
        heard = self.tracker.onsets[-1] if self.tracker.onsets else None
        if last is None or heard is None or last.get("first_note_t") is None or last.get("end_t") is None:
            return 0.0
        return max(0.0, last["end_t"] - last["first_note_t"]) if last["first_note_t"] > heard else 0.0

    def decide(self, p) -> bool:
        """The classifier's note-off head at the melody's last release decides (the cadence rule's
        evidence is kept for the report: the classifier weighs held notes itself, and the LSTM's
        rest probability is no feature of it); without a classifier, ModelTurn's rule."""
        if self.tracker is None:
            return super().decide(p)
        self.evidence(p)
        rel = self._release
        p_end = rel[1] if rel is not None and p.last_on_t <= rel[0] <= p.last_t else None
        ended = p_end is not None and p_end >= max(END_P, self.tracker.model.heads["note_off"].threshold)
        self.last.update(p_end=p_end, phrase_end=ended, early=ended)
        return ended


POLICIES = {"silence": SilenceTurn, "model": ModelTurn, "phrase": PhraseTurn}


def make_turn(name: str, jam):
    return POLICIES[name](jam)
