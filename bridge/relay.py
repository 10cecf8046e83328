"""Running one job on a runner and passing its messages on: the loop the server's job threads and a
worker process's job threads share.

A runner yields its job's stream in wire form (:mod:`.codec`: ``info``, then ``chunk`` s); the
relay hands each message to ``post`` (the server's outbox towards the client, or a worker's socket
towards its server), counts what went out, and turns the way the job ended into its one terminal
message: ``done``, the caller's message for a stopped job, or an ``error`` whose code says whose
fault it was (``bad_input`` for the user's, the runner's own verdict for a lost worker,
``engine_failed``, retryable, for an engine bug).
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable

from talkbridge.bridge import protocol as p
from talkbridge.core.errors import TalkbridgeError

log = logging.getLogger(__name__)

RELAYED_TYPES = frozenset({p.INFO, p.CHUNK})


class RemoteJobError(Exception):
    """A job failed on the far side of a boundary; ``code`` and ``retryable`` go to the client as they are."""

    def __init__(self, code: str, message: str, retryable: bool) -> None:
        self.code = code
        self.retryable = retryable
        super().__init__(message)


def relay_job(
    runner: Any,
    job: Any,
    device: str,
    cancel: threading.Event,
    post: Callable[[p.Message], bool],
    stopped: Callable[[], p.Message],
    passthrough: tuple[type[BaseException], ...] = (),
) -> p.Message:
    """Run ``job`` on ``runner`` and ``post`` every message it yields; returns the terminal message.

    ``post`` returns False when the message could not be queued because the job was cancelled
    meanwhile; ``stopped()`` makes the terminal message of a job stopped early. Exceptions in
    ``passthrough`` are the caller's to handle (the server's stalled client); every other failure,
    even a ``SystemExit`` inside an engine library, ends the job and never the thread.
    """
    n_frames = n_chunks = 0
    messages = None
    try:
        messages = runner.run(job, device, cancel)
        for message in messages:
            if cancel.is_set():
                break
            if message.type not in RELAYED_TYPES:
                raise TypeError(f"a runner yielded a {message.type!r} message; runners yield only info and chunk")
            if not post(message):
                break
            if message.type == p.CHUNK:
                n_frames += int(message.body["n_frames"])
                n_chunks += 1
        if cancel.is_set():
            return stopped()
        return p.Message(p.DONE, job.job_id, {"n_frames": n_frames, "n_chunks": n_chunks})
    except passthrough:
        raise
    except RemoteJobError as error:
        return p.error_message(error.code, str(error), job.job_id, retryable=error.retryable)
    except TalkbridgeError as error:
        return p.error_message(p.E_BAD_INPUT, str(error), job.job_id)
    except BaseException as error:  # an engine bug must not take the sidecar (or a worker) down
        log.exception("job %s failed", job.job_id)
        return p.error_message(p.E_ENGINE_FAILED, f"{type(error).__name__}: {error}", job.job_id, retryable=True)
    finally:
        close = getattr(messages, "close", None)
        if close is not None:
            close()
