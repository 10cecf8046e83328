"""One generation job against a sidecar, without bpy: connect, submit, collect events, cancel.

Threads: the talkbridge client's I/O thread owns the ZeroMQ socket; a short-lived starter thread
says hello and submits (so a slow or wrong address never blocks Blender's main thread); the caller
(a ``bpy.app.timers`` callback, or the headless loop) only calls :meth:`JobController.poll`, which
never waits.
"""

from __future__ import annotations

import logging
import threading
import time
import wave
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from talkbridge.bridge import protocol as p
from talkbridge.bridge.client import Client, Event
from talkbridge.core.errors import TalkbridgeError
from talkbridge.core.motion import FPS

log = logging.getLogger(__name__)

CONNECTING, RUNNING, DONE, CANCELLED, FAILED = "connecting", "running", "done", "cancelled", "failed"
FINISHED_STATES = frozenset({DONE, CANCELLED, FAILED})


@dataclass
class JobSettings:
    """Everything one job needs, as plain values (read from the panel on the main thread)."""

    address: str
    engine: str
    audio_path: str
    image_path: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    render_size: int | None = None
    connect_timeout_s: float = 10.0
    server_key: bytes | None = None
    client_keypair: tuple[bytes, bytes] | None = None
    signing_key: bytes | None = None
    server_timeout_s: float = 2.0
    expected_frames: int | None = None  # for the progress bar; read from WAV headers when not given


def audio_frames(path: str | Path, fps: int = FPS) -> int | None:
    """Expected motion frames for a WAV file (for the progress bar); None for other formats."""
    try:
        with wave.open(str(path), "rb") as reader:
            return max(1, int(round(reader.getnframes() / reader.getframerate() * fps)))
    except (OSError, EOFError, wave.Error):
        return None


def check_inputs(settings: JobSettings) -> None:
    """Fail fast, on the main thread, for inputs the sidecar would refuse anyway."""
    audio = Path(settings.audio_path) if settings.audio_path else None
    if audio is None or not audio.is_file():
        raise TalkbridgeError(f"{settings.audio_path or '(no audio)'}: audio file not found; pick a file or a sound strip")
    if settings.image_path and not Path(settings.image_path).is_file():
        raise TalkbridgeError(f"{settings.image_path}: portrait image not found")
    if settings.engine == "sadtalker" and not settings.image_path:
        raise TalkbridgeError("SadTalker starts its motion (and renders its video) from a portrait: pick a portrait image")


