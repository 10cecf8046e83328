"""A preview video of a take on the user's own head: ``talkbridge preview HEAD.glb MOTION.npz -o preview.mp4``.

A pipeline wants to see a take on its character without opening Blender. The preview goes through
the same path as the deliverable: the motion is put on the head by the GLB exporter (the file an
engine would get), Blender imports that GLB and renders it from the front with Workbench
(:mod:`.preview_render`, in a child Python with bpy: install the ``preview`` extra), and the frames
are encoded with the speech by :class:`~talkbridge.exporters.video.VideoWriter`. What the preview
shows is therefore what the exported GLB plays, in a real renderer.

The speech is ``audio`` when given, else the ``audio`` the motion file's metadata records (the file
the user generated the motion from), when it still exists; else the video is silent.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from talkbridge.core.errors import InputError, TalkbridgeError
from talkbridge.core.motion import Motion
from talkbridge.exporters.atomic import check_writable_target

log = logging.getLogger(__name__)

DEFAULT_SIZE = 256
MIN_SIZE, MAX_SIZE = 32, 2048
RENDER_TIMEOUT_S = 60.0
RENDER_SECONDS_PER_FRAME = 2.0  # generous: the child's time limit grows with the clip
PYTHON_ENV = "TALKBRIDGE_PREVIEW_PYTHON"
ENCODE_CHUNK_FRAMES = 50
POLL_S = 0.25  # how often the wait for the renderer looks at the time limit and the progress


class PreviewError(TalkbridgeError):
    """Blender could not render the preview (missing, failed or too slow)."""


@dataclass
class PreviewResult:
    path: Path
    frames: int
    size: int
    audio: Path | None


def preview_python() -> str:
    """The Python that has bpy: ``$TALKBRIDGE_PREVIEW_PYTHON``, else this one."""
    return os.environ.get(PYTHON_ENV) or sys.executable


def speech_for(motion: Motion, audio: str | Path | None) -> Path | None:
    """The audio to mux: the one asked for (must exist), else the motion's recorded audio if it still exists."""
    if audio is not None:
        path = Path(audio)
        if not path.is_file():
            raise InputError("audio file for the preview not found", path)
        return path
    recorded = (motion.metadata or {}).get("audio")
    if isinstance(recorded, str) and recorded and Path(recorded).is_file():
        return Path(recorded)
    if recorded:
        log.warning("the motion's audio %s is not there any more: the preview is silent (pass --audio)", recorded)
    return None


def _stop(process: subprocess.Popen) -> None:
    """Kill the renderer's process group (the renderer alone where there are no groups) and reap it."""
    if process.poll() is not None:
        return
    try:
        if hasattr(os, "killpg"):
            os.killpg(process.pid, signal.SIGKILL)
        else:  # pragma: no cover - Windows
            process.kill()
    except ProcessLookupError:
        pass
    process.wait()


def _frames_done(raw: Path, frame_bytes: int) -> int:
    try:
        return raw.stat().st_size // frame_bytes
    except FileNotFoundError:
        return 0


def _render_frames(
    glb: Path, folder: Path, frames: int, fps: int, size: int, animation: str, progress: Callable[[int], None] | None = None
) -> np.ndarray:
    spec = {"glb": str(glb), "folder": str(folder), "frames": frames, "fps": fps, "size": size, "animation": animation}
    spec_path = folder / "spec.json"
    spec_path.write_text(json.dumps(spec), encoding="utf-8")
    timeout = RENDER_TIMEOUT_S + RENDER_SECONDS_PER_FRAME * frames
    command = [preview_python(), "-m", "talkbridge.exporters.preview_render", str(spec_path)]
    raw, frame_bytes, shown = folder / "frames.rgb", size * size * 3, 0
    output_log = folder / "render.log"
    # Its own process group: a timeout, Ctrl-C or SIGTERM stops the renderer and anything it started.
    # Progress is the frames file growing (the renderer appends one frame at a time).
    with open(output_log, "wb") as said_file:
        process = subprocess.Popen(command, stdout=said_file, stderr=subprocess.STDOUT, cwd=folder, start_new_session=True)
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                process.wait(timeout=POLL_S)
                break
            except subprocess.TimeoutExpired:
                pass
            if progress is not None:
                done = _frames_done(raw, frame_bytes)
                if done > shown:
                    progress(done - shown)
                    shown = done
            if time.monotonic() > deadline:
                raise PreviewError(f"Blender did not render the preview within {timeout:.0f} s")
    finally:
        _stop(process)
    if progress is not None and frames > shown and process.returncode == 0:
        progress(frames - shown)
    stderr = output_log.read_text(encoding="utf-8", errors="replace")
    if process.returncode != 0:
        said = [line for line in stderr.splitlines() if line.startswith("PREVIEW-ERROR ")]
        if "No module named 'bpy'" in stderr or "No module named 'talkbridge'" in stderr:
            raise PreviewError(
                f"the preview needs Blender as a Python module: pip install 'talkbridge[preview]' into {command[0]} "
                f"(or set ${PYTHON_ENV} to a Python that has bpy and talkbridge)"
            )
        reason = said[-1][len("PREVIEW-ERROR "):] if said else stderr.strip()[-800:]
        raise PreviewError(f"Blender could not render the preview: {reason}")
    info = json.loads((folder / "frames.json").read_text(encoding="utf-8"))
    # Mapped, not read: a long clip's frames stream to the encoder without sitting in memory.
    return np.memmap(folder / "frames.rgb", np.uint8, mode="r", shape=(int(info["frames"]), size, size, 3))


def render_preview(
    head: str | Path,
    motion: Motion,
    output: str | Path,
    *,
    audio: str | Path | None = None,
    size: int = DEFAULT_SIZE,
    overwrite: bool = False,
    options: object | None = None,
    progress: Callable[[int], None] | None = None,
) -> PreviewResult:
    """Render ``motion`` on ``head`` to an H.264 ``output`` with the speech; ``options`` are the GLB
    export's (:class:`~talkbridge.exporters.gltf.ExportOptions`); ``progress`` is called with each
    number of frames newly rendered."""
    from talkbridge.exporters.gltf import add_animation
    from talkbridge.exporters.video import VideoWriter

    size = int(size)
    if not MIN_SIZE <= size <= MAX_SIZE or size % 2:
        raise InputError(f"the preview size must be an even number of pixels from {MIN_SIZE} to {MAX_SIZE}, got {size}")
    head = Path(head)
    if not head.is_file():
        raise InputError("head file not found", head)
    output = check_writable_target(output, overwrite)
    speech = speech_for(motion, audio)
    with tempfile.TemporaryDirectory(prefix="talkbridge-preview-") as temp:
        folder = Path(temp)
        animated = folder / "animated.glb"
        result = add_animation(head, motion, animated, options)
        animation = getattr(options, "animation_name", None) or "talkbridge"
        frames = _render_frames(animated, folder, result.frames, result.fps, size, animation, progress)
        with VideoWriter(output, motion.fps, (size, size), speech, overwrite) as video:
            for start in range(0, len(frames), ENCODE_CHUNK_FRAMES):
                video.write(np.asarray(frames[start:start + ENCODE_CHUNK_FRAMES]))
        count = len(frames)
        del frames  # the mapping must close before its folder goes
    log.info("wrote the preview %s (%d frames, %d px%s)", output, count, size, "" if speech else ", silent")
    return PreviewResult(Path(output), count, size, speech)
