"""From timed phones and loudness to per-frame viseme and ARKit-52 weights.

Visemes are blended with a dominance model: each phone pulls towards its viseme with a strength that
is flat over the phone and ramps off exponentially before and after it, and each frame's mix is the
normalised sum of those pulls. Neighbouring shapes therefore bleed into each other (co-articulation)
instead of switching on frame boundaries. Two rules sit on top of the blend:

* loudness scales how wide the mouth opens, and a silent voice leaves the mouth at rest, whatever
  pocketsphinx thought it heard in the noise;
* during p, b and m the lips are held shut (``jawOpen == mouthClose`` and no lip-parting channel),
  since a bilabial that does not close reads as a lip-sync error at once.

Curves are built at pocketsphinx's 100 Hz and pooled to the video rate: means for shapes, but the
maximum for lip closure so that a 40 ms "p" is never averaged away between two frames.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter1d, maximum_filter1d

from talkbridge.core.lite.phones import FRAME_RATE, SAMPLE_RATE, PhoneSegment
from talkbridge.core.lite.tables import (
    BILABIAL,
    DIPHTHONG_VISEMES,
    LIP_PARTING_CHANNELS,
    OPENING_CHANNELS,
    SILENCE,
    VISEME_DOMINANCE,
    VISEME_SHAPES,
    viseme_of,
)
from talkbridge.core.motion import ARKIT_52, FPS, OCULUS_VISEMES

ARKIT_INDEX = {name: i for i, name in enumerate(ARKIT_52)}
VISEME_INDEX = {name: i for i, name in enumerate(OCULUS_VISEMES)}

# (15, 52): each viseme's mouth shape as a row of ARKit weights.
SHAPE_MATRIX = np.zeros((len(OCULUS_VISEMES), len(ARKIT_52)), np.float32)
for _viseme, _shape in VISEME_SHAPES.items():
    for _name, _value in _shape.items():
        SHAPE_MATRIX[VISEME_INDEX[_viseme], ARKIT_INDEX[_name]] = _value


@dataclass(frozen=True)
class ArticulationConfig:
    """Tunable constants of the mouth, with the reasons for their defaults."""

    silence_rms: float = 0.002  # about -54 dBFS: quieter frames are room tone or hiss, not a voice
    loud_floor_rms: float = 0.02  # about -34 dBFS: "loud speech" is never taken to be quieter than this
    loudness_floor_db: float = -38.0  # relative to the clip's loud speech: quieter is "no voice"
    loudness_range_db: float = 26.0  # from the floor up to full opening
    loud_percentile: float = 95.0  # what "loud speech" means for this clip
    closed_opening: float = 0.45  # fraction of a vowel's opening left when the voice is soft
    closure_ramp_s: float = 0.030  # lips meet this long before a bilabial and part this long after
    closure_core: float = 0.6  # the middle part of a bilabial held fully shut (fraction of its length)
    onset_lead_steps: int = 4  # 40 ms: the mouth starts to move this far ahead of the voice
    gate_smoothing_steps: float = 3.0  # 30 ms gaussian on the voice gate and on loudness


def loudness(samples: np.ndarray, config: ArticulationConfig = ArticulationConfig()) -> np.ndarray:
    """Voice loudness 0..1 at 100 Hz: 0 for silence, 1 for this clip's loud speech."""
    hop = SAMPLE_RATE // FRAME_RATE
    n = max(1, int(np.ceil(len(samples) / hop)))
    padded = np.zeros(n * hop, np.float32)
    padded[: len(samples)] = samples
    rms = np.sqrt(np.mean(padded.reshape(n, hop) ** 2, axis=1) + 1e-20)
    rms = np.convolve(rms, np.ones(3) / 3, mode="same")  # 30 ms window
    voiced = rms > config.silence_rms
    if not voiced.any():
        return np.zeros(n, np.float32)
    # A quiet noise-only clip must not be normalised up into "speech".
    reference = max(float(np.percentile(rms[voiced], config.loud_percentile)), config.loud_floor_rms)
    level_db = 20.0 * np.log10(np.maximum(rms, 1e-10) / reference)
    level = np.clip((level_db - config.loudness_floor_db) / config.loudness_range_db, 0.0, 1.0)
    level[~voiced] = 0.0
    return level.astype(np.float32)


