"""The worker process behind :class:`~talkbridge.bridge.workers.ProcessRunner` (``python -m`` this).

Arguments: the parent's ``ipc://`` address, the device, the :class:`WorkerSpec` JSON, the log
level, and optionally how many jobs may run at once (default 1) and the per-job output window
(default :data:`WINDOW`). The main thread owns the socket: it receives jobs, cancels and credit
(routed by ``job_id``), sends what the job threads produced and a heartbeat every
:data:`HEARTBEAT_S`. Each job runs the one runner on its own thread and waits for its own credit, so
the engine never runs more than ``window`` outputs of a job ahead of the server, and a job whose
client pauses holds back only itself. A submit beyond the job limit is refused with a retryable
``busy``. The process exits when its parent does (``PR_SET_PDEATHSIG`` on Linux, a parent-id check
elsewhere)."""

from __future__ import annotations

import collections
import contextlib
import ctypes
import importlib
import logging
import os
import signal
import sys
import threading
import time
from typing import Any

import zmq

from talkbridge._version import __version__
from talkbridge.bridge import protocol as p
from talkbridge.bridge.codec import INTERNAL_LIMITS, spec_from_submit
from talkbridge.bridge.relay import relay_job
from talkbridge.bridge.wakeup import Doorbell
from talkbridge.bridge.workers import DEVICE_PLACEHOLDER, WorkerSpec
from talkbridge.core.errors import TalkbridgeError

log = logging.getLogger("talkbridge.worker")

HEARTBEAT_S = 0.5
WINDOW = 2


def build_runner(spec: WorkerSpec, device: str) -> Any:
    """Import the factory, build the runner and make its start-up calls."""
    module_name, _, attribute = spec.factory.partition(":")
    if not module_name or not attribute:
        raise TalkbridgeError(f"worker factory {spec.factory!r} must look like 'package.module:callable'")
    factory = getattr(importlib.import_module(module_name), attribute)
    runner = factory(**spec.kwargs)
    for name, args in spec.calls:
        getattr(runner, name)(*[device if arg == DEVICE_PLACEHOLDER else arg for arg in args])
    return runner


def _die_with_parent() -> None:
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass


class _JobThread(threading.Thread):
    """Runs one job; queues encoded messages for the main thread and waits for credit."""

    def __init__(
        self, runner: Any, device: str, message: p.Message, outbox: "collections.deque[list[Any]]", bell: Doorbell, window: int = WINDOW
    ) -> None:
        super().__init__(name=f"talkbridge-worker-job-{message.job_id}", daemon=True)
        self.spec = spec_from_submit(message)
        self.runner, self.device, self.outbox, self.bell = runner, device, outbox, bell
        self.window = max(1, window)
        self.cancel = threading.Event()
        self.consumed = 0
        self.finished = False  # set once the runner's stream is closed, before the final message leaves
        self._sent = 0
        self._credit = threading.Condition()

    def grant(self, consumed: int) -> None:
        with self._credit:
            self.consumed = max(self.consumed, consumed)
            self._credit.notify_all()

    def stop(self) -> None:
        self.cancel.set()
        with self._credit:
            self._credit.notify_all()

    def _queue(self, message: p.Message) -> None:
        self.outbox.append(p.encode(message))
        self.bell.ring()

    def _post(self, message: p.Message) -> bool:
        """Queue one of the job's messages; a chunk first waits until the server has room for it."""
        if message.type == p.CHUNK:
            with self._credit:
                while self._sent - self.consumed >= self.window and not self.cancel.is_set():
                    self._credit.wait(0.1)
            if self.cancel.is_set():
                return False
            self._sent += 1
        self._queue(message)
        return True

    def run(self) -> None:
        job_id = self.spec.job_id
        final = relay_job(
            self.runner, self.spec, self.device, self.cancel, self._post,
            stopped=lambda: p.Message(p.CANCELLED, job_id, {"reason": "cancelled"}),
        )
        self.finished = True  # the runner's stream is closed: the final message may leave
        self._queue(final)


