"""The seam between the sidecar and whatever makes motion: a job runner.

The server only knows :class:`JobRunner`: given a decoded submit (:class:`JobSpec`), a device and a
cancel flag, it yields :class:`JobOutput` s (a motion chunk, optionally with rendered frames: the
lite preview, or SadTalker's face-vid2vid video via :mod:`.video_jobs`).
:class:`EngineRunner` runs the registered engines and caches them per device, so models load once
per server; tests and the transport benchmark plug in the deterministic
:class:`~talkbridge.bridge.synthetic.SyntheticRunner` instead, so protocol behaviour is checked
without depending on engine speed.
"""

from __future__ import annotations

import importlib.util
import inspect
import logging
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Protocol

import numpy as np

from talkbridge.core.errors import InputError
from talkbridge.core.motion import MotionChunk

log = logging.getLogger(__name__)

RENDER_SIZES = (256, 512)
REFERENCE_INPUTS = ("ref_eyeblink", "ref_pose")
"""SadTalker's reference inputs: the bytes of a video (or of its coefficient ``.mat``) each."""


@dataclass
class JobSpec:
    """One submitted job, as the runner sees it: inputs are in memory, never paths on the client."""

    job_id: str
    engine: str
    options: dict[str, Any] = field(default_factory=dict)
    audio_file: np.ndarray | None = None  # uint8 bytes of an audio file
    audio_name: str = "audio.wav"
    audio_pcm: np.ndarray | None = None  # or 16 kHz mono float32 samples
    image_file: np.ndarray | None = None  # uint8 bytes of an image file
    image_name: str = "image.png"
    first_frame: np.ndarray | None = None
    render_size: int | None = None
    references: dict[str, tuple[np.ndarray, str]] = field(default_factory=dict)  # name -> (bytes, file name)


@dataclass
class JobOutput:
    """One step of a job: a chunk of motion, the frames rendered for it (n, H, W, 3) uint8, if any."""

    chunk: MotionChunk
    frames: np.ndarray | None = None
    info: dict[str, Any] = field(default_factory=dict)


class JobRunner(Protocol):
    """What the server needs from an engine back end."""

    def capabilities(self) -> dict[str, Any]:
        """At least ``engines`` (names) and ``render_sizes``; sent to clients in ``welcome``."""
        ...

    def run(self, job: JobSpec, device: str, cancel: threading.Event) -> Iterator[JobOutput]:
        """Yield the job's outputs in frame order; stop early when ``cancel`` is set.

        Raise :class:`~talkbridge.core.errors.TalkbridgeError` for bad input (reported to the
        client as not retryable); any other exception is reported as an engine failure.
        """
        ...


def _safe_suffix(name: str, default: str) -> str:
    suffix = Path(name).suffix.lower()
    return suffix if suffix and len(suffix) <= 8 and suffix[1:].isalnum() else default


_REQUEST_OPTIONS: dict[str, tuple[type, ...]] = {
    "pose_style": (int,),
    "still": (bool,),
    "expression_scale": (int, float),
    "seed": (int,),
    "chunk_frames": (int,),
    "transcript": (str,),
    "pose_intensity": (int, float),
}


