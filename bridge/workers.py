"""Engines in worker processes, one per device, behind the ordinary :class:`JobRunner` seam.

Why: an engine that holds the GIL (the lite phone recogniser does, for seconds) would stop the
server's I/O thread, so pings, cancels and heartbeats would go unanswered. Like Jupyter runs
kernels, :class:`ProcessRunner` runs the real runner in a child process per device and talks to it
over a private ZeroMQ ``PAIR`` socket on an ``ipc://`` path in a folder only this user can open.

* The child builds its runner itself from a :class:`WorkerSpec` (a ``"module:callable"`` factory and
  JSON keyword arguments), so nothing is pickled and any back end (the engines, a test runner, a
  cluster client) can sit behind the same boundary.
* Jobs and outputs cross in the wire protocol's own encoding (:mod:`.job_wire`): a ``submit`` in,
  ``output`` messages (a chunk's arrays plus the runner's JSON ``info``) back. Arrays are sent and
  received without user-space copies (``copy=False`` frames, numpy views on them).
* The child sends at most ``window`` outputs ahead of what the server has taken, so a client that
  stops granting credit stops the engine, not memory.
* A worker that dies (a crash, SIGKILL, the out-of-memory killer) or shows no sign of life for
  ``hang_timeout_s`` fails only its own job, with :class:`WorkerLost` (``worker_lost``, retryable),
  and is replaced at once. A cancel reaches the child within one poll (50 ms); a child that has not
  stopped ``cancel_grace_s`` later is killed and replaced.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Iterator

import zmq

from talkbridge.bridge import protocol as p
from talkbridge.bridge.job_wire import INTERNAL_LIMITS, output_from_message, submit_from_spec
from talkbridge.bridge.jobs import JobOutput, JobSpec
from talkbridge.core.errors import InputError

log = logging.getLogger(__name__)

DEVICE_PLACEHOLDER = "$device"
"""In :attr:`WorkerSpec.calls` arguments: replaced by the worker's device."""


@dataclass(frozen=True)
class WorkerSpec:
    """How a worker process builds its runner: plain JSON, never a pickled object.

    ``factory`` is ``"package.module:callable"`` returning a :class:`JobRunner`; ``kwargs`` its JSON
    keyword arguments; ``calls`` methods to call on the new runner before it takes jobs, as
    ``(name, args)`` with :data:`DEVICE_PLACEHOLDER` standing for the worker's device (``serve
    --preload`` uses ``("engine", ["lite", "$device"])``, so a missing checkpoint fails at start).
    """

    factory: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    calls: tuple[tuple[str, tuple[Any, ...]], ...] = ()

    def to_json(self) -> str:
        return json.dumps({"factory": self.factory, "kwargs": self.kwargs, "calls": [[name, list(args)] for name, args in self.calls]})

    @classmethod
    def from_json(cls, text: str) -> "WorkerSpec":
        data = json.loads(text)
        return cls(data["factory"], dict(data.get("kwargs", {})), tuple((name, tuple(args)) for name, args in data.get("calls", [])))


class RemoteJobError(Exception):
    """A job failed on the far side of a boundary; ``code`` and ``retryable`` go to the client as they are."""

    def __init__(self, code: str, message: str, retryable: bool) -> None:
        self.code = code
        self.retryable = retryable
        super().__init__(message)


class WorkerLost(RemoteJobError):
    """The worker process running a job died or hung; the job may be submitted again."""

    def __init__(self, message: str) -> None:
        super().__init__(p.E_WORKER_LOST, message, retryable=True)


class WorkerStartError(InputError):
    """A worker process could not build its runner (a bad spec, missing weights); says why."""


def _exit_reason(code: int | None) -> str:
    if code is None:
        return "stopped answering"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        hint = " (the out-of-memory killer, or a kill by hand)" if -code == signal.SIGKILL else ""
        return f"was killed by {name}{hint}"
    return f"exited with code {code}"


