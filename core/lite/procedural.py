"""Procedural eye blinks and head pose: seeded, smooth, bounded and driven by the voice.

Everything here is computed for the whole clip from one seeded generator, so a clip's motion depends
only on its audio, its options and the seed, never on how it is later cut into chunks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter1d

from talkbridge.core.motion import FPS

TRANSLATION_UNIT_M = 0.1
"""Metres per unit of the pose translation: the motion contract uses the 3DMM's units (decimetres)."""


@dataclass(frozen=True)
class BlinkConfig:
    """Blink timing. People blink about 15-20 times a minute, each blink lasting 100-300 ms."""

    mean_interval_s: float = 3.4
    min_interval_s: float = 1.0
    interval_shape: float = 3.0  # gamma shape: regular-ish but not metronomic
    close_s: float = 0.08  # lids fall fast...
    open_s: float = 0.14  # ...and rise more slowly
    first_after_s: float = 0.6


def blink_curve(n_frames: int, rng: np.random.Generator, config: BlinkConfig = BlinkConfig()) -> np.ndarray:
    """(n_frames,) eye closure 0..1 with blinks at gamma-distributed intervals; each peak is a frame at 1."""
    times = np.arange(n_frames) / FPS
    closure = np.zeros(n_frames, np.float32)
    duration = n_frames / FPS
    scale = (config.mean_interval_s - config.min_interval_s) / config.interval_shape
    t = config.first_after_s + rng.uniform(0.0, config.mean_interval_s)
    while t < duration:
        peak = round(t * FPS) / FPS  # peaks on a frame, so every blink fully closes the lids
        before = np.clip(1.0 - (peak - times) / config.close_s, 0.0, 1.0)
        after = np.clip(1.0 - (times - peak) / config.open_s, 0.0, 1.0)
        shape = np.where(times <= peak, before, after)
        closure = np.maximum(closure, (shape * shape * (3.0 - 2.0 * shape)).astype(np.float32))
        t += config.min_interval_s + rng.gamma(config.interval_shape, scale)
    return closure


@dataclass(frozen=True)
class PoseConfig:
    """Head motion limits at intensity 1 (radians, 3DMM translation units) and how it follows the voice."""

    max_pitch: float = np.deg2rad(6.0)
    max_yaw: float = np.deg2rad(9.0)
    max_roll: float = np.deg2rad(4.0)
    max_shift: float = 0.006 / TRANSLATION_UNIT_M  # 6 mm in 3DMM units: a gentle sway, never a jump
    idle_fraction: float = 0.3  # how much a silent head still moves (breathing, settling)
    wander_s: float = 0.7  # time scale of the slow drift (gaussian smoothing sigma)
    nod_s: float = 0.12  # time scale of the nods on stressed syllables
    nod_gain: float = 0.9  # share of the pitch range given to nods
    envelope_s: float = 0.35  # how quickly the head's liveliness follows the voice


def _smooth_noise(n: int, sigma_frames: float, rng: np.random.Generator) -> np.ndarray:
    """Unit-variance smooth noise: white noise through a gaussian, normalised by the kernel's gain."""
    pad = int(4 * sigma_frames) + 1
    white = rng.standard_normal(n + 2 * pad)
    smooth = gaussian_filter1d(white, sigma_frames, mode="nearest")[pad : pad + n]
    radius = int(4 * sigma_frames + 0.5)
    kernel = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma_frames) ** 2)
    kernel /= kernel.sum()
    return smooth / np.sqrt(np.sum(kernel**2))


def _bounded(values: np.ndarray, limit: float) -> np.ndarray:
    """Soft limit: linear for small values, never beyond ``limit``."""
    if limit <= 0:
        return np.zeros_like(values)
    return limit * np.tanh(values / limit)


def voice_envelope(level_frames: np.ndarray, config: PoseConfig = PoseConfig()) -> np.ndarray:
    """A slow 0..1 measure of how animated the speaker is, per frame."""
    if len(level_frames) == 0:
        return level_frames
    return np.clip(gaussian_filter1d(level_frames.astype(np.float64), config.envelope_s * FPS, mode="nearest"), 0, 1)


