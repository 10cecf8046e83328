"""SadTalker as a job source: portrait + speech -> streamed coefficients and, when asked, frames.

    portrait --landmarks/crop/align--> recon net --> first-frame row (73) --+
    speech ---------------------------------------------------------------> Audio2Coeff (streamed)
                                        coefficients --> FaceRenderer --> paste-back --> frames

The networks come from the worker's :class:`~talkbridge.core.sadtalker.models.SadTalkerModels`.
Frames come out as coefficients arrive (the renderer looks 13 frames ahead), and each step pairs one
motion chunk with exactly the frames made from it, so memory stays flat however long the audio is.
"""

from __future__ import annotations

import functools
from collections import deque
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from talkbridge.core.errors import InputError
from talkbridge.core.jobs.cache import EngineCache
from talkbridge.core.jobs.overlap import ahead, cpu_workers, map_batches
from talkbridge.core.jobs.request import JobRequest
from talkbridge.core.jobs.steps import JobInfo, JobStream, Step
from talkbridge.core.motion import FPS, MotionChunk

ENGINE_NAME = "sadtalker"


def engine_version() -> str:
    from talkbridge._version import __version__

    return __version__


class FramePairing:
    """Hands coefficient chunks to the renderer and pairs every batch of finished frames with its rows.

    The renderer reads a chunk before it renders that chunk's frames, so the chunks it has taken are
    kept here (two or three at most) until all their frames are out. Each rendered batch becomes a
    step at once (split where it crosses a chunk boundary), so a step holds one batch of frames,
    never a whole chunk's worth of full-size video.
    """

    def __init__(self, chunks: Iterable[MotionChunk], feed_rows: int = FPS) -> None:
        self._chunks = iter(chunks)
        self._feed_rows = feed_rows
        self._taken: deque[MotionChunk] = deque()
        self._next_frame = 0

    def coefficients(self) -> Iterator[np.ndarray]:
        """What the renderer consumes: each chunk's (n, 70) rows, ``feed_rows`` at a time.

        The renderer's output does not depend on how its input is cut, and it renders what a piece
        makes ready, so small pieces keep a second of frames in memory instead of a chunk's worth.
        """
        for chunk in self._chunks:
            self._taken.append(chunk)
            rows = chunk.coefficients()
            for offset in range(0, len(rows), self._feed_rows):
                yield rows[offset : offset + self._feed_rows]

    def pair(self, frame_batches: Iterable[np.ndarray]) -> Iterator[Step]:
        """Steps in order: each batch of frames with the motion rows it was rendered from."""
        for batch in frame_batches:
            used = 0
            while used < len(batch):
                if not self._taken:
                    raise RuntimeError(f"the renderer made frame {self._next_frame} before reading its motion")
                chunk = self._taken[0]
                count = min(chunk.stop - self._next_frame, len(batch) - used)
                piece = chunk.piece(self._next_frame - chunk.start, count)
                yield Step(piece, np.ascontiguousarray(batch[used : used + count]))
                used += count
                self._next_frame += count
                if self._next_frame == chunk.stop:
                    self._taken.popleft()
        if self._taken:
            raise RuntimeError(f"the renderer stopped at frame {self._next_frame} with {len(self._taken)} chunks of motion left")


