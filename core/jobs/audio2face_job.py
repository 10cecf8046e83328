"""The Audio2Face-3D engine as a job source: trained ARKit, tongue, jaw and eye motion, streamed.

Audio2Face-3D draws no portrait, so with video on the steps carry the lite mannequin rendered from
the same chunk (the portrait is not used, and the metadata says so). It makes no head pose and no
blinks either: when SadTalker's weights are present, SadTalker's PoseVAE (the job's ``pose_style``
and seed) and its blink schedule give them, from a neutral first frame (no portrait: a front-facing
head); otherwise the lite engine's procedural ones do. ``pose_source``/``blink_source`` say which.
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np

from talkbridge.core.engine import MotionRequest
from talkbridge.core.jobs.cache import EngineCache
from talkbridge.core.jobs.lite_job import mannequin_steps
from talkbridge.core.jobs.request import JobRequest
from talkbridge.core.jobs.steps import JobInfo, JobStream

log = logging.getLogger(__name__)

POSEVAE = "sadtalker-posevae"
SADTALKER_BLINKS = "sadtalker-blink-schedule"


def open_audio2face_job(request: JobRequest, cache: EngineCache, render: bool) -> JobStream:
    """Load the model and the audio now (bad files fail before any output), then stream steps."""
    options = request.options
    engine = cache.audio2face(options.device)
    plan = engine.plan(
        MotionRequest(
            audio=request.audio, seed=options.seed, still=options.still, pose_intensity=options.pose_intensity,
            options={"emotion": options.emotion, "fps": options.fps, "identity": options.identity},
        )
    )
    plan = with_sadtalker_pose(plan, request, cache)
    clip = engine.clip(plan)
    size = options.resolved_size("audio2face")
    renderer = cache.lite_renderer(size) if render else None
    metadata = {**plan.details, "image_used": False, "video_source": "lite mannequin" if render else None, "size": size if render else None}
    info = JobInfo(
        engine=engine.name, engine_version=engine.version, n_frames=plan.n_frames, fps=plan.fps,
        expression_scale=options.expression_scale, frame_size=(size, size) if render else None, metadata=metadata,
    )
    return JobStream(info, mannequin_steps(plan.n_frames, options.chunk_frames, clip.chunk, renderer))


def with_sadtalker_pose(plan, request: JobRequest, cache: EngineCache):
    """``plan`` with SadTalker's PoseVAE pose and blink schedule when its weights are found (in the
    cache's checkpoint folder or the model store), else unchanged (lite's procedural ones)."""
    if cache.checkpoints is None:
        return plan
    from talkbridge.core.sadtalker.audio2coeff import CoeffRequest
    from talkbridge.core.motion import EXPRESSION_DIM, FPS, POSE_DIM, frames_at_rate

    options = request.options
    audio2coeff = cache.sadtalker(options.device).audio()
    neutral = np.zeros(EXPRESSION_DIM + POSE_DIM, np.float32)  # no portrait: the head faces the camera
    chunks = list(audio2coeff.stream(CoeffRequest(
        plan.samples, neutral, pose_style=options.pose_style, still=options.still, seed=options.seed,
    )))
    pose = frames_at_rate(np.concatenate([chunk.pose for chunk in chunks]), plan.n_frames, FPS, plan.fps)
    blink = frames_at_rate(np.concatenate([chunk.blink for chunk in chunks]), plan.n_frames, FPS, plan.fps)
    log.info("audio2face: head pose from SadTalker's PoseVAE (style %d), blinks from its schedule", options.pose_style)
    details = {**plan.details, "pose_source": "still" if options.still else POSEVAE, "blink_source": SADTALKER_BLINKS,
               "pose_style": int(options.pose_style)}
    return dataclasses.replace(plan, pose=pose.astype(np.float32), blink=blink.astype(np.float32), details=details)

