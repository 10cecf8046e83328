"""The skin animator: PCA reconstruction, the lower/upper face filters, the face mask and the offsets.

Per frame the SDK forms ``e = skin_strength * (c . P) - eyelid_open_offset * E + lip_open_offset * L``,
runs it through two independent two-stage smoothers ("lower" and "upper" face, each with its own
half-life), and blends them by a sigmoid mask over the neutral's height:
``skin = mean + upper_strength * upper(e) * (1 - m) + lower_strength * lower(e) * m``.

:class:`SkinAnimator` does exactly that on every vertex (the reference, and what a mesh consumer
needs). The blendshape solve only needs ``D^T (skin - neutral)`` on its masked rows, and every step
above is linear and the same for each coordinate, so :class:`ProjectedSkin` filters the 273 augmented
coefficients ``[c, 1]`` instead of 184,560 vertex floats and multiplies by two matrices prepared once:
the same numbers, a thousand times less work per frame.
"""

from __future__ import annotations

import numpy as np

from talkbridge.core.audio2face.files import AnimatorConfig, ModelData


def smoothing_alpha(dt: float, half_life: float) -> float | None:
    """Per-frame blend of a first-order stage whose response halves every ``half_life`` s (None: off)."""
    if half_life <= 0.0:
        return None
    return float(np.float32(1.0) - np.float32(0.5) ** np.float32(dt / half_life))


class TwoStageFilter:
    """Two first-order stages in series; the first frame after a reset passes through unchanged."""

    def __init__(self, alpha: float | None) -> None:
        self.alpha = alpha
        self.stage1: np.ndarray | None = None
        self.stage2: np.ndarray | None = None

    def reset(self) -> None:
        self.stage1 = self.stage2 = None

    def run(self, frames: np.ndarray) -> np.ndarray:
        """Filtered copy of ``frames`` (T, ...), continuing from the previous call's state."""
        frames = np.asarray(frames)
        if self.alpha is None:
            return frames.copy()
        out = np.empty_like(frames)
        a = self.alpha
        for k in range(frames.shape[0]):
            x = frames[k]
            if self.stage1 is None:
                self.stage1 = x.copy()
                self.stage2 = x.copy()
            else:
                self.stage1 += a * (x - self.stage1)
                self.stage2 += a * (self.stage1 - self.stage2)
            out[k] = self.stage2
        return out


def face_mask(skin_mean: np.ndarray, level: float, softness: float) -> np.ndarray:
    """(V,) lower-face weight: ~1 below ``level`` of the neutral's normalised height, ~0 above."""
    y = np.asarray(skin_mean, np.float64)[:, 1]
    span = float(y.max() - y.min())
    height = (y - y.min()) / span if span > 0 else np.zeros_like(y)
    z = np.clip((level - height) / softness, -80.0, 80.0)
    return (1.0 / (1.0 + np.exp(-z))).astype(np.float32)


def pose_offset(data: ModelData, config: AnimatorConfig) -> np.ndarray:
    """(3V,) constant added before smoothing: lids opened by ``eyelid_open_offset``, lips by ``lip_open_offset``.

    The SDK also adds ``blink_strength`` times a blink offset that is always 0 when read from files.
    """
    return (-config.eyelid_open_offset * data.eye_close_delta + config.lip_open_offset * data.lip_open_delta).reshape(-1)


class SkinAnimator:
    """Skin vertices per frame, on every vertex (the SDK's skin post-processing)."""

    def __init__(self, data: ModelData, config: AnimatorConfig, dt: float) -> None:
        self.data = data
        self.config = config
        self.mask3 = np.repeat(face_mask(data.skin_mean, config.face_mask_level, config.face_mask_softness), 3)
        self.offset = pose_offset(data, config)
        self.lower = TwoStageFilter(smoothing_alpha(dt, config.lower_face_smoothing))
        self.upper = TwoStageFilter(smoothing_alpha(dt, config.upper_face_smoothing))

    def reset(self) -> None:
        """Start a new clip (new filter objects, so a shallow copy never shares state with its original)."""
        self.lower = TwoStageFilter(self.lower.alpha)
        self.upper = TwoStageFilter(self.upper.alpha)

    def vertices(self, coefficients: np.ndarray) -> np.ndarray:
        """(T, V, 3) skin for skin PCA coefficients (T, S)."""
        config = self.config
        values = np.asarray(coefficients, np.float32)
        delta = values if self.data.skin_basis is None else values @ self.data.skin_basis
        e = config.skin_strength * delta + self.offset
        lower = self.lower.run(e)
        upper = self.upper.run(e)
        skin = self.data.skin_mean.reshape(1, -1) + config.upper_face_strength * upper * (1.0 - self.mask3) \
            + config.lower_face_strength * lower * self.mask3
        return skin.reshape(len(e), -1, 3).astype(np.float32)


class ProjectedSkin:
    """``D^T (skin[rows] - n0)`` per frame without forming the skin: see the module docstring.

    ``rows`` are the flattened coordinates the solve uses, ``design`` (len(rows), n) its pose deltas
    and ``neutral_rows`` the blendshape neutral on those rows.
    """

    def __init__(self, data: ModelData, config: AnimatorConfig, dt: float, rows: np.ndarray, design: np.ndarray,
                 neutral_rows: np.ndarray) -> None:
        mask = np.repeat(face_mask(data.skin_mean, config.face_mask_level, config.face_mask_softness), 3)[rows].astype(np.float64)
        offset = pose_offset(data, config)[rows].astype(np.float64)[None, :]
        upper = config.upper_face_strength * (1.0 - mask)
        lower = config.lower_face_strength * mask
        # Without a PCA basis (v3.0 diffusion) the input is the skin delta itself: filter only the
        # solve's rows and scale the design row by row, never forming a rows x rows identity.
        self.select = rows if data.skin_basis is None else None
        if data.skin_basis is None:
            self.upper_map = np.vstack([config.skin_strength * upper[:, None] * design, (offset * upper) @ design])
            self.lower_map = np.vstack([config.skin_strength * lower[:, None] * design, (offset * lower) @ design])
        else:
            augmented = np.vstack([config.skin_strength * data.skin_basis[:, rows].astype(np.float64), offset])
            self.upper_map = (augmented * upper) @ design
            self.lower_map = (augmented * lower) @ design
        self.base = (data.skin_mean.reshape(-1)[rows].astype(np.float64) - neutral_rows) @ design
        self.lower = TwoStageFilter(smoothing_alpha(dt, config.lower_face_smoothing))
        self.upper = TwoStageFilter(smoothing_alpha(dt, config.upper_face_smoothing))

    def reset(self) -> None:
        """Start a new clip (new filter objects, so a shallow copy never shares state with its original)."""
        self.lower = TwoStageFilter(self.lower.alpha)
        self.upper = TwoStageFilter(self.upper.alpha)

    def rhs(self, coefficients: np.ndarray) -> np.ndarray:
        """(T, n) the solve's ``D^T target`` for skin PCA coefficients (T, S), or skin deltas (T, 3V)
        when the model has no PCA basis."""
        coefficients = np.asarray(coefficients, np.float64)
        if self.select is not None:
            coefficients = coefficients[:, self.select]
        augmented = np.hstack([coefficients, np.ones((len(coefficients), 1))])
        return self.base + self.upper.run(augmented) @ self.upper_map + self.lower.run(augmented) @ self.lower_map