def open_sadtalker_job(
    request: JobRequest, cache: EngineCache, render: bool, overlap: bool | None = None, paste_workers: int | None = None
) -> JobStream:
    """Find and reconstruct the face (errors surface here, before any step), then stream.

    ``overlap`` renders in a thread of its own, one batch ahead of paste-back and encoding
    (:func:`~talkbridge.core.jobs.overlap.ahead`), so a GPU never waits for the CPU side. ``None``
    chooses by device: on for accelerators; off on a CPU, where rendering and paste-back share the
    same cores and the extra thread only contends (measured: ``bench/generate_long.py --overlap both``).
    ``paste_workers`` threads paste frames back (seamless cloning in the full modes costs ~100 ms a
    frame); ``None`` chooses by device (:func:`~talkbridge.core.jobs.overlap.cpu_workers`). Frames
    are the same whatever the count: each is pasted on its own.
    """
    from talkbridge.core.face.extract import extract_first_frame
    from talkbridge.core.face.image_io import read_image_rgb
    from talkbridge.core.face.paste import finish_frame, output_size
    from talkbridge.core.face.preprocess import is_full
    from talkbridge.core.sadtalker.audio2coeff import CoeffRequest
    from talkbridge.core.sadtalker.render.renderer import FaceRenderer, free_view_poses

    options = request.options
    size = options.resolved_size(ENGINE_NAME)
    if request.image is None and (render or request.first_frame is None):
        raise InputError(
            "the SadTalker engine needs a portrait image"
            + ("" if render else " (or, for motion only, the portrait's first-frame .mat)")
        )
    models = cache.sadtalker(options.device, options.precision)
    audio_side = models.audio(size)
    audio_side.check_style(options.pose_style)  # before seconds of face work
    renderer_models = models.renderer(size, options.preprocess) if render else None
    metadata: dict = {"size": size}
    first = None
    if request.first_frame is not None and not render:
        first_row = request.first_frame
        metadata["image_used"] = False
    else:
        original = read_image_rgb(Path(request.image)) if isinstance(request.image, (str, Path)) else np.asarray(request.image)
        provider = None if options.landmarks is not None else models.landmarks()
        first = extract_first_frame(
            original, models.recon(size), landmarks=options.landmarks, provider=provider,
            mode=options.preprocess, size=size, image_path=request.image if isinstance(request.image, (str, Path)) else None,
        )
        first_row = first.row
        crop = first.crop
        metadata["image_used"] = True
        metadata["crop"] = {"mode": crop.mode, "box": [int(v) for v in crop.box], "image_size": [int(v) for v in crop.image_size]}
    extracted: dict = {}  # one read when the same video drives both references
    job = audio_side.prepare(
        CoeffRequest(
            audio=request.audio, first_frame=first_row, pose_style=options.pose_style, still=options.still,
            ref_eyeblink=models.reference_rows(request.ref_eyeblink, size, extracted),
            ref_pose=models.reference_rows(request.ref_pose, size, extracted),
            seed=options.seed,
        )
    )
    frame_size = None
    if render:
        frame_size = (first.crop.image_size if is_full(first.crop.mode) else output_size(first.crop, size))
        frame_size = (int(frame_size[0]), int(frame_size[1]))
    info = JobInfo(
        engine=ENGINE_NAME,
        engine_version=engine_version(),
        n_frames=job.n_frames,
        expression_scale=options.expression_scale,
        first_frame=np.asarray(job.first_frame, np.float32) if first is None else first.row,
        frame_size=frame_size,
        metadata=metadata,
    )
    if not render:
        return JobStream(info, (Step(chunk) for chunk in job.chunks(options.chunk_frames)))

    if overlap is None:
        overlap = models.device.type != "cpu"
    renderer = FaceRenderer(
        renderer_models, first.source_image, first.row, still=options.still,
        expression_scale=options.expression_scale, batch_size=options.batch_size, size=size,
        batcher=models.batcher(size, options.preprocess),  # None unless the worker shares passes across jobs
    )
    poses = free_view_poses(job.n_frames, options.yaw, options.pitch, options.roll)
    pairing = FramePairing(job.chunks(options.chunk_frames))

    workers = cpu_workers(models.device.type) if paste_workers is None else max(1, int(paste_workers))

    def finished_frames() -> Iterator[np.ndarray]:
        import torch

        threads = torch.get_num_threads()  # the caller's choice, for the render thread too
        rendered = renderer.stream(pairing.coefficients(), poses)
        batches = ahead(rendered, setup=lambda: torch.set_num_threads(threads)) if overlap else rendered
        paste = functools.partial(finish_frame, original_rgb=original, info=first.crop, size=size)
        for frames in map_batches(paste, (batch for batch in batches if len(batch)), workers):
            yield np.stack(frames)

    return JobStream(info, pairing.pair(finished_frames()))
