"""Engines in worker processes, one per device, behind the ordinary :class:`JobRunner` seam.

Why: an engine that holds the GIL (the lite phone recogniser does, for seconds) would stop the
server's I/O thread, so pings, cancels and heartbeats would go unanswered. Like Jupyter runs
kernels, :class:`ProcessRunner` runs the real runner in a child process per device and talks to it
over a private ZeroMQ ``PAIR`` socket on an ``ipc://`` path in a folder only this user can open.

* The child builds its runner itself from a :class:`WorkerSpec` (a ``"module:callable"`` factory and
  JSON keyword arguments), so nothing is pickled and any back end (the engines, a test runner, a
  cluster client) can sit behind the same boundary.
* A worker runs up to ``jobs_per_worker`` jobs at once (default 1), each on its own thread in the
  child, so an engine can batch the frames of concurrent jobs into shared forward passes. Sockets
  are not thread-safe, so in this process one pump thread per worker owns its socket: it sends what
  the job threads queue (waking on a :class:`~talkbridge.bridge.wakeup.Doorbell`) and routes what
  arrives to the right job by ``job_id``.
* Jobs and their streams cross in the wire's own encoding (:mod:`.codec`): the client's ``submit``
  is forwarded as it came, and the child's ``info`` and ``chunk`` messages come back and are relayed
  to the client as they are, never rebuilt. Arrays are sent and received without user-space copies
  (``copy=False`` frames, numpy views on them).
* The child sends at most ``window`` chunks of a job ahead of what the server has taken of that
  job, so a client that stops granting credit stops its own job's engine thread, not memory and not
  the other jobs.
* A worker that dies (a crash, SIGKILL, the out-of-memory killer) or shows no sign of life for
  ``hang_timeout_s`` fails every job it was running, each with :class:`WorkerLost`
  (``worker_lost``, retryable), and is replaced once, at once. A cancel reaches the child within one
  poll (50 ms); a job still running ``cancel_grace_s`` later means a stuck engine, so the worker is
  killed and replaced, and the other jobs it was running are lost with it (``worker_lost``).
"""

from __future__ import annotations

import json
import logging
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import zmq

from talkbridge.bridge import protocol as p
from talkbridge.bridge.codec import INTERNAL_LIMITS, JobSpec
from talkbridge.bridge.leftovers import owned_folder_prefix
from talkbridge.bridge.relay import RemoteJobError
from talkbridge.bridge.wakeup import Doorbell
from talkbridge.core.errors import InputError

log = logging.getLogger(__name__)

DEVICE_PLACEHOLDER = "$device"
"""In :attr:`WorkerSpec.calls` arguments: replaced by the worker's device."""

POLL_S = 0.05
"""How often the pump and the job threads look again when nothing happened."""


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


_LOST = object()
"""Put in a job's inbox when its worker is gone: the job's thread raises :attr:`_Worker.lost`."""


