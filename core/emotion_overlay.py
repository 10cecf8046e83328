"""Emotion on engines that have no emotion input: FACS action units blended into ARKit curves.

Each of Audio2Face-3D's 10 emotions is a set of FACS action units (AUs) with intensities, after the
prototypes of Ekman & Friesen's FACS and EMFACS (happiness 6+12, sadness 1+4+15, surprise 1+2+5,
fear 1+2+4+5+7+20, anger 4+5+7+23, disgust 9+15+16) and Prkachin's pain AUs (4, 6/7, 9/10); grief,
cheekiness and out-of-breath have no FACS prototype and are talkbridge's own sets (see
docs/audio2face.md). Each AU drives the ARKit shapes Apple describes for the same movement.

The overlay must never break lip-sync: it leaves the articulation channels (jaw open, lips closed,
funnel, pucker, lip rolls) alone, weakens its own mouth shapes while the mouth is articulating, and
blends by "screen" (``1 - (1 - a)(1 - b)``), which keeps every curve in [0, 1], never lowers what
the engine made, and is exactly the engine's curve when the emotion is zero.

Pure numpy and the standard library: the lite path and the exporters load it without torch.
"""

from __future__ import annotations

import numpy as np

from talkbridge.core.motion import ARKIT_52, EMOTIONS

OVERLAY_NAME = "facs-au-v1"
"""Recorded in a motion file's metadata (``emotion_overlay``) when these tables shaped its curves."""

ACTION_UNITS: dict[int, dict[str, float]] = {
    1: {"browInnerUp": 1.0},  # inner brow raiser
    2: {"browOuterUpLeft": 1.0, "browOuterUpRight": 1.0},  # outer brow raiser
    4: {"browDownLeft": 1.0, "browDownRight": 1.0},  # brow lowerer
    5: {"eyeWideLeft": 1.0, "eyeWideRight": 1.0},  # upper lid raiser
    6: {"cheekSquintLeft": 1.0, "cheekSquintRight": 1.0, "eyeSquintLeft": 0.3, "eyeSquintRight": 0.3},  # cheek raiser
    7: {"eyeSquintLeft": 1.0, "eyeSquintRight": 1.0},  # lid tightener
    9: {"noseSneerLeft": 1.0, "noseSneerRight": 1.0},  # nose wrinkler
    10: {"mouthUpperUpLeft": 1.0, "mouthUpperUpRight": 1.0},  # upper lip raiser
    12: {"mouthSmileLeft": 1.0, "mouthSmileRight": 1.0},  # lip corner puller
    14: {"mouthDimpleLeft": 1.0, "mouthDimpleRight": 1.0},  # dimpler
    15: {"mouthFrownLeft": 1.0, "mouthFrownRight": 1.0},  # lip corner depressor
    16: {"mouthLowerDownLeft": 1.0, "mouthLowerDownRight": 1.0},  # lower lip depressor
    17: {"mouthShrugLower": 1.0},  # chin raiser
    20: {"mouthStretchLeft": 1.0, "mouthStretchRight": 1.0},  # lip stretcher
    23: {"mouthPressLeft": 0.6, "mouthPressRight": 0.6},  # lip tightener
}
"""FACS action unit -> ARKit shapes moving the same way (a shape may take part in several AUs)."""

EMOTION_UNITS: dict[str, dict[int, float]] = {
    "amazement": {1: 0.8, 2: 0.8, 5: 0.7},  # surprise
    "anger": {4: 0.9, 5: 0.4, 7: 0.6, 23: 0.6},
    "cheekiness": {12: 0.5, 14: 0.6, 2: 0.3},  # a sly half smile: talkbridge's set
    "disgust": {9: 0.9, 10: 0.5, 15: 0.5, 16: 0.3},
    "fear": {1: 0.8, 2: 0.5, 4: 0.5, 5: 0.8, 7: 0.3, 20: 0.6},
    "grief": {1: 0.9, 4: 0.6, 6: 0.4, 15: 0.8, 17: 0.6},  # intense sadness, crying face: talkbridge's set
    "joy": {6: 0.8, 12: 0.9},  # happiness (the Duchenne smile)
    "outofbreath": {1: 0.4, 20: 0.3, 7: 0.2},  # strained brows and lips: talkbridge's set
    "pain": {4: 0.8, 6: 0.6, 7: 0.8, 9: 0.6, 10: 0.5},
    "sadness": {1: 0.8, 4: 0.5, 15: 0.7},
}
"""Emotion -> AU intensities at full emotion weight (0..1)."""

ARTICULATION = ("jawOpen", "mouthClose", "mouthFunnel", "mouthPucker", "mouthRollLower", "mouthRollUpper")
"""Channels lip-sync owns: the overlay never writes them."""

MOUTH_YIELD = 0.6
"""How much of its mouth shapes the overlay gives up while the mouth articulates fully."""

ARKIT_INDEX = {name: i for i, name in enumerate(ARKIT_52)}


def _emotion_matrix() -> np.ndarray:
    """(10, 52): each emotion's ARKit target at full weight, AUs combined by screen."""
    table = np.zeros((len(EMOTIONS), len(ARKIT_52)))
    for row, emotion in enumerate(EMOTIONS):
        remaining = np.ones(len(ARKIT_52))
        for unit, intensity in EMOTION_UNITS[emotion].items():
            for shape, share in ACTION_UNITS[unit].items():
                remaining[ARKIT_INDEX[shape]] *= 1.0 - intensity * share
        table[row] = 1.0 - remaining
    return table


EMOTION_ARKIT = _emotion_matrix()
_MOUTH = np.array([name.startswith("mouth") and name not in ARTICULATION for name in ARKIT_52])
_ARTICULATION = np.array([ARKIT_INDEX[name] for name in ARTICULATION])


def emotion_targets(emotion: np.ndarray) -> np.ndarray:
    """(T, 52) ARKit weights the emotions (T, 10) ask for, combined by screen."""
    emotion = np.clip(np.asarray(emotion, np.float64), 0.0, 1.0)
    # Screen over emotions: 1 - prod_e (1 - w_e * target_e), done in log space for every frame at once.
    keep = np.log1p(-np.clip(emotion[:, :, None] * EMOTION_ARKIT[None], 0.0, 1.0 - 1e-12))
    return 1.0 - np.exp(keep.sum(axis=1))


def apply_emotion_overlay(arkit: np.ndarray, emotion: np.ndarray) -> np.ndarray:
    """``arkit`` (T, 52) with ``emotion`` (T, 10) blended in; articulation channels are untouched."""
    base = np.clip(np.asarray(arkit, np.float64), 0.0, 1.0)
    overlay = emotion_targets(emotion)
    overlay[:, _ARTICULATION] = 0.0
    speaking = base[:, _ARTICULATION].max(axis=1, keepdims=True)
    overlay[:, _MOUTH] *= 1.0 - MOUTH_YIELD * speaking
    out = 1.0 - (1.0 - base) * (1.0 - overlay)
    out[:, _ARTICULATION] = np.asarray(arkit, np.float64)[:, _ARTICULATION]
    return out.astype(np.float32)
