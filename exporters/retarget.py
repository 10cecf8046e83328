"""ARKit curves for SadTalker motion, which has 3DMM expression coefficients but no blend-shape weights.

Two documented routes, recorded in ``motion.metadata["expression_source"]``:

``"3dmm_geometric"`` (the user supplies ``BFM_model_front.mat``)
    The 64 coefficients move the model's 68 landmark vertices (``exBase`` rows at ``keypoints``).
    We measure, relative to the neutral face and in units of the distance between the eye centres
    (``s``), the lip gap, mouth-corner height and mouth width, lip protrusion, each eyelid gap, brow
    heights and chin shift, and map them linearly (clipped to 0..1) to jawOpen, mouthSmile/Frown,
    mouthPucker/Funnel/Stretch, mouthUpperUp/LowerDown, eyeBlink/eyeWide, brow channels and
    jawLeft/Right/Forward; the full-scale constants are in :data:`FULL_SCALE`. Blink is the larger of
    the eyelid measurement and SadTalker's own blink channel.

``"viseme_mouth+sadtalker_blink"`` (no 3DMM file)
    Mouth, jaw, cheek and tongue channels come from the viseme (lite) engine's motion for the same
    audio (made by the job layer, ``core/jobs/viseme_mouth.py``: an exporter runs no engine);
    eyeBlinkLeft/Right come from SadTalker's blink, and pose stays SadTalker's. Brows stay at 0.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np

from talkbridge.core.emotion_overlay import OVERLAY_NAME, apply_emotion_overlay
from talkbridge.core.errors import InputError
from talkbridge.core.motion import ARKIT_52, Motion, frames_at_rate
from talkbridge.exporters.bfm import BfmModel, load_bfm

log = logging.getLogger(__name__)

GEOMETRIC = "3dmm_geometric"
VISEME_FALLBACK = "viseme_mouth+sadtalker_blink"

FULL_SCALE = {
    "jaw_open": 0.6,  # lip gap growth (x s) that counts as jawOpen = 1
    "smile": 0.12,  # corner rise relative to the lip centre
    "width": 0.3,  # relative mouth-width change for pucker / stretch = 1
    "protrusion": 0.15,  # forward lip motion for pucker = 1
    "lip": 0.12,  # upper-lip rise / lower-lip drop (beyond the jaw) for upperUp / lowerDown = 1
    "eye_wide": 0.4,  # relative lid-gap growth for eyeWide = 1
    "brow": 0.08,  # brow rise for browUp = 1
    "brow_down": 0.06,
    "jaw_side": 0.1,
    "jaw_forward": 0.1,
}

MOUTH_CHANNELS = tuple(n for n in ARKIT_52 if n.startswith(("jaw", "mouth", "cheekPuff", "tongue")))

# iBUG-68 landmark indices, for the subject's left (+x) and right (-x).
_RIGHT_EYE_UPPER, _RIGHT_EYE_LOWER = (37, 38), (41, 40)
_LEFT_EYE_UPPER, _LEFT_EYE_LOWER = (43, 44), (47, 46)
_RIGHT_BROW, _LEFT_BROW = (17, 18, 19, 20, 21), (26, 25, 24, 23, 22)  # outer .. inner
_CORNER_RIGHT, _CORNER_LEFT = 48, 54
_UPPER_INNER, _LOWER_INNER = 62, 66
_UPPER_OUTER, _LOWER_OUTER = 51, 57
_UPPER_SIDE_RIGHT, _UPPER_SIDE_LEFT = 50, 52
_LOWER_SIDE_RIGHT, _LOWER_SIDE_LEFT = 58, 56
_CHIN = 8


def _clip(values: np.ndarray) -> np.ndarray:
    return np.clip(values, 0.0, 1.0).astype(np.float32)


def geometric_arkit(model: BfmModel, expression: np.ndarray, blink: np.ndarray | None = None) -> np.ndarray:
    """(T, 52) ARKit weights measured from the landmark geometry of ``expression`` (see module docstring)."""
    expression = np.asarray(expression, np.float64)
    neutral = model.mean_shape[model.keypoints]  # (68, 3)
    if neutral[_CORNER_RIGHT, 0] > neutral[_CORNER_LEFT, 0]:
        # A mirrored model (subject's right at +x): swap the sides we read.
        neutral = neutral * np.array([-1.0, 1.0, 1.0])
        flip = np.array([-1.0, 1.0, 1.0])
    else:
        flip = np.ones(3)
    points = neutral[None] + model.expression_offsets(expression, model.keypoints) * flip  # (T, 68, 3)
    eye_right = neutral[36:42].mean(axis=0)
    eye_left = neutral[42:48].mean(axis=0)
    s = float(np.linalg.norm(eye_left - eye_right))
    if s <= 0:
        raise InputError("the 3DMM's eye landmarks coincide; is 'keypoints' the iBUG-68 set?", model.path)
    y, x, z = points[..., 1], points[..., 0], points[..., 2]
    ny, nx, nz = neutral[:, 1], neutral[:, 0], neutral[:, 2]
    out = np.zeros((len(expression), len(ARKIT_52)), np.float32)

    def put(name: str, values: np.ndarray) -> None:
        out[:, ARKIT_52.index(name)] = _clip(values)

    gap = y[:, _UPPER_INNER] - y[:, _LOWER_INNER]
    gap0 = ny[_UPPER_INNER] - ny[_LOWER_INNER]
    jaw = (gap - gap0) / (FULL_SCALE["jaw_open"] * s)
    put("jawOpen", jaw)
    mid = 0.5 * (y[:, _UPPER_OUTER] + y[:, _LOWER_OUTER])
    mid0 = 0.5 * (ny[_UPPER_OUTER] + ny[_LOWER_OUTER])
    for side, corner in (("Left", _CORNER_LEFT), ("Right", _CORNER_RIGHT)):
        rise = ((y[:, corner] - mid) - (ny[corner] - mid0)) / (FULL_SCALE["smile"] * s)
        put(f"mouthSmile{side}", rise)
        put(f"mouthFrown{side}", -rise)
    width = x[:, _CORNER_LEFT] - x[:, _CORNER_RIGHT]
    width0 = nx[_CORNER_LEFT] - nx[_CORNER_RIGHT]
    change = (width - width0) / (FULL_SCALE["width"] * width0)
    forward = (0.5 * (z[:, _UPPER_OUTER] + z[:, _LOWER_OUTER]) - 0.5 * (nz[_UPPER_OUTER] + nz[_LOWER_OUTER])) / (FULL_SCALE["protrusion"] * s)
    rounding = np.maximum(np.clip(-change, 0, 1), np.clip(forward, 0, 1))
    openness = np.clip(jaw, 0, 1)
    put("mouthPucker", rounding * (1.0 - openness))
    put("mouthFunnel", rounding * np.minimum(1.0, 3.0 * openness))
    put("mouthStretchLeft", (x[:, _CORNER_LEFT] - nx[_CORNER_LEFT]) / (0.5 * FULL_SCALE["width"] * width0))
    put("mouthStretchRight", -(x[:, _CORNER_RIGHT] - nx[_CORNER_RIGHT]) / (0.5 * FULL_SCALE["width"] * width0))
    chin_drop = -(y[:, _CHIN] - ny[_CHIN])
    for side, upper, lower in (("Left", _UPPER_SIDE_LEFT, _LOWER_SIDE_LEFT), ("Right", _UPPER_SIDE_RIGHT, _LOWER_SIDE_RIGHT)):
        put(f"mouthUpperUp{side}", (y[:, upper] - ny[upper]) / (FULL_SCALE["lip"] * s))
        put(f"mouthLowerDown{side}", (-(y[:, lower] - ny[lower]) - chin_drop) / (FULL_SCALE["lip"] * s))
    for side, upper, lower in (("Left", _LEFT_EYE_UPPER, _LEFT_EYE_LOWER), ("Right", _RIGHT_EYE_UPPER, _RIGHT_EYE_LOWER)):
        lid = y[:, list(upper)].mean(axis=1) - y[:, list(lower)].mean(axis=1)
        lid0 = ny[list(upper)].mean() - ny[list(lower)].mean()
        ratio = lid / max(lid0, 1e-9)
        closed = 1.0 - ratio
        if blink is not None:
            closed = np.maximum(closed, np.asarray(blink, np.float64))
        put(f"eyeBlink{side}", closed)
        put(f"eyeWide{side}", (ratio - 1.0) / FULL_SCALE["eye_wide"])
    inner = []
    for side, brow in (("Left", _LEFT_BROW), ("Right", _RIGHT_BROW)):
        rise = (y[:, list(brow)] - ny[list(brow)]) / (FULL_SCALE["brow"] * s)
        put(f"browOuterUp{side}", rise[:, :2].mean(axis=1))
        put(f"browDown{side}", -rise.mean(axis=1) * FULL_SCALE["brow"] / FULL_SCALE["brow_down"])
        inner.append(rise[:, -2:].mean(axis=1))
    put("browInnerUp", 0.5 * (inner[0] + inner[1]))
    side_shift = (x[:, _CHIN] - nx[_CHIN]) / (FULL_SCALE["jaw_side"] * s)
    put("jawLeft", side_shift)  # towards the subject's left (+x)
    put("jawRight", -side_shift)
    put("jawForward", (z[:, _CHIN] - nz[_CHIN]) / (FULL_SCALE["jaw_forward"] * s))
    mouth_shift = (0.5 * (x[:, _CORNER_LEFT] + x[:, _CORNER_RIGHT]) - 0.5 * (nx[_CORNER_LEFT] + nx[_CORNER_RIGHT])) / (FULL_SCALE["jaw_side"] * s)
    put("mouthLeft", mouth_shift)
    put("mouthRight", -mouth_shift)
    return out


def _align_frames(source: np.ndarray, frames: int, what: str) -> np.ndarray:
    """Trim or hold the last row when two engines' clips differ by a frame or two of rounding."""
    if len(source) == frames:
        return source
    if abs(len(source) - frames) > 2:
        raise InputError(f"{what} has {len(source)} frames but the motion has {frames}; were they made from the same audio?")
    return frames_at_rate(source, frames)


