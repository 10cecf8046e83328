"""SIGTERM handled exactly like Ctrl-C, for the command line and for batch runs used as a library.

Job schedulers, ``timeout`` and container runtimes stop work with SIGTERM; Python's default is to
die on the spot, leaving ffmpeg running and partial files behind. Within :func:`sigterm_as_interrupt`
SIGTERM raises :class:`Terminated`, a ``KeyboardInterrupt``, so every cleanup path written for
Ctrl-C runs for it too.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Any, Iterator


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived; raised where Ctrl-C's KeyboardInterrupt would be, so cleanup is the same."""


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block SIGTERM raises :class:`Terminated` in the main thread (once: a second
    SIGTERM while cleaning up is ignored, so the cleanup itself is never cut short). Elsewhere
    than the main thread, where no handler can be installed, the block runs unchanged."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum: int, frame: Any) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise Terminated(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