class _Worker:
    """One child process, the parent's end of its socket, and the pump thread that alone uses it.

    Job threads call :meth:`open_job`, :meth:`post` and read their inbox; the pump sends what they
    posted, routes each arriving message to its job's inbox, and watches the child for death or
    silence. ``on_lost(worker, busy)`` is called once when a started worker is lost (``busy``: it
    was running jobs), so the runner can replace it once, however many jobs it took down.
    """

    def __init__(
        self,
        context: zmq.Context,
        spec: WorkerSpec,
        device: str,
        *,
        jobs: int,
        window: int,
        hang_timeout_s: float,
        on_lost: Callable[["_Worker", bool], None],
    ) -> None:
        self.device = device
        self.hang_timeout_s = hang_timeout_s
        self._on_lost = on_lost
        # Mode 0700: only this user connects. Named after this process, so the next server sweeps
        # the folder if this one is SIGKILLed (bridge/leftovers.py).
        self.folder = tempfile.mkdtemp(prefix=owned_folder_prefix("talkbridge-worker-"))
        self.address = f"ipc://{self.folder}/worker.sock"
        self.socket = context.socket(zmq.PAIR)
        self.socket.linger = 0
        self.socket.bind(self.address)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(path for path in sys.path if isinstance(path, str) and path)
        command = [
            sys.executable, "-m", "talkbridge.bridge.worker_main", self.address, device, spec.to_json(),
            str(logging.getLogger().getEffectiveLevel()), str(jobs), str(window),
        ]
        try:
            self.process = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL)
        except BaseException:
            self.socket.close(0)
            shutil.rmtree(self.folder, ignore_errors=True)
            raise
        self.ready = False
        self.capabilities: dict[str, Any] = {}
        self.start_error: str | None = None
        self.lost: WorkerLost | None = None  # set once: the worker is gone, every job on it fails with this
        self.last_heard = time.monotonic()
        self._started = threading.Event()  # the welcome, a start-up error, or the child's death
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._inboxes: dict[str, queue.SimpleQueue[Any]] = {}
        self._outgoing: deque[list[Any]] = deque()
        self._bell = Doorbell()
        self._pump = threading.Thread(target=self._pump_main, name=f"talkbridge-pump-{device}", daemon=True)
        self._pump.start()

    @property
    def pid(self) -> int:
        return self.process.pid

    # ---------------------------------------------------------------------- for job threads

    def post(self, message: p.Message) -> None:
        """Queue ``message`` for the child (any thread); the pump sends it within one poll."""
        self._outgoing.append(p.encode(message))
        self._bell.ring()

    def open_job(self, job_id: str) -> queue.SimpleQueue[Any] | None:
        """A new inbox for ``job_id``'s messages, or None when this worker is already lost."""
        with self._lock:
            if self.lost is not None:
                return None
            inbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
            self._inboxes[job_id] = inbox
            return inbox

    def close_job(self, job_id: str) -> None:
        """Forget ``job_id``: later news of it (an output sent before a cancel landed) is dropped."""
        with self._lock:
            self._inboxes.pop(job_id, None)

    def wait_ready(self, timeout_s: float) -> None:
        """Wait for the child's welcome (its runner is built); raise why it did not come."""
        if not self._started.wait(timeout_s):
            raise WorkerStartError(f"the worker for {self.device} did not start within {timeout_s:.0f} s")
        if self.start_error is not None:
            raise WorkerStartError(self.start_error)

    def lose(self, what: str, busy: bool = True) -> None:
        """The worker is gone (``what`` says how): fail every job on it, have it replaced, kill it.

        Only the first call counts, so jobs that notice together cause one replacement.
        """
        with self._lock:
            if self.lost is not None:
                return
            self.lost = WorkerLost(f"the worker process for {self.device} {what}; the job was lost (the worker was restarted: submit it again)")
            inboxes = list(self._inboxes.values())
        busy = busy or bool(inboxes)
        successor = "starting a new one" if busy else "a new one starts with the next job"
        log.warning("the worker process %d for %s %s; %s", self.pid, self.device, what, successor)
        try:
            self._on_lost(self, busy)  # the successor starts loading while we clean up
        except Exception:  # no successor now (out of processes?): the next job starts one; these jobs must still end
            log.exception("could not start a new worker process for %s", self.device)
        self.stop()  # the child is gone before its jobs hear of it
        for inbox in inboxes:
            inbox.put(_LOST)

    def shut_down(self, reason: str) -> None:
        """Stop for good (the runner is closing): jobs still on it fail with ``reason``."""
        with self._lock:
            if self.lost is None:
                self.lost = WorkerLost(reason)
            inboxes = list(self._inboxes.values())
        for inbox in inboxes:
            inbox.put(_LOST)
        self.stop()

    def stop(self) -> None:
        """Kill the child (it may be stuck in native code), end the pump and remove the socket folder."""
        self._stopping.set()
        self._bell.ring()
        self._kill()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            log.warning("worker process %d for %s did not exit after SIGKILL", self.process.pid, self.device)
        if threading.current_thread() is not self._pump:
            self._pump.join(10)
            if self._pump.is_alive():
                log.warning("the socket thread of the worker for %s did not stop", self.device)
        shutil.rmtree(self.folder, ignore_errors=True)

    def _kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()

    # ---------------------------------------------------------------------- the pump thread

    def _pump_main(self) -> None:
        poller = zmq.Poller()
        poller.register(self.socket, zmq.POLLIN)
        poller.register(self._bell.fileno(), zmq.POLLIN)
        try:
            while not self._stopping.is_set():
                ready = dict(poller.poll(int(POLL_S * 1000)))
                if self._bell.fileno() in ready:
                    self._bell.drain()
                heard = self.socket in ready and self._receive_all()
                self._send_outgoing()
                if not heard and not self._stopping.is_set():
                    self._check_child()
        except Exception as error:  # a bug or a closed context must not leave jobs waiting forever
            if not self._stopping.is_set():
                log.exception("the socket thread of the worker for %s failed", self.device)
                self.lose(f"lost its connection ({type(error).__name__}: {error})")
        finally:
            self.socket.close(0)
            self._bell.close()

    def _receive_all(self) -> bool:
        """Take every waiting message (at most a bounded batch, so sending never starves)."""
        heard = False
        for _ in range(256):
            try:
                frames = self.socket.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                break
            heard = True
            self.last_heard = time.monotonic()
            try:
                message = p.decode(frames, None, INTERNAL_LIMITS)
            except p.ProtocolError as error:
                self.lose(f"sent a broken message ({error}) and was killed")
                return True
            self._route(message)
        return heard

    def _route(self, message: p.Message) -> None:
        if not self.ready:
            if message.type == p.WELCOME:
                self.capabilities = dict(message.body["capabilities"])
                self.ready = True
                self._started.set()
            elif message.type == p.ERROR:
                self.start_error = f"the worker for {self.device} could not start: {message.body['message']}"
                self._started.set()
            return
        if message.job_id is None:
            return  # a heartbeat: it only counts as a sign of life
        with self._lock:
            inbox = self._inboxes.get(message.job_id)
        if inbox is not None:
            inbox.put(message)  # else: late news of a job that has already ended

    def _send_outgoing(self) -> None:
        while self._outgoing:
            try:
                self.socket.send_multipart(self._outgoing[0], zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return  # the child is not reading (stopped?): try again on the next pass
            self._outgoing.popleft()

    def _check_child(self) -> None:
        """Nothing arrived this poll: is the child dead, or silent for too long while running jobs?"""
        code = self.process.poll()
        if not self.ready:
            if code is not None:
                self.start_error = self.start_error or f"the worker process for {self.device} {_exit_reason(code)} while starting"
                self._started.set()
                self._stopping.set()
            return
        with self._lock:
            busy = bool(self._inboxes)
        if code is not None:
            self.lose(_exit_reason(code), busy)
        elif busy and time.monotonic() - self.last_heard > self.hang_timeout_s:
            self.lose(f"showed no sign of life for {self.hang_timeout_s:.0f} s and was killed")


class ProcessRunner:
    """A :class:`~talkbridge.bridge.jobs.JobRunner` that runs ``spec``'s runner in one process per device.

    Start the workers with :meth:`start` (raises :class:`WorkerStartError` with the child's reason)
    or let the first job start its device's worker; :meth:`close` stops them all. ``run`` for one
    device may be called by up to ``jobs_per_worker`` threads at once (the server runs
    ``jobs_per_device`` threads per device); each such job runs on its own thread in the same child.
    A further concurrent job is refused by the child with a retryable ``busy`` error.
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
        jobs_per_worker: int = 1,
    ) -> None:
        if not devices:
            raise ValueError("a ProcessRunner needs at least one device")
        if jobs_per_worker < 1:
            raise ValueError(f"jobs_per_worker must be at least 1, not {jobs_per_worker}")
        self.spec = spec
        self.devices = tuple(devices)
        self.window = max(1, window)
        self.start_timeout_s = start_timeout_s
        self.hang_timeout_s = hang_timeout_s
        self.cancel_grace_s = cancel_grace_s
        self.jobs_per_worker = jobs_per_worker
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
            worker.shut_down("the server is stopping its workers")
        self._context.term()

    def __enter__(self) -> "ProcessRunner":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def worker_pid(self, device: str) -> int | None:
        """The process id of ``device``'s worker, if one runs (for health checks and fault tests)."""
        worker = self._workers.get(device)
        return None if worker is None else worker.pid

    def _new_worker(self, device: str) -> _Worker:
        return _Worker(
            self._context, self.spec, device,
            jobs=self.jobs_per_worker, window=self.window, hang_timeout_s=self.hang_timeout_s, on_lost=self._on_lost,
        )

    def _worker(self, device: str) -> _Worker:
        with self._lock:
            if self._closed:
                raise WorkerLost("the server is stopping its workers")
            worker = self._workers.get(device)
            if worker is None:
                worker = self._workers[device] = self._new_worker(device)
            return worker

    def _ready_worker(self, device: str) -> _Worker:
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

    def _on_lost(self, worker: _Worker, busy: bool) -> None:
        """A started worker is gone: count it and start its successor (at once if it was busy, so the
        engine loads while the clients hear the news; else when the next job comes)."""
        with self._lock:
            if self._workers.get(worker.device) is not worker:
                return  # closing, or already replaced
            del self._workers[worker.device]
            self.restarts += 1
            if busy and not self._closed:
                self._workers[worker.device] = self._new_worker(worker.device)

    def _open_job(self, job_id: str, device: str) -> tuple[_Worker, queue.SimpleQueue[Any]]:
        """A ready worker for ``device`` and ``job_id``'s inbox on it. A worker lost before the job
        reached it costs the job nothing: its successor takes the job."""
        for _ in range(3):
            worker = self._ready_worker(device)
            inbox = worker.open_job(job_id)
            if inbox is not None:
                return worker, inbox
        raise WorkerLost(f"the worker process for {device} kept failing before the job reached it; submit it again")

    # ------------------------------------------------------------------------------ JobRunner

    def capabilities(self) -> dict[str, Any]:
        if self._capabilities is None:
            self._ready_worker(self.devices[0])
        assert self._capabilities is not None
        return dict(self._capabilities)

    def run(self, job: JobSpec, device: str, cancel: threading.Event) -> Iterator[p.Message]:
        try:
            worker, inbox = self._open_job(job.job_id, device)
        except WorkerStartError as error:  # a replacement that cannot start is the server's trouble, not the input's
            raise RemoteJobError(p.E_WORKER_LOST, str(error), retryable=True) from None
        state = _JobState()
        try:
            worker.post(job.to_submit())
            while not state.ended:
                message = self._next_message(worker, inbox, job.job_id, cancel, state)
                if message is None:
                    continue
                yield message
                if message.type == p.CHUNK:
                    state.consumed += 1
                    worker.post(p.Message(p.CREDIT, job.job_id, {"consumed": state.consumed}))
        finally:
            try:
                if not state.ended:  # closed early (cancel, a stalled client) or failed: stop the child's job
                    self._wind_down(worker, inbox, job.job_id, state)
            finally:
                worker.close_job(job.job_id)

    def _next_message(
        self, worker: _Worker, inbox: queue.SimpleQueue[Any], job_id: str, cancel: threading.Event, state: "_JobState"
    ) -> p.Message | None:
        """Wait one poll for the child; None when nothing for the caller came (yet)."""
        if cancel.is_set() and state.cancel_sent_at is None:
            worker.post(p.Message(p.CANCEL, job_id))
            state.cancel_sent_at = time.monotonic()
        if state.cancel_sent_at is not None and time.monotonic() - state.cancel_sent_at > self.cancel_grace_s:
            state.ended = True
            self._kill_for_cancel(worker, job_id)
            return None  # the job was cancelled anyway: the server reports `cancelled`
        try:
            message = inbox.get(timeout=POLL_S)
        except queue.Empty:
            return None
        if message is _LOST:
            state.ended = True
            assert worker.lost is not None
            raise WorkerLost(str(worker.lost))  # a fresh exception per job: they are raised on several threads
        if message.type in (p.INFO, p.CHUNK):
            return message  # relayed as it came: the client decodes it
        if message.type in (p.DONE, p.CANCELLED):
            state.ended = True
        elif message.type == p.ERROR:
            state.ended = True
            raise RemoteJobError(message.body["code"], message.body["message"], bool(message.body["retryable"]))
        return None

    def _wind_down(self, worker: _Worker, inbox: queue.SimpleQueue[Any], job_id: str, state: "_JobState") -> None:
        """The caller stopped early: cancel the child's job and wait for its end (or kill the worker)."""
        if worker.lost is not None:
            return
        if state.cancel_sent_at is None:
            worker.post(p.Message(p.CANCEL, job_id))
            state.cancel_sent_at = time.monotonic()
        while time.monotonic() - state.cancel_sent_at <= self.cancel_grace_s:
            try:
                message = inbox.get(timeout=POLL_S)
            except queue.Empty:
                continue
            if message is _LOST or message.type in p.TERMINAL_TYPES:
                return
        self._kill_for_cancel(worker, job_id)

    def _kill_for_cancel(self, worker: _Worker, job_id: str) -> None:
        """Job ``job_id`` ignored its cancel: its engine is stuck, so the worker (with any other jobs
        it runs, which fail with ``worker_lost``) is killed and replaced."""
        worker.lose(
            f"was killed because job {job_id} did not stop within {self.cancel_grace_s:.0f} s of a cancel "
            "(a stuck engine), taking the other jobs it was running with it"
        )


@dataclass
class _JobState:
    consumed: int = 0
    ended: bool = False
    cancel_sent_at: float | None = None