def _expand_diphthongs(phones: list[PhoneSegment]) -> list[tuple[str, float, float]]:
    """(viseme, start, end) triples, diphthongs split into their two visemes."""
    out: list[tuple[str, float, float]] = []
    for seg in phones:
        if seg.end <= seg.start:
            continue
        base = seg.phone.upper().rstrip("012")
        if base in DIPHTHONG_VISEMES:
            first, second = DIPHTHONG_VISEMES[base]
            middle = seg.start + 0.5 * seg.duration
            out.append((first, seg.start, middle))
            out.append((second, middle, seg.end))
        else:
            out.append((viseme_of(seg.phone), seg.start, seg.end))
    return out


def viseme_mix(phones: list[PhoneSegment], n_steps: int) -> np.ndarray:
    """(n_steps, 15) viseme weights at 100 Hz, each row summing to 1 (silence where no phone is)."""
    times = (np.arange(n_steps) + 0.5) / FRAME_RATE
    pull = np.zeros((n_steps, len(OCULUS_VISEMES)), np.float64)
    # A weak background pull to silence so gaps in the phone list rest the mouth.
    pull[:, VISEME_INDEX[SILENCE]] = 1e-3
    for viseme, start, end in _expand_diphthongs(phones):
        dominance = VISEME_DOMINANCE[viseme]
        reach = dominance.reach_s * 6.0
        lo = max(0, int(np.floor((start - reach) * FRAME_RATE)))
        hi = min(n_steps, int(np.ceil((end + reach) * FRAME_RATE)) + 1)
        if lo >= hi:
            continue
        t = times[lo:hi]
        outside = np.maximum(start - t, 0.0) + np.maximum(t - end, 0.0)
        pull[lo:hi, VISEME_INDEX[viseme]] += dominance.strength * np.exp(-outside / dominance.reach_s)
    return (pull / pull.sum(axis=1, keepdims=True)).astype(np.float32)


def bilabial_closure(phones: list[PhoneSegment], n_steps: int, config: ArticulationConfig) -> np.ndarray:
    """How firmly the lips are held shut, 0..1 at 100 Hz: 1 over each bilabial's core, ramped at its ends."""
    times = (np.arange(n_steps) + 0.5) / FRAME_RATE
    closure = np.zeros(n_steps, np.float32)
    for viseme, start, end in _expand_diphthongs(phones):
        if viseme != BILABIAL:
            continue
        middle, half_core = 0.5 * (start + end), 0.5 * config.closure_core * (end - start)
        half_core = max(half_core, 0.5 / FRAME_RATE)
        ramp = config.closure_ramp_s + 0.5 * (1.0 - config.closure_core) * (end - start)
        distance = np.abs(times - middle) - half_core
        closure = np.maximum(closure, np.clip(1.0 - distance / ramp, 0.0, 1.0).astype(np.float32))
    return closure


def _pool(values: np.ndarray, n_frames: int, how: str) -> np.ndarray:
    """From 100 Hz rows to ``n_frames`` video frames (4 steps each at 25 fps)."""
    per = FRAME_RATE // FPS
    need = n_frames * per
    if values.shape[0] < need:
        pad = np.repeat(values[-1:], need - values.shape[0], axis=0) if len(values) else np.zeros((need,) + values.shape[1:])
        values = np.concatenate([values, pad], axis=0)
    blocks = values[:need].reshape((n_frames, per) + values.shape[1:])
    return blocks.max(axis=1) if how == "max" else blocks.mean(axis=1)


