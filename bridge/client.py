"""The sidecar client, for the Blender add-on, batch scripts and ops health checks.

It imports only numpy, pyzmq and the standard library (plus this package's protocol module), so
Blender can bundle it without torch.

One background I/O thread owns the DEALER socket: it sends what callers queue, heartbeats the
server, re-sends unanswered submits and cancels (safe: the server treats a repeated job_id as the
same job), and routes incoming events. Two ways to consume them:

* blocking: ``for event in client.submit(...)`` yields a job's events until its terminal one;
* non-blocking: ``client.submit_nowait(...)`` then ``client.poll_events()`` from a Blender timer,
  which never waits.

Taking a chunk event (either way) tells the server one more chunk was consumed, so a consumer that
stops reading stops the stream after ``credit`` chunks instead of letting data pile up.

A submit whose inputs exceed the limits the server announced in its welcome fails at once with
``too_large`` (:class:`InputTooLarge`) instead of being sent. When the server stops answering, every
unfinished job ends with ``server_lost`` and the client asks the server to cancel those jobs (at
once, and again when the server is heard from), so a lost job never keeps a device busy.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from typing import Any

import numpy as np
import zmq

from talkbridge.bridge import protocol as p
from talkbridge.bridge.client_events import (  # noqa: F401 (part of this module's API)
    AuthenticationFailed,
    Event,
    InputTooLarge,
    JobHandle,
    JobResult,
    ServerRefused,
    ServerUnavailable,
    error_event,
)
from talkbridge.bridge.client_inputs import PendingJob, read_input
from talkbridge.bridge.wakeup import Doorbell

log = logging.getLogger(__name__)

CLIENT_NAME = "talkbridge-client"


class Client:
    """A connection to one sidecar. Thread-safe; close it (or use ``with``) when done.

    ``server_key`` is the server's CURVE public key (z85 bytes) and ``client_keypair`` this client's
    (public, secret); both or neither. ``signing_key`` must match the server's when it has one.
    """

    def __init__(
        self,
        address: str = p.DEFAULT_ADDRESS,
        *,
        server_key: bytes | None = None,
        client_keypair: tuple[bytes, bytes] | None = None,
        signing_key: bytes | None = None,
        heartbeat_s: float = 0.5,
        server_timeout_s: float = 2.0,
        retry_s: float = 2.0,
        max_attempts: int = 4,
        credit: int = 4,
        limits: p.Limits = p.DEFAULT_LIMITS,
    ) -> None:
        if (server_key is None) != (client_keypair is None):
            raise p.BridgeError("CURVE needs both the server's public key and this client's key pair")
        self.address = address
        self._server_key = server_key
        self._client_keypair = client_keypair
        self._signing_key = signing_key
        self._heartbeat_s = heartbeat_s
        self._server_timeout_s = server_timeout_s
        self._retry_s = retry_s
        self._max_attempts = max_attempts
        self._credit = credit
        self._limits = limits
        self._context = zmq.Context()
        self._bell = Doorbell()
        self._commands: "queue.SimpleQueue[tuple[Any, ...]]" = queue.SimpleQueue()
        self._jobs: dict[str, PendingJob] = {}
        self._jobs_lock = threading.Lock()
        self.events: "queue.Queue[Event]" = queue.Queue()
        self.welcome: dict[str, Any] | None = None
        self._welcomed = threading.Event()
        self._connect_error: p.BridgeError | None = None
        self._thread: threading.Thread | None = None
        self._closed = False
        self.server_alive = False
        self._pings: dict[int, tuple[float, threading.Event, list[float]]] = {}
        self._ping_ids = itertools.count(1)
        self._lost_jobs: set[str] = set()  # ended by server_lost; cancelled on the server when it answers
        self._connections = 0  # transport connections made (for telling a wrong key from no server)

    # -------------------------------------------------------------------------------- public API

    def connect(self, timeout: float = 5.0) -> dict[str, Any]:
        """Say hello and wait for the server's welcome (its version and capabilities)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._io_main, name="talkbridge-client-io", daemon=True)
            self._thread.start()
        self._send_message(p.Message(p.HELLO, body={"versions": list(p.SUPPORTED_VERSIONS), "client": CLIENT_NAME}))
        deadline = time.monotonic() + timeout
        while not self._welcomed.wait(0.05):
            if self._connect_error is not None:
                raise self._connect_error
            if time.monotonic() > deadline:
                raise ServerUnavailable(self._no_answer_text(timeout))
        if self._connect_error is not None:
            raise self._connect_error
        assert self.welcome is not None
        return self.welcome

    def _no_answer_text(self, timeout: float) -> str:
        text = f"{self.address}: no answer to hello within {timeout:.1f} s"
        if self._server_key is not None and self._connections:
            return text + " although the address accepts connections; " + self._key_hint()
        return text + " (is `talkbridge serve` running there?)"

    def _key_hint(self) -> str:
        """Which CURVE keys this client used, for messages about a handshake that failed."""
        assert self._server_key is not None and self._client_keypair is not None
        server, mine = self._server_key.decode("ascii", "replace"), self._client_keypair[0].decode("ascii", "replace")
        return (
            f"the CURVE handshake failed: is {server} (the --server-key this client uses) really that server's "
            f"public key? This client's public key is {mine}; it must be in the server's --allow folder."
        )

    @property
    def server_limits(self) -> p.Limits | None:
        """The limits the server announced in its welcome (None before a welcome)."""
        return None if self.welcome is None else p.Limits.from_dict(self.welcome.get("limits"))

    def submit(self, engine: str, **inputs: Any) -> JobHandle:
        """Queue a job and return a handle to iterate its events (blocking API).

        Inputs: ``audio`` (path, file bytes or 16 kHz float32 samples), ``image`` (path or bytes),
        ``first_frame`` (73-row array), ``ref_eyeblink`` / ``ref_pose`` (SadTalker reference videos or
        their ``.mat``: path or bytes), ``options`` (dict), ``render_size`` (int), ``credit`` (int),
        ``job_id`` (reuse one to retry a submit safely).
        """
        sink: "queue.Queue[Event]" = queue.Queue()
        job_id = self._submit(engine, sink, **inputs)
        return JobHandle(self, job_id, sink)

    def submit_nowait(self, engine: str, **inputs: Any) -> str:
        """Queue a job whose events go to :meth:`poll_events`; returns its job_id at once."""
        return self._submit(engine, None, **inputs)

    def poll_events(self, max_events: int = 1000, timeout: float = 0.0) -> list[Event]:
        """The events waiting for the non-blocking API; with ``timeout`` wait that long for the
        first (0: never wait, as a Blender timer needs)."""
        taken: list[Event] = []
        while len(taken) < max_events:
            try:
                event = self.events.get(timeout=timeout) if timeout and not taken else self.events.get_nowait()
            except queue.Empty:
                break
            if event.type == p.CHUNK and event.job_id:
                self.grant_credit(event.job_id, 1)
            taken.append(event)
        return taken

    def cancel(self, job_id: str) -> None:
        """Ask the server to stop a job (re-sent until it confirms); its ``cancelled`` event follows."""
        self._commands.put(("cancel", job_id))
        self._bell.ring()

    def grant_credit(self, job_id: str, n: int = 1) -> None:
        """Say that ``n`` more chunks of ``job_id`` were taken, so the server may send as many more.

        Done for you as chunk events are taken. The server is told the running total, so a lost
        credit message is made good by the next one (re-sent while a job waits for chunks).
        """
        self._commands.put(("credit", job_id, n))
        self._bell.ring()

    def ping(self, timeout: float = 2.0) -> float:
        """Round-trip time to the server in seconds."""
        token = next(self._ping_ids)
        answered = threading.Event()
        holder: list[float] = []
        self._pings[token] = (time.perf_counter(), answered, holder)
        self._send_message(p.Message(p.PING, body={"t": token}))
        try:
            if not answered.wait(timeout):
                raise ServerUnavailable(f"{self.address}: no pong within {timeout:.1f} s")
            return holder[0]
        finally:
            self._pings.pop(token, None)

    def close(self) -> None:
        """Stop the I/O thread and release the socket; unfinished jobs end with a client_closed error."""
        if self._closed:
            return
        self._closed = True
        if self._thread is not None:
            self._commands.put(("close",))
            self._bell.ring()
            self._thread.join(5.0)
        if self._thread is not None and self._thread.is_alive():
            self._context.destroy(linger=0)  # the I/O thread is stuck: do not hang on its socket
        else:
            self._context.term()
        self._bell.close()

    def __enter__(self) -> "Client":
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -------------------------------------------------------------------------------- internals

    def _submit(self, engine: str, sink: "queue.Queue[Event] | None", **inputs: Any) -> str:
        if self._closed:
            raise p.BridgeError(f"{self.address}: this client is closed; make a new one")
        if self._thread is None:
            self.connect()
        known = {"audio", "image", "first_frame", "options", "render_size", "credit", "job_id", "ref_eyeblink", "ref_pose"}
        unknown = set(inputs) - known
        if unknown:
            raise TypeError(f"unknown submit inputs: {sorted(unknown)}")
        job_id = inputs.get("job_id") or p.new_id()
        if not p.valid_id(job_id):
            raise p.BridgeError(f"job id {job_id!r} must be 1-64 characters of letters, digits and _.:-")
        body: dict[str, Any] = {"engine": engine, "credit": int(inputs.get("credit") or self._credit)}
        if inputs.get("options"):
            body["options"] = dict(inputs["options"])
        if inputs.get("render_size"):
            body["render_size"] = int(inputs["render_size"])
        buffers: dict[str, Any] = {}
        audio = inputs.get("audio")
        if audio is None:
            raise p.BridgeError("a job needs audio: a path, the file's bytes or 16 kHz float32 samples")
        if isinstance(audio, np.ndarray):
            buffers["audio_pcm"] = np.ascontiguousarray(audio, dtype=np.float32).reshape(-1)
        else:
            buffers["audio"], body["audio_name"] = read_input(audio, "audio")
        if inputs.get("image") is not None:
            buffers["image"], body["image_name"] = read_input(inputs["image"], "image")
        if inputs.get("first_frame") is not None:
            buffers["first_frame"] = np.ascontiguousarray(inputs["first_frame"], dtype=np.float32).reshape(-1)
        for name in ("ref_eyeblink", "ref_pose"):
            if inputs.get(name) is not None:
                buffers[name], body[f"{name}_name"] = read_input(inputs[name], name.replace("_", " ") + " reference")
        message = p.Message(p.SUBMIT, job_id, body, buffers)
        limits = self.server_limits
        if limits is not None:
            try:
                limits.check_outgoing(message)
            except p.ProtocolError as error:
                raise InputTooLarge(f"{self.address}: {error}", job_id) from None
        frames = p.encode(message, self._signing_key)
        job = PendingJob(job_id, frames, sink)
        with self._jobs_lock:
            if job_id in self._jobs and not self._jobs[job_id].finished:
                raise p.BridgeError(f"job {job_id} is already running on this client")
            if len(self._jobs) > 1000:  # forget old finished jobs so a long session stays small
                for old in [key for key, value in self._jobs.items() if value.finished][:500]:
                    del self._jobs[old]
            self._jobs[job_id] = job
        self._commands.put(("submit", job_id))
        self._bell.ring()
        return job_id

    def _send_message(self, message: p.Message) -> None:
        self._commands.put(("send", p.encode(message, self._signing_key)))
        self._bell.ring()

    def _emit(self, job: PendingJob | None, event: Event) -> None:
        if job is not None and job.sink is not None:
            job.sink.put(event)
        else:
            self.events.put(event)

    def _finish_all(self, code: str, message: str, retryable: bool) -> list[str]:
        """End every unfinished job with an error event; returns their ids."""
        with self._jobs_lock:
            pending = [job for job in self._jobs.values() if not job.finished]
        for job in pending:
            job.finished = True
            self._emit(job, error_event(job.job_id, code, message, retryable))
        return [job.job_id for job in pending]

    def _cancel_lost_jobs(self, dealer: zmq.Socket) -> None:
        """Ask the server to cancel jobs this client gave up on, so none keeps a device or credit.

        Sent when the server is declared lost (libzmq holds it until the connection works) and
        again when the server is heard from; a cancel of a finished job is answered harmlessly.
        """
        for job_id in sorted(self._lost_jobs):
            self._send(dealer, p.encode(p.Message(p.CANCEL, job_id), self._signing_key))

    def _socket(self) -> tuple[zmq.Socket, zmq.Socket | None]:
        dealer = self._context.socket(zmq.DEALER)
        dealer.linger = 0
        dealer.setsockopt(zmq.MAXMSGSIZE, self._limits.socket_max_frame_bytes)
        dealer.ipv6 = p.is_ipv6_address(self.address)
        dealer.rcvhwm = 1000
        dealer.sndhwm = 1000
        monitor = None
        if self._server_key is not None and self._client_keypair is not None:
            dealer.curve_serverkey = self._server_key
            dealer.curve_publickey, dealer.curve_secretkey = self._client_keypair
            monitor = dealer.get_monitor_socket(
                zmq.EVENT_HANDSHAKE_FAILED_AUTH
                | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
                | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
                | zmq.EVENT_HANDSHAKE_SUCCEEDED
                | zmq.EVENT_CONNECTED
            )
        dealer.connect(self.address)
        return dealer, monitor

    def _io_main(self) -> None:
        dealer, monitor = self._socket()
        poller = zmq.Poller()
        poller.register(dealer, zmq.POLLIN)
        poller.register(self._bell.fileno(), zmq.POLLIN)
        if monitor is not None:
            poller.register(monitor, zmq.POLLIN)
        last_heard = time.monotonic()
        last_ping = 0.0
        lost_reported = False
        try:
            while True:
                ready = dict(poller.poll(50))
                if dealer in ready:
                    for _ in range(256):
                        try:
                            frames = dealer.recv_multipart(zmq.NOBLOCK, copy=False)
                        except zmq.Again:
                            break
                        try:
                            heard = self._on_frames(frames)
                        except Exception:  # never let one odd message kill the connection thread
                            log.exception("failed to handle a message from %s", self.address)
                            heard = False
                        if heard:
                            last_heard = time.monotonic()
                            if lost_reported:
                                log.info("%s answers again", self.address)
                                self._cancel_lost_jobs(dealer)
                                self._lost_jobs.clear()
                            lost_reported = False
                            self.server_alive = True
                if monitor is not None and monitor in ready:
                    self._on_monitor(monitor)
                if self._bell.fileno() in ready:
                    self._bell.drain()
                if not self._run_commands(dealer):
                    break
                now = time.monotonic()
                if now - last_ping >= self._heartbeat_s:
                    self._send(dealer, p.encode(p.Message(p.PING, body={}), self._signing_key))
                    last_ping = now
                if now - last_heard > self._server_timeout_s and not lost_reported:
                    lost_reported = True
                    self.server_alive = False
                    text = f"{self.address}: the server stopped answering (no message for {self._server_timeout_s:.1f} s)"
                    self._lost_jobs.update(self._finish_all(p.E_SERVER_LOST, text, True))
                    self._cancel_lost_jobs(dealer)  # queued by libzmq until the server can read it
                    self.events.put(error_event(None, p.E_SERVER_LOST, text, True))
                self._retry(dealer, now)
        finally:
            self._finish_all("client_closed", "the client was closed before the job ended", False)
            if monitor is not None:
                dealer.disable_monitor()
                monitor.close(0)
            dealer.close(0)

    def _send(self, dealer: zmq.Socket, frames: list[Any]) -> bool:
        try:
            dealer.send_multipart(frames, zmq.NOBLOCK, copy=False)
            return True
        except zmq.Again:
            return False

    def _run_commands(self, dealer: zmq.Socket) -> bool:
        while True:
            try:
                command = self._commands.get_nowait()
            except queue.Empty:
                return True
            kind = command[0]
            if kind == "close":
                return False
            if kind == "send":
                self._send(dealer, command[1])
            elif kind == "submit":
                job = self._jobs.get(command[1])
                if job is not None:
                    job.attempts = 1
                    job.sent_at = time.monotonic()
                    self._send(dealer, job.frames)
            elif kind == "cancel":
                job = self._jobs.get(command[1])
                if job is not None and not job.finished:
                    job.cancel_requested = True
                    job.cancel_attempts = 1
                    job.cancel_sent_at = time.monotonic()
                self._send(dealer, p.encode(p.Message(p.CANCEL, command[1]), self._signing_key))
            elif kind == "credit":
                job = self._jobs.get(command[1])
                if job is not None and not job.finished:
                    job.consumed += command[2]
                    self._send_credit(dealer, job)

    def _send_credit(self, dealer: zmq.Socket, job: PendingJob) -> None:
        job.credit_sent_at = time.monotonic()
        self._send(dealer, p.encode(p.Message(p.CREDIT, job.job_id, {"consumed": job.consumed}), self._signing_key))

    def _retry(self, dealer: zmq.Socket, now: float) -> None:
        """Re-send submits not yet accepted and cancels not yet confirmed (idempotent by job_id)."""
        for job in list(self._jobs.values()):
            if job.finished:
                continue
            if not job.accepted and job.attempts and now - job.sent_at > self._retry_s:
                if job.attempts >= self._max_attempts:
                    job.finished = True
                    text = f"{self.address}: no answer to the submit after {job.attempts} attempts"
                    self._emit(job, error_event(job.job_id, p.E_NO_ANSWER, text, True))
                    continue
                job.attempts += 1
                job.sent_at = now
                self._send(dealer, job.frames)
            quiet_since = max(job.credit_sent_at, job.last_heard_at)
            if job.accepted and job.consumed and now - quiet_since > self._retry_s:
                self._send_credit(dealer, job)  # in case the last one was lost on a reconnect
            if job.cancel_requested and job.cancel_attempts and now - job.cancel_sent_at > self._retry_s:
                if job.cancel_attempts < self._max_attempts:
                    job.cancel_attempts += 1
                    job.cancel_sent_at = now
                    self._send(dealer, p.encode(p.Message(p.CANCEL, job.job_id), self._signing_key))

    def _on_monitor(self, monitor: zmq.Socket) -> None:
        from zmq.utils.monitor import recv_monitor_message

        while True:
            try:
                event = recv_monitor_message(monitor, zmq.NOBLOCK)
            except zmq.Again:
                return
            if event["event"] == zmq.EVENT_CONNECTED:
                self._connections += 1
            elif event["event"] == zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL and not self._welcomed.is_set():
                # The server could not even decrypt our hello: it holds another key pair.
                error = AuthenticationFailed(f"{self.address}: {self._key_hint()}")
                if self._connect_error is None:
                    self._connect_error = error
                    self._finish_all("auth_failed", str(error), False)
            elif event["event"] in (zmq.EVENT_HANDSHAKE_FAILED_AUTH, zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL):
                error = AuthenticationFailed(
                    f"{self.address}: the server refused the CURVE handshake (is this client's public key in its "
                    f"allow-list, and is the server key right?) {self._key_hint()}"
                )
                if self._connect_error is None:
                    self._connect_error = error
                    self._finish_all("auth_failed", str(error), False)

    def _explain_signature_failure(self, frames: list[zmq.Frame]) -> None:
        """Turn "the server could not verify us" into a clear connect error instead of a timeout.

        The reply cannot be verified (the keys differ), so it is only used to pick the message.
        """
        if self._welcomed.is_set() or self._connect_error is not None:
            return
        try:
            unverified = p.decode(frames, None, self._limits)
        except p.ProtocolError:
            unverified = None
        if unverified is not None and unverified.type == p.ERROR and unverified.body.get("code") == p.E_BAD_SIGNATURE:
            text = f"{self.address}: the server rejected this client's message signature (check the signing key)"
        else:
            text = f"{self.address}: the server's messages are not signed with this client's signing key"
        self._connect_error = AuthenticationFailed(text)

    def _on_frames(self, frames: list[zmq.Frame]) -> bool:
        """Handle one message; True when it came from the server (valid), False when dropped."""
        try:
            message = p.decode(frames, self._signing_key, self._limits)
        except p.ProtocolError as error:
            if error.code == p.E_BAD_SIGNATURE:
                self._explain_signature_failure(frames)
            log.warning("dropped a malformed message from %s: %s", self.address, error)
            return False
        kind = message.type
        if kind not in p.SERVER_TYPES:
            log.warning("dropped a %s message: servers do not send those", kind)
            return False
        if kind == p.WELCOME:
            self.welcome = dict(message.body)
            self._welcomed.set()
            return True
        if kind == p.PONG:
            waiter = self._pings.get(message.body.get("t", 0))
            if waiter is not None:
                sent, answered, holder = waiter
                holder.append(time.perf_counter() - sent)
                answered.set()
            return True
        job = self._jobs.get(message.job_id or "")
        if kind == p.ERROR and job is None:
            code, text = message.body["code"], message.body["message"]
            if not self._welcomed.is_set() and self._connect_error is None:
                if code == p.E_BAD_SIGNATURE:
                    text = f"{self.address}: the server rejected this client's message signature (check the signing key)"
                    self._connect_error = AuthenticationFailed(text)
                else:
                    self._connect_error = ServerRefused(code, text)
            self.events.put(Event(p.ERROR, message.job_id, dict(message.body)))
            return True
        if job is None or job.finished:
            return True  # late news about a job we no longer follow
        job.last_heard_at = time.monotonic()
        if kind == p.ACCEPTED:
            if job.accepted:
                return True  # the answer to a retry
            job.accepted = True
            job.frames = []  # no more retries: let the inputs go
        if kind == p.CANCELLED:
            job.cancel_requested = False
        if kind == p.CANCELLED and message.body.get("already") and message.body.get("reason") == "no such job":
            if not job.accepted:
                return True  # a cancel overtook its submit's retry: keep waiting for the job
        event = Event(kind, message.job_id, dict(message.body), dict(message.buffers))
        if event.terminal:
            job.finished = True
            job.frames = []
        self._emit(job, event)
        return True
