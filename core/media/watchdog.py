"""A watchdog for an ffmpeg child: no progress for a while while we wait on it, and it is killed.

Some inputs make ffmpeg spin for ever (its AAC encoder on float samples near 1e6 and beyond) while
ignoring SIGTERM, and a writer blocked on its stdin would then hang the whole job. Progress is what
ffmpeg writes (its ``-progress pipe:1`` report on stdout, the output file growing), never its CPU
time: the spinning encoder burns CPU too. The clock only runs while the writer waits on ffmpeg (a blocked frame write,
the final flush); a slow engine that keeps ffmpeg waiting for frames is not ffmpeg's stall.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import threading
import time
from pathlib import Path
from typing import Iterator

log = logging.getLogger(__name__)

STALL_ENV = "TALKBRIDGE_FFMPEG_STALL_S"
DEFAULT_STALL_S = 60.0
"""Seconds ffmpeg may make no progress while the writer waits on it (``$TALKBRIDGE_FFMPEG_STALL_S``)."""
KILL_GRACE_S = 3.0
"""After SIGTERM, how long ffmpeg gets to exit before SIGKILL."""


def stall_seconds(value: float | None = None) -> float:
    """The stall limit: ``value``, else ``$TALKBRIDGE_FFMPEG_STALL_S``, else :data:`DEFAULT_STALL_S`."""
    if value is None:
        text = os.environ.get(STALL_ENV, "").strip()
        try:
            value = float(text) if text else DEFAULT_STALL_S
        except ValueError:
            log.warning("ignoring $%s=%r (not a number of seconds)", STALL_ENV, text)
            value = DEFAULT_STALL_S
    if not value > 0:
        raise ValueError(f"the ffmpeg stall limit must be positive, got {value}")
    return float(value)


def progress_arguments() -> list[str]:
    """ffmpeg options that make it report progress on stdout twice a second (what the watchdog reads)."""
    return ["-progress", "pipe:1", "-stats_period", "0.5"]


class FfmpegWatchdog:
    """Watches ``process``; inside :meth:`waiting`, no output on its stdout (drained here) and no
    change in any of ``progress_files`` for ``stall_s`` seconds stops it (SIGTERM, then SIGKILL
    after ``grace_s``) and sets :attr:`fired`."""

    def __init__(self, process: subprocess.Popen, progress_files: list[Path], stall_s: float, grace_s: float = KILL_GRACE_S) -> None:
        self.process = process
        self.progress_files = list(progress_files)
        self.stall_s = float(stall_s)
        self.grace_s = float(grace_s)
        self.fired = False
        self._waiting = 0
        self._reported = 0  # progress report blocks in which something moved
        self._since = time.monotonic()
        self._seen = self._sizes()
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._drain: threading.Thread | None = None
        if process.stdout is not None:
            self._drain = threading.Thread(target=self._drain_main, name="talkbridge-ffmpeg-progress", daemon=True)
            self._drain.start()
        self._thread = threading.Thread(target=self._main, name="talkbridge-ffmpeg-watchdog", daemon=True)
        self._thread.start()

    def _drain_main(self) -> None:
        """Read ffmpeg's progress report as it comes (a full pipe would stall ffmpeg itself).

        ffmpeg keeps writing report blocks while an encoder spins, so a block is progress only
        when what it reports moved: frames encoded, output time or bytes written.
        """
        stream = self.process.stdout
        assert stream is not None
        block: dict[str, str] = {}
        last: tuple[str, ...] | None = None
        with contextlib.suppress(OSError, ValueError):
            for raw in stream:
                key, _, value = raw.decode("ascii", "replace").strip().partition("=")
                if key != "progress":
                    block[key] = value
                    continue
                moved = tuple(block.get(name, "") for name in ("frame", "out_time_us", "total_size"))
                if moved != last:
                    last = moved
                    self._reported += 1
                block = {}

    def _sizes(self) -> tuple[int, ...]:
        sizes = [self._reported]
        for path in self.progress_files:
            try:
                sizes.append(path.stat().st_size)
            except OSError:
                sizes.append(-1)
        return tuple(sizes)

    @contextlib.contextmanager
    def waiting(self) -> Iterator[None]:
        """The caller now waits on ffmpeg: the stall clock runs until the block ends."""
        with self._lock:
            if self._waiting == 0:
                self._since = time.monotonic()
            self._waiting += 1
        try:
            yield
        finally:
            with self._lock:
                self._waiting -= 1

    def _main(self) -> None:
        period = min(0.5, self.stall_s / 4)
        while not self._done.wait(period):
            if self.process.poll() is not None:
                return
            sizes = self._sizes()
            now = time.monotonic()
            with self._lock:
                if sizes != self._seen:
                    self._seen, self._since = sizes, now
                stalled = self._waiting > 0 and now - self._since > self.stall_s
            if stalled:
                self._stop_process()
                return

    def _stop_process(self) -> None:
        self.fired = True
        log.error("ffmpeg made no progress for %g s; stopping it", self.stall_s)
        with contextlib.suppress(OSError):
            self.process.terminate()
        try:
            self.process.wait(self.grace_s)
        except subprocess.TimeoutExpired:
            log.error("ffmpeg ignored SIGTERM for %g s; killing it", self.grace_s)
            with contextlib.suppress(OSError):
                self.process.kill()

    def close(self) -> None:
        """Stop watching (the process is finished or being stopped by its owner)."""
        self._done.set()
        if self._thread is not threading.current_thread():
            self._thread.join(5)
        if self._drain is not None and self.process.poll() is not None:
            self._drain.join(5)  # ffmpeg has exited: its stdout is at end of file
