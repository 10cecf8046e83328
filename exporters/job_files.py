"""The one output writer: every file a job makes, with the same content whatever route ran it.

A job's steps (from this process, a sidecar or a Ray actor) stream in; frames are encoded as they
arrive and motion is assembled at the end, so memory holds motion rows but never the video:

* ``<name>.mp4``: H.264 with the speech muxed in (when the job renders);
* ``<name>.motion.npz`` and ``<name>.motion.json``: the motion as shown (expression scaled);
* ``<name>.mat``: SadTalker's official ``coeff_3dmm`` rows (unscaled), when the engine makes them;
* exports (GLB, Live Link CSV, curves) made from that motion, when the plan asks for them.

Each file is written atomically: a final name holds a complete file or nothing, an existing file is
replaced only with ``overwrite``, and on any error or interrupt the job is cancelled and nothing
partial is left.
"""

from __future__ import annotations

import contextlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from talkbridge.core.engine import engine_facts
from talkbridge.core.errors import InputError
from talkbridge.core.jobs.steps import JobInfo, JobStream
from talkbridge.core.motion import Motion, MotionChunk, scale_expression
from talkbridge.exporters.atomic import atomic_output, check_writable_target

log = logging.getLogger(__name__)

MOTION_KINDS = ("coefficients", "motion", "summary")


MAX_NAME_CHARS = 120
"""Longest output base name: with the longest suffix and a partial file's prefix it stays well
inside every file system's 255-byte name limit."""
_NAME_FORBIDDEN = set('/\\:*?"<>|\0')
_WINDOWS_DEVICES = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(1, 10)), *(f"lpt{i}" for i in range(1, 10))}


def output_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be an output base name, or ``None``: plain (no folders, nothing hidden),
    printable (no newline, tab or escape), at most :data:`MAX_NAME_CHARS`, valid on Windows too."""
    if not name or name in (".", ".."):
        return "is empty"
    if _NAME_FORBIDDEN & set(name):
        return f"holds {sorted(_NAME_FORBIDDEN & set(name))[0]!r} (no folders or characters Windows forbids)"
    if name.startswith("."):
        return "starts with a dot (a hidden file)"
    if not name.isprintable():
        return "holds a control character (newline, tab, escape, ...)"
    if len(name) > MAX_NAME_CHARS:
        return f"is {len(name)} characters long; the limit is {MAX_NAME_CHARS}"
    if name != name.strip() or name.endswith("."):
        return "starts or ends with a space, or ends with a dot"
    if name.split(".")[0].lower() in _WINDOWS_DEVICES:
        return "is a Windows device name"
    return None


def check_output_name(name: str) -> str:
    """``name`` if :func:`output_name_problem` finds nothing, else :class:`InputError` saying why."""
    problem = output_name_problem(name)
    if problem is not None:
        raise InputError(f"the output name {name!r} {problem}")
    return name


@dataclass(frozen=True)
class OutputPlan:
    """Where a job's files go and which ones it makes (``name`` is checked by :func:`check_output_name`)."""

    output_dir: Path
    name: str
    overwrite: bool = False
    video: bool = True
    exports: tuple[str, ...] = ()
    head: Path | None = None
    mouth: str | None = None  # the glb export's mouth set (exporters/mouth_source.py); None: the default

    def __post_init__(self) -> None:
        check_output_name(self.name)

    def targets(self, engine: str | None) -> dict[str, Path]:
        """Every file the job will write, by kind; ``engine=None`` before the engine is known."""
        folder, name = Path(self.output_dir), self.name
        targets = {"video": folder / f"{name}.mp4"} if self.video else {}
        targets["motion"] = folder / f"{name}.motion.npz"
        targets["summary"] = folder / f"{name}.motion.json"
        if engine is not None and engine_facts(engine).coefficients:
            targets["coefficients"] = folder / f"{name}.mat"
        if self.exports:
            from talkbridge.exporters.job_exports import export_targets

            targets.update(export_targets(self.exports, folder, name))
        return targets

    def prepare(self, engine: str | None) -> dict[str, Path]:
        """Create the folder and check every target, before minutes of work rather than after."""
        folder = Path(self.output_dir)
        if folder.exists() and not folder.is_dir():
            raise InputError("output path exists and is not a folder", folder)
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise InputError(f"cannot create the output folder ({error.strerror or error})", folder) from None
        targets = self.targets(engine)
        for path in targets.values():
            check_writable_target(path, self.overwrite)
        return targets


