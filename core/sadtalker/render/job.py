"""The per-job half of the renderer: one portrait's cached source work and its driving rows.

A :class:`RenderJob` holds everything that belongs to one job and nothing about how frames are
batched: the source state (KPDetector, appearance volume and source heatmaps, computed once), the
driving coefficient rows received so far, optional free-view poses, and how many frames have been
handed out. :meth:`RenderJob.take` returns :class:`~.shared_pass.FrameSlice` s of frames whose
MappingNet look-ahead is complete; any caller (the single-job :class:`~.renderer.FaceRenderer`, or
a scheduler mixing several jobs in one pass) renders them with :func:`~.shared_pass.render_slices`.
"""

from __future__ import annotations

import copy
from typing import Sequence

import numpy as np
import torch

from talkbridge.core.sadtalker.render.animate import SourceState, StageTimer, prepare_source
from talkbridge.core.sadtalker.render.models import FaceRenderModels
from talkbridge.core.sadtalker.render.shared_pass import FrameSlice
from talkbridge.core.sadtalker.render.windows import (
    MOTION_COLUMNS,
    SEMANTIC_RADIUS,
    driving_coefficients,
    semantic_window,
    source_image_tensor,
    source_window,
)


class RenderJob:
    """One portrait being animated: source work done at construction, frames handed out in order.

    ``poses`` is an optional (3, total frames) array of free-view degrees (NaN: the driving pose).
    """

    def __init__(
        self,
        models: FaceRenderModels,
        source_image: np.ndarray,
        first_row: np.ndarray,
        *,
        still: bool = False,
        expression_scale: float = 1.0,
        size: int = 256,
        radius: int = SEMANTIC_RADIUS,
        poses: np.ndarray | None = None,
        timer: StageTimer | None = None,
    ) -> None:
        self.full = models.still_mapping
        self.columns = models.mapping.config.coeff_nc
        first = np.asarray(first_row, dtype=np.float32).reshape(1, -1)
        if first.shape[1] < self.columns:
            raise ValueError(f"first-frame row has {first.shape[1]} values; this MappingNet needs {self.columns}")
        self.first = first[:, : self.columns]
        self.still = still
        self.expression_scale = expression_scale
        self.radius = radius
        self.poses = poses
        device = models.device
        image = torch.from_numpy(source_image_tensor(source_image, size))[None].to(device)
        semantics = torch.from_numpy(source_window(self.first[0], radius).astype(np.float32))[None].to(device)
        self.source: SourceState = prepare_source(
            image, semantics, models.kp_detector, models.mapping, models.generator, timer
        )
        self.rows = np.zeros((0, self.columns), dtype=np.float32)
        self.taken = 0
        self.closed = False

    def driving_rows(self, coeffs: np.ndarray) -> np.ndarray:
        """(T, >=70) coefficients -> the rows MappingNet windows are cut from (scaled, still, full)."""
        coeffs = np.asarray(coeffs, dtype=np.float32)
        if coeffs.ndim != 2 or coeffs.shape[1] < MOTION_COLUMNS:
            raise ValueError(f"coefficient chunks must be (T, >=70), got {coeffs.shape}")
        return driving_coefficients(
            self.first, coeffs, full=self.full, still=self.still, expression_scale=self.expression_scale
        )

    def frame_slice(
        self, rows: np.ndarray, indices: Sequence[int], poses: np.ndarray | None = None
    ) -> FrameSlice:
        """Frames ``indices`` of the driving ``rows`` (from :meth:`driving_rows`) as a slice."""
        indices = list(indices)
        windows = np.stack([semantic_window(rows, i, self.radius) for i in indices]) if indices else (
            np.zeros((0, self.columns, 2 * self.radius + 1), np.float32)
        )
        chosen = None if poses is None else np.asarray(poses, np.float32)[:, indices]
        return FrameSlice(self.source, windows, chosen, indices[0] if indices else 0)

    # Streaming: feed coefficient chunks as they arrive, take ready frames in any slice sizes.

    def fork(self, poses: np.ndarray | None = None) -> "RenderJob":
        """A fresh stream over the same portrait: shares the source work, starts with no rows."""
        twin = copy.copy(self)
        twin.rows = np.zeros((0, self.columns), dtype=np.float32)
        twin.taken, twin.closed, twin.poses = 0, False, poses
        return twin

    def feed(self, coeffs: np.ndarray) -> int:
        """Append a (T, >=70) chunk; returns how many frames are ready to take."""
        if self.closed:
            raise ValueError("this render job's input has already ended")
        self.rows = np.concatenate([self.rows, self.driving_rows(coeffs)])
        return self.ready

    def close(self) -> int:
        """The input has ended: the last frames need no more look-ahead. Returns frames ready."""
        self.closed = True
        return self.ready

    @property
    def ready(self) -> int:
        """Frames whose 13-frame look-ahead has arrived (all of them once closed), not yet taken."""
        complete = self.rows.shape[0] if self.closed else self.rows.shape[0] - self.radius
        return max(0, complete - self.taken)

    @property
    def finished(self) -> bool:
        return self.closed and self.taken >= self.rows.shape[0]

    def take(self, limit: int | None = None) -> FrameSlice:
        """The next ready frames (at most ``limit``), in time order; an empty slice when none is ready.

        Frames near the end clamp their windows at the last row, which is why a frame is only ready
        once its look-ahead is complete: the result equals rendering the whole sequence at once.
        """
        count = self.ready if limit is None else min(self.ready, max(0, int(limit)))
        piece = self.frame_slice(self.rows, range(self.taken, self.taken + count), self.poses)
        self.taken += count
        return piece
