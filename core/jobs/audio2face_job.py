"""The Audio2Face-3D engine as a job source: trained ARKit, tongue, jaw and eye motion, streamed.

Audio2Face-3D draws no portrait, so with video on the steps carry the lite mannequin rendered from
the same chunk (the portrait is not used, and the metadata says so).
"""

from __future__ import annotations

from talkbridge.core.engine import MotionRequest
from talkbridge.core.jobs.cache import EngineCache
from talkbridge.core.jobs.lite_job import mannequin_steps
from talkbridge.core.jobs.request import JobRequest
from talkbridge.core.jobs.steps import JobInfo, JobStream


def open_audio2face_job(request: JobRequest, cache: EngineCache, render: bool) -> JobStream:
    """Load the model and the audio now (bad files fail before any output), then stream steps."""
    options = request.options
    engine = cache.audio2face(options.device)
    plan = engine.plan(
        MotionRequest(
            audio=request.audio, seed=options.seed, still=options.still, pose_intensity=options.pose_intensity,
            options={"emotion": options.emotion},
        )
    )
    clip = engine.clip(plan)
    size = options.resolved_size("audio2face")
    renderer = cache.lite_renderer(size) if render else None
    metadata = {**plan.details, "image_used": False, "video_source": "lite mannequin" if render else None, "size": size if render else None}
    info = JobInfo(
        engine=engine.name, engine_version=engine.version, n_frames=plan.n_frames,
        expression_scale=options.expression_scale, frame_size=(size, size) if render else None, metadata=metadata,
    )
    return JobStream(info, mannequin_steps(plan.n_frames, options.chunk_frames, clip.chunk, renderer))
