"""One batched network call for frames of any number of render jobs (cross-job batching).

A :class:`FrameSlice` is a run of one job's frames that are ready to render: that job's cached source
work plus the MappingNet windows (and optional free-view degrees) of those frames. :func:`render_slices`
stacks slices from different jobs (different portraits, keypoints, poses) into a single MappingNet ->
keypoints -> generator pass and hands each job its own frames back. Nothing in the pass mixes rows:
every row uses its own job's source features, so a job's frames do not depend on who shares the batch.

This is the core piece a scheduler (e.g. the sidecar serving several clients on one GPU) builds on:
it decides which slices go together; this module only runs them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from talkbridge.core.sadtalker.render.animate import SourceState, StageTimer
from talkbridge.core.sadtalker.render.dense_motion import SourceMotionCache
from talkbridge.core.sadtalker.render.generator import SourceFeatures
from talkbridge.core.sadtalker.render.keypoints import bins_to_degrees, keypoint_transformation
from talkbridge.core.sadtalker.render.models import FaceRenderModels

POSE_AXES = ("yaw", "pitch", "roll")


@dataclass
class FrameSlice:
    """Frames of one job ready to render.

    ``windows``: (n, C, 27) float32 MappingNet windows; ``poses``: optional (3, n) free-view
    yaw/pitch/roll degrees, NaN where the driving pose is kept; ``first``: the frame index of the first
    row within its job (for the caller's bookkeeping).
    """

    source: SourceState
    windows: np.ndarray
    poses: np.ndarray | None = None
    first: int = 0

    def __len__(self) -> int:
        return int(self.windows.shape[0])


def to_uint8(frames: torch.Tensor) -> np.ndarray:
    """(n, 3, S, S) in [0, 1] -> (n, S, S, 3) uint8, rounding to nearest."""
    array = frames.permute(0, 2, 3, 1).float().cpu().numpy()
    return np.clip(np.rint(array * 255.0), 0, 255).astype(np.uint8)


def no_frames(source: SourceState) -> np.ndarray:
    """A (0, S, S, 3) uint8 array at ``source``'s output size (the decoder upsamples the volume 4x)."""
    side = source.features.feature_3d.shape[-1] * 4
    return np.zeros((0, side, side, 3), np.uint8)


def _rows(tensor: torch.Tensor, count: int) -> torch.Tensor:
    """A source tensor (1 or ``count`` rows) as ``count`` rows (a view when it is shared)."""
    return tensor.expand(count, *tensor.shape[1:]) if tensor.shape[0] == 1 else tensor


def stack_sources(
    sources: Sequence[SourceState], counts: Sequence[int], per_row: bool = False
) -> tuple[torch.Tensor, SourceFeatures]:
    """Per-row canonical keypoints and generator source features for slices of different jobs.

    One source for every row stays a batch of one (the generator expands it without copying), which
    is exactly the single-job path, unless ``per_row``: then every pass, one job's or several jobs',
    gets the same contiguous per-row layout, so kernels take the same code paths in both.
    """
    total = int(sum(counts))
    if not per_row and all(source is sources[0] for source in sources):
        return _rows(sources[0].kp_canonical, total), sources[0].features
    shapes = {tuple(source.features.feature_3d.shape[1:]) for source in sources}
    if len(shapes) != 1:
        raise ValueError(f"jobs of different render sizes cannot share a pass: source volumes {sorted(shapes)}")
    kp = torch.cat([_rows(s.kp_canonical, n) for s, n in zip(sources, counts)])
    motion = [s.features.motion for s in sources]
    features = SourceFeatures(
        torch.cat([_rows(s.features.feature_3d, n) for s, n in zip(sources, counts)]),
        SourceMotionCache(
            torch.cat([_rows(m.compressed, n) for m, n in zip(motion, counts)]),
            motion[0].grid,
            torch.cat([_rows(m.source_heat, n) for m, n in zip(motion, counts)]),
            torch.cat([_rows(m.kp_source, n) for m, n in zip(motion, counts)]),
        ),
    )
    return kp, features


def _pose_overrides(slices: Sequence[FrameSlice], he: dict[str, torch.Tensor], device) -> list[torch.Tensor | None]:
    """Per axis: None when no row overrides it, else (n,) degrees (decoded ones where a row keeps its pose)."""
    if all(s.poses is None for s in slices):
        return [None, None, None]
    table = np.concatenate(
        [np.full((3, len(s)), np.nan, np.float32) if s.poses is None else np.asarray(s.poses, np.float32) for s in slices],
        axis=1,
    )
    overrides: list[torch.Tensor | None] = []
    for axis, name in enumerate(POSE_AXES):
        values = table[axis]
        missing = np.isnan(values)
        if missing.all():
            overrides.append(None)
            continue
        override = torch.from_numpy(values).to(device)
        if missing.any():
            override = torch.where(torch.from_numpy(missing).to(device), bins_to_degrees(he[name]), override)
        overrides.append(override)
    return overrides


def _padded(slices: list[FrameSlice], pad_to: int | None) -> list[FrameSlice]:
    """Append copies of the last frame so the pass has exactly ``pad_to`` rows."""
    total = sum(len(s) for s in slices)
    if pad_to is None or pad_to == total:
        return slices
    if total > pad_to:
        raise ValueError(f"{total} frames do not fit a pass of {pad_to}")
    last, extra = slices[-1], pad_to - total
    poses = None if last.poses is None else np.repeat(np.asarray(last.poses)[:, -1:], extra, axis=1)
    return [*slices, FrameSlice(last.source, np.repeat(last.windows[-1:], extra, axis=0), poses)]


@torch.inference_mode()
def drive_slices(
    models: FaceRenderModels,
    slices: Sequence[FrameSlice],
    timer: StageTimer | None = None,
    pad_to: int | None = None,
) -> torch.Tensor:
    """The batched pass: (sum of slice lengths, 3, S, S) frames in [0, 1], rows in slice order.

    ``pad_to`` runs every pass at that fixed batch size (padding rows are dropped) and gives every
    pass the same per-row source layout. Kernels may sum in a batch-size dependent order (~2e-5
    here), but at a fixed size on one CPU thread a row's result depends neither on its position nor
    on the other rows, so a job's frames are bit-identical however it is mixed with others. With
    several CPU threads torch's elementwise kernels (exp, grid_sample) compute each thread's chunk
    tail with scalar instead of vector code, so a few values differ in the last bit depending on the
    split (frames within one grey level). Fixed shapes also spare torch.compile and CUDA graphs any
    recompilation.
    """
    slices = [s for s in slices if len(s)]
    if not slices:
        raise ValueError("render_slices needs at least one frame")
    total = sum(len(s) for s in slices)
    slices = _padded(slices, pad_to)
    device = models.device
    counts = [len(s) for s in slices]
    windows = torch.from_numpy(np.concatenate([np.asarray(s.windows, np.float32) for s in slices])).to(device)
    started = time.perf_counter()
    he = models.mapping(windows)
    if timer:
        timer.add("mapping", started)
    started = time.perf_counter()
    kp_canonical, features = stack_sources([s.source for s in slices], counts, per_row=pad_to is not None)
    kp_driving = keypoint_transformation(kp_canonical, he, *_pose_overrides(slices, he, device))["kp"]
    if timer:
        timer.add("keypoints", started)
    started = time.perf_counter()
    frames = models.generator.forward_cached(features, kp_driving)["prediction"]
    if timer:
        timer.add("generator", started)
    return frames[:total]


def render_slices(
    models: FaceRenderModels,
    slices: Sequence[FrameSlice],
    timer: StageTimer | None = None,
    pad_to: int | None = None,
) -> list[np.ndarray]:
    """Render slices of any jobs in one pass; returns each slice's (n, S, S, 3) uint8 frames, in order.

    Every job must have been prepared on these ``models`` at the same render size. With ``pad_to``
    (see :func:`drive_slices`) a job's frames equal its solo run with ``FaceRenderer(batch_size=pad_to,
    fixed_batch=True)`` bit for bit on one CPU thread, within one grey level on several.
    """
    frames = to_uint8(drive_slices(models, slices, timer, pad_to))
    out, start = [], 0
    for s in slices:
        out.append(frames[start : start + len(s)])
        start += len(s)
    return out
