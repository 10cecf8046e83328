"""Coefficient windows and batches the renderer consumes (the data side of the official loop).

MappingNet never sees a single frame: it sees 27 consecutive frames (radius 13) of 3DMM
coefficients centred on the frame, clamped at the sequence ends. The official batching splits a
sequence into ``batch_size`` contiguous runs of equal length, padding with the last window; free-view
pose lists become per-frame degree sequences laid out the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

SEMANTIC_RADIUS = 13
EXPRESSION_COLUMNS = slice(0, 64)
POSE_START = 64  # rotation (3) and translation (3) follow the expression; crop params at 70:73
MOTION_COLUMNS = 70
FULL_COLUMNS = 73


def semantic_window(coeffs: np.ndarray, index: int, radius: int = SEMANTIC_RADIUS) -> np.ndarray:
    """Rows ``index - radius .. index + radius`` of (N, C) coefficients, clamped, as (C, 2*radius+1)."""
    rows = np.clip(np.arange(index - radius, index + radius + 1), 0, coeffs.shape[0] - 1)
    return coeffs[rows].T


def source_window(first_row: np.ndarray, radius: int = SEMANTIC_RADIUS) -> np.ndarray:
    """The source frame's coefficients (C,) held constant over a window: (C, 2*radius+1)."""
    return np.repeat(np.asarray(first_row).reshape(1, -1), 2 * radius + 1, axis=0).T


def uses_full_mapping(preprocess: str) -> bool:
    """Full-image modes feed the crop parameters too, through the 73-channel (still) MappingNet."""
    return "full" in preprocess.lower()


def driving_coefficients(
    first_coeff: np.ndarray,
    coeffs: np.ndarray,
    *,
    full: bool,
    still: bool,
    expression_scale: float = 1.0,
) -> np.ndarray:
    """The per-frame rows MappingNet is driven by: scaled expression, crop params in full modes,
    and in still mode the source's pose (and crop params) on every frame."""
    first = np.asarray(first_coeff, dtype=np.float32).reshape(1, -1)
    target = np.array(coeffs[:, :MOTION_COLUMNS], dtype=np.float32, copy=True)
    target[:, EXPRESSION_COLUMNS] = target[:, EXPRESSION_COLUMNS] * expression_scale
    if full:
        if first.shape[1] < FULL_COLUMNS:
            raise ValueError("full preprocess modes need a 73-column first-frame row (with crop parameters)")
        crop = np.repeat(first[:, MOTION_COLUMNS:FULL_COLUMNS], target.shape[0], axis=0)
        target = np.concatenate([target, crop], axis=1)
    if still:
        target[:, POSE_START:] = np.repeat(first[:, POSE_START : target.shape[1]], target.shape[0], axis=0)
    return target


def camera_pose_sequence(degrees: Sequence[float], frame_num: int, batch_size: int) -> np.ndarray:
    """Free-view degrees per frame as (batch_size, ceil(N / batch_size)).

    One value holds still; several values are visited in order at a constant angular speed chosen so
    the whole path spans the sequence (the last value itself is approached, not reached).
    """
    values = [float(v) for v in degrees]
    if not values:
        raise ValueError("a camera pose list needs at least one value")
    if len(values) == 1:
        sequence = [values[0]] * frame_num
    else:
        if frame_num < 2:
            raise ValueError("a camera path of several values needs at least two frames")
        total = sum(abs(b - a) for a, b in zip(values[:-1], values[1:]))
        per_frame = total / (frame_num - 1)
        sequence = []
        for start, end in zip(values[:-1], values[1:]):
            if end == start:
                raise ValueError(f"camera pose list repeats {start} back to back; drop the duplicate")
            step = per_frame if end > start else -per_frame
            sequence.extend(np.arange(start, end, step).tolist())
        sequence = sequence[:frame_num]
        sequence += [sequence[-1]] * (frame_num - len(sequence))
    return np.asarray(_pad_to_batches(sequence, batch_size)).reshape(batch_size, -1)


def _pad_to_batches(items: list, batch_size: int) -> list:
    remainder = len(items) % batch_size
    return items + [items[-1]] * ((batch_size - remainder) % batch_size)