def serve(socket: zmq.Socket, runner: Any, device: str, max_jobs: int = 1, window: int = WINDOW) -> None:
    """The main loop: until the parent goes away. Runs up to ``max_jobs`` jobs at once."""
    bell = Doorbell()
    outbox: "collections.deque[list[Any]]" = collections.deque()
    poller = zmq.Poller()
    poller.register(socket, zmq.POLLIN)
    poller.register(bell.fileno(), zmq.POLLIN)
    parent = os.getppid()
    jobs: dict[str, _JobThread] = {}
    last_beat = 0.0
    while True:
        ready = dict(poller.poll(int(HEARTBEAT_S * 1000)))
        if socket in ready:
            while True:
                try:
                    frames = socket.recv_multipart(zmq.NOBLOCK, copy=False)
                except zmq.Again:
                    break
                message = p.decode(frames, None, INTERNAL_LIMITS)
                if message.type == p.SUBMIT:
                    _reap(jobs)
                    if message.job_id in jobs or len(jobs) >= max_jobs:
                        text = f"this worker is running {len(jobs)} job(s), its limit is {max_jobs}"
                        socket.send_multipart(p.encode(p.error_message(p.E_BUSY, text, message.job_id, True)))
                        continue
                    job = jobs[str(message.job_id)] = _JobThread(runner, device, message, outbox, bell, window)
                    job.start()
                    continue
                job = jobs.get(message.job_id or "")
                if job is not None and message.type == p.CANCEL:
                    job.stop()
                elif job is not None and message.type == p.CREDIT:
                    job.grant(message.body["consumed"])
        if bell.fileno() in ready:
            bell.drain()
        while outbox:
            socket.send_multipart(outbox.popleft(), copy=False)
        now = time.monotonic()
        if now - last_beat >= HEARTBEAT_S:
            with contextlib.suppress(zmq.Again):  # the server is not reading (a paused client): skip a beat
                socket.send_multipart(p.encode(p.Message(p.PONG, body={"t": now})), zmq.NOBLOCK)
            last_beat = now
            _reap(jobs)
            if os.getppid() != parent:
                log.info("the server went away; the worker exits")
                return


def _reap(jobs: dict[str, _JobThread]) -> None:
    """Forget jobs whose stream has ended (their last message is queued or sent)."""
    for job_id in [job_id for job_id, job in jobs.items() if job.finished]:
        del jobs[job_id]


def main(argv: list[str]) -> int:
    address, device, spec_json, level, *rest = argv
    max_jobs = int(rest[0]) if rest else 1
    window = int(rest[1]) if len(rest) > 1 else WINDOW
    logging.basicConfig(level=int(level), format=f"%(levelname)s %(name)s[{device}]: %(message)s", stream=sys.stderr)
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group: the server decides
    context = zmq.Context()
    socket = context.socket(zmq.PAIR)
    socket.linger = 1000
    socket.connect(address)
    try:
        runner = build_runner(WorkerSpec.from_json(spec_json), device)
        capabilities = dict(runner.capabilities())
    except Exception as error:  # reported to the parent, which refuses to start or fails the job
        text = str(error) if isinstance(error, TalkbridgeError) else f"{type(error).__name__}: {error}"
        socket.send_multipart(p.encode(p.error_message(p.E_BAD_INPUT, text)))
        socket.close()
        context.term()
        return 1
    welcome = {
        "version": p.PROTOCOL_VERSION,
        "server": f"talkbridge worker {__version__} (pid {os.getpid()})",
        "capabilities": capabilities,
        "heartbeat_s": HEARTBEAT_S,
        "limits": INTERNAL_LIMITS.as_dict(),
    }
    socket.send_multipart(p.encode(p.Message(p.WELCOME, body=welcome)))
    try:
        serve(socket, runner, device, max_jobs, window)
    finally:
        socket.close(0)
        context.term()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
