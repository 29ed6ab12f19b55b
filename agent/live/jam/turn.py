"""Turn-taking: when has the player's phrase ended, and when does the answer come in.

Two policies with one method, `end_time(phrase, now) -> seconds`: the
moment the agent may take its turn (the answer's first note then goes on the
next grid point at or after it, see `place`).

- `SilenceTurn` ("silence"): the plain rule. The phrase has ended after the
  silence threshold (`jam.silence_beats` of the followed tempo, or
  `jam.silence_ms` when silence_beats is 0), or when the end-of-phrase CC
  was pressed.
- `ModelTurn` ("model", the default): when the player's last notes have been
  released it weighs what it knows at that moment:
    * the model's own prediction: the probability it gives to the player
      resting for a beat or more before the next note (`p_rest`, summed over
      the time-shift tokens of at least a beat, against all note-ons and
      shifts: the mass the model puts on "the player stops here");
    * phrase-final lengthening: a last note held clearly longer than the
      phrase's usual inter-onset interval (and at least `LONG_NOTE_BEATS`)
      is what a cadence sounds like; a breath is a note cut short;
    * the beat position of the last onset (cadences land on the beat).
  If the evidence says the phrase is over, the answer comes in on the next
  beat after the release (no sooner than `MIN_GAP_BEATS`); if not, it waits
  for the silence threshold as SilenceTurn does, so a breath inside a phrase
  is heard out and the player's next note (the phrase going on) cancels the
  prepared answer.

Beat figures use the jam's tempo map (followed from the player by default).
"""
from __future__ import annotations

from statistics import median

from agent.model.sampler import SamplingControls

LONG_NOTE_BEATS = 1.6  # a final note at least this long (and longer than the phrase's usual IOI) is a cadence
MIN_ONSETS = 4  # a phrase of fewer onsets is not over however long its note (a long first note is no cadence)
ON_BEAT_BEATS = 0.12  # an onset this close to a beat is on it
MIN_GAP_BEATS = 0.05  # the answer never starts sooner than this after the release
END_SCORE = 0.6  # evidence needed to answer on the next beat
W_LONG, W_ON_BEAT, W_MODEL = 0.45, 0.15, 1.0
NEUTRAL = SamplingControls()  # the model's own distribution: the user's sampling controls don't apply


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
    """The grid an answer comes in on: jam.align ("beat" | "bar" | "none")."""
    return jam_cfg.align


def place(tempo, t_s: float, align: str, phrase_beat: float | None = None) -> float:
    """The first grid point at or after t_s: a beat, a bar line (bars counted from the phrase's
    first beat), or t_s itself ("none")."""
    if align == "beat":
        return tempo.next_beat(t_s)
    if align == "bar":
        origin = round(phrase_beat) if phrase_beat is not None else 0.0
        return tempo.next_beat(t_s, every=float(tempo.beats_per_bar), origin=origin)
    return t_s


class SilenceTurn:
    name = "silence"

    def __init__(self, jam) -> None:
        self.jam = jam

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
            self._early = self.evidence(p) >= END_SCORE
        late = p.last_t + self.jam.silence_s()
        if self._early:
            return min(p.last_t + MIN_GAP_BEATS * self.jam.tempo.seconds_per_beat(), late)
        return late

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


POLICIES = {"silence": SilenceTurn, "model": ModelTurn}


def make_turn(name: str, jam):
    return POLICIES[name](jam)
