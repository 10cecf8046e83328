"""A job on a sidecar: the client side of the one job stream, for every caller.

``talkbridge generate --sidecar``, ``talkbridge batch --sidecar``, Python callers and the Blender
add-on send a :class:`~talkbridge.core.jobs.request.JobRequest` to a ``talkbridge serve`` (often
on a GPU box) and get back what a local run streams: the job's :class:`JobInfo` once, then its
:class:`Step` s (official motion chunks with their frames), decoded once from the wire by
:mod:`.codec`.

:class:`RemoteJob` is that job from connect to its end, and never blocks unless asked: the add-on
polls it from a Blender timer (``updates()``), :func:`open_remote_job` waits on it and hands the
writer a :class:`JobStream`. Both make the same choices with the same code: which engine runs
(:func:`choose_remote_engine`), what is uploaded (:func:`submit_inputs`: file bytes, never paths
the server would open), the options (``JobOptions.to_wire``), the frame size, and the keys
(:func:`~talkbridge.bridge.security.load_client_keys`, in the target).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from talkbridge.bridge import protocol as p
from talkbridge.bridge.codec import REFERENCE_INPUTS
from talkbridge.core.errors import InputError, JobInterrupted, TalkbridgeError
from talkbridge.core.jobs.request import JobRequest
from talkbridge.core.jobs.steps import JobInfo, JobStream, Step

log = logging.getLogger(__name__)

CONNECTING, RUNNING, DONE, CANCELLED, FAILED = "connecting", "running", "done", "cancelled", "failed"
FINISHED_STATES = frozenset({DONE, CANCELLED, FAILED})
WAIT_STEP_S = 0.25
"""How long a blocking reader waits for the next event before it looks at the job's state again."""


@dataclass(frozen=True)
class SidecarAddress:
    """A sidecar and the keys to reach it, already loaded (see :func:`~talkbridge.bridge.security.load_client_keys`)."""

    address: str
    keys: Any = None  # a ClientKeys, or None on loopback without signing
    server_timeout_s: float = 2.0

    def client(self) -> Any:
        from talkbridge.bridge.client import Client

        keys = {} if self.keys is None else self.keys.as_kwargs()
        return Client(self.address, server_timeout_s=self.server_timeout_s, **keys)


def choose_remote_engine(requested: str, capabilities: dict[str, Any], address: str, render: bool = True) -> str:
    """``auto`` picks SadTalker when the server can render it, else lite; a named engine must be
    served, and rendered by the server when the job wants frames."""
    render_engines = list(capabilities.get("render_engines", []))
    engines = list(capabilities.get("engines", []))
    if requested == "auto":
        engine = "sadtalker" if "sadtalker" in render_engines else "lite"
        log.info("engine: %s (auto: the sidecar at %s renders %s)", engine, address, ", ".join(render_engines) or "nothing")
        return engine
    if requested not in engines:
        raise InputError(f"the sidecar at {address} has no {requested!r} engine (it offers {', '.join(engines) or 'none'})")
    if render and requested not in render_engines:
        raise InputError(
            f"the sidecar at {address} does not render {requested!r} video (it renders: {', '.join(render_engines) or 'nothing'}); "
            + ("start it with --checkpoints" if requested == "sadtalker" else "pick another engine, or ask for motion only")
        )
    log.info("engine: %s (on the sidecar at %s)", requested, address)
    return requested


def submit_inputs(request: JobRequest, engine: str) -> dict[str, Any]:
    """The submit's inputs: file paths the client sends as bytes (never paths the server would open)."""
    inputs: dict[str, Any] = {"audio": request.audio}
    if engine == "sadtalker":
        inputs["image"] = request.image  # the lite video shows the mannequin: no portrait to send
        for role in REFERENCE_INPUTS:
            source = getattr(request, role)
            if source is None:
                continue
            if not isinstance(source, (str, Path)):
                raise InputError(f"--{role.replace('_', '-')}: with --sidecar a reference must be a file (a video or a .mat), not rows in memory")
            if not Path(source).is_file():
                raise InputError(f"--{role.replace('_', '-')}: reference file not found", Path(source))
            inputs[role] = Path(source)
    return inputs


