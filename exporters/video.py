"""H.264 mp4 output fed frame chunk by frame chunk, with the speech muxed in, written atomically.

Engine-agnostic: the lite preview renderer and the SadTalker renderer both hand it RGB uint8 frames.
Frames stream straight into an ffmpeg process, so a long clip never sits in memory; the file appears
under its final name only when ffmpeg has finished successfully (see :mod:`talkbridge.exporters.atomic`).

Which ffmpeg: ``$TALKBRIDGE_FFMPEG`` when set (a system build, e.g. with hardware encoders), otherwise
the one bundled with imageio-ffmpeg (which itself honours ``$IMAGEIO_FFMPEG_EXE``), so a fresh install
works without a system ffmpeg.

ffmpeg runs under a watchdog (:mod:`talkbridge.core.media.watchdog`): while the writer waits on
it, no progress for ``stall_timeout_s`` (default 60 s, ``$TALKBRIDGE_FFMPEG_STALL_S``) stops it and
fails the video with :class:`VideoError`, so no input can hang a job.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import logging
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from types import TracebackType

import numpy as np

from talkbridge.core.errors import InputError, TalkbridgeError
from talkbridge.exporters.atomic import atomic_output, check_writable_target
from talkbridge.core.media.ffmpeg import FFMPEG_ENV, FfmpegMissing  # noqa: F401 (FFMPEG_ENV: part of this module's API)
from talkbridge.core.media.ffmpeg import ffmpeg_executable as _find_ffmpeg
from talkbridge.core.media.watchdog import STALL_ENV, FfmpegWatchdog, progress_arguments, stall_seconds

log = logging.getLogger(__name__)

DEFAULT_CRF = 20  # visually clean for previews at a few hundred kB per 10 s
FINISH_TIMEOUT_S = 300.0


class VideoError(TalkbridgeError):
    """ffmpeg failed or could not be started."""


_RUNNING: set[subprocess.Popen] = set()
_RUNNING_LOCK = threading.Lock()


def _kill_running_encoders() -> None:
    """At interpreter exit: no ffmpeg outlives the writer that started it, whatever path was taken."""
    with _RUNNING_LOCK:
        running = list(_RUNNING)
    for process in running:
        if process.poll() is None:
            process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(5)


atexit.register(_kill_running_encoders)


def _die_with_parent() -> None:  # pragma: no cover - runs in the ffmpeg child before exec
    """In the ffmpeg child (Linux): be killed when the writing process dies, even by SIGKILL."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def ffmpeg_executable() -> str:
    """The ffmpeg to run (:func:`talkbridge.core.media.ffmpeg.ffmpeg_executable`), failing as a :class:`VideoError`."""
    try:
        return _find_ffmpeg()
    except FfmpegMissing as error:
        raise VideoError(str(error)) from None


