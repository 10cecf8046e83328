"""FaceRenderer: the wrapper callers use to turn coefficient chunks into rendered frames.

Give it the render source (the cropped portrait) and its first-frame row once; then feed (T, 70)
coefficient chunks as the motion side produces them and receive uint8 frames. MappingNet looks 13
frames ahead, so a frame is rendered once the 13 frames after it have arrived (or the stream has
ended); the frames that come out are exactly those of rendering the whole sequence at once.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Iterable, Iterator, Sequence

import numpy as np

from talkbridge.core.sadtalker.render.animate import SourceState, StageTimer
from talkbridge.core.sadtalker.render.batcher import FrameBatcher, Seat
from talkbridge.core.sadtalker.render.job import RenderJob
from talkbridge.core.sadtalker.render.models import FaceRenderModels
from talkbridge.core.sadtalker.render.shared_pass import no_frames, render_slices, to_uint8  # noqa: F401 - to_uint8 re-exported
from talkbridge.core.sadtalker.render.windows import SEMANTIC_RADIUS, camera_pose_sequence

log = logging.getLogger(__name__)


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
    ``batch_size`` frames go through the generator together (memory versus per-call overhead);
    ``fixed_batch`` pads every pass to ``batch_size`` rows (fixed shapes: the frames then equal a
    cross-job pass of that size bit for bit, and compiled graphs never see a new shape).
    The per-job state lives in :class:`~.job.RenderJob` and every pass goes through
    :func:`~.shared_pass.render_slices`, the same call a cross-job scheduler uses. With a
    ``batcher`` (:class:`~.batcher.FrameBatcher`, a sidecar serving several jobs on one device),
    :meth:`stream` hands its ready frames to it instead, and the batcher's policy sets the pass size.
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
        fixed_batch: bool = False,
        batcher: FrameBatcher | None = None,
    ) -> None:
        self.models = models
        self.batcher = batcher
        self.batch_size = max(1, int(batch_size))
        self.timer = timer
        self.pad_to = self.batch_size if fixed_batch else None
        self.job = RenderJob(
            models, source_image, first_row, still=still, expression_scale=expression_scale, size=size,
            radius=radius, timer=timer,
        )
        self.full, self.columns, self.first = self.job.full, self.job.columns, self.job.first
        self.still, self.expression_scale, self.radius = still, expression_scale, radius

    @property
    def state(self) -> SourceState:
        return self.job.source

    def _rows(self, coeffs: np.ndarray) -> np.ndarray:
        return self.job.driving_rows(coeffs)

    def _render_indices(self, rows: np.ndarray, indices: Sequence[int], poses: np.ndarray | None) -> np.ndarray:
        indices = list(indices)
        out = []
        for start in range(0, len(indices), self.batch_size):
            piece = self.job.frame_slice(rows, indices[start : start + self.batch_size], poses)
            out.extend(render_slices(self.models, [piece], self.timer, self.pad_to))
        if not out:
            return no_frames(self.state)
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
        job = self.job.fork(poses)
        with contextlib.ExitStack() as stack:
            seat = None if self.batcher is None else stack.enter_context(self.batcher.join())
            for chunk in chunks:
                if job.feed(chunk):
                    yield from self._take_ready(job, seat)
            if job.close():
                yield from self._take_ready(job, seat)

    def _take_ready(self, job: RenderJob, seat: Seat | None = None) -> Iterator[np.ndarray]:
        """Every ready frame of ``job``: ``batch_size`` frames per pass in one array, or in shared
        passes, each pass's share as soon as it is out."""
        if seat is not None:
            yield from seat.frames(job.take())
            return
        yield self._render_ready(job)

    def _render_ready(self, job: RenderJob) -> np.ndarray:
        out = []
        while job.ready:
            out.extend(render_slices(self.models, [job.take(self.batch_size)], self.timer, self.pad_to))
        return np.concatenate(out)