class JobController:
    """A job's life from connect to its terminal event; every public method returns at once."""

    def __init__(self, settings: JobSettings, client_factory: Callable[..., Client] = Client) -> None:
        self.settings = settings
        self.state = CONNECTING
        self.status = f"connecting to {settings.address}"
        self.error: str | None = None
        self.job_id: str | None = None
        self.frames_done = 0
        self.expected_frames = settings.expected_frames or audio_frames(settings.audio_path)
        self.engine_info: dict[str, Any] = {}
        self.started_at = time.monotonic()
        self._client_factory = client_factory
        self._client: Client | None = None
        self._lock = threading.Lock()
        self._cancel_requested = False
        self._starter: threading.Thread | None = None
        self._start_error: str | None = None

    # ------------------------------------------------------------------------------ control

    def start(self) -> "JobController":
        self._starter = threading.Thread(target=self._connect_and_submit, name="talkbridge-submit", daemon=True)
        self._starter.start()
        return self

    def _connect_and_submit(self) -> None:
        s = self.settings
        try:
            client = self._client_factory(
                s.address,
                server_key=s.server_key,
                client_keypair=s.client_keypair,
                signing_key=s.signing_key,
                server_timeout_s=s.server_timeout_s,
            )
        except TalkbridgeError as error:
            self._start_error = str(error)
            return
        with self._lock:
            self._client = client
            cancelled = self._cancel_requested
        if cancelled:
            return
        try:
            welcome = client.connect(timeout=s.connect_timeout_s)
            engines = welcome.get("capabilities", {}).get("engines", [])
            if engines and s.engine not in engines:
                raise TalkbridgeError(f"{s.address}: the sidecar has no {s.engine!r} engine (it offers {', '.join(engines)})")
            inputs: dict[str, Any] = {"audio": s.audio_path, "options": dict(s.options)}
            if s.image_path:
                inputs["image"] = s.image_path
            if s.render_size:
                inputs["render_size"] = int(s.render_size)
            with self._lock:
                if self._cancel_requested:
                    return
                self.job_id = client.submit_nowait(s.engine, **inputs)
        except TalkbridgeError as error:
            self._start_error = str(error)
        except Exception as error:  # noqa: BLE001 - shown in the panel rather than lost in a thread
            log.exception("submitting the job failed")
            self._start_error = f"could not submit the job: {error}"

    def cancel(self) -> None:
        """Ask the sidecar to stop; the state becomes ``cancelled`` when it confirms (or at once if not yet submitted)."""
        with self._lock:
            self._cancel_requested = True
            client, job_id = self._client, self.job_id
        if self.state in FINISHED_STATES:
            return
        if client is not None and job_id is not None:
            client.cancel(job_id)
            self.status = "cancelling"
        else:
            self._finish(CANCELLED, "cancelled before the job started")

    def close(self) -> None:
        """Release the connection (after the job ended, or to abandon it on file close)."""
        with self._lock:
            client, self._client = self._client, None
            self._cancel_requested = True
        if client is not None:
            if self.job_id is not None and self.state not in FINISHED_STATES:
                client.cancel(self.job_id)
                deadline = time.monotonic() + 0.3  # give the cancel a moment to leave the socket
                while time.monotonic() < deadline and client.server_alive:
                    time.sleep(0.02)
                    if any(e.terminal and e.job_id == self.job_id for e in client.poll_events()):
                        break
            client.close()
        if self.state not in FINISHED_STATES:
            self._finish(CANCELLED, "cancelled")

    @property
    def finished(self) -> bool:
        return self.state in FINISHED_STATES

    @property
    def progress(self) -> float:
        """0..1 when the clip length is known, else a best effort from frames received."""
        if self.state == DONE:
            return 1.0
        if self.expected_frames:
            return min(0.99, self.frames_done / self.expected_frames)
        return 0.0

    def _finish(self, state: str, status: str, error: str | None = None) -> None:
        self.state = state
        self.status = status
        self.error = error

    # ------------------------------------------------------------------------------ events

    def poll(self, max_events: int = 64) -> list[Event]:
        """This job's new events (chunks included), without waiting; updates state/status/error."""
        if self.finished:
            return []
        if self._start_error is not None:
            self._finish(FAILED, "failed", self._start_error)
            return []
        with self._lock:
            client, job_id = self._client, self.job_id
        if client is None or job_id is None:
            elapsed = time.monotonic() - self.started_at
            self.status = f"connecting to {self.settings.address} ({elapsed:.0f} s)"
            return []
        taken: list[Event] = []
        for event in client.poll_events(max_events):
            if event.job_id is None:
                if event.type == p.ERROR:
                    log.warning("sidecar: %s", event.body.get("message"))
                continue
            if event.job_id != job_id:
                continue
            taken.append(event)
            self._on_event(event)
            if self.finished:
                break
        return taken

    def _on_event(self, event: Event) -> None:
        kind = event.type
        if kind == p.ACCEPTED:
            position = event.body.get("position", 0)
            self.state = RUNNING
            self.status = "queued on the sidecar" if position else "running"
        elif kind == p.PROGRESS:
            self.state = RUNNING
            stage = event.body.get("stage", "")
            self.status = f"{stage}" + (f" on {event.body['device']}" if event.body.get("device") else "")
        elif kind == p.CHUNK:
            self.state = RUNNING
            self.frames_done = int(event.body["start"]) + int(event.body["n_frames"])
            total = f"/{self.expected_frames}" if self.expected_frames else ""
            self.status = f"receiving motion: {self.frames_done}{total} frames"
        elif kind == p.DONE:
            self.frames_done = int(event.body.get("n_frames", self.frames_done))
            self.engine_info = {k: event.body[k] for k in ("engine", "engine_version") if k in event.body}
            self._finish(DONE, f"done: {self.frames_done} frames")
        elif kind == p.CANCELLED:
            self._finish(CANCELLED, f"cancelled after {self.frames_done} frames")
        elif kind == p.ERROR:
            message = event.body.get("message", "unknown error")
            code = event.body.get("code", "error")
            if code == p.E_SERVER_LOST:
                message = f"{message}; the motion received so far is kept"
            self._finish(FAILED, "failed", message)
