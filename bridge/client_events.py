"""What the sidecar client hands back: its error types, one job's events, and a finished job's result.

Kept apart from :mod:`talkbridge.bridge.client` (which owns the socket and its I/O thread) so code that
only reads events (the add-on's runtime, batch, tests) depends on these small types, not on the I/O.
"""

from __future__ import annotations

import queue
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np

from talkbridge.bridge import protocol as p

if TYPE_CHECKING:
    from talkbridge.bridge.client import Client


class ServerUnavailable(p.BridgeError):
    """The server did not answer in time or stopped answering."""


class AuthenticationFailed(p.BridgeError):
    """The server refused this client's CURVE key or signature."""


class InputTooLarge(p.ProtocolError):
    """The submit's inputs exceed the limits the server announced; nothing was sent."""

    def __init__(self, message: str, job_id: str | None = None) -> None:
        super().__init__(p.E_TOO_LARGE, message, job_id)


class ServerRefused(p.BridgeError):
    """The server answered with an error where a welcome was expected."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(f"{code}: {message}")


@dataclass
class Event:
    """Something the server said about a job (or, with ``job_id`` None, about the connection).

    ``arrays`` of a chunk are read-only views on the received frames: copy them to modify.
    """

    type: str
    job_id: str | None
    body: dict[str, Any]
    arrays: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def terminal(self) -> bool:
        return self.type in p.TERMINAL_TYPES

    @property
    def code(self) -> str | None:
        return self.body.get("code") if self.type == p.ERROR else None

    def step(self) -> Any:
        """This ``chunk`` as a :class:`~talkbridge.core.jobs.steps.Step` (its motion and frames)."""
        from talkbridge.bridge.codec import step_from_message

        return step_from_message(self.body, self.arrays)

    def info(self) -> Any:
        """This ``info`` as the job's :class:`~talkbridge.core.jobs.steps.JobInfo`."""
        from talkbridge.bridge.codec import info_from_body

        return info_from_body(self.body)


def error_event(job_id: str | None, code: str, message: str, retryable: bool) -> Event:
    return Event(p.ERROR, job_id, {"code": code, "retryable": retryable, "message": message})


@dataclass
class JobResult:
    """Every event of a finished job, with its chunk arrays joined along the frame axis."""

    events: list[Event]

    @property
    def final(self) -> Event:
        return self.events[-1]

    @property
    def chunks(self) -> list[Event]:
        return [event for event in self.events if event.type == p.CHUNK]

    def array(self, name: str) -> np.ndarray | None:
        parts = [event.arrays[name] for event in self.chunks if name in event.arrays]
        return np.concatenate(parts, axis=0) if parts else None

    @property
    def info(self) -> Any:
        """The job's facts (its ``info`` event), or None when the job ended before it started."""
        found = [event for event in self.events if event.type == p.INFO]
        return found[0].info() if found else None

    def motion(self) -> Any:
        """The whole clip as a :class:`talkbridge.core.motion.Motion` (imports the core package)."""
        from talkbridge.core.motion import Motion

        if self.final.type != p.DONE:
            raise p.BridgeError(f"job {self.final.job_id} did not finish: {self.final.body.get('message', self.final.type)}")
        info = self.info
        return Motion.from_chunks(
            [event.step().chunk for event in self.chunks],
            engine="" if info is None else info.engine,
            engine_version="" if info is None else info.engine_version,
            fps=25 if info is None else info.fps,
        )


class JobHandle:
    """A submitted job: iterate it for its events (blocking) or cancel it."""

    def __init__(self, client: "Client", job_id: str, events: "queue.Queue[Event]") -> None:
        self._client = client
        self.job_id = job_id
        self._events = events

    def __iter__(self) -> Iterator[Event]:
        while True:
            event = self._events.get()
            if event.type == p.CHUNK:
                self._client.grant_credit(self.job_id, 1)
            yield event
            if event.terminal:
                return

    def cancel(self) -> None:
        self._client.cancel(self.job_id)

    def result(self) -> JobResult:
        """Wait for the job to end and return all its events (the last one says how it ended)."""
        return JobResult(list(self))
