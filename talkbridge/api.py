"""The Python API of a whole job: a request in, every output file out, on any route.

    from talkbridge.api import run_job
    from talkbridge.core.jobs import JobOptions, JobRequest
    from talkbridge.exporters.job_files import OutputPlan

    request = JobRequest("speech.wav", "portrait.png", JobOptions(engine="lite", seed=3))
    result = run_job(request, OutputPlan(Path("out"), "speech"))

``talkbridge generate`` and ``talkbridge demo`` are this function behind argument parsing; batch rows
call it too. With ``sidecar`` the networks run on a ``talkbridge serve`` and the same files are
written here, with the same arrays and metadata as a local run (only the route fields differ).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from talkbridge.core.jobs.cache import EngineCache
from talkbridge.core.jobs.request import JobRequest
from talkbridge.core.jobs.steps import JobStream, Step
from talkbridge.core.motion import FPS
from talkbridge.exporters.job_files import OutputPlan, write_job

log = logging.getLogger(__name__)


@dataclass
class JobResult:
    """What a finished job wrote."""

    name: str
    engine: str
    files: dict[str, Path]
    frames: int
    seconds: float
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def video(self) -> Path | None:
        return self.files.get("video")

    @property
    def motion(self) -> Path:
        return self.files["motion"]

    @property
    def summary(self) -> Path:
        return self.files["summary"]

    @property
    def coefficients(self) -> Path | None:
        return self.files.get("coefficients")


StreamOpener = Callable[[JobRequest, bool], JobStream]
"""Starts a job elsewhere (a Ray actor, say): ``(request, render) -> JobStream``."""


def run_job(
    request: JobRequest,
    plan: OutputPlan,
    *,
    sidecar: Any = None,
    cache: EngineCache | None = None,
    progress: bool = False,
    opener: StreamOpener | None = None,
    route: dict[str, Any] | None = None,
    stop: threading.Event | None = None,
) -> JobResult:
    """Check the inputs, run the job and write every file of ``plan``; nothing is written under a
    final name unless the job succeeds.

    The job runs in this process (with ``cache``'s engines), on ``sidecar`` (a target with
    ``.address``/``.client()``) or through ``opener`` (any other route, named by ``route``, e.g.
    ``{"route": "ray ADDRESS"}``). Whatever the route, the checks, the metadata and the files are these.
    Once ``stop`` is set, a sidecar job is cancelled from this thread and :class:`JobInterrupted` raised.
    """
    from talkbridge.core.audio import SAMPLE_RATE, load_audio
    from talkbridge.core.audio.loading import check_pcm
    from talkbridge.core.face.image_io import image_size
    from talkbridge.core.jobs.local import open_local_job, resolve_engine
    from talkbridge.core.jobs.viseme_mouth import needs_viseme_motion, viseme_motion_for
    from talkbridge.exporters.job_exports import exports_need_arkit

    started = time.monotonic()
    options = request.options.checked()
    request = replace(request, options=options)
    cache = cache or EngineCache()
    if sidecar is not None:
        from talkbridge.bridge.remote_job import open_remote_job

        def opener(job: JobRequest, render: bool) -> JobStream:
            return open_remote_job(job, sidecar, render=render, stop=stop)

        route = {"route": "sidecar", "sidecar": sidecar.address}
    engine = None if opener is not None else resolve_engine(options, cache)
    if engine is not None:
        options.resolved_size(engine)  # a bad size fails before any reading
    described = request.describe()
    if request.image is not None:  # checked up front from its header; only an engine that draws it decodes it
        described["image_size"] = list(image_size(Path(request.image)))
    audio_path = Path(request.audio) if isinstance(request.audio, (str, Path)) else None
    samples = (  # checked before anything is resampled, encoded or uploaded (docs/inputs.md)
        load_audio(audio_path, allow_silence=engine != "sadtalker") if audio_path is not None else check_pcm(request.audio)
    )
    plan.prepare(engine)
    enhance = _enhancer(options.enhancer, options.device)
    if opener is None:
        request = replace(request, options=replace(options, engine=engine))  # resolved once, recorded as asked
        stream = open_local_job(replace(request, audio=samples), cache, render=plan.video, engine=engine)
    else:
        stream = opener(request, plan.video)
        try:
            plan.prepare(stream.info.engine)  # now the engine is known: its own files too
        except BaseException:
            stream.close()
            raise
    if enhance is not None:
        stream.steps = _enhanced(stream.steps, enhance)
    viseme_motion = None
    if plan.exports and needs_viseme_motion(stream.info.engine, exports_need_arkit(plan.exports)):
        viseme_motion = viseme_motion_for(samples, cache)  # mouth shapes for ARKit exports of motion that has none
    expected = stream.info.n_frames or int(round(samples.size / SAMPLE_RATE * FPS))
    metadata = {**described, **(route or {"route": "local"})}
    with _progress_bar(expected, progress) as bar:
        written = write_job(stream, plan, audio=audio_path, request_metadata=metadata, progress=bar.update, viseme_motion=viseme_motion)
    motion = written.motion
    return JobResult(plan.name, stream.info.engine, written.files, motion.n_frames, time.monotonic() - started, motion.metadata)


def _enhancer(name: str | None, device: str) -> Any:
    if name is None:
        return None
    from talkbridge.core.face.enhance import GfpganEnhancer

    return GfpganEnhancer(device="cpu" if device in (None, "auto") else device)


def _enhanced(steps: Iterator[Step], enhance: Any) -> Iterator[Step]:
    """The same steps with faces restored in every frame (done where the frames are written)."""
    for step in steps:
        yield step if step.frames is None else Step(step.chunk, enhance(np.array(step.frames)))


def _progress_bar(total: int, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, unit="frame", desc="generate", disable=not enabled, leave=False)