@dataclass
class RemoteJob:
    """One job on a sidecar, from connect to its terminal event; no method waits unless asked to.

    :meth:`start` connects and submits on a short-lived thread (so a slow or wrong address never
    blocks the caller); :meth:`updates` returns the steps that arrived and keeps :attr:`state`,
    :attr:`status`, :attr:`info` and :attr:`error` current.
    """

    request: JobRequest
    target: Any  # .address and .client()
    render: bool = True
    connect_timeout_s: float = 10.0
    expected_frames: int | None = None  # a guess for the progress bar until the job's facts arrive
    stop: threading.Event | None = None  # once set, the blocking waits cancel the job and raise JobInterrupted
    state: str = CONNECTING
    status: str = ""
    error: str | None = None
    info: JobInfo | None = None
    engine: str | None = None
    job_id: str | None = None
    frames_done: int = 0
    started_at: float = field(default_factory=time.monotonic)
    _client: Any = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _cancel_requested: bool = False
    _start_error: str | None = None

    def __post_init__(self) -> None:
        self.status = f"connecting to {self.target.address}"

    # ------------------------------------------------------------------------------ control

    def start(self) -> "RemoteJob":
        """Connect and submit on a thread; failures show up in the next :meth:`updates`."""
        threading.Thread(target=self._start_quietly, name="talkbridge-submit", daemon=True).start()
        return self

    def _start_quietly(self) -> None:
        try:
            self.connect_and_submit()
        except TalkbridgeError as error:
            self._start_error = str(error)
        except Exception as error:  # noqa: BLE001 - shown to the user rather than lost in a thread
            log.exception("submitting the job failed")
            self._start_error = f"could not submit the job: {error}"

    def connect_and_submit(self) -> None:
        """Connect, choose the engine and submit, here and now (raises what went wrong)."""
        client = self.target.client()
        with self._lock:
            self._client = client
            if self._cancel_requested:
                return
        welcome = client.connect(timeout=self.connect_timeout_s)
        engine = choose_remote_engine(self.request.options.engine, welcome["capabilities"], self.target.address, self.render)
        size = self.request.options.resolved_size(engine) if self.render else None
        inputs = submit_inputs(self.request, engine)
        with self._lock:
            if self._cancel_requested:
                return
            self.engine = engine
            self.job_id = client.submit_nowait(engine, options=self.request.options.to_wire(), render_size=size, **inputs)

    def cancel(self) -> None:
        """Ask the sidecar to stop; the state becomes ``cancelled`` when it confirms (or at once if not yet submitted)."""
        with self._lock:
            self._cancel_requested = True
            client, job_id = self._client, self.job_id
        if self.finished:
            return
        if client is not None and job_id is not None:
            client.cancel(job_id)
            self.status = "cancelling"
        else:
            self._finish(CANCELLED, "cancelled before the job started")

    def close(self) -> None:
        """Release the connection; an unfinished job is cancelled on the sidecar first."""
        with self._lock:
            client, self._client = self._client, None
            self._cancel_requested = True
        if client is not None:
            if self.job_id is not None and not self.finished:
                client.cancel(self.job_id)
                deadline = time.monotonic() + 0.3  # a moment for the cancel to leave the socket
                while time.monotonic() < deadline and client.server_alive:
                    if any(e.terminal and e.job_id == self.job_id for e in client.poll_events(timeout=0.02)):
                        break
            client.close()
        if not self.finished:
            self._finish(CANCELLED, "cancelled")

    @property
    def finished(self) -> bool:
        return self.state in FINISHED_STATES

    @property
    def progress(self) -> float:
        """0..1 when the clip length is known, else 0."""
        if self.state == DONE:
            return 1.0
        total = self.info.n_frames if self.info is not None and self.info.n_frames else self.expected_frames
        return min(0.99, self.frames_done / total) if total else 0.0

    def _finish(self, state: str, status: str, error: str | None = None) -> None:
        self.state, self.status, self.error = state, status, error

    # ------------------------------------------------------------------------------ events

    def updates(self, max_events: int = 32, timeout: float = 0.0) -> list[Step]:
        """The steps that arrived (at most ``max_events`` events, waiting up to ``timeout`` for the
        first); updates the job's state. Credit goes back for each chunk taken."""
        if self.finished:
            return []
        if self._start_error is not None:
            self._finish(FAILED, "failed", self._start_error)
            return []
        with self._lock:
            client, job_id = self._client, self.job_id
        if client is None or job_id is None:
            if timeout:
                time.sleep(min(timeout, 0.05))
            self.status = f"connecting to {self.target.address} ({time.monotonic() - self.started_at:.0f} s)"
            return []
        steps: list[Step] = []
        for event in client.poll_events(max_events, timeout=timeout):
            if event.job_id is None:
                if event.type == p.ERROR:
                    log.warning("sidecar: %s", event.body.get("message"))
                continue
            if event.job_id != job_id:
                continue
            step = self._on_event(event)
            if step is not None:
                steps.append(step)
            if self.finished:
                break
        return steps

    def _on_event(self, event: Any) -> Step | None:
        kind = event.type
        if kind == p.ACCEPTED:
            self.state = RUNNING
            self.status = "queued on the sidecar" if event.body.get("position", 0) else "running"
        elif kind == p.PROGRESS:
            self.state = RUNNING
            device = event.body.get("device")
            self.status = str(event.body.get("stage", "")) + (f" on {device}" if device else "")
        elif kind == p.INFO:
            self.state = RUNNING
            self.info = event.info()
        elif kind == p.CHUNK:
            self.state = RUNNING
            step = event.step()
            self.frames_done = step.chunk.stop
            total = self.info.n_frames if self.info is not None and self.info.n_frames else self.expected_frames
            self.status = f"receiving motion: {self.frames_done}" + (f"/{total}" if total else "") + " frames"
            return step
        elif kind == p.DONE:
            self.frames_done = int(event.body.get("n_frames", self.frames_done))
            self._finish(DONE, f"done: {self.frames_done} frames")
        elif kind == p.CANCELLED:
            self._finish(CANCELLED, f"cancelled after {self.frames_done} frames")
        elif kind == p.ERROR:
            message = event.body.get("message", "unknown error")
            if event.body.get("code") == p.E_SERVER_LOST:
                message = f"{message}; the motion received so far is kept"
            self._finish(FAILED, "failed", message)
        return None

    # ------------------------------------------------------------------------------ blocking

    def wait_for_info(self) -> JobInfo:
        """Block until the job's facts arrive (the job started); raise why it ended instead."""
        while self.info is None:
            self._raise_if_stopped()
            if self.updates(max_events=1, timeout=WAIT_STEP_S):
                raise TalkbridgeError(f"the sidecar at {self.target.address} sent a chunk before the job's facts")
            if self.finished:
                raise self._failure()
        return self.info

    def steps(self) -> Iterator[Step]:
        """Block for each step in turn until the job ends; raise unless it ended ``done``.

        One event at a time, so credit goes back only for steps the caller has taken.
        """
        try:
            while not self.finished:
                self._raise_if_stopped()
                yield from self.updates(max_events=1, timeout=WAIT_STEP_S)
            if self.state != DONE:
                raise self._failure()
        finally:
            self.close()

    def _raise_if_stopped(self) -> None:
        """Checked between waits of at most ``WAIT_STEP_S``, so a stopping caller (a batch on
        SIGTERM) cancels the job on the sidecar from its own thread, never from outside it."""
        if self.stop is not None and self.stop.is_set():
            self.close()
            raise JobInterrupted(f"stopped before the sidecar at {self.target.address} finished the job")

    def _failure(self) -> TalkbridgeError:
        reason = self.error or self.status
        return TalkbridgeError(f"the sidecar at {self.target.address} did not finish the job: {reason}")


def open_remote_job(request: JobRequest, target: Any, render: bool = True, stop: threading.Event | None = None) -> JobStream:
    """Submit ``request`` to the sidecar at ``target`` (``.address``, ``.client()``) and stream its steps.

    Connection, engine choice, the submit and the job's facts happen here, so refusals (bad input
    included) surface before any output is opened.
    """
    job = RemoteJob(request, target, render=render, stop=stop)
    try:
        job.connect_and_submit()
        info = job.wait_for_info()
    except BaseException:
        job.close()
        raise
    return JobStream(info, job.steps(), cancel=job.cancel)
