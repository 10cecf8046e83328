"""The sidecar client's submit-side pieces: reading an input for upload, and the state it keeps per job.

Apart from :mod:`talkbridge.bridge.client` (the socket and its I/O thread) to keep that module to
its one job. numpy and the standard library only, like the client.
"""

from __future__ import annotations

import queue
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from talkbridge.bridge import protocol as p
from talkbridge.bridge.client_events import Event


def read_input(value: Any, what: str) -> tuple[np.ndarray, str]:
    """A submit input as bytes to send and the file name to announce: a path is read here, raw
    bytes are sent as they are."""
    if isinstance(value, (str, Path)):
        path = Path(value)
        try:
            data = path.read_bytes()
        except OSError as error:
            raise p.BridgeError(f"{path}: cannot read the {what} ({error.strerror})") from None
        return np.frombuffer(data, np.uint8), path.name
    if isinstance(value, (bytes, bytearray, memoryview)):
        return np.frombuffer(bytes(value), np.uint8), f"{what}.bin"
    raise TypeError(f"{what} must be a path or the file's bytes, got {type(value).__name__}")


@dataclass(eq=False)
class PendingJob:
    """What the client's I/O thread tracks of one submitted job (retries, credit, cancel)."""

    job_id: str
    frames: list[Any]
    sink: "queue.Queue[Event] | None"  # None: events go to the client's shared queue
    accepted: bool = False
    finished: bool = False
    sent_at: float = 0.0
    attempts: int = 0
    cancel_requested: bool = False
    cancel_sent_at: float = 0.0
    cancel_attempts: int = 0
    consumed: int = 0  # chunks the application has taken (reported to the server as credit)
    credit_sent_at: float = 0.0
    last_heard_at: float = 0.0