def retarget_motion(
    motion: Motion,
    bfm: BfmModel | str | Path | None = None,
    mouth_motion: Motion | None = None,
) -> Motion:
    """A copy of ``motion`` with ARKit curves filled in, and the route recorded in its metadata.

    Motion that already has ARKit curves (the lite engine) is returned unchanged apart from an
    ``expression_source`` of ``"engine"``.
    """
    metadata = dict(motion.metadata)
    if motion.arkit is not None:
        metadata.setdefault("expression_source", "engine")
        return dataclasses.replace(motion, metadata=metadata)
    if motion.expression is None:
        raise InputError("the motion has neither ARKit curves nor 3DMM expression to retarget")
    if bfm is not None:
        model = bfm if isinstance(bfm, BfmModel) else load_bfm(bfm)
        arkit = geometric_arkit(model, motion.expression, motion.blink)
        metadata["expression_source"] = GEOMETRIC
        metadata["retarget_model"] = str(model.path) if model.path else None
        log.info("retargeted %d frames geometrically with %s", motion.n_frames, model.path)
        return dataclasses.replace(motion, arkit=_emotion_overlaid(motion, arkit, metadata), metadata=metadata)
    if mouth_motion is None:
        raise InputError(
            "SadTalker motion needs either a BFM_model_front.mat (--bfm) for the geometric retarget, "
            "or the audio (--audio) so the viseme engine can supply mouth shapes"
        )
    if mouth_motion.fps != motion.fps:
        raise InputError(f"frame-rate mismatch: viseme motion is {mouth_motion.fps} fps, SadTalker motion {motion.fps} fps")
    if mouth_motion.arkit is None:
        raise InputError("the viseme engine's motion has no ARKit curves")
    source = _align_frames(np.asarray(mouth_motion.arkit, np.float32), motion.n_frames, "the viseme engine's motion")
    arkit = np.zeros((motion.n_frames, len(ARKIT_52)), np.float32)
    for name in MOUTH_CHANNELS:
        column = ARKIT_52.index(name)
        arkit[:, column] = source[:, column]
    for name in ("eyeBlinkLeft", "eyeBlinkRight"):
        arkit[:, ARKIT_52.index(name)] = np.clip(motion.blink, 0.0, 1.0)
    visemes = motion.visemes
    if visemes is None and mouth_motion.visemes is not None:
        visemes = _align_frames(np.asarray(mouth_motion.visemes, np.float32), motion.n_frames, "the viseme engine's visemes")
    metadata["expression_source"] = VISEME_FALLBACK
    metadata["mouth_engine"] = f"{mouth_motion.engine} {mouth_motion.engine_version}"
    return dataclasses.replace(motion, arkit=_emotion_overlaid(motion, arkit, metadata), visemes=visemes, metadata=metadata)


def _emotion_overlaid(motion: Motion, arkit: np.ndarray, metadata: dict) -> np.ndarray:
    """Derived curves with the motion's emotion channel blended in (the FACS overlay), when it has one."""
    if motion.emotion is None:
        return arkit
    metadata["emotion_overlay"] = OVERLAY_NAME
    return apply_emotion_overlay(arkit, motion.emotion)