def level_per_frame(level: np.ndarray, n_frames: int) -> np.ndarray:
    """(n_frames,) mean voice loudness of each video frame, from :func:`loudness`'s 100 Hz steps."""
    per = FRAME_RATE // FPS
    out = np.zeros(n_frames, np.float64)
    usable = min(len(level) // per, n_frames)
    out[:usable] = np.asarray(level)[: usable * per].reshape(usable, per).mean(axis=1)
    return out


def frame_count(n_samples: int) -> int:
    """Video frames covering ``n_samples`` of 16 kHz audio (a partly covered last frame counts)."""
    return max(1, int(np.ceil(n_samples * FPS / SAMPLE_RATE)))


def mouth_curves(
    phones: list[PhoneSegment], level: np.ndarray, n_frames: int, config: ArticulationConfig = ArticulationConfig()
) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame (n_frames, 52) ARKit mouth weights and (n_frames, 15) Oculus visemes."""
    n_steps = n_frames * (FRAME_RATE // FPS)
    padded = np.zeros(n_steps, np.float32)
    padded[: min(n_steps, len(level))] = level[:n_steps]
    level = padded
    mix = viseme_mix(phones, n_steps)
    # A silent voice overrides the phones: fade the non-silent mix out as loudness drops to zero.
    # The gate opens a little ahead of the sound and ramps over a few frames, as a mouth gets ready
    # to speak, instead of snapping open on the first loud 10 ms.
    presence = np.clip(level / 0.15, 0.0, 1.0)
    presence = presence * presence * (3.0 - 2.0 * presence)  # smoothstep, no kink at the edges
    presence = maximum_filter1d(presence, size=2 * config.onset_lead_steps + 1, mode="constant")
    presence = np.clip(gaussian_filter1d(presence, config.gate_smoothing_steps, mode="constant"), 0.0, 1.0)
    level = gaussian_filter1d(level, config.gate_smoothing_steps, mode="nearest")
    speech = mix * presence[:, None]
    speech[:, VISEME_INDEX[SILENCE]] += 1.0 - speech.sum(axis=1)
    shapes = speech @ SHAPE_MATRIX
    opening = config.closed_opening + (1.0 - config.closed_opening) * level
    for name in OPENING_CHANNELS:
        shapes[:, ARKIT_INDEX[name]] *= opening
    closure = bilabial_closure(phones, n_steps, config) * (presence > 0.0)

    arkit = _pool(shapes, n_frames, "mean")
    visemes = _pool(speech, n_frames, "mean")
    closure = _pool(closure, n_frames, "max")
    for name in LIP_PARTING_CHANNELS:
        arkit[:, ARKIT_INDEX[name]] *= 1.0 - closure
    jaw = arkit[:, ARKIT_INDEX["jawOpen"]]
    close = arkit[:, ARKIT_INDEX["mouthClose"]]
    arkit[:, ARKIT_INDEX["mouthClose"]] = closure * jaw + (1.0 - closure) * np.minimum(close, jaw)
    return np.clip(arkit, 0.0, 1.0).astype(np.float32), np.clip(visemes, 0.0, 1.0).astype(np.float32)


def lip_aperture(arkit: np.ndarray) -> np.ndarray:
    """How far apart the lips are, per frame (0 = touching), from ARKit weights.

    jawOpen parts the lips unless mouthClose cancels it (ARKit's convention); the lip raise/lower
    channels part them further.
    """
    arkit = np.atleast_2d(arkit)
    index = ARKIT_INDEX
    gap = np.maximum(arkit[:, index["jawOpen"]] - arkit[:, index["mouthClose"]], 0.0)
    lips = 0.25 * (
        arkit[:, index["mouthLowerDownLeft"]] + arkit[:, index["mouthLowerDownRight"]]
        + arkit[:, index["mouthUpperUpLeft"]] + arkit[:, index["mouthUpperUpRight"]]
    )
    return gap + 0.5 * lips
