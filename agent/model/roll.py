"""Piano-roll frames: the polyphonic benchmark's data, frames <-> notes, and roll models run from ONNX.

A frame is one time step of an 88-key many-hot vector (key 0 = A0 = MIDI 21 on
a piano; but the published JSB Chorales roll sits an octave higher than the
chorales sound: its key 0 is MIDI 9, see scripts/roll_report.py).
The benchmark sets (JSB Chorales, Nottingham; see ../shared/data/poly_music/)
are .mat files of pieces, each a (frames x 88) 0/1 array.

A roll model folder holds model.onnx (one step, explicit state) and card.json:

    inputs   x      float32 [1, 88]   the previous frame (0/1)
             h, c   float32 [layers, 1, hidden]
             v      float32 [1, 88]   nade head only: the next frame, as far as it is known
    outputs  logits float32 [1, 88]   before the sigmoid
             h_out, c_out

For the sigmoid head, logits[k] is the next frame's key k on its own. For the
nade head, logits[k] is key k given keys 0..k-1 of `v` (keys >= k of `v` are
ignored), so a frame's exact NLL is the sum of the 88 binary cross-entropies
of one call with v = that frame, and sampling runs key by key.

numpy and onnxruntime only: the live agent and `antiphon generate` import
this without torch.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from agent.errors import AntiphonError
from agent.music.tokens import Note

KEYS = 88
LOWEST = 21  # MIDI pitch of key 0 (A0)
SPLITS = {"train": "traindata", "valid": "validdata", "test": "testdata"}


class RollError(AntiphonError):
    """A piano-roll data file or model folder is missing or malformed."""


def load_mat(path: str | Path) -> dict[str, list[np.ndarray]]:
    """{train, valid, test}: lists of (frames, 88) uint8 pieces from a benchmark .mat file."""
    from scipy.io import loadmat

    path = Path(path)
    if not path.is_file():
        raise RollError(f"{path}: no such piano-roll data file")
    try:
        mat = loadmat(str(path))
    except Exception as exc:  # scipy raises several kinds for a file that is not .mat
        raise RollError(f"{path}: not a readable .mat file ({exc})") from None
    out = {}
    for split, key in SPLITS.items():
        if key not in mat:
            raise RollError(f"{path}: no '{key}' array (expected traindata, validdata, testdata)")
        pieces = [np.asarray(p, dtype=np.uint8) for p in mat[key][0]]
        bad = [i for i, p in enumerate(pieces) if p.ndim != 2 or p.shape[1] != KEYS or p.shape[0] < 2]
        if bad:
            raise RollError(f"{path}: {key} piece {bad[0]} is not a (frames >= 2) x {KEYS} array")
        out[split] = pieces
    return out


def allowed_shifts(piece: np.ndarray, limit: int) -> np.ndarray:
    """Semitone shifts in [-limit, limit] that keep every sounding key of `piece` on the keyboard."""
    used = np.flatnonzero(piece.any(axis=0))
    if len(used) == 0:
        return np.arange(-limit, limit + 1)
    lo, hi = -min(limit, int(used[0])), min(limit, piece.shape[1] - 1 - int(used[-1]))
    return np.arange(lo, hi + 1)


def transpose(piece: np.ndarray, shift: int) -> np.ndarray:
    """The piece moved `shift` semitones (keys pushed off the keyboard are dropped)."""
    if shift == 0:
        return piece
    out = np.zeros_like(piece)
    if shift > 0:
        out[:, shift:] = piece[:, :-shift]
    else:
        out[:, :shift] = piece[:, -shift:]
    return out


# -- frames <-> notes -----------------------------------------------------------
def frames_to_notes(frames: np.ndarray, frames_per_beat: float, *, start_beat: float = 0.0,
                    velocity: int = 80, lowest: int = LOWEST) -> list[Note]:
    """A key held over consecutive frames is one note (a roll cannot tell a repeat from a hold).

    lowest: the MIDI pitch of key 0 (see `RollModel.lowest_pitch`)."""
    frames = np.asarray(frames) > 0
    notes = []
    step = 1.0 / frames_per_beat
    for k in range(frames.shape[1]):
        on = np.flatnonzero(np.diff(np.concatenate([[0], frames[:, k].astype(np.int8), [0]])))
        for a, b in zip(on[::2], on[1::2]):
            notes.append(Note(lowest + k, start_beat + a * step, start_beat + b * step, velocity))
    notes.sort(key=lambda n: (n.start, n.pitch))
    return notes


def notes_to_frames(notes: list[Note], frames_per_beat: float, *, lowest: int = LOWEST) -> np.ndarray:
    """(frames, 88) uint8: a key is on in every frame whose start it sounds at (or whose span it starts in)."""
    if not notes:
        return np.zeros((0, KEYS), np.uint8)
    end = max(n.end for n in notes)
    frames = np.zeros((int(np.ceil(end * frames_per_beat - 1e-9)), KEYS), np.uint8)
    for n in notes:
        k = n.pitch - lowest
        if 0 <= k < KEYS:
            a = int(np.floor(n.start * frames_per_beat + 1e-9))
            b = max(a + 1, int(np.ceil(n.end * frames_per_beat - 1e-9)))
            frames[a:b, k] = 1
    return frames


# -- a roll model from its ONNX file alone -----------------------------------------
def _card_fields(folder: Path) -> tuple[float, int]:
    """frames_per_beat and lowest_pitch from a roll model's card.json (checked: one line if wrong)."""
    from agent.model.folder import ModelDir

    md = ModelDir(folder)
    card = md.card()
    fpb, lowest = card.get("frames_per_beat") or 1.0, card.get("lowest_pitch", LOWEST)
    if isinstance(fpb, bool) or not isinstance(fpb, (int, float)) or not 0 < fpb < 1000:
        raise RollError(f"{md.card_path}: frames_per_beat must be a positive number, not {fpb!r}")
    if isinstance(lowest, bool) or not isinstance(lowest, int) or not 0 <= lowest <= 127 - KEYS + 1:
        raise RollError(f"{md.card_path}: lowest_pitch must be a MIDI pitch 0..{127 - KEYS + 1}, not {lowest!r}")
    return float(fpb), lowest



