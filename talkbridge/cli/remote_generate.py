"""`talkbridge generate --sidecar ADDRESS`: the same outputs, with the networks on another machine.

A studio keeps the GPU in one box running ``talkbridge serve`` and drives it from workstations or
render-farm scripts. This module sends the portrait and the audio file's bytes with the job's
options, then writes what streams back exactly as a local run would: the mp4 (frames encoded as they
arrive, the local audio muxed in), ``.motion.npz`` / ``.motion.json`` and, for SadTalker, the official
``.mat``. Nothing is written under a final name until the job is done; an error, a dropped server or
Ctrl-C cancels the remote job and leaves earlier outputs untouched.
"""

from __future__ import annotations

import itertools
import logging
from pathlib import Path
from typing import Any

import numpy as np

from talkbridge.cli.sidecar_target import SidecarTarget
from talkbridge.core.errors import InputError, TalkbridgeError

log = logging.getLogger(__name__)


def choose_remote_engine(requested: str, capabilities: dict[str, Any], address: str) -> str:
    """``auto`` picks SadTalker when the server can render it, else lite; a named engine must be served."""
    render_engines = list(capabilities.get("render_engines", []))
    if requested == "auto":
        engine = "sadtalker" if "sadtalker" in render_engines else "lite"
        log.info("engine: %s (auto: the sidecar at %s renders %s)", engine, address, ", ".join(render_engines) or "nothing")
        return engine
    if requested not in render_engines:
        raise InputError(
            f"the sidecar at {address} does not render {requested!r} video (it renders: {', '.join(render_engines) or 'nothing'}); "
            + ("start it with --checkpoints" if requested == "sadtalker" else "pick another engine")
        )
    log.info("engine: %s (on the sidecar at %s)", requested, address)
    return requested


def sadtalker_wire_options(st: Any, image_size: tuple[int, int]) -> dict[str, Any]:
    """The submit options of a SadTalker render job (reference files travel as buffers, not options)."""
    from talkbridge.core.face.landmarks import load_landmark_file, validate_landmarks

    options: dict[str, Any] = {
        "preprocess": st.preprocess, "still": bool(st.still), "pose_style": int(st.pose_style),
        "expression_scale": float(st.expression_scale), "seed": int(st.seed), "batch_size": int(st.batch_size),
    }
    if st.landmarks is not None:
        points = (
            validate_landmarks(st.landmarks, image_size=image_size)
            if isinstance(st.landmarks, np.ndarray)
            else load_landmark_file(st.landmarks, image_size)
        )
        options["landmarks"] = points.tolist()
    for name in ("yaw", "pitch", "roll"):
        if getattr(st, name):
            options[name] = [float(v) for v in getattr(st, name)]
    return options