@dataclass(frozen=True)
class WrittenJob:
    """What :func:`write_job` made: the files by kind, and the motion exactly as the motion file holds it
    (so a caller needs no second read of what it has just written)."""

    files: dict[str, Path]
    motion: Motion


def write_job(
    stream: JobStream,
    plan: OutputPlan,
    *,
    audio: Path | None,
    request_metadata: dict[str, Any],
    progress: Callable[[int], None] | None = None,
    viseme_motion: Motion | None = None,
) -> WrittenJob:
    """Consume ``stream`` and write every output of ``plan``; returns the files by kind and the motion.

    ``audio`` is the speech file muxed into the video; ``request_metadata`` is the caller's part of
    the motion file's metadata (input paths, options, route), merged over the engine's. The files
    are committed together at the end (``viseme_motion``: the viseme engine's motion for the same audio, for
    exports that need ARKit curves the engine lacks): the video is finished and renamed into place first, then the
    motion files; if anything fails before that, none of them appears.
    """
    from talkbridge.exporters.video import VideoWriter

    chunks: list[MotionChunk] = []
    targets = plan.targets(stream.info.engine)
    try:
        with contextlib.ExitStack() as outputs:
            # Entered first, so renamed last: only after the video is complete.
            temps = {kind: outputs.enter_context(atomic_output(targets[kind], overwrite=plan.overwrite))
                     for kind in MOTION_KINDS if kind in targets}
            video = None
            for step in stream.steps:
                if step.frames is not None and plan.video:
                    if video is None:
                        height, width = step.frames.shape[1:3]
                        video = outputs.enter_context(VideoWriter(targets["video"], stream.info.fps, (width, height), audio, plan.overwrite))
                    video.write(step.frames)
                chunks.append(step.chunk)
                if progress is not None:
                    progress(step.chunk.n_frames)
            if not chunks:
                raise InputError("the job produced no motion")
            if plan.video and video is None:
                raise InputError("the job rendered no frames, so there is no video to write")
            motion = write_motion_files(stream.info, chunks, temps, request_metadata, targets)
    except BaseException:
        stream.close()
        raise
    written = {kind: targets[kind] for kind in targets if kind in temps or kind == "video"}
    if plan.exports:
        from talkbridge.exporters.job_exports import write_exports

        written.update(write_exports(motion, plan.exports, plan.head, plan.output_dir, plan.name, plan.overwrite,
                                     viseme_motion=viseme_motion, mouth=plan.mouth, audio=audio))
    log.info("wrote %s (%d frames)", ", ".join(str(path) for path in written.values()), motion.n_frames)
    return WrittenJob(written, motion)


def write_motion_files(
    info: JobInfo, chunks: list[MotionChunk], temps: dict[str, Path], request_metadata: dict[str, Any], targets: dict[str, Path]
) -> Motion:
    """Write a finished job's motion into ``temps`` (by kind): the official ``.mat`` rows, and the
    motion as shown (expression scaled) with the engine's and the caller's metadata."""
    from talkbridge.exporters.coeff_mat import write_coeff_mat
    from talkbridge.exporters.motion_file import motion_summary, save_motion

    metadata = json.loads(json.dumps({**info.metadata, **request_metadata}))  # as the file will hold it
    if "video" in targets:
        metadata["video"] = targets["video"].name
    if chunks[0].expression is not None:
        metadata["expression_scale_applied"] = float(info.expression_scale)
    if "coefficients" in temps:
        write_coeff_mat(temps["coefficients"], np.concatenate([chunk.coefficients() for chunk in chunks]), overwrite=True)
    shown = [scale_expression(chunk, info.expression_scale) for chunk in chunks]
    motion = Motion.from_chunks(
        shown, engine=info.engine, engine_version=info.engine_version, fps=info.fps,
        first_frame=info.first_frame, metadata=metadata,
    )
    save_motion(motion, temps["motion"], overwrite=True)
    temps["summary"].write_text(json.dumps(motion_summary(motion), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return motion
