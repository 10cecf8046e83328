"""Keep freed heap memory mapped, so the audio encoders' activations are not page-faulted per batch.

Why: each Wav2Lip encoder pass at batch 32 allocates and frees ~36 MB of activations (5 MB maps in
the first blocks). glibc serves such blocks by ``mmap`` until one is freed, then adjusts its
thresholds to the largest block freed so far, and returns the top of the heap to the kernel whenever
more than twice that is free. Under the streaming path (nothing larger than a batch is ever freed)
that trims the heap after almost every pass, so every pass touches fresh pages: measured 41k-133k
minor faults for a 10 s clip and 0.6-0.8 M (about 2 s of kernel time) for 60 s, against about a
thousand for the official code, whose early whole-clip arrays happen to lift glibc's thresholds.

Fix: pin both thresholds explicitly (``mallopt``) once per process, before the first pass: blocks up
to 32 MiB (glibc's largest allowed threshold) come from the heap, and up to 256 MiB of freed heap stay
mapped for re-use. The process then keeps its peak heap instead of returning it between batches,
which is what a long-running engine process wants. Only glibc has these knobs; elsewhere (musl,
macOS, Windows) this is a no-op and their allocators keep their own policy.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys
import threading

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD = -1  # glibc <malloc.h>
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 32 << 20  # glibc refuses values above HEAP_MAX_SIZE / 2 (32 MiB on 64-bit)
TRIM_THRESHOLD_BYTES = 256 << 20

_lock = threading.Lock()
_state: dict[str, bool] = {}


def _glibc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version.restype = ctypes.c_char_p
        libc.gnu_get_libc_version()
    except (OSError, AttributeError):  # not glibc (musl has no gnu_get_libc_version)
        return None
    return libc


def retain_freed_heap() -> bool:
    """Pin glibc's mmap and trim thresholds for this process (once); True where they are pinned."""
    with _lock:
        if "pinned" not in _state:
            libc = _glibc()
            pinned = False
            if libc is not None:
                libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
                pinned = bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(
                    libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
                )
            log.debug("glibc heap thresholds %s", "pinned" if pinned else "left to the platform allocator")
            _state["pinned"] = pinned
        return _state["pinned"]