class _Worker:
    """One child process and the parent's end of its socket. Used by one thread at a time."""

    def __init__(self, context: zmq.Context, spec: WorkerSpec, device: str) -> None:
        self.device = device
        self.folder = tempfile.mkdtemp(prefix="talkbridge-worker-")  # mode 0700: only this user connects
        self.address = f"ipc://{self.folder}/worker.sock"
        self.socket = context.socket(zmq.PAIR)
        self.socket.linger = 0
        self.socket.bind(self.address)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(path for path in sys.path if isinstance(path, str) and path)
        command = [
            sys.executable, "-m", "talkbridge.bridge.worker_main", self.address, device, spec.to_json(),
            str(logging.getLogger().getEffectiveLevel()),
        ]
        self.process = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL)
        self.ready = False
        self.capabilities: dict[str, Any] = {}
        self.last_heard = time.monotonic()

    @property
    def pid(self) -> int:
        return self.process.pid

    def send(self, message: p.Message) -> None:
        self.socket.send_multipart(p.encode(message), copy=False)

    def receive(self, timeout_s: float) -> p.Message | None:
        """The next message within ``timeout_s``, or None. A broken message is a lost worker."""
        if not self.socket.poll(int(timeout_s * 1000)):
            return None
        frames = self.socket.recv_multipart(copy=False)
        self.last_heard = time.monotonic()
        try:
            return p.decode(frames, None, INTERNAL_LIMITS)
        except p.ProtocolError as error:
            raise WorkerLost(f"the worker process for {self.device} sent a broken message ({error})") from None

    def wait_ready(self, timeout_s: float) -> None:
        """Wait for the child's welcome (its runner is built); raise why it did not come."""
        deadline = time.monotonic() + timeout_s
        while not self.ready:
            message = self.receive(0.05)
            if message is not None and message.type == p.WELCOME:
                self.capabilities = dict(message.body["capabilities"])
                self.ready = True
            elif message is not None and message.type == p.ERROR:
                raise WorkerStartError(f"the worker for {self.device} could not start: {message.body['message']}")
            elif self.process.poll() is not None:
                raise WorkerStartError(f"the worker process for {self.device} {_exit_reason(self.process.returncode)} while starting")
            elif time.monotonic() > deadline:
                raise WorkerStartError(f"the worker for {self.device} did not start within {timeout_s:.0f} s")

    def stop(self) -> None:
        """Kill the child (it may be stuck in native code) and remove its socket folder."""
        if self.process.poll() is None:
            self.process.kill()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            log.warning("worker process %d for %s did not exit after SIGKILL", self.process.pid, self.device)
        self.socket.close(0)
        shutil.rmtree(self.folder, ignore_errors=True)


