"""The add-on's job: the bridge's :class:`~talkbridge.bridge.remote_job.RemoteJob`, built from the panel.

Everything about talking to a sidecar (engine choice, uploads, options, the frame estimate, keys,
events) is the bridge's, shared with ``talkbridge generate --sidecar``; this module only turns the
panel's plain values into a request and checks them with messages that point at the panel.
Threads: the client's I/O thread owns the socket and a short-lived starter thread says hello and
submits, so the caller (a ``bpy.app.timers`` callback, or the headless loop) never waits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from talkbridge.bridge.remote_job import CANCELLED, CONNECTING, DONE, FAILED, RUNNING, RemoteJob, SidecarAddress
from talkbridge.core.errors import TalkbridgeError
from talkbridge.core.jobs.options import JobOptions
from talkbridge.core.jobs.request import JobRequest

__all__ = ["CANCELLED", "CONNECTING", "DONE", "FAILED", "RUNNING", "JobSettings", "check_inputs", "emotion_keys", "make_job"]

NO_EMOTION = "NONE"


@dataclass
class JobSettings:
    """Everything one job needs, as plain values (read from the panel on the main thread)."""

    address: str
    engine: str
    audio_path: str
    image_path: str | None = None
    options: dict[str, Any] = field(default_factory=dict)  # job option values by name (see core.jobs.options)
    render_size: int | None = None  # None: motion only
    connect_timeout_s: float = 10.0
    keys: Any = None  # bridge.security.ClientKeys, or None on loopback
    server_timeout_s: float = 2.0
    expected_frames: int | None = None  # the progress bar's guess until the job's facts arrive


def check_inputs(settings: JobSettings) -> None:
    """Fail fast, on the main thread, for inputs the sidecar would refuse anyway."""
    audio = Path(settings.audio_path) if settings.audio_path else None
    if audio is None or not audio.is_file():
        raise TalkbridgeError(f"{settings.audio_path or '(no audio)'}: audio file not found; pick a file or a sound strip")
    if settings.image_path and not Path(settings.image_path).is_file():
        raise TalkbridgeError(f"{settings.image_path}: portrait image not found")
    if settings.engine == "sadtalker" and not settings.image_path:
        raise TalkbridgeError("SadTalker starts its motion (and renders its video) from a portrait: pick a portrait image")


def emotion_keys(samples: Sequence[tuple[float, str, float]]) -> list[dict[str, float]] | None:
    """The job's ``emotion`` option from the take's samples of (seconds, emotion or "NONE", strength).

    None when no sample has an emotion (the job then has none). A sample equal to both neighbours
    adds nothing to a linearly interpolated track and is dropped, so a constant emotion is one key.
    """
    rows = [(float(time), name, float(strength) if name != NO_EMOTION else 0.0) for time, name, strength in samples]
    if not any(name != NO_EMOTION and strength > 0 for _, name, strength in rows):
        return None
    keys = []
    for index, (time, name, strength) in enumerate(rows):
        same_as_before = index > 0 and rows[index - 1][1:] == (name, strength)
        same_as_after = index + 1 < len(rows) and rows[index + 1][1:] == (name, strength)
        if same_as_before and (same_as_after or index + 1 == len(rows)):
            continue
        keys.append({"time": time, **({name: min(max(strength, 0.0), 1.0)} if name != NO_EMOTION else {})})
    return keys


def make_job(settings: JobSettings) -> RemoteJob:
    """The job for ``settings``: its options checked by the job layer's one definition."""
    options = JobOptions.from_mapping({**settings.options, "engine": settings.engine, "size": settings.render_size})
    request = JobRequest(
        audio=Path(settings.audio_path),
        image=Path(settings.image_path) if settings.image_path else None,
        options=options,
    )
    target = SidecarAddress(settings.address, settings.keys, settings.server_timeout_s)
    return RemoteJob(
        request, target, render=settings.render_size is not None,
        connect_timeout_s=settings.connect_timeout_s, expected_frames=settings.expected_frames,
    )
