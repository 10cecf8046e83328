"""Decoding audio containers libsndfile does not read (m4a/AAC, opus, video files) with ffmpeg, safely.

librosa would hand these to audioread, which runs ffmpeg with no time or size limit; a hostile file
could then hang the job or fill memory. Here ffmpeg writes 16-bit PCM in a WAV stream (what audioread
asks it for, so the samples are the official code's) to a pipe that is read as it comes:

* at most ``max_seconds`` are decoded (``-t``), and at most :data:`MAX_DECODED_BYTES` are read;
* no new bytes for ``stall_s`` seconds (``$TALKBRIDGE_FFMPEG_STALL_S``, the video watchdog's limit)
  stops it, SIGTERM then SIGKILL, and the file is refused with an error that says so.
"""

from __future__ import annotations

import contextlib
import logging
import struct
import subprocess
import threading
import time
from pathlib import Path

import numpy as np

from talkbridge.core.errors import InputError
from talkbridge.core.media.ffmpeg import FfmpegMissing, ffmpeg_executable
from talkbridge.core.media.watchdog import KILL_GRACE_S, stall_seconds

log = logging.getLogger(__name__)

MAX_DECODED_BYTES = 2**28 * 2 + 4096
"""The most PCM read from one file: 2^28 16-bit samples (the decoded-size bound) plus a header."""
_CHUNK = 1 << 16


def decode_with_ffmpeg(path: Path, max_seconds: float, stall_s: float | None = None) -> tuple[np.ndarray, int]:
    """Return (samples (n, channels) float32 in [-1, 1), native sample rate) for ``path``."""
    stall_s = stall_seconds(stall_s)
    try:
        executable = ffmpeg_executable()
    except FfmpegMissing as error:
        raise InputError(f"cannot decode audio: libsndfile does not read this format and {error}", path) from None
    command = [
        executable, "-nostdin", "-hide_banner", "-loglevel", "error", "-i", str(path), "-map", "0:a:0",
        "-t", f"{max_seconds + 1:g}", "-vn", "-c:a", "pcm_s16le", "-f", "wav", "pipe:1",
    ]
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    reader = _PipeReader(process)
    try:
        failure = reader.wait(stall_s)
    finally:
        _stop(process)
        reader.join()
    if failure is not None:
        raise InputError(failure, path)
    if process.returncode != 0:
        said = reader.stderr_text().strip().splitlines()
        raise InputError(f"cannot decode audio: ffmpeg says {said[-1] if said else f'exit code {process.returncode}'}", path)
    return parse_pcm16_wav(bytes(reader.data), path)


class _PipeReader:
    """Reads ffmpeg's stdout and stderr on threads; :meth:`wait` watches for progress and size."""

    def __init__(self, process: subprocess.Popen) -> None:
        self.process = process
        self.data = bytearray()
        self._stderr = bytearray()
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._read, args=(process.stdout, self.data), daemon=True, name="talkbridge-audio-decode"),
            threading.Thread(target=self._read, args=(process.stderr, self._stderr), daemon=True, name="talkbridge-audio-stderr"),
        ]
        for thread in self._threads:
            thread.start()

    def _read(self, stream, sink: bytearray) -> None:
        with contextlib.suppress(OSError, ValueError):
            while True:
                chunk = stream.read1(_CHUNK) if hasattr(stream, "read1") else stream.read(_CHUNK)
                if not chunk:
                    return
                with self._lock:
                    sink.extend(chunk)
                    if sink is self.data and len(sink) > MAX_DECODED_BYTES:
                        return

    def wait(self, stall_s: float) -> str | None:
        """Until ffmpeg's stdout ends; a reason to refuse the file, or None."""
        seen, since = -1, time.monotonic()
        while self._threads[0].is_alive():
            self._threads[0].join(min(0.25, stall_s / 4))
            with self._lock:
                size = len(self.data)
            if size > MAX_DECODED_BYTES:
                return f"audio decodes to more than {MAX_DECODED_BYTES // 2**20} MiB of samples; it is too long to animate"
            now = time.monotonic()
            if size != seen:
                seen, since = size, now
            elif now - since > stall_s:
                log.error("ffmpeg made no progress decoding for %g s; stopping it", stall_s)
                return f"ffmpeg made no progress decoding the audio for {stall_s:g} s and was stopped (a damaged or hostile file?)"
        return None

    def join(self) -> None:
        for thread in self._threads:
            thread.join(5)

    def stderr_text(self) -> str:
        with self._lock:
            return self._stderr.decode("utf-8", "replace")


def _stop(process: subprocess.Popen) -> None:
    """Make sure ffmpeg is gone: SIGTERM, then SIGKILL when it ignores that."""
    if process.poll() is None:
        with contextlib.suppress(OSError):
            process.terminate()
        try:
            process.wait(KILL_GRACE_S)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(OSError):
                process.kill()
            process.wait(5)
    for stream in (process.stdout, process.stderr):
        with contextlib.suppress(OSError):
            stream.close()


def parse_pcm16_wav(data: bytes, path: Path | None = None) -> tuple[np.ndarray, int]:
    """(samples (n, channels) float32, rate) from a streamed 16-bit PCM WAV (ffmpeg writes its size
    fields as placeholders on a pipe, so everything after the ``data`` chunk header is samples)."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise InputError("cannot decode audio: ffmpeg produced no audio stream", path)
    offset, channels, rate = 12, 0, 0
    while offset + 8 <= len(data):
        kind, size = data[offset:offset + 4], struct.unpack_from("<I", data, offset + 4)[0]
        body = offset + 8
        if kind == b"fmt ":
            if size < 16 or body + 16 > len(data):
                break
            audio_format, channels, rate = struct.unpack_from("<HHI", data, body)
            bits = struct.unpack_from("<H", data, body + 14)[0]
            if audio_format not in (1, 0xFFFE) or bits != 16:
                raise InputError(f"cannot decode audio: unexpected PCM layout from ffmpeg (format {audio_format}, {bits} bits)", path)
        elif kind == b"data":
            if not channels or not rate:
                break
            samples = np.frombuffer(data, "<i2", count=(len(data) - body) // 2 // channels * channels, offset=body)
            return (samples.reshape(-1, channels).astype(np.float32) / 32768.0), int(rate)
        offset = body + size + (size & 1)
    raise InputError("cannot decode audio: ffmpeg's output has no audio data", path)
