"""Eye rotations: the network's angles, constant offsets and a saccade table read at 30 rows a second.

Both eyes share one saccade row per frame. The row is ``int(fmod(eye_saccade_seed + L, R))`` with a
"live time" ``L`` that starts at 0 and advances by ``30 * dt`` per frame (float32, as in the SDK), so
the table plays at the same speed whatever the frame rate. The SDK's angles (x then y per eye, right
eye first) are degrees; the motion contract wants radians in :data:`~talkbridge.core.motion.EYE_NAMES`
order (left pitch, left yaw, right pitch, right yaw).
"""

from __future__ import annotations

import numpy as np

from talkbridge.core.audio2face.files import AnimatorConfig

SACCADE_ROWS_PER_SECOND = 30.0
EYE_LOOK_FULL_DEG = 30.0
"""Gaze angle that drives an ``eyeLook*`` shape to 1 (talkbridge's choice: ARKit does not publish one)."""


class EyeAnimator:
    """Per-frame eye angles in degrees, (T, 4) as right x, right y, left x, left y; keeps the live time."""

    def __init__(self, config: AnimatorConfig, saccades: np.ndarray, dt: float) -> None:
        self.config = config
        self.saccades = np.asarray(saccades, np.float32)
        self.dt = np.float32(dt)
        self.live_time = np.float32(0.0)

    def reset(self) -> None:
        self.live_time = np.float32(0.0)

    def rows(self, n_frames: int) -> np.ndarray:
        """Saccade rows of the next ``n_frames`` frames, advancing the live time."""
        table = np.float32(len(self.saccades))
        seed = np.float32(self.config.eye_saccade_seed)
        step = np.float32(SACCADE_ROWS_PER_SECOND) * self.dt
        out = np.empty(n_frames, np.int64)
        for k in range(n_frames):
            out[k] = int(np.fmod(seed + self.live_time, table))
            self.live_time = np.float32(np.fmod(self.live_time + step, table))
        return out

    def angles(self, values: np.ndarray) -> np.ndarray:
        """(T, 4) degrees for the network's eye outputs (T, 4)."""
        c = self.config
        values = np.asarray(values, np.float32)
        saccade = self.saccades[self.rows(len(values))] * np.float32(c.saccade_strength)
        offsets = np.array([c.right_eye_rot_x_offset, c.right_eye_rot_y_offset, c.left_eye_rot_x_offset, c.left_eye_rot_y_offset], np.float32)
        return offsets + np.float32(c.eyeballs_strength) * values + np.tile(saccade, (1, 2))


def eyes_channel(angles: np.ndarray) -> np.ndarray:
    """(T, 4) radians in EYE_NAMES order (left pitch, left yaw, right pitch, right yaw)."""
    angles = np.asarray(angles, np.float32)
    return np.radians(angles[:, [2, 3, 0, 1]]).astype(np.float32)


def eye_look_curves(eyes: np.ndarray) -> dict[str, np.ndarray]:
    """ARKit ``eyeLook*`` weights from eye rotations (radians, EYE_NAMES order).

    Positive pitch looks down; positive yaw turns the eye towards the subject's left, which is
    ``eyeLookOut`` for the left eye and ``eyeLookIn`` for the right (the lite engine's convention).
    """
    full = np.radians(EYE_LOOK_FULL_DEG)
    curves: dict[str, np.ndarray] = {}
    for side, pitch, yaw in (("Left", eyes[:, 0], eyes[:, 1]), ("Right", eyes[:, 2], eyes[:, 3])):
        towards_left = np.clip(yaw / full, 0.0, 1.0)
        towards_right = np.clip(-yaw / full, 0.0, 1.0)
        curves[f"eyeLookDown{side}"] = np.clip(pitch / full, 0.0, 1.0)
        curves[f"eyeLookUp{side}"] = np.clip(-pitch / full, 0.0, 1.0)
        curves[f"eyeLookOut{side}"] = towards_left if side == "Left" else towards_right
        curves[f"eyeLookIn{side}"] = towards_right if side == "Left" else towards_left
    return {name: curve.astype(np.float32) for name, curve in curves.items()}
