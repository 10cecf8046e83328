"""The sidecar server: a ROUTER socket in front of ``jobs_per_device`` job threads per device.

Threads and who owns what:

* the I/O thread owns the ROUTER socket. It decodes and answers every message (hello, ping,
  cancel, credit at once), queues submits and sends what workers produced, but never computes, so a
  long render never delays a cancel or a heartbeat;
* each device has :attr:`ServerConfig.jobs_per_device` job threads (default 1: one job at a time
  per device). Each takes the next job from the one :class:`FairQueue` (round robin across
  clients), runs it through the :class:`~talkbridge.bridge.jobs.JobRunner`, signs
  each message it yields and parks it in the job's bounded :class:`Outbox`, then rings the I/O thread. With
  more than one, a device runs that many jobs at once, so an engine can share forward passes
  between them; the runner must accept that many concurrent ``run`` calls per device.

``talkbridge serve`` plugs in a :class:`~talkbridge.bridge.workers.ProcessRunner`, so the engines
themselves run in one child process per device (all of a device's concurrent jobs in the same
process) and cannot hold this process's GIL; a job thread here only relays their outputs.

Back-pressure: a chunk leaves only while its client has credit, and the outbox holds at most a
couple of chunks, so a paused client stalls its worker instead of growing memory; a client silent
past ``client_timeout_s`` is presumed dead and its jobs are cancelled; a worker stalled past
``stall_timeout_s`` gives the device back with a retryable ``stalled`` error. Inputs of unfinished
jobs are capped per client identity (its CURVE key, else its connection) and in total.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import zmq

from talkbridge._version import __version__
from talkbridge.bridge import protocol as p
from talkbridge.bridge.codec import input_bytes, spec_from_submit
from talkbridge.bridge.jobs import JobRunner
from talkbridge.bridge.leftovers import sweep_stale_job_folders
from talkbridge.bridge.relay import relay_job
from talkbridge.bridge.scheduling import FairQueue, Job, Outbox, Stalled
from talkbridge.bridge.security import SecurityConfigError, check_bind_is_safe
from talkbridge.bridge.server_config import ServerConfig
from talkbridge.bridge.wakeup import Doorbell

log = logging.getLogger(__name__)


@dataclass
class _Peer:
    last_seen: float
    identity: bytes  # the CURVE public key when the server has CURVE, else the connection's routing id
    jobs: set[str] = field(default_factory=set)


class Server:
    """A running sidecar; use as a context manager or call :meth:`start` / :meth:`stop`."""

    def __init__(self, runner: JobRunner, config: ServerConfig | None = None) -> None:
        self.config = config or ServerConfig()
        check_bind_is_safe(self.config.bind, self.config.curve)
        if not self.config.devices:
            raise SecurityConfigError("a server needs at least one device")
        per_device = self.config.jobs_per_device
        if per_device < 1:
            raise ValueError(f"jobs_per_device must be at least 1, not {per_device}")
        accepted = getattr(runner, "jobs_per_worker", None)  # a ProcessRunner's worker refuses more (busy)
        if accepted is not None and accepted < per_device:
            raise ValueError(
                f"the server runs {per_device} jobs per device but its worker processes accept {accepted}; "
                f"give the ProcessRunner jobs_per_worker={per_device}"
            )
        self.runner = runner
        self.address: str | None = None
        self._context = zmq.Context()
        self._authenticator: Any = None
        self._queue = FairQueue()
        self._bell = Doorbell()
        self._stopping = threading.Event()  # no new jobs; workers finish up
        self._io_stop = threading.Event()  # the I/O thread sends what is left and closes
        self._ready = threading.Event()
        self._start_error: BaseException | None = None
        self._jobs: dict[str, Job] = {}
        self._finished: OrderedDict[str, bytes] = OrderedDict()
        self._peers: dict[bytes, _Peer] = {}
        self._unsent_terminals: list[tuple[bytes, list[Any], float]] = []  # the client's pipe was full
        self._input_bytes: dict[bytes, int] = {}  # per client identity, for unfinished jobs
        self._job_input_bytes: dict[str, tuple[bytes, int]] = {}
        self._threads: list[threading.Thread] = []
        self._capabilities = dict(runner.capabilities())
        self.stats = {"messages": 0, "rejected": 0, "chunks_sent": 0, "jobs_done": 0}

    # -------------------------------------------------------------------------------- lifecycle

    def start(self) -> "Server":
        """Bind and start the threads; returns once the socket listens (or raises why it cannot)."""
        sweep_stale_job_folders(older_than_s=self.config.sweep_job_folders_older_than_s)
        if self.config.curve is not None:
            from zmq.auth.thread import ThreadAuthenticator

            self._authenticator = ThreadAuthenticator(self._context, log=logging.getLogger(__name__ + ".auth"))
            self._authenticator.start()
            self._authenticator.configure_curve(domain="*", location=str(self.config.curve.allowed_clients))
        io_thread = threading.Thread(target=self._io_main, name="talkbridge-io", daemon=True)
        self._threads.append(io_thread)
        io_thread.start()
        self._ready.wait()
        if self._start_error is not None:
            self._shutdown_context()
            raise self._start_error
        for device in self.config.devices:
            for slot in range(self.config.jobs_per_device):
                name = f"talkbridge-{device}" + (f"-{slot}" if self.config.jobs_per_device > 1 else "")
                worker = threading.Thread(target=self._worker_main, args=(device,), name=name, daemon=True)
                self._threads.append(worker)
                worker.start()
        log.info(
            "talkbridge sidecar listening on %s (devices: %s; %d job(s) at once per device)",
            self.address, ", ".join(self.config.devices), self.config.jobs_per_device,
        )
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop every job (clients get a retryable shutting_down error), the threads and the socket."""
        self._stopping.set()
        for job in list(self._jobs.values()):
            job.cancel.set()
            job.outbox.wake()
        for thread in self._threads[1:]:  # workers first, so their last words still get sent
            thread.join(timeout)
        self._io_stop.set()
        self._bell.ring()
        for thread in self._threads[:1]:
            thread.join(timeout)
        alive = any(thread.is_alive() for thread in self._threads)
        self._threads.clear()
        self._shutdown_context(force=alive)
        close = getattr(self.runner, "close", None)  # a ProcessRunner stops its worker processes
        if close is not None:
            close()

    def _shutdown_context(self, force: bool = False) -> None:
        if self._authenticator is not None:
            self._authenticator.stop()
            self._authenticator = None
        if force:  # a thread did not stop in time: do not hang on its open socket
            self._context.destroy(linger=0)
        else:
            self._context.term()
        self._bell.close()

    def __enter__(self) -> "Server":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def serve_forever(self, stop: threading.Event | None = None) -> int:
        """Run until SIGINT/SIGTERM (for the CLI), or until ``stop`` is set (e.g. by a stdin watcher);
        returns the signal's number (0: none), so the command can exit 130 or 143 like every other one."""
        stop = stop or threading.Event()
        received: list[int] = []

        def on_signal(signum: int, frame: Any) -> None:
            received.append(signum)
            stop.set()

        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            self.start()
            while not stop.wait(0.2):
                pass
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self.stop()
        return received[0] if received else 0

    # -------------------------------------------------------------------------------- I/O thread

    def _bind(self) -> zmq.Socket:
        router = self._context.socket(zmq.ROUTER)
        router.linger = 0
        router.router_mandatory = True
        # Above the announced limits, so an oversized input is answered `too_large` by decode();
        # only a frame no valid message could hold is dropped by libzmq (with its connection).
        router.setsockopt(zmq.MAXMSGSIZE, self.config.limits.socket_max_frame_bytes)
        router.ipv6 = p.is_ipv6_address(self.config.bind)
        router.sndhwm = 1000
        router.rcvhwm = 1000
        if self.config.curve is not None:
            router.curve_server = True
            router.curve_publickey = self.config.curve.public
            router.curve_secretkey = self.config.curve.secret
        try:
            router.bind(self.config.bind)
        except zmq.ZMQError as error:
            router.close()
            hint = "is another server using it?" if error.errno == zmq.EADDRINUSE else "is the address right and available on this machine?"
            raise p.BridgeError(f"cannot bind {self.config.bind}: {error} ({hint})") from None
        self.address = router.getsockopt_string(zmq.LAST_ENDPOINT)
        return router

    def _io_main(self) -> None:
        try:
            router = self._bind()
        except BaseException as error:  # reported to start()
            self._start_error = error
            self._ready.set()
            return
        self._ready.set()
        poller = zmq.Poller()
        poller.register(router, zmq.POLLIN)
        poller.register(self._bell.fileno(), zmq.POLLIN)
        try:
            while not self._io_stop.is_set():
                ready = dict(poller.poll(100))
                if router in ready:
                    for _ in range(256):  # bounded, so sending never starves
                        try:
                            frames = router.recv_multipart(zmq.NOBLOCK, copy=False)
                        except zmq.Again:
                            break
                        try:
                            self._handle(router, frames)
                        except Exception:  # a bug here must cost one message, never the server
                            log.exception("failed to handle a message; the server carries on")
                if self._bell.fileno() in ready:
                    self._bell.drain()
                self._send_unsent_terminals(router)
                for job in list(self._jobs.values()):
                    self._flush(router, job)
                self._check_peers(router)
            self._say_goodbye(router)
        finally:
            router.close(linger=500)  # a moment for the goodbyes to leave; never longer

    def _say_goodbye(self, router: zmq.Socket) -> None:
        """Tell the clients of unfinished jobs that the server is going away (they may retry)."""
        for job in list(self._jobs.values()):
            self._queue.remove(job)
            if not job.terminal_posted:
                text = "the server is shutting down; submit again later"
                self._post(job, p.error_message(p.E_SHUTTING_DOWN, text, job.job_id, retryable=True))
            self._flush(router, job)

    def _send(self, router: zmq.Socket, client: bytes, message: p.Message) -> str:
        return self._send_frames(router, client, p.encode(message, self.config.signing_key))

    def _send_frames(self, router: zmq.Socket, client: bytes, frames: list[Any]) -> str:
        """Send without ever blocking: "sent", "full" (the client is not reading) or "gone"."""
        try:
            router.send_multipart([client, *frames], zmq.NOBLOCK, copy=False)
            return "sent"
        except zmq.Again:
            return "full"
        except zmq.ZMQError as error:
            if error.errno == zmq.EHOSTUNREACH:
                return "gone"
            raise

    def _reply(self, router: zmq.Socket, client: bytes, request: p.Message | None, message: p.Message) -> None:
        if request is not None and request.job_id and message.job_id is None:
            message.job_id = request.job_id
        self._send(router, client, message)

    def _handle(self, router: zmq.Socket, frames: list[zmq.Frame]) -> None:
        self.stats["messages"] += 1
        client = frames[0].bytes
        try:
            message = p.decode(frames[1:], self.config.signing_key, self.config.limits)
        except p.ProtocolError as error:
            self.stats["rejected"] += 1
            log.debug("rejected a message from %s: %s", client.hex(), error)
            self._send(router, client, p.error_message(error.code, str(error), error.job_id))
            return
        peer = self._peers.get(client)
        if peer is None:
            peer = self._peers[client] = _Peer(time.monotonic(), self._identity(client, frames))
        peer.last_seen = time.monotonic()
        handler = {
            p.HELLO: self._on_hello,
            p.PING: self._on_ping,
            p.SUBMIT: self._on_submit,
            p.CANCEL: self._on_cancel,
            p.CREDIT: self._on_credit,
        }.get(message.type)
        if handler is None:
            self.stats["rejected"] += 1
            self._reply(router, client, message, p.error_message(p.E_BAD_MESSAGE, f"clients cannot send {message.type!r}"))
            return
        handler(router, client, peer, message)

    def _identity(self, client: bytes, frames: list[zmq.Frame]) -> bytes:
        """Who sent ``frames`` for the per-client caps: the CURVE key (one per person, however many
        connections), else the connection."""
        if self.config.curve is not None:
            try:
                user = frames[1].get("User-Id")
            except (zmq.ZMQError, AttributeError, IndexError):
                user = None
            if user:
                return b"curve:" + user.encode()
        return b"conn:" + client

    def _on_hello(self, router: zmq.Socket, client: bytes, peer: _Peer, message: p.Message) -> None:
        version = p.choose_version(message.body["versions"])
        if version is None:
            text = f"no common protocol version: client speaks {message.body['versions'][:8]}, server {list(p.SUPPORTED_VERSIONS)}"
            self._send(router, client, p.error_message(p.E_UNSUPPORTED_VERSION, text))
            return
        capabilities = {
            **self._capabilities,
            "devices": list(self.config.devices),
            "jobs_per_device": self.config.jobs_per_device,
            "protocol_versions": list(p.SUPPORTED_VERSIONS),
            "default_credit": self.config.default_credit,
            "max_credit": self.config.max_credit,
            "signed": bool(self.config.signing_key),
            "curve": self.config.curve is not None,
            "queued_jobs": len(self._queue),
        }
        welcome = p.Message(
            p.WELCOME,
            body={
                "version": version,
                "server": f"talkbridge {__version__}",
                "capabilities": capabilities,
                "heartbeat_s": self.config.heartbeat_s,
                "limits": self.config.limits.as_dict(),
            },
        )
        self._send(router, client, welcome)

    def _on_ping(self, router: zmq.Socket, client: bytes, peer: _Peer, message: p.Message) -> None:
        self._send(router, client, p.Message(p.PONG, body=dict(message.body)))

    def _on_submit(self, router: zmq.Socket, client: bytes, peer: _Peer, message: p.Message) -> None:
        job_id = message.job_id
        assert job_id is not None
        known = self._jobs.get(job_id)
        if known is not None or job_id in self._finished:
            owner = known.client if known is not None else self._finished[job_id]
            if owner != client:
                self._send(router, client, p.error_message(p.E_JOB_ID_IN_USE, f"job id {job_id} belongs to another client", job_id))
                return
            state = known.state if known is not None else "finished"
            self._send(router, client, p.Message(p.ACCEPTED, job_id, {"position": 0, "duplicate": True, "state": state}))
            return
        if self._stopping.is_set():
            self._send(router, client, p.error_message(p.E_SHUTTING_DOWN, "the server is shutting down", job_id, True))
            return
        if len(peer.jobs) >= self.config.max_jobs_per_client or len(self._queue) >= self.config.max_queued_jobs:
            text = f"too many jobs queued (this client: {len(peer.jobs)}, all: {len(self._queue)}); retry later"
            self._send(router, client, p.error_message(p.E_BUSY, text, job_id, True))
            return
        body = message.body
        engine = body["engine"]
        if engine not in self._capabilities.get("engines", []):
            text = f"unknown engine {engine!r}; this server runs {self._capabilities.get('engines', [])}"
            self._send(router, client, p.error_message(p.E_UNKNOWN_ENGINE, text, job_id))
            return
        has_file, has_pcm = "audio" in message.buffers, "audio_pcm" in message.buffers
        if has_file == has_pcm:
            text = "a submit needs exactly one of the buffers 'audio' (file bytes) or 'audio_pcm' (16 kHz float32)"
            self._send(router, client, p.error_message(p.E_BAD_INPUT, text, job_id))
            return
        size = input_bytes(message)
        refusal = self._input_cap_refusal(peer.identity, size)
        if refusal is not None:
            code, text = refusal
            self._send(router, client, p.error_message(code, text, job_id, code == p.E_BUSY))
            return
        spec = spec_from_submit(message)
        window = min(int(body.get("credit", self.config.default_credit)), self.config.max_credit)
        job = Job(spec, client, window, Outbox(self.config.outbox_chunks))
        self._jobs[job_id] = job
        peer.jobs.add(job_id)
        self._job_input_bytes[job_id] = (peer.identity, size)
        self._input_bytes[peer.identity] = self._input_bytes.get(peer.identity, 0) + size
        self._send(router, client, p.Message(p.ACCEPTED, job_id, {"position": len(self._queue)}, seq=next(job.seq)))
        self._queue.put(job)

    def _input_cap_refusal(self, identity: bytes, size: int) -> tuple[str, str] | None:
        """Why a submit with ``size`` input bytes may not queue now (code, text), or None.

        Inputs stay in memory until their job ends, so they are capped per client identity and in
        total: a job that could never fit is `too_large`, one that must wait for others is `busy`.
        """
        config = self.config
        mine, total = self._input_bytes.get(identity, 0), sum(self._input_bytes.values())
        if size > min(config.max_client_input_bytes, config.max_total_input_bytes):
            limit = min(config.max_client_input_bytes, config.max_total_input_bytes)
            return p.E_TOO_LARGE, f"the job's inputs are {size} bytes; this server holds at most {limit} bytes of inputs per client"
        if mine + size > config.max_client_input_bytes:
            return p.E_BUSY, (
                f"this client's unfinished jobs hold {mine} bytes of inputs; with {size} more that is over "
                f"the {config.max_client_input_bytes} bytes a client may queue; retry when some finish"
            )
        if total + size > config.max_total_input_bytes:
            return p.E_BUSY, f"the server holds {total} bytes of queued inputs (at most {config.max_total_input_bytes}); retry later"
        return None

    def _on_cancel(self, router: zmq.Socket, client: bytes, peer: _Peer, message: p.Message) -> None:
        job_id = message.job_id
        job = self._jobs.get(job_id or "")
        if job is None or job.client != client:
            reason = "the job had already finished" if self._finished.get(job_id or "") == client else "no such job"
            self._send(router, client, p.Message(p.CANCELLED, job_id, {"already": True, "reason": reason}))
            return
        self._cancel_job(router, job, "cancelled by the client")

    def _cancel_job(self, router: zmq.Socket | None, job: Job, reason: str) -> None:
        job.cancel_reason = reason
        job.cancel.set()
        job.outbox.drop_chunks()
        if self._queue.remove(job):
            self._forget(job)  # before the client hears of it: what it then sees is settled
            if router is not None and not job.orphaned:
                self._send(router, job.client, p.Message(p.CANCELLED, job.job_id, {"reason": reason}, seq=next(job.seq)))
        # a running job: its worker notices within one chunk and posts `cancelled` itself

    def _on_credit(self, router: zmq.Socket, client: bytes, peer: _Peer, message: p.Message) -> None:
        job = self._jobs.get(message.job_id or "")
        if job is None or job.client != client:
            return  # credit for a finished job is normal: ignore it
        job.acknowledge(message.body["consumed"])
        self._flush(router, job)

    def _flush(self, router: zmq.Socket, job: Job) -> None:
        """Send what the job's worker produced, as far as credit and the socket allow."""
        while True:
            item = job.outbox.peek()
            if item is None:
                return
            kind, frames = item
            if kind == p.CHUNK and (job.orphaned or job.cancel.is_set()):
                job.outbox.pop()
                continue
            if kind == p.CHUNK and job.credit <= 0:
                return
            if kind in p.TERMINAL_TYPES:
                # Settle the server's state before the client can hear the job ended, so anyone who
                # saw the terminal message also sees the job gone and counted.
                job.outbox.pop()
                self._forget(job)
                if not job.orphaned and self._send_frames(router, job.client, frames) == "full":
                    self._unsent_terminals.append((job.client, frames, time.monotonic()))
                return
            if not job.orphaned:
                outcome = self._send_frames(router, job.client, frames)
                if outcome == "full":
                    return  # the client's pipe is full: try again on the next pass
                if outcome == "gone":
                    job.orphaned = True
            job.outbox.pop()
            if kind == p.CHUNK:
                job.sent += 1
                self.stats["chunks_sent"] += 1

    def _send_unsent_terminals(self, router: zmq.Socket) -> None:
        """Retry job endings whose client was not reading; give up with the client (``client_timeout_s``)."""
        waiting, self._unsent_terminals = self._unsent_terminals, []
        now = time.monotonic()
        for client, frames, since in waiting:
            if self._send_frames(router, client, frames) == "full" and now - since < self.config.client_timeout_s:
                self._unsent_terminals.append((client, frames, since))

    def _forget(self, job: Job) -> None:
        job.state = "finished"
        self._jobs.pop(job.job_id, None)
        identity, size = self._job_input_bytes.pop(job.job_id, (b"", 0))
        left = self._input_bytes.get(identity, 0) - size
        if left > 0:
            self._input_bytes[identity] = left
        else:
            self._input_bytes.pop(identity, None)
        peer = self._peers.get(job.client)
        if peer is not None:
            peer.jobs.discard(job.job_id)
        self._finished[job.job_id] = job.client
        while len(self._finished) > self.config.remembered_jobs:
            self._finished.popitem(last=False)
        self.stats["jobs_done"] += 1

    def _check_peers(self, router: zmq.Socket) -> None:
        """Presume clients silent for ``client_timeout_s`` dead and free what they held."""
        now = time.monotonic()
        for client, peer in list(self._peers.items()):
            if now - peer.last_seen <= self.config.client_timeout_s:
                continue
            del self._peers[client]
            for job_id in list(peer.jobs):
                job = self._jobs.get(job_id)
                if job is not None:
                    log.info("client %s went silent: cancelling job %s", client.hex(), job_id)
                    job.orphaned = True
                    self._cancel_job(router, job, "the client stopped answering")

    # -------------------------------------------------------------------------------- workers

    def _post(self, job: Job, message: p.Message) -> bool:
        if job.terminal_posted:
            return False
        job.terminal_posted = message.type in p.TERMINAL_TYPES
        message.seq = next(job.seq)
        frames = p.encode(message, self.config.signing_key)
        if not job.outbox.put(message.type, frames, job.cancel, self.config.stall_timeout_s):
            return False
        self._bell.ring()
        return True

    def _stopped_message(self, job: Job) -> p.Message:
        """`cancelled` when someone asked for it; a retryable error when the server is going away."""
        if job.cancel_reason is None and self._stopping.is_set():
            text = "the server is shutting down; submit again later"
            return p.error_message(p.E_SHUTTING_DOWN, text, job.job_id, retryable=True)
        return p.Message(p.CANCELLED, job.job_id, {"reason": job.cancel_reason or "cancelled"})

    def _worker_main(self, device: str) -> None:
        """One of ``device``'s job threads: take the fairest waiting job, run it, repeat."""
        while not self._stopping.is_set():
            job = self._queue.get(timeout=0.2)
            if job is not None:
                self._run_job(job, device)

    def _run_job(self, job: Job, device: str) -> None:
        if job.cancel.is_set():
            self._post(job, self._stopped_message(job))
            return
        job.state = "running"
        self._post(job, p.Message(p.PROGRESS, job.job_id, {"stage": "running", "device": device}))
        try:
            final = relay_job(
                self.runner, job.spec, device, job.cancel, lambda message: self._post(job, message),
                stopped=lambda: self._stopped_message(job), passthrough=(Stalled,),
            )
        except Stalled:
            job.outbox.drop_chunks()  # the client is not taking them: the error must not queue behind them
            text = f"the client took no chunk for {self.config.stall_timeout_s:.0f} s; the device was given to other jobs"
            final = p.error_message(p.E_STALLED, text, job.job_id, retryable=True)
        if self._stopping.is_set() and final.type == p.DONE:
            final = self._stopped_message(job)
        self._post(job, final)