@dataclass
class FaceRenderBatch:
    """Everything the animation loop needs, laid out as the official loop batches it."""

    source_image: np.ndarray  # (bs, 3, S, S) float32 in [0, 1]
    source_semantics: np.ndarray  # (bs, C, 27)
    target_semantics: np.ndarray  # (bs, L, C, 27)
    frame_num: int
    yaw_c_seq: np.ndarray | None = None  # (bs, L) degrees
    pitch_c_seq: np.ndarray | None = None
    roll_c_seq: np.ndarray | None = None

    def frame_order(self) -> np.ndarray:
        """Flattening (batch, L) in this order and keeping ``frame_num`` restores time order."""
        return np.arange(self.target_semantics.shape[0] * self.target_semantics.shape[1])[: self.frame_num]


def source_image_tensor(image_u8: np.ndarray, size: int) -> np.ndarray:
    """RGB uint8 (H, W, 3) -> (3, size, size) float32 in [0, 1], resized like the official loader.

    Without scikit-image (a bare GPU box running bench/gpu.py) an image already at ``size`` is still
    accepted, scaled by 1/255 in float32; resizing needs scikit-image.
    """
    image = np.asarray(image_u8)[..., :3]
    try:
        from skimage import img_as_float32, transform
    except ModuleNotFoundError:
        if image.shape[:2] != (size, size) or image.dtype != np.uint8:
            raise
        return np.ascontiguousarray((image.astype(np.float32) * np.float32(1 / 255)).transpose(2, 0, 1))
    image = img_as_float32(image)
    if image.shape[:2] != (size, size):
        image = transform.resize(image, (size, size, 3))
    return np.ascontiguousarray(np.asarray(image, dtype=np.float32).transpose(2, 0, 1))


def prepare_facerender_batch(
    source_image_u8: np.ndarray,
    first_coeff: np.ndarray,
    coeffs: np.ndarray,
    *,
    preprocess: str = "crop",
    still: bool = False,
    batch_size: int = 1,
    expression_scale: float = 1.0,
    input_yaw_list: Sequence[float] | None = None,
    input_pitch_list: Sequence[float] | None = None,
    input_roll_list: Sequence[float] | None = None,
    size: int = 256,
    radius: int = SEMANTIC_RADIUS,
) -> FaceRenderBatch:
    """Equivalent of the official ``get_facerender_data`` without its file I/O.

    ``first_coeff`` is the (1, 73) first-frame row, ``coeffs`` the (N, >=70) generated sequence.
    """
    full = uses_full_mapping(preprocess)
    columns = FULL_COLUMNS if full else MOTION_COLUMNS
    first = np.asarray(first_coeff, dtype=np.float32).reshape(1, -1)[:, :columns]
    coeffs = np.asarray(coeffs, dtype=np.float32)
    if coeffs.ndim != 2 or coeffs.shape[1] < MOTION_COLUMNS or coeffs.shape[0] == 0:
        raise ValueError(f"coefficients must be (N>0, >=70), got {coeffs.shape}")
    frame_num = coeffs.shape[0]
    image = source_image_tensor(source_image_u8, size)
    source = source_window(first[0], radius)
    target = driving_coefficients(first, coeffs, full=full, still=still, expression_scale=expression_scale)
    windows = _pad_to_batches([semantic_window(target, i, radius) for i in range(frame_num)], batch_size)
    batch = FaceRenderBatch(
        source_image=np.repeat(image[None], batch_size, axis=0),
        source_semantics=np.repeat(source[None], batch_size, axis=0).astype(np.float32),
        target_semantics=np.stack(windows).reshape(batch_size, -1, columns, 2 * radius + 1).astype(np.float32),
        frame_num=frame_num,
    )
    for name, values in (("yaw", input_yaw_list), ("pitch", input_pitch_list), ("roll", input_roll_list)):
        if values is not None:
            setattr(batch, f"{name}_c_seq", camera_pose_sequence(values, frame_num, batch_size).astype(np.float32))
    return batch