class ProcessRunner:
    """A :class:`~talkbridge.bridge.jobs.JobRunner` that runs ``spec``'s runner in one process per device.

    Start the workers with :meth:`start` (raises :class:`WorkerStartError` with the child's reason)
    or let the first job start its device's worker; :meth:`close` stops them all. ``run`` for one
    device must be called by one thread at a time (the server has one worker thread per device).
    """

    def __init__(
        self,
        spec: WorkerSpec,
        devices: tuple[str, ...] = ("cpu",),
        *,
        window: int = 2,
        start_timeout_s: float = 300.0,
        hang_timeout_s: float = 60.0,
        cancel_grace_s: float = 5.0,
    ) -> None:
        if not devices:
            raise ValueError("a ProcessRunner needs at least one device")
        self.spec = spec
        self.devices = tuple(devices)
        self.window = max(1, window)
        self.start_timeout_s = start_timeout_s
        self.hang_timeout_s = hang_timeout_s
        self.cancel_grace_s = cancel_grace_s
        self._context = zmq.Context()
        self._workers: dict[str, _Worker] = {}
        self._capabilities: dict[str, Any] | None = None
        self._lock = threading.Lock()
        self._closed = False
        self.restarts = 0

    # ------------------------------------------------------------------------------ lifecycle

    def start(self, devices: tuple[str, ...] | None = None) -> "ProcessRunner":
        """Start (and wait for) a worker per device; on any failure stop them all and raise."""
        try:
            for device in devices or self.devices:
                self._ready_worker(device)
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        """Stop every worker process. The runner can not be used afterwards."""
        with self._lock:
            self._closed = True
            workers, self._workers = list(self._workers.values()), {}
        for worker in workers:
            worker.stop()
        self._context.term()

    def __enter__(self) -> "ProcessRunner":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def worker_pid(self, device: str) -> int | None:
        """The process id of ``device``'s worker, if one runs (for health checks and fault tests)."""
        worker = self._workers.get(device)
        return None if worker is None else worker.pid

    def _worker(self, device: str) -> _Worker:
        with self._lock:
            if self._closed:
                raise WorkerLost("the server is stopping its workers")
            worker = self._workers.get(device)
            if worker is None:
                worker = self._workers[device] = _Worker(self._context, self.spec, device)
            return worker

    def _ready_worker(self, device: str) -> _Worker:
        worker = self._worker(device)
        if worker.ready and worker.process.poll() is not None:  # it died between jobs: nothing was lost
            self._replace(worker, "died while idle")
            worker = self._worker(device)
        if not worker.ready:
            try:
                worker.wait_ready(self.start_timeout_s)
            except BaseException:
                self._discard(worker)
                raise
            if self._capabilities is None:
                self._capabilities = worker.capabilities
        return worker

    def _discard(self, worker: _Worker) -> None:
        with self._lock:
            if self._workers.get(worker.device) is worker:
                del self._workers[worker.device]
        worker.stop()

    def _replace(self, worker: _Worker, reason: str) -> WorkerLost:
        """Kill ``worker``, start its successor at once (it loads while we report) and say what happened."""
        code = worker.process.poll()
        self._discard(worker)
        self.restarts += 1
        what = _exit_reason(code) if code is not None else reason
        log.warning("the worker process %d for %s %s; starting a new one", worker.pid, worker.device, what)
        try:
            self._worker(worker.device)
        except WorkerLost:
            pass  # closing: no successor
        return WorkerLost(f"the worker process for {worker.device} {what}; the job was lost (the worker was restarted: submit it again)")

    # ------------------------------------------------------------------------------ JobRunner

    def capabilities(self) -> dict[str, Any]:
        if self._capabilities is None:
            self._ready_worker(self.devices[0])
        assert self._capabilities is not None
        return dict(self._capabilities)

    def run(self, job: JobSpec, device: str, cancel: threading.Event) -> Iterator[JobOutput]:
        try:
            worker = self._ready_worker(device)
        except WorkerStartError as error:  # a replacement that cannot start is the server's trouble, not the input's
            raise RemoteJobError(p.E_WORKER_LOST, str(error), retryable=True) from None
        worker.send(submit_from_spec(job))
        state = _JobState()
        try:
            while not state.ended:
                output = self._next_output(worker, job.job_id, cancel, state)
                if output is None:
                    continue
                yield output
                state.consumed += 1
                worker.send(p.Message(p.CREDIT, job.job_id, {"consumed": state.consumed}))
        finally:
            if not state.ended:  # closed early (cancel, a stalled client) or failed: stop the child's job
                self._wind_down(worker, job.job_id, state)

    def _next_output(self, worker: _Worker, job_id: str, cancel: threading.Event, state: "_JobState") -> JobOutput | None:
        """Wait one poll for the child; None when nothing for the caller came (yet)."""
        if cancel.is_set() and state.cancel_sent_at is None:
            worker.send(p.Message(p.CANCEL, job_id))
            state.cancel_sent_at = time.monotonic()
        if state.cancel_sent_at is not None and time.monotonic() - state.cancel_sent_at > self.cancel_grace_s:
            state.ended = True
            self._replace(worker, f"did not stop within {self.cancel_grace_s:.0f} s of a cancel and was killed")
            return None  # the job was cancelled anyway: the server reports `cancelled`
        message = worker.receive(0.05)
        if message is None:
            if worker.process.poll() is not None:
                state.ended = True
                raise self._replace(worker, "died")
            if time.monotonic() - worker.last_heard > self.hang_timeout_s:
                state.ended = True
                raise self._replace(worker, f"showed no sign of life for {self.hang_timeout_s:.0f} s and was killed")
            return None
        if message.job_id not in (None, job_id):
            return None  # late news of an earlier job
        if message.type == p.OUTPUT:
            return output_from_message(message)
        if message.type in (p.DONE, p.CANCELLED):
            state.ended = True
        elif message.type == p.ERROR:
            state.ended = True
            raise RemoteJobError(message.body["code"], message.body["message"], bool(message.body["retryable"]))
        return None  # a heartbeat

    def _wind_down(self, worker: _Worker, job_id: str, state: "_JobState") -> None:
        """The caller stopped early: cancel the child's job and wait for its end (or kill it)."""
        if worker.process.poll() is not None or self._workers.get(worker.device) is not worker:
            return
        try:
            if state.cancel_sent_at is None:
                worker.send(p.Message(p.CANCEL, job_id))
                state.cancel_sent_at = time.monotonic()
            while time.monotonic() - state.cancel_sent_at <= self.cancel_grace_s:
                message = worker.receive(0.05)
                if message is not None and message.job_id == job_id and message.type in p.TERMINAL_TYPES:
                    return
                if message is None and worker.process.poll() is not None:
                    break
        except (RemoteJobError, zmq.ZMQError):
            pass
        self._replace(worker, f"did not stop within {self.cancel_grace_s:.0f} s of a cancel and was killed")


@dataclass
class _JobState:
    consumed: int = 0
    ended: bool = False
    cancel_sent_at: float | None = None