class VideoWriter:
    """Write RGB frames to an H.264 mp4 at ``path``; use as a context manager.

    ``size`` is (width, height), both even (H.264 with 4:2:0 chroma needs that). ``audio_path``, if
    given, is muxed in as AAC. An existing ``path`` is only replaced with ``overwrite``; on any error
    or interruption nothing is left at ``path`` (a previous file there is untouched).
    """

    def __init__(
        self,
        path: str | Path,
        fps: float = 25,
        size: tuple[int, int] = (512, 512),
        audio_path: str | Path | None = None,
        overwrite: bool = False,
        crf: int = DEFAULT_CRF,
        stall_timeout_s: float | None = None,
    ) -> None:
        width, height = (int(v) for v in size)
        if width <= 0 or height <= 0 or width % 2 or height % 2:
            raise ValueError(f"video size must be positive and even, got {width}x{height}")
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.path = check_writable_target(path, overwrite)
        self.audio_path = None if audio_path is None else Path(audio_path)
        if self.audio_path is not None and not self.audio_path.is_file():
            raise InputError("audio file to mux into the video not found", self.audio_path)
        self.fps, self.size, self.overwrite, self.crf = fps, (width, height), overwrite, int(crf)
        self.frames_written = 0
        self.stall_timeout_s = stall_seconds(stall_timeout_s)
        self._watchdog: FfmpegWatchdog | None = None
        self._stack: contextlib.ExitStack | None = None
        self._process: subprocess.Popen | None = None
        self._log_file = None
        self._temp: Path | None = None

    def _command(self, output: Path) -> list[str]:
        width, height = self.size
        command = [
            ffmpeg_executable(), "-hide_banner", "-loglevel", "error", "-nostdin", "-y", *progress_arguments(),
            "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-r", str(self.fps), "-i", "-",
        ]
        if self.audio_path is not None:
            command += ["-i", str(self.audio_path), "-map", "0:v:0", "-map", "1:a:0", "-c:a", "aac", "-b:a", "128k"]
        command += [
            "-c:v", "libx264", "-preset", "veryfast", "-crf", str(self.crf), "-pix_fmt", "yuv420p",
            "-movflags", "+faststart", "-f", "mp4", str(output),
        ]
        return command

    def __enter__(self) -> "VideoWriter":
        self._stack = contextlib.ExitStack()
        try:
            self._temp = self._stack.enter_context(atomic_output(self.path, overwrite=self.overwrite))
            self._log_file = self._stack.enter_context(tempfile.TemporaryFile())
            self._process = subprocess.Popen(
                self._command(self._temp), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log_file,
                preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
            )
            with _RUNNING_LOCK:
                _RUNNING.add(self._process)
            self._watchdog = FfmpegWatchdog(self._process, [self._temp], self.stall_timeout_s)
        except BaseException as failure:
            # The failure must reach atomic_output: a plain close() would commit the partial file.
            self._abort(failure)
            raise
        return self

    def _abort(self, failure: BaseException) -> None:
        """Stop ffmpeg if it runs and hand ``failure`` to the atomic output, which drops the file.

        Runs on every failing exit (errors, Ctrl-C, SIGTERM via the CLI): the file is dropped even
        when killing ffmpeg itself is interrupted.
        """
        try:
            self._stop_ffmpeg()
        finally:
            assert self._stack is not None
            self._stack.__exit__(type(failure), failure, failure.__traceback__)

    def _stop_ffmpeg(self) -> None:
        process = self._process
        if process is None:
            return
        try:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=10)
        finally:
            self._close_pipes()
            with _RUNNING_LOCK:
                _RUNNING.discard(process)

    def _close_pipes(self) -> None:
        """Stop the watchdog and close our ends of ffmpeg's pipes (never left to the garbage collector)."""
        if self._watchdog is not None:
            self._watchdog.close()
        process = self._process
        if process is None:
            return
        for pipe in (process.stdin, process.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError, ValueError):
                    pipe.close()

    def _stalled(self) -> VideoError | None:
        """The error to report when the watchdog stopped ffmpeg, else ``None``."""
        if self._watchdog is None or not self._watchdog.fired:
            return None
        return VideoError(
            f"ffmpeg made no progress for {self.stall_timeout_s:g} s writing {self.path} and was stopped "
            f"(its AAC encoder hangs on audio far louder than full scale; ${STALL_ENV} sets the limit)"
        )

    def _ffmpeg_message(self) -> str:
        if self._log_file is None:
            return ""
        self._log_file.seek(0)
        return self._log_file.read().decode("utf-8", "replace").strip()[-2000:]

    def write(self, frames: np.ndarray) -> None:
        """Append one (H, W, 3) frame or a (n, H, W, 3) chunk of uint8 RGB frames."""
        if self._process is None or self._process.stdin is None:
            raise RuntimeError("VideoWriter.write called outside its `with` block")
        frames = np.asarray(frames)
        if frames.ndim == 3:
            frames = frames[None]
        width, height = self.size
        if frames.ndim != 4 or frames.shape[1:] != (height, width, 3):
            raise ValueError(f"frames must be (n, {height}, {width}, 3), got {frames.shape}")
        if frames.dtype != np.uint8:
            raise ValueError(f"frames must be uint8, got {frames.dtype}")
        assert self._watchdog is not None
        try:
            with self._watchdog.waiting():
                self._process.stdin.write(np.ascontiguousarray(frames).tobytes())
        except (BrokenPipeError, OSError, ValueError) as error:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(timeout=10)
            raise self._stalled() or VideoError(f"ffmpeg stopped while writing {self.path}: {self._ffmpeg_message() or error}") from error
        self.frames_written += len(frames)

    def _finish(self) -> None:
        assert self._process is not None and self._process.stdin is not None and self._watchdog is not None
        try:
            with self._watchdog.waiting():
                with contextlib.suppress(BrokenPipeError):
                    self._process.stdin.close()  # flushing the last frames may wait on ffmpeg too
                code = self._process.wait(timeout=FINISH_TIMEOUT_S)
        except subprocess.TimeoutExpired as error:
            self._process.kill()
            raise VideoError(f"ffmpeg did not finish {self.path} within {FINISH_TIMEOUT_S:.0f} s") from error
        self._close_pipes()
        with _RUNNING_LOCK:
            _RUNNING.discard(self._process)
        stalled = self._stalled()
        if stalled is not None:
            raise stalled
        if code != 0:
            raise VideoError(f"ffmpeg failed writing {self.path} (exit {code}): {self._ffmpeg_message()}")
        if self.frames_written == 0:
            raise VideoError(f"no frames were written to {self.path}")

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        assert self._stack is not None
        if error is not None:
            self._abort(error)
            return
        try:
            self._finish()
        except BaseException as failure:
            self._abort(failure)
            raise
        self._stack.__exit__(None, None, None)
        log.info("wrote %s (%d frames at %s fps)", self.path, self.frames_written, self.fps)