def generate_remote(
    target: SidecarTarget,
    image: Path,
    audio: Path,
    n_frames_expected: int,
    image_size: tuple[int, int],
    options: Any,  # generate.GenerateOptions
    paths: tuple[Path, Path, Path, Path],
    common: dict[str, Any],
    transcript: str | None = None,
) -> Any:
    """Run the job on the sidecar and write the outputs; returns a ``GenerateResult``.

    ``transcript`` is the text `generate` already read and checked from ``options.transcript``.
    """
    from talkbridge.bridge import protocol as p
    from talkbridge.cli.commands.generate import GenerateResult, _progress, _write_motion_files
    from talkbridge.core.motion import FPS, Motion
    from talkbridge.exporters.coeff_mat import write_coeff_mat
    from talkbridge.exporters.video import VideoWriter
    from talkbridge.pipeline.sadtalker_video import SadTalkerOptions

    video_path, motion_path, summary_path, mat_path = paths
    client = target.client()
    try:
        welcome = client.connect(timeout=10.0)
        engine = choose_remote_engine(options.engine, welcome["capabilities"], target.address)
        if engine == "sadtalker":
            st = options.sadtalker or SadTalkerOptions(still=options.still, seed=options.seed)
            size = options.size or 256
            wire = sadtalker_wire_options(st, image_size)
        else:
            st = None
            size = options.size or 512
            wire = {"seed": int(options.seed), "still": bool(options.still), "pose_intensity": float(options.pose_intensity)}
            if transcript is not None:
                wire["transcript"] = transcript
        sizes = welcome["capabilities"].get("render_sizes", [])
        if size not in sizes:
            raise InputError(f"the sidecar at {target.address} renders {', '.join(map(str, sizes))} px, not --size {size}")
        enhance = None
        if options.enhancer == "gfpgan":
            from talkbridge.pipeline.enhance import GfpganEnhancer

            enhance = GfpganEnhancer()  # runs here, on the frames as they arrive
        portrait = image if engine == "sadtalker" else None  # the lite video shows the mannequin
        references = reference_files(st) if st is not None else {}
        handle = client.submit(engine, audio=audio, image=portrait, options=wire, render_size=size, **references)
        final = None
        try:
            events = iter(handle)
            first = next(event for event in events if event.type == p.CHUNK or event.terminal)
            if first.terminal:
                final = first
                raise _unfinished(first, target.address)
            chunks = []
            width_height = _frame_size(first, target.address)
            with VideoWriter(video_path, FPS, width_height, audio, options.overwrite) as video, _progress(
                n_frames_expected, options.progress
            ) as bar:
                for event in itertools.chain([first], events):
                    if event.type == p.CHUNK:
                        frames = event.arrays.get("frames")
                        if _frame_size(event, target.address) != width_height:
                            raise TalkbridgeError(f"the sidecar at {target.address} changed the frame size mid-job")
                        video.write(enhance(np.array(frames)) if enhance else frames)
                        chunks.append(event.motion_chunk())
                        bar.update(event.body["n_frames"])
                    elif event.terminal:
                        final = event
                if final is None or final.type != p.DONE:
                    raise _unfinished(final, target.address)  # inside the writer: the partial mp4 goes
        except BaseException:
            if final is None:
                handle.cancel()
            raise
    finally:
        client.close()

    metadata = {**common, "sidecar": target.address, "image_used": engine == "sadtalker", "size": size}
    if engine == "sadtalker":
        metadata["options"] = {k: v for k, v in wire.items() if k != "landmarks"}
        metadata["expression_scale_applied"] = st.expression_scale
    info = final.body
    motion = Motion.from_chunks(
        chunks, engine=str(info.get("engine", engine)), engine_version=str(info.get("engine_version", "")), fps=FPS, metadata=metadata
    )
    mat = None
    if engine == "sadtalker":
        official = motion.coefficients().copy()
        if st.expression_scale != 1:  # the wire carries what the video shows; the .mat holds the official rows
            official[:, :64] /= np.float32(st.expression_scale)
        write_coeff_mat(mat_path, official, overwrite=options.overwrite)
        mat = mat_path
    _write_motion_files(motion, motion_path, summary_path, options.overwrite)
    log.info("wrote %s, %s and %s (%d frames, rendered by %s)", video_path, motion_path, summary_path, motion.n_frames, target.address)
    return GenerateResult(engine, video_path, motion_path, summary_path, motion.n_frames, metadata, mat)


def reference_files(st: Any) -> dict[str, Path]:
    """The reference videos (or ``.mat`` files) to send; the sidecar reconstructs videos itself."""
    files = {}
    for name, flag in (("ref_eyeblink", "--ref-eyeblink"), ("ref_pose", "--ref-pose")):
        source = getattr(st, name)
        if source is None:
            continue
        if not isinstance(source, (str, Path)):
            raise InputError(f"{flag}: with --sidecar a reference must be a file (a video or a .mat), not rows in memory")
        if not Path(source).is_file():
            raise InputError(f"{flag}: reference file not found", Path(source))
        files[name] = Path(source)
    return files


def _frame_size(event: Any, address: str) -> tuple[int, int]:
    frames = event.arrays.get("frames")
    if frames is None or frames.ndim != 4 or len(frames) != event.body["n_frames"]:
        raise TalkbridgeError(f"the sidecar at {address} sent a chunk without its frames")
    return int(frames.shape[2]), int(frames.shape[1])


def _unfinished(final: Any, address: str) -> TalkbridgeError:
    reason = "the connection ended" if final is None else final.body.get("message", final.type)
    return TalkbridgeError(f"the sidecar at {address} did not finish the job: {reason}")
