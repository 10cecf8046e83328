"""The SadTalker motion engine: SadTalker's audio-to-coefficient side behind the common engine interface.

For callers that want motion only through :class:`~talkbridge.core.engine.MotionEngine` (plug-in
style code, the exporters' retargeting): it runs the job layer's SadTalker source without rendering,
so there is one definition of a SadTalker job. It needs the source image's first-frame 3DMM row:
``MotionRequest.first_frame`` when given (a SadTalker ``.mat`` row), else it is reconstructed from
``MotionRequest.image`` (landmarks from ``options["landmarks"]``, or the face-alignment detector).
Chunks carry the official coefficients; apply the expression scale with
:func:`talkbridge.core.motion.scale_expression` where motion is shown.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from talkbridge._version import __version__
from talkbridge.core.engine import MotionRequest
from talkbridge.core.jobs.cache import EngineCache
from talkbridge.core.jobs.options import JobOptions
from talkbridge.core.jobs.request import JobRequest
from talkbridge.core.motion import MotionChunk


class SadTalkerMotionEngine:
    """Streams SadTalker motion; networks are loaded once and reused across requests."""

    name = "sadtalker"
    version = __version__

    def __init__(self, checkpoint_dir: str | Path | None = None, *, size: int = 256, device: str | None = None) -> None:
        self.size = size
        self.device = device or "auto"
        self.cache = EngineCache(checkpoint_dir)
        self.models = self.cache.sadtalker(self.device)  # fails now when the weights are missing

    def stream_motion(self, request: MotionRequest) -> Iterator[MotionChunk]:
        from talkbridge.core.jobs.sadtalker_job import open_sadtalker_job

        options = JobOptions.from_mapping({
            "engine": "sadtalker", "size": self.size, "device": self.device, "seed": request.seed,
            "still": request.still, "pose_style": request.pose_style, "expression_scale": request.expression_scale,
            "chunk_frames": request.chunk_frames, "landmarks": request.options.get("landmarks"),
        })
        job = JobRequest(
            audio=request.audio, image=request.image, options=options, first_frame=request.first_frame,
            ref_eyeblink=request.ref_eyeblink, ref_pose=request.ref_pose,
        )
        for step in open_sadtalker_job(job, self.cache, render=False).steps:
            yield step.chunk
