"""The seam between the sidecar and whatever makes motion: a job runner.

The server only knows :class:`JobRunner`: given a decoded submit (:class:`~talkbridge.bridge.codec.JobSpec`),
a device and a cancel flag, it yields the job's stream in its wire form (:mod:`talkbridge.bridge.codec`):
the ``info`` message with the job's facts, then the ``chunk`` messages of its steps (a motion chunk
with the official coefficients, plus the frames rendered for it when the submit asked for
``render_size``). A runner behind a process or Ray boundary relays the messages it receives as
they are. :class:`EngineRunner` runs every job through the job layer
(:func:`~talkbridge.core.jobs.local.open_local_job`) with one :class:`~talkbridge.core.jobs.cache.EngineCache`,
so each network loads once per device and serves motion-only and render jobs alike. Tests and the
transport benchmark plug in the deterministic :class:`~talkbridge.bridge.synthetic.SyntheticRunner`.
"""

from __future__ import annotations

import logging
import tempfile
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterator, Protocol

import numpy as np

from talkbridge.bridge import protocol as p
from talkbridge.bridge.codec import REFERENCE_INPUTS, JobSpec, stream_messages
from talkbridge.bridge.leftovers import owned_folder_prefix
from talkbridge.core.audio.loading import DEFAULT_MAX_AUDIO_SECONDS, check_pcm, load_audio
from talkbridge.core.errors import InputError
from talkbridge.core.jobs.options import SADTALKER_SIZES, OptionSpec

log = logging.getLogger(__name__)

JOB_FOLDER_PREFIX = "talkbridge-job-"
"""Per-job temporary folders are named ``talkbridge-job-<pid>-<random>``, so a server can sweep
the folders of processes that died without cleaning up."""


ACCELERATOR_JOBS_PER_DEVICE = 4  # jobs a GPU worker runs at once by default, so their frames share passes
DEFAULT_BATCH_FRAMES = 8  # rows per shared pass when jobs share a device


def sharing_defaults(devices: tuple[str, ...], jobs_per_device: int | None, batch_frames: int | None) -> tuple[int, int]:
    """``serve``'s jobs per device and rows per shared render pass, where the user left them open.

    A GPU is used well only when several jobs' frames share its passes, so a server whose devices are
    all accelerators runs :data:`ACCELERATOR_JOBS_PER_DEVICE` jobs each; a CPU server runs one (its
    cores are already busy with one job). Frames are batched across jobs whenever jobs share a device.
    """
    if jobs_per_device is None:
        accelerators = bool(devices) and all(not device.strip().lower().startswith("cpu") for device in devices)
        jobs_per_device = ACCELERATOR_JOBS_PER_DEVICE if accelerators else 1
    if batch_frames is None:
        batch_frames = DEFAULT_BATCH_FRAMES if jobs_per_device > 1 else 0
    return jobs_per_device, batch_frames


SADTALKER_SETTINGS = {  # a worker's SadTalker settings (serve flags), checked like job options
    spec.name: spec
    for spec in (
        OptionSpec("batch_frames", "int", 0, "rows per shared render pass; 0: every job on its own", low=0, high=256),
        OptionSpec("batch_wait_ms", "float", 5.0, "longest wait in ms for a fuller pass", low=0, high=10_000),
    )
}


class JobRunner(Protocol):
    """What the server needs from an engine back end."""

    def capabilities(self) -> dict[str, Any]:
        """At least ``engines`` (names) and ``render_sizes``; sent to clients in ``welcome``."""
        ...

    def run(self, job: JobSpec, device: str, cancel: threading.Event) -> Iterator[p.Message]:
        """Yield the job's ``info`` message, then its ``chunk`` messages in frame order; stop early
        when ``cancel`` is set.

        Raise :class:`~talkbridge.core.errors.TalkbridgeError` for bad input (reported to the
        client as not retryable); any other exception is reported as an engine failure.
        """
        ...


def _safe_suffix(name: str, default: str) -> str:
    suffix = Path(name).suffix.lower()
    return suffix if suffix and len(suffix) <= 8 and suffix[1:].isalnum() else default