def stress_pulses(level_frames: np.ndarray, config: PoseConfig = PoseConfig()) -> np.ndarray:
    """0..1 bumps where the voice gets suddenly louder (stressed syllables), per frame."""
    if len(level_frames) < 2:
        return np.zeros(len(level_frames))
    rise = np.maximum(np.diff(level_frames.astype(np.float64), prepend=level_frames[0]), 0.0)
    pulses = gaussian_filter1d(rise, config.nod_s * FPS, mode="constant")
    peak = pulses.max()
    return pulses / peak if peak > 1e-6 else pulses


def head_pose(
    level_frames: np.ndarray,
    rng: np.random.Generator,
    intensity: float = 1.0,
    still: bool = False,
    config: PoseConfig = PoseConfig(),
) -> np.ndarray:
    """(n, 6) pitch, yaw, roll (radians) and x, y, z shift (3DMM units), bounded by ``intensity`` x limits.

    The head drifts slowly, more while the voice is lively, and nods down a little on stressed
    syllables. ``still`` gives a motionless head.
    """
    n = len(level_frames)
    pose = np.zeros((n, 6), np.float32)
    if still or intensity <= 0 or n == 0:
        return pose
    envelope = voice_envelope(level_frames, config)
    liveliness = config.idle_fraction + (1.0 - config.idle_fraction) * envelope
    sigma = config.wander_s * FPS
    wander = np.stack([_smooth_noise(n, sigma * f, rng) for f in (0.7, 1.0, 1.3, 1.2, 1.2, 1.5)], axis=1)
    nods = stress_pulses(level_frames, config)
    limits = np.array([config.max_pitch, config.max_yaw, config.max_roll] + [config.max_shift] * 3) * intensity
    raw = 0.45 * wander * liveliness[:, None] * limits
    raw[:, 0] += config.nod_gain * limits[0] * nods  # positive pitch tips the face down (x to y)
    for axis in range(6):
        pose[:, axis] = _bounded(raw[:, axis], limits[axis])
    return pose


def brow_lift(level_frames: np.ndarray, config: PoseConfig = PoseConfig()) -> np.ndarray:
    """0..1 brow raise accompanying emphasis, per frame."""
    return np.clip(0.35 * stress_pulses(level_frames, config), 0.0, 1.0)


@dataclass(frozen=True)
class GazeConfig:
    """Small saccades between fixations, so the eyes are not frozen while the head moves."""

    mean_fixation_s: float = 1.6
    min_fixation_s: float = 0.4
    horizontal_sd: float = 0.08  # ARKit eyeLook weight; 0.25 is about 5 degrees on the mannequin
    vertical_sd: float = 0.05
    limit: float = 0.25
    saccade_s: float = 0.06  # eyes jump fast


def gaze_curves(n_frames: int, rng: np.random.Generator, config: GazeConfig = GazeConfig()) -> dict[str, np.ndarray]:
    """Per-frame ARKit eyeLook* weights (both eyes looking the same way), seeded.

    Looking towards the subject's left (+X) is eyeLookOut for the left eye and eyeLookIn for the right.
    """
    horizontal = np.zeros(n_frames)
    vertical = np.zeros(n_frames)
    times = np.arange(n_frames) / FPS
    previous = (0.0, 0.0)
    t = rng.uniform(0.0, config.mean_fixation_s)
    scale = (config.mean_fixation_s - config.min_fixation_s) / 2.0
    while t < n_frames / FPS:
        target = (
            float(np.clip(rng.normal(0.0, config.horizontal_sd), -config.limit, config.limit)),
            float(np.clip(rng.normal(0.0, config.vertical_sd), -config.limit, config.limit)),
        )
        ramp = np.clip((times - t) / config.saccade_s, 0.0, 1.0)
        horizontal += (target[0] - previous[0]) * ramp
        vertical += (target[1] - previous[1]) * ramp
        previous = target
        t += config.min_fixation_s + rng.gamma(2.0, scale)
    right_wards, left_wards = np.clip(-horizontal, 0, 1), np.clip(horizontal, 0, 1)
    up, down = np.clip(vertical, 0, 1), np.clip(-vertical, 0, 1)
    return {
        "eyeLookOutLeft": left_wards, "eyeLookInRight": left_wards,
        "eyeLookInLeft": right_wards, "eyeLookOutRight": right_wards,
        "eyeLookUpLeft": up, "eyeLookUpRight": up,
        "eyeLookDownLeft": down, "eyeLookDownRight": down,
    }