@dataclass
class RollModel:
    """One-step ONNX roll model with its state shape and head, read from the graph itself."""

    session: object
    layers: int
    hidden: int
    nade: bool
    frames_per_beat: float = 1.0
    lowest_pitch: int = LOWEST  # MIDI pitch of key 0 in the data the model was trained on

    @classmethod
    def load(cls, path: str | Path, *, threads: int = 1, frames_per_beat: float | None = None) -> "RollModel":
        """path: a model.onnx, or a model folder (then card.json, if any, gives frames_per_beat)."""
        import onnxruntime as ort

        p = Path(path)
        fpb, lowest = 1.0, LOWEST
        if p.is_dir():
            if (p / "card.json").exists():
                fpb, lowest = _card_fields(p)
            p = p / "model.onnx"
        if not p.is_file():
            raise RollError(f"{p}: no such ONNX file")
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        try:
            sess = ort.InferenceSession(str(p), so, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidProtobuf types
            raise RollError(f"{p}: onnxruntime cannot load it: {str(exc).splitlines()[0]}") from None
        inputs = {i.name: i.shape for i in sess.get_inputs()}
        if "x" not in inputs or "h" not in inputs:
            raise RollError(f"{p}: not a roll model (inputs {sorted(inputs)}, expected x, h, c[, v])")
        h = inputs["h"]
        if len(h) != 3 or not all(isinstance(n, int) and n > 0 for n in h):
            raise RollError(f"{p}: state input h has shape {h}; expected [layers, 1, hidden] in whole numbers")
        layers, _, hidden = h
        return cls(sess, layers, hidden, "v" in inputs, float(frames_per_beat or fpb), lowest)

    def zero_state(self) -> tuple[np.ndarray, np.ndarray]:
        z = np.zeros((self.layers, 1, self.hidden), np.float32)
        return z, z.copy()

    def step(self, x: np.ndarray, h, c, v: np.ndarray | None = None):
        """(logits [88] float32, h, c) for the frame after x; nade: conditionals on v's keys below each key."""
        feed = {"x": np.asarray(x, np.float32).reshape(1, KEYS), "h": h, "c": c}
        if self.nade:
            feed["v"] = (np.zeros((1, KEYS), np.float32) if v is None
                         else np.asarray(v, np.float32).reshape(1, KEYS))
        logits, h, c = self.session.run(["logits", "h_out", "c_out"], feed)
        return logits[0], h, c

    def piece_nll(self, piece: np.ndarray) -> np.ndarray:
        """NLL in nats of frames 2..T given frames 1..T-1, from a zero state (the benchmark protocol)."""
        piece = np.asarray(piece, np.float32)
        h, c = self.zero_state()
        out = np.zeros(len(piece) - 1)
        for t in range(len(piece) - 1):
            logits, h, c = self.step(piece[t], h, c, piece[t + 1])
            out[t] = bce_sum(logits, piece[t + 1])
        return out

    def sample_frame(self, x, h, c, rng: np.random.Generator, temperature: float = 1.0):
        """(next frame uint8 [88], h, c): a Bernoulli draw per key (sigmoid), or key by key (nade)."""
        if not self.nade:
            logits, h, c = self.step(x, h, c)
            return (rng.random(KEYS) < _sigmoid(logits / temperature)).astype(np.uint8), h, c
        v = np.zeros(KEYS, np.float32)
        logits, h2, c2 = self.step(x, h, c, v)
        for k in range(KEYS):  # key k's logit depends only on keys below it: ancestral sampling
            if k:
                logits, _, _ = self.step(x, h, c, v)
            v[k] = float(rng.random() < _sigmoid(logits[k] / temperature))
        return v.astype(np.uint8), h2, c2


def bce_sum(logits: np.ndarray, target: np.ndarray) -> float:
    """Sum over keys of binary cross-entropy in nats, stable for large |logits|."""
    z = np.asarray(logits, np.float64)
    y = np.asarray(target, np.float64)
    return float(np.sum(np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))))


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(z, np.float64)))


def onnx_test_nll(model: RollModel, pieces: list[np.ndarray]) -> tuple[float, int]:
    """(mean NLL per predicted frame in nats, number of predicted frames) over pieces, from the ONNX file."""
    total, count = 0.0, 0
    for p in pieces:
        nll = model.piece_nll(p)
        total += float(nll.sum())
        count += len(nll)
    return total / max(count, 1), count


def generate_frames(model: RollModel, n_frames: int, *, primer: np.ndarray | None = None,
                    temperature: float = 1.0, seed: int | None = None) -> np.ndarray:
    """(n_frames, 88) uint8 sampled after feeding `primer` (frames) from a zero state."""
    if temperature <= 0:
        raise AntiphonError(f"temperature {temperature}: must be > 0")
    rng = np.random.default_rng(seed)
    h, c = model.zero_state()
    x = np.zeros(KEYS, np.float32)  # no primer: start from a silent frame
    if primer is not None and len(primer):
        for f in primer[:-1]:
            _, h, c = model.step(f, h, c)
        x = np.asarray(primer[-1], np.float32)
    out = np.zeros((n_frames, KEYS), np.uint8)
    for t in range(n_frames):
        out[t], h, c = model.sample_frame(x, h, c, rng, temperature)
        x = out[t].astype(np.float32)
    return out