class EngineRunner:
    """Runs submitted jobs in this process through the job layer.

    ``engine_kwargs`` maps an engine name to its settings: ``{"sadtalker": {"checkpoint_dir": ...}}``
    names SadTalker's weights (else the model store's are used when present) and ``"lite"`` holds
    :class:`~talkbridge.core.lite.engine.LiteEngine` keywords.
    """

    def __init__(
        self, engine_kwargs: dict[str, dict[str, Any]] | None = None, precision: str = "fp32",
        max_audio_seconds: float = DEFAULT_MAX_AUDIO_SECONDS,
    ) -> None:
        from talkbridge.core.engine import ENGINE_FACTORIES
        from talkbridge.core.jobs.cache import EngineCache
        from talkbridge.core.jobs.options import OPTIONS

        self.precision = OPTIONS["precision"].check(precision)  # for jobs that do not choose one
        if not max_audio_seconds > 0:
            raise InputError(f"the audio length limit must be positive, not {max_audio_seconds}")
        self.max_audio_seconds = float(max_audio_seconds)

        settings = dict(engine_kwargs or {})
        unknown = sorted(set(settings) - set(ENGINE_FACTORIES))
        if unknown:
            raise InputError(f"unknown engine {unknown[0]!r} in the engine settings; known: {', '.join(sorted(ENGINE_FACTORIES))}")
        sadtalker = dict(settings.pop("sadtalker", {}))
        checkpoints = sadtalker.pop("checkpoint_dir", None)
        unknown = sorted(set(sadtalker) - set(SADTALKER_SETTINGS))
        if unknown:
            raise InputError(f"unknown SadTalker setting {unknown[0]!r}; known: checkpoint_dir, {', '.join(SADTALKER_SETTINGS)}")
        sadtalker = {name: SADTALKER_SETTINGS[name].check(value) for name, value in sadtalker.items()}
        if sadtalker:
            settings["sadtalker"] = sadtalker
        self.cache = EngineCache(checkpoints, settings)

    def capabilities(self) -> dict[str, Any]:
        """The engines, those that render here (SadTalker only with its checkpoints) and each one's frame sizes."""
        from talkbridge.core.engine import ENGINE_FACTORIES, engine_facts
        from talkbridge.core.jobs.options import OPTIONS

        available = self.cache.checkpoints is not None
        render_engines = [name for name in sorted(ENGINE_FACTORIES) if engine_facts(name).renders and (name != "sadtalker" or available)]
        size = OPTIONS["size"]
        sizes = {name: engine_facts(name).describe_sizes(int(size.low), int(size.high)) for name in render_engines}
        return {"engines": sorted(ENGINE_FACTORIES), "render_sizes": sizes, "render_engines": render_engines}

    def engine(self, name: str, device: str) -> Any:
        """Load ``name``'s engine or networks on ``device`` now and return them (``--preload``:
        missing weights stop a server at start, not at its first job)."""
        if name == "lite":
            return self.cache.lite()
        if name == "sadtalker":
            models = self.cache.sadtalker(device, self.precision)
            models.audio()
            models.recon()
            return models
        from talkbridge.core.engine import ENGINE_FACTORIES

        if name not in ENGINE_FACTORIES:
            raise InputError(f"unknown engine {name!r}; choose one of {', '.join(sorted(ENGINE_FACTORIES))}")
        return self.cache.registered(name, device)

    def run(self, job: JobSpec, device: str, cancel: threading.Event) -> Iterator[p.Message]:
        from talkbridge.core.jobs.local import open_local_job

        with tempfile.TemporaryDirectory(prefix=owned_folder_prefix(JOB_FOLDER_PREFIX)) as folder:
            request = build_request(job, Path(folder), device, self.precision, self.max_audio_seconds)
            messages = stream_messages(job.job_id, open_local_job(request, self.cache, render=bool(job.render_size)))
            try:
                for message in messages:
                    if cancel.is_set():
                        return
                    yield message
            finally:
                messages.close()


def build_request(
    job: JobSpec, folder: Path, device: str = "auto", precision: str = "fp32", max_audio_seconds: float = DEFAULT_MAX_AUDIO_SECONDS
) -> Any:
    """The job request for ``job``: file inputs are written into ``folder`` (a per-job temp dir), the
    audio decoded and checked (:mod:`talkbridge.core.audio.loading`) and every option checked by the
    job layer's one definition (out of range -> :class:`InputError`)."""
    from talkbridge.core.jobs.options import JobOptions
    from talkbridge.core.jobs.request import JobRequest

    if (job.audio_file is None) == (job.audio_pcm is None):
        raise InputError("a job needs exactly one audio input: the bytes of an audio file or 16 kHz float32 samples")
    if job.render_size is not None and (job.engine == "sadtalker") and job.render_size not in SADTALKER_SIZES:
        raise InputError(f"render_size {job.render_size} is not supported by sadtalker; choose one of {list(SADTALKER_SIZES)}")
    options = JobOptions.from_wire({"precision": precision, **job.options}, engine=job.engine, size=job.render_size)
    options = replace(options, device=device)
    # Audio is decoded and checked here, against this server's length limit, before any engine sees
    # it: a tiny file claiming a 1 Hz rate or samples of 1e19 is bad input, never a worker's MemoryError.
    if job.audio_file is not None:
        if job.audio_file.size == 0:
            raise InputError(f"the submitted audio {job.audio_name!r} is empty")
        path = folder / f"audio{_safe_suffix(job.audio_name, '.wav')}"
        path.write_bytes(memoryview(job.audio_file))
        try:
            audio: Any = load_audio(path, allow_silence=True, max_seconds=max_audio_seconds)  # engines judge silence
        except InputError as error:
            raise InputError(str(error).replace(str(path), f"the submitted audio {job.audio_name!r}")) from None
    else:
        audio = np.array(check_pcm(job.audio_pcm, max_audio_seconds, "the submitted audio_pcm"))  # a writable copy owned by the job
    image = None
    if job.image_file is not None:
        image = folder / f"image{_safe_suffix(job.image_name, '.png')}"
        image.write_bytes(memoryview(job.image_file))
    references: dict[str, Path] = {}
    for name, (data, file_name) in job.references.items():
        if name not in REFERENCE_INPUTS:
            raise InputError(f"unknown reference input {name!r}; expected one of {REFERENCE_INPUTS}")
        if data.size == 0:
            raise InputError(f"the submitted {name} reference {file_name!r} is empty")
        references[name] = folder / f"{name}{_safe_suffix(file_name, '.mat')}"
        references[name].write_bytes(memoryview(data))
    first_frame = None if job.first_frame is None else np.array(job.first_frame, dtype=np.float32)
    return JobRequest(audio=audio, image=image, options=options, first_frame=first_frame, **references)