class EngineRunner:
    """Runs jobs on the registered engines (``create_engine``), one cached instance per device.

    ``engine_kwargs`` maps an engine name to its constructor keywords (checkpoint paths for
    SadTalker); a ``device`` keyword is added when the engine's constructor takes one.
    """

    def __init__(self, engine_kwargs: dict[str, dict[str, Any]] | None = None) -> None:
        self._engine_kwargs = dict(engine_kwargs or {})
        self._engines: dict[tuple[str, str], Any] = {}
        self._renderers: dict[tuple[str, int], Any] = {}
        self._lock = threading.Lock()

    def capabilities(self) -> dict[str, Any]:
        from talkbridge.core.engine import ENGINE_FACTORIES

        engines = []
        for name, target in sorted(ENGINE_FACTORIES.items()):
            try:
                if importlib.util.find_spec(target.partition(":")[0]) is not None:
                    engines.append(name)
            except (ImportError, ValueError):
                continue
        render_engines = ["lite"]
        if "sadtalker" in engines and self._engine_kwargs.get("sadtalker", {}).get("checkpoint_dir"):
            render_engines.append("sadtalker")
        return {"engines": engines, "render_sizes": list(RENDER_SIZES), "render_engines": render_engines}

    def engine(self, name: str, device: str) -> Any:
        """The engine ``name`` on ``device``, built on first use (model loading is cached)."""
        from talkbridge.core.engine import ENGINE_FACTORIES, create_engine

        key = (name, device)
        with self._lock:
            if key not in self._engines:
                kwargs = dict(self._engine_kwargs.get(name, {}))
                target = ENGINE_FACTORIES.get(name)
                if target is not None and "device" not in kwargs:
                    module, _, attribute = target.partition(":")
                    try:
                        factory = getattr(importlib.import_module(module), attribute)
                        if "device" in inspect.signature(factory).parameters:
                            kwargs["device"] = device
                    except (ImportError, AttributeError, TypeError, ValueError):
                        pass  # create_engine reports the real problem below
                log.info("loading engine %s on %s", name, device)
                self._engines[key] = create_engine(name, **kwargs)
            return self._engines[key]

    def sadtalker_video(self, size: int, preprocess: str, device: str) -> Any:
        """The SadTalker video pipeline for ``size`` and ``preprocess``'s MappingNet on ``device``,
        loaded on first use from the sadtalker engine's ``checkpoint_dir``."""
        from talkbridge.core.sadtalker.render.windows import uses_full_mapping
        from talkbridge.pipeline.sadtalker_video import SadTalkerVideo

        folder = self._engine_kwargs.get("sadtalker", {}).get("checkpoint_dir")
        if not folder:
            raise InputError("this sidecar has no SadTalker checkpoints, so it cannot render SadTalker frames (start it with --checkpoints)")
        key = ("sadtalker", size, uses_full_mapping(preprocess), device)
        with self._lock:
            if key not in self._renderers:
                log.info("loading the SadTalker %d px renderer (%s family) on %s", size, preprocess, device)
                self._renderers[key] = SadTalkerVideo(folder, size, preprocess, device)
            return self._renderers[key]

    def _renderer(self, engine_name: str, size: int) -> Any:
        if engine_name != "lite":
            raise InputError(f"the sidecar renders frames only for the lite and sadtalker engines, not {engine_name!r}; submit without render_size")
        check_render_size(size)
        key = (engine_name, size)
        with self._lock:
            if key not in self._renderers:
                from talkbridge.core.lite import preview

                self._renderers[key] = preview.PreviewRenderer(_lite_head(), size=size)
            return self._renderers[key]

    def run(self, job: JobSpec, device: str, cancel: threading.Event) -> Iterator[JobOutput]:
        if job.engine == "sadtalker" and job.render_size:
            yield from self._run_sadtalker_video(job, device, cancel)
            return
        engine = self.engine(job.engine, device)
        renderer = self._renderer(job.engine, job.render_size) if job.render_size else None
        info = {"engine": str(getattr(engine, "name", job.engine)), "engine_version": str(getattr(engine, "version", ""))}
        with tempfile.TemporaryDirectory(prefix="talkbridge-job-") as folder:
            request = build_request(job, Path(folder))
            for chunk in engine.stream_motion(request):
                if cancel.is_set():
                    return
                frames = renderer.render(chunk) if renderer is not None else None
                yield JobOutput(chunk, frames, info)


    def _run_sadtalker_video(self, job: JobSpec, device: str, cancel: threading.Event) -> Iterator[JobOutput]:
        from talkbridge._version import __version__
        from talkbridge.bridge.video_jobs import pair_frames_with_chunks, video_options
        from talkbridge.core.sadtalker.engine import with_expression_scale

        check_render_size(job.render_size)
        with tempfile.TemporaryDirectory(prefix="talkbridge-job-") as folder:
            request = build_request(job, Path(folder))
            if request.image is None:
                raise InputError("rendering SadTalker frames needs the portrait image in the submit ('image')")
            options = video_options(request)
            video = self.sadtalker_video(job.render_size, options.preprocess, device)
            run = video.start(request.image, request.audio, options)
            info = {"engine": "sadtalker", "engine_version": __version__}
            for chunk, frames in pair_frames_with_chunks(run.frames(), run.motion_chunks, cancel):
                yield JobOutput(with_expression_scale(chunk, options.expression_scale), frames, info)


def check_render_size(size: int) -> None:
    if size not in RENDER_SIZES:
        raise InputError(f"render_size {size} is not supported; choose one of {list(RENDER_SIZES)}")


def _lite_head() -> Any:
    """The lite engine's mannequin head (built once per renderer size, then cached)."""
    from talkbridge.core.lite.mannequin import build_mannequin

    return build_mannequin()


def build_request(job: JobSpec, folder: Path) -> Any:
    """The engine request for ``job``; file inputs are written into ``folder`` (a per-job temp dir)."""
    from talkbridge.core.engine import MotionRequest

    if (job.audio_file is None) == (job.audio_pcm is None):
        raise InputError("a job needs exactly one audio input: the bytes of an audio file or 16 kHz float32 samples")
    if job.audio_file is not None:
        if job.audio_file.size == 0:
            raise InputError(f"the submitted audio {job.audio_name!r} is empty")
        audio: Any = folder / f"audio{_safe_suffix(job.audio_name, '.wav')}"
        audio.write_bytes(memoryview(job.audio_file))
    else:
        audio = np.array(job.audio_pcm, dtype=np.float32)  # a writable copy owned by the job
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
    known: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for name, value in job.options.items():
        types = _REQUEST_OPTIONS.get(name)
        if types is None:
            extra[name] = value
            continue
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise InputError(f"option {name!r} must be of type {'/'.join(t.__name__ for t in types)}, got {value!r}")
        known[name] = value
    if "chunk_frames" in known and not 1 <= known["chunk_frames"] <= 10_000:
        raise InputError(f"option 'chunk_frames' must be within 1..10000, got {known['chunk_frames']}")
    first_frame = None if job.first_frame is None else np.array(job.first_frame, dtype=np.float32)
    return MotionRequest(audio=audio, image=image, first_frame=first_frame, options=extra, **references, **known)
