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

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from talkbridge.core.errors import InputError
from talkbridge.core.jobs.steps import JobStream
from talkbridge.core.motion import Motion, MotionChunk, scale_expression
from talkbridge.exporters.atomic import atomic_output, check_writable_target

log = logging.getLogger(__name__)

ENGINES_WITH_COEFFICIENTS = ("sadtalker",)


@dataclass(frozen=True)
class OutputPlan:
    """Where a job's files go and which ones it makes."""

    output_dir: Path
    name: str
    overwrite: bool = False
    video: bool = True
    exports: tuple[str, ...] = ()
    head: Path | None = None

    def targets(self, engine: str | None) -> dict[str, Path]:
        """Every file the job will write, by kind; ``engine=None`` before the engine is known."""
        folder, name = Path(self.output_dir), self.name
        targets = {"video": folder / f"{name}.mp4"} if self.video else {}
        targets["motion"] = folder / f"{name}.motion.npz"
        targets["summary"] = folder / f"{name}.motion.json"
        if engine in ENGINES_WITH_COEFFICIENTS:
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


def write_job(
    stream: JobStream,
    plan: OutputPlan,
    *,
    audio: Path | None,
    request_metadata: dict[str, Any],
    progress: Callable[[int], None] | None = None,
) -> dict[str, Path]:
    """Consume ``stream`` and write every output of ``plan``; returns the files by kind.

    ``audio`` is the speech file muxed into the video; ``request_metadata`` is the caller's part of
    the motion file's metadata (input paths, options, route), merged over the engine's.
    """
    from talkbridge.exporters.video import VideoWriter

    chunks: list[MotionChunk] = []
    video = None
    written: dict[str, Path] = {}
    try:
        with _VideoSlot() as slot:
            for step in stream.steps:
                if step.frames is not None and plan.video:
                    if video is None:
                        height, width = step.frames.shape[1:3]
                        targets = plan.targets(stream.info.engine)
                        video = slot.open(VideoWriter(targets["video"], stream.info.fps, (width, height), audio, plan.overwrite))
                    video.write(step.frames)
                chunks.append(step.chunk)
                if progress is not None:
                    progress(step.chunk.n_frames)
            if not chunks:
                raise InputError("the job produced no motion")
            if plan.video and video is None:
                raise InputError("the job rendered no frames, so there is no video to write")
            if video is not None:
                slot.commit()
                written["video"] = video.path
    except BaseException:
        stream.close()
        raise
    written.update(write_motion_outputs(stream, chunks, plan, request_metadata, audio))
    return written


class _VideoSlot:
    """Holds the video writer opened mid-stream, so an error anywhere aborts it (nothing is left)."""

    def __init__(self) -> None:
        self._writer: Any = None

    def __enter__(self) -> "_VideoSlot":
        return self

    def open(self, writer: Any) -> Any:
        self._writer = writer.__enter__()
        return self._writer

    def commit(self) -> None:
        writer, self._writer = self._writer, None
        writer.__exit__(None, None, None)

    def __exit__(self, kind, error, trace) -> None:
        if self._writer is not None:
            writer, self._writer = self._writer, None
            writer.__exit__(kind, error, trace)


def write_motion_outputs(
    stream: JobStream, chunks: list[MotionChunk], plan: OutputPlan, request_metadata: dict[str, Any], audio: Path | None = None
) -> dict[str, Path]:
    """The motion files (and exports) from a finished job's official chunks."""
    from talkbridge.exporters.coeff_mat import write_coeff_mat
    from talkbridge.exporters.motion_file import motion_summary, save_motion

    info = stream.info
    targets = plan.targets(info.engine)
    metadata = {**info.metadata, **request_metadata}
    if targets.get("video") is not None and plan.video:
        metadata["video"] = targets["video"].name
    written: dict[str, Path] = {}
    has_expression = chunks[0].expression is not None
    if has_expression:
        metadata["expression_scale_applied"] = float(info.expression_scale)
    if "coefficients" in targets:
        official = np.concatenate([chunk.coefficients() for chunk in chunks])
        written["coefficients"] = write_coeff_mat(targets["coefficients"], official, overwrite=plan.overwrite)
    shown = [scale_expression(chunk, info.expression_scale) for chunk in chunks]
    motion = Motion.from_chunks(
        shown, engine=info.engine, engine_version=info.engine_version, fps=info.fps,
        first_frame=info.first_frame, metadata=metadata,
    )
    written["motion"] = save_motion(motion, targets["motion"], overwrite=plan.overwrite)
    with atomic_output(targets["summary"], overwrite=plan.overwrite) as temp:
        temp.write_text(json.dumps(motion_summary(motion), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    written["summary"] = targets["summary"]
    if plan.exports:
        from talkbridge.exporters.job_exports import write_exports

        written.update(write_exports(motion, plan.exports, plan.head, plan.output_dir, plan.name, plan.overwrite, audio=audio))
    log.info("wrote %s (%d frames)", ", ".join(str(path) for path in written.values()), motion.n_frames)
    return written
