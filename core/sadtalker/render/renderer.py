"""FaceRenderer: the wrapper callers use to turn coefficient chunks into rendered frames.

Give it the render source (the cropped portrait) and its first-frame row once; then feed (T, 70)
coefficient chunks as the motion side produces them and receive uint8 frames. MappingNet looks 13
frames ahead, so a frame is rendered once the 13 frames after it have arrived (or the stream has
ended); the frames that come out are exactly those of rendering the whole sequence at once.
"""

from __future__ import annotations

import logging
from typing import Iterable, Iterator, Sequence

import numpy as np
import torch

from talkbridge.core.sadtalker.render.animate import SourceState, StageTimer, drive_frames, prepare_source
from talkbridge.core.sadtalker.render.models import FaceRenderModels
from talkbridge.core.sadtalker.render.windows import (
    MOTION_COLUMNS,
    SEMANTIC_RADIUS,
    camera_pose_sequence,
    driving_coefficients,
    semantic_window,
    source_image_tensor,
    source_window,
)

log = logging.getLogger(__name__)


def to_uint8(frames: torch.Tensor) -> np.ndarray:
    """(n, 3, S, S) in [0, 1] -> (n, S, S, 3) uint8, rounding to nearest."""
    array = frames.permute(0, 2, 3, 1).float().cpu().numpy()
    return np.clip(np.rint(array * 255.0), 0, 255).astype(np.uint8)


def free_view_poses(
    count: int,
    yaw: Sequence[float] | None = None,
    pitch: Sequence[float] | None = None,
    roll: Sequence[float] | None = None,
) -> np.ndarray | None:
    """(3, count) free-view degrees per frame from keyframe lists (NaN where an axis is not set)."""
    if all(v is None for v in (yaw, pitch, roll)):
        return None
    poses = np.full((3, count), np.nan, dtype=np.float32)
    for axis, values in enumerate((yaw, pitch, roll)):
        if values is not None:
            poses[axis] = camera_pose_sequence(values, count, 1).reshape(-1)
    return poses


class FaceRenderer:
    """Streaming renderer for one source portrait.

    ``still`` keeps the source's head pose; ``expression_scale`` scales expression coefficients;
    ``batch_size`` frames go through the generator together (memory versus per-call overhead).
    """

    def __init__(
        self,
        models: FaceRenderModels,
        source_image: np.ndarray,
        first_row: np.ndarray,
        *,
        still: bool = False,
        expression_scale: float = 1.0,
        batch_size: int = 1,
        size: int = 256,
        radius: int = SEMANTIC_RADIUS,
        timer: StageTimer | None = None,
    ) -> None:
        self.models = models
        self.full = models.still_mapping
        self.columns = models.mapping.config.coeff_nc
        first = np.asarray(first_row, dtype=np.float32).reshape(1, -1)
        if first.shape[1] < self.columns:
            raise ValueError(f"first-frame row has {first.shape[1]} values; this MappingNet needs {self.columns}")
        self.first = first[:, : self.columns]
        self.still = still
        self.expression_scale = expression_scale
        self.batch_size = max(1, int(batch_size))
        self.radius = radius
        self.timer = timer
        device = models.device
        image = torch.from_numpy(source_image_tensor(source_image, size))[None].to(device)
        semantics = torch.from_numpy(source_window(self.first[0], radius).astype(np.float32))[None].to(device)
        self.state: SourceState = prepare_source(
            image, semantics, models.kp_detector, models.mapping, models.generator, timer
        )

    def _rows(self, coeffs: np.ndarray) -> np.ndarray:
        coeffs = np.asarray(coeffs, dtype=np.float32)
        if coeffs.ndim != 2 or coeffs.shape[1] < MOTION_COLUMNS:
            raise ValueError(f"coefficient chunks must be (T, >=70), got {coeffs.shape}")
        return driving_coefficients(
            self.first, coeffs, full=self.full, still=self.still, expression_scale=self.expression_scale
        )

    def _render_indices(self, rows: np.ndarray, indices: Sequence[int], poses: np.ndarray | None) -> np.ndarray:
        out = []
        device = self.models.device
        for start in range(0, len(indices), self.batch_size):
            chunk = list(indices[start : start + self.batch_size])
            windows = torch.from_numpy(np.stack([semantic_window(rows, i, self.radius) for i in chunk]))
            override = [None, None, None]
            if poses is not None:
                override = [
                    None if np.isnan(poses[axis, chunk[0]]) else torch.from_numpy(poses[axis, chunk]).to(device)
                    for axis in range(3)
                ]
            frames, _ = drive_frames(
                self.state, windows.to(device), self.models.mapping, self.models.generator, *override, timer=self.timer
            )
            out.append(to_uint8(frames))
        if not out:
            side = self.state.features.feature_3d.shape[-1] * 4  # the decoder upsamples the volume 4x
            return np.zeros((0, side, side, 3), np.uint8)
        return np.concatenate(out)

    def render(
        self,
        coeffs: np.ndarray,
        yaw: Sequence[float] | None = None,
        pitch: Sequence[float] | None = None,
        roll: Sequence[float] | None = None,
    ) -> np.ndarray:
        """A whole (N, 70) sequence -> (N, S, S, 3) uint8. ``yaw``/``pitch``/``roll`` are free-view
        degree lists (one value: fixed; several: a path visited at constant speed)."""
        rows = self._rows(coeffs)
        count = rows.shape[0]
        return self._render_indices(rows, range(count), free_view_poses(count, yaw, pitch, roll))

    def stream(self, chunks: Iterable[np.ndarray], poses: np.ndarray | None = None) -> Iterator[np.ndarray]:
        """Render chunks as they arrive; yields (n, S, S, 3) uint8 arrays, n >= 0, in time order.

        ``poses`` is an optional (3, total frames) array of free-view yaw/pitch/roll degrees (NaN: the
        driving pose), e.g. from :func:`free_view_poses`; the total must be known up front.
        """
        rows = np.zeros((0, self.columns), dtype=np.float32)
        done = 0
        for chunk in chunks:
            rows = np.concatenate([rows, self._rows(chunk)])
            ready = rows.shape[0] - self.radius  # frames whose look-ahead is complete
            if ready > done:
                # Frames near the end clamp at the last row, so only render those with full look-ahead.
                yield self._render_indices(rows, range(done, ready), poses)
                done = ready
        if rows.shape[0] > done:
            yield self._render_indices(rows, range(done, rows.shape[0]), poses)
