"""The lite engine as a job source: phones to ARKit curves, rendered on the built-in mannequin."""

from __future__ import annotations

from typing import Any, Callable, Iterator

import numpy as np

from talkbridge.core.emotion_overlay import OVERLAY_NAME, apply_emotion_overlay
from talkbridge.core.engine import MotionRequest
from talkbridge.core.jobs.cache import EngineCache
from talkbridge.core.jobs.emotion import job_emotion
from talkbridge.core.jobs.request import JobRequest
from talkbridge.core.jobs.steps import JobInfo, JobStream, Step
from talkbridge.core.motion import FPS, MotionChunk

RENDER_STEP_FRAMES = FPS
"""Frames per step when rendering: one second of video keeps a step's memory small at any size."""


def open_lite_job(request: JobRequest, cache: EngineCache, render: bool) -> JobStream:
    """Plan the whole clip (the phone recogniser needs all of it), then stream it step by step."""
    options = request.options
    engine = cache.lite()
    plan = engine.plan(
        MotionRequest(
            audio=request.audio,
            seed=options.seed,
            still=options.still,
            pose_intensity=options.pose_intensity,
            expression_scale=options.expression_scale,
            transcript=options.transcript,
        )
    )
    emotion = job_emotion(options.emotion, plan.n_frames)
    if emotion is not None:
        plan.arkit = apply_emotion_overlay(plan.arkit, emotion)  # before rendering: the mannequin shows it too
        plan.emotion = emotion
    size = options.resolved_size("lite")
    renderer = cache.lite_renderer(size) if render else None
    metadata = {**plan.details, "image_used": False, "size": size if render else None}
    if emotion is not None:
        metadata["emotion_overlay"] = OVERLAY_NAME
    info = JobInfo(
        engine=engine.name,
        engine_version=engine.version,
        n_frames=plan.n_frames,
        expression_scale=options.expression_scale,
        frame_size=(size, size) if render else None,
        metadata=metadata,
    )
    return JobStream(info, mannequin_steps(plan.n_frames, options.chunk_frames, plan.chunk, renderer))


def mannequin_steps(
    n_frames: int, chunk_frames: int, chunk_at: Callable[[int, int], MotionChunk], renderer: Any | None
) -> Iterator[Step]:
    """Steps of the clip's motion, ``chunk_at(start, stop)`` in order; with a ``renderer`` each step
    also carries its frames of the mannequin, a second at most so a step's memory stays small."""
    step_frames = min(chunk_frames, RENDER_STEP_FRAMES) if renderer is not None else chunk_frames
    for start in range(0, n_frames, step_frames):
        chunk = chunk_at(start, min(n_frames, start + step_frames))
        frames = None if renderer is None else np.ascontiguousarray(renderer.render(chunk))
        yield Step(chunk, frames)
