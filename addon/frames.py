"""Rendered frames to disk as a PNG sequence, on a worker thread (no bpy here).

The sidecar streams frames as raw (n, H, W, 3) uint8 arrays. Encoding PNGs is the slow part, so it
runs off Blender's main thread; the standard library's zlib is enough (Blender bundles no imaging
package we could rely on). Files are written under a temporary name and renamed, so a half-written
frame never appears in the sequence.
"""

from __future__ import annotations

import logging
import os
import queue
import struct
import threading
import zlib
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def encode_png(image: np.ndarray, level: int = 1) -> bytes:
    """An RGB (H, W, 3) uint8 image as PNG bytes (filter 0 per row, zlib ``level``)."""
    image = np.ascontiguousarray(image, np.uint8)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) image, got shape {image.shape}")
    height, width = image.shape[:2]
    rows = np.zeros((height, 1 + width * 3), np.uint8)
    rows[:, 1:] = image.reshape(height, width * 3)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return PNG_SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(rows.tobytes(), level)) + _chunk(b"IEND", b"")


def frame_name(index: int) -> str:
    return f"frame_{index:06d}.png"


class FrameSequenceWriter:
    """Writes ``frame_000000.png ...`` into ``folder`` as chunks arrive, on its own thread.

    ``put`` never blocks on encoding; ``finish`` waits for the queue to drain. ``error`` holds the
    first failure (e.g. a full disk) so the caller can show it.
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._queue: "queue.Queue[tuple[int, np.ndarray] | None]" = queue.Queue()
        self.written = 0
        self.highest = -1
        self.error: str | None = None
        self._stop = threading.Event()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="talkbridge-frames", daemon=True)
        self._thread.start()

    def put(self, start: int, frames: np.ndarray) -> None:
        """Queue frames ``start ..`` (copied: the caller's arrays may be views on network buffers)."""
        self._queue.put((start, np.array(frames, np.uint8)))

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if self._stop.is_set() or self.error is not None:
                continue
            start, frames = item
            for offset, image in enumerate(frames):
                index = start + offset
                target = self.folder / frame_name(index)
                partial = target.with_suffix(".part")
                try:
                    partial.write_bytes(encode_png(image))
                    os.replace(partial, target)
                except (OSError, ValueError) as error:
                    self.error = f"{target}: could not write a rendered frame ({error})"
                    log.error("%s", self.error)
                    break
                self.written += 1
                self.highest = max(self.highest, index)

    @property
    def done(self) -> bool:
        """True once :meth:`close` was called and every queued frame is on disk (or writing failed)."""
        return self._closed and not self._thread.is_alive()

    def files(self) -> list[str]:
        """Names of the frames written so far, in order (what an image strip needs)."""
        return [frame_name(i) for i in range(self.highest + 1)]

    def close(self) -> None:
        """No more frames: the thread stops once the queue is written (poll :attr:`done`)."""
        if not self._closed:
            self._closed = True
            self._queue.put(None)

    def finish(self, timeout: float | None = None) -> bool:
        """Close and wait; True when everything was written within ``timeout``."""
        self.close()
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def abort(self) -> None:
        """Drop queued frames and stop (cancel / file close)."""
        self._stop.set()
        self.close()
        self._thread.join(5.0)
