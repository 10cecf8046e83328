"""Jobs that run in this process: pick the engine, then open its source.

Every in-process route (``talkbridge generate``, a sidecar worker, a batch row, a Ray actor) comes
through :func:`open_local_job`, so what a job means is defined once.
"""

from __future__ import annotations

import logging

from talkbridge.core.errors import InputError
from talkbridge.core.jobs.cache import EngineCache
from talkbridge.core.jobs.emotion import job_emotion, with_emotion_channel
from talkbridge.core.jobs.finite import finite_motion
from talkbridge.core.jobs.options import JobOptions, options_for_engine
from talkbridge.core.jobs.request import JobRequest
from talkbridge.core.jobs.steps import JobInfo, JobStream, Step
from talkbridge.core.motion import FPS

log = logging.getLogger(__name__)


def resolve_engine(options: JobOptions, cache: EngineCache) -> str:
    """The engine that will run: ``auto`` is SadTalker when its checkpoints are found, else lite."""
    requested = options.engine
    if requested not in ("auto", "sadtalker"):
        return requested  # lite, or a plug-in engine registered by name
    if requested == "sadtalker":
        log.info("engine: sadtalker (checkpoints in %s)", cache.require_checkpoints())
        return "sadtalker"
    found = cache.checkpoints
    if found is not None:
        log.info("engine: sadtalker (auto: checkpoints found in %s)", found)
        return "sadtalker"
    log.info("engine: lite (auto: no SadTalker checkpoints found; `talkbridge models download` fetches them)")
    return "lite"


def open_local_job(
    request: JobRequest,
    cache: EngineCache | None = None,
    render: bool = True,
    overlap: bool | None = None,
    paste_workers: int | None = None,
    engine: str | None = None,
) -> JobStream:
    """Start ``request`` here; ``render`` adds video frames to every step.

    ``engine`` is the engine a caller has already resolved with :func:`resolve_engine` (so the
    checkpoint search runs once per job); None resolves it here.

    ``overlap`` lets SadTalker render one batch ahead of paste-back and encoding (``None``: on for
    GPUs, off on a CPU; True/False force it, for measuring what it gains). ``paste_workers`` is how
    many threads paste SadTalker's frames back (``None``: one on a CPU, most cores next to a GPU).

    Input errors (no face, bad audio, an option the engine cannot honour) are raised here, before
    the first step, so a caller fails before it creates any output. Every step is checked finite
    as it leaves the engine (:mod:`talkbridge.core.jobs.finite`).
    """
    cache = cache or EngineCache()
    return finite_motion(_open_engine_job(request, cache, render, overlap, paste_workers, engine or resolve_engine(request.options, cache)))


def _open_engine_job(
    request: JobRequest, cache: EngineCache, render: bool, overlap: bool | None, paste_workers: int | None, engine: str
) -> JobStream:
    """The chosen engine's own job source."""
    ignored = options_for_engine(request.options, engine)
    if request.options.fps != FPS and engine != "audio2face":
        raise InputError(f"option 'fps' (--fps) is {request.options.fps}, but the {engine} engine makes {FPS} fps motion; "
                         "only audio2face makes other rates")
    if ignored:
        log.warning("the %s engine ignores: %s", engine, ", ".join(ignored))
    if engine == "lite":
        from talkbridge.core.jobs.lite_job import open_lite_job

        return open_lite_job(request, cache, render)
    if engine == "sadtalker":
        from talkbridge.core.jobs.sadtalker_job import open_sadtalker_job

        stream = open_sadtalker_job(request, cache, render, overlap, paste_workers)
        emotion = job_emotion(request.options.emotion, stream.info.n_frames, engine)
        if emotion is None:
            return stream
        # SadTalker's video comes from its 3DMM expression, which no emotion changes: the emotion travels as
        # a channel, and only the exported ARKit curves get its overlay (exporters/retarget.py).
        stream.info.metadata["emotion_overlay"] = "exported curves only (the video is unchanged)"
        return with_emotion_channel(stream, emotion)
    if engine == "audio2face":
        from talkbridge.core.jobs.audio2face_job import open_audio2face_job

        return open_audio2face_job(request, cache, render)
    return open_registered_job(engine, request, cache, render)


def open_registered_job(name: str, request: JobRequest, cache: EngineCache, render: bool) -> JobStream:
    """A plug-in motion engine (see :data:`~talkbridge.core.engine.ENGINE_FACTORIES`): motion only."""
    from talkbridge.core.engine import MotionRequest

    if render:
        raise InputError(f"the {name!r} engine makes motion only; ask for frames from lite or sadtalker")
    options = request.options
    engine = cache.registered(name, options.device)
    motion_request = MotionRequest(
        audio=request.audio, image=request.image, first_frame=request.first_frame, pose_style=options.pose_style,
        still=options.still, expression_scale=options.expression_scale, seed=options.seed,
        chunk_frames=options.chunk_frames, transcript=options.transcript, pose_intensity=options.pose_intensity,
    )
    info = JobInfo(str(getattr(engine, "name", name)), str(getattr(engine, "version", "")), n_frames=0,
                   expression_scale=options.expression_scale)
    return JobStream(info, (Step(chunk) for chunk in engine.stream_motion(motion_request)))
