"""The job stream on the wire: the one place that turns a job's facts and steps into messages and back.

A job is one stream everywhere (:mod:`talkbridge.core.jobs.steps`): its :class:`JobInfo` once, then
its :class:`Step` s. On the sidecar wire that is an ``info`` message, then one or more ``chunk``
messages per step (each motion channel and the frames as separate binary frames, split along the
frame axis so no message passes :data:`MAX_STEP_MESSAGE_BYTES`), then ``done``. A step is encoded
once, where the engine runs (a worker process, a Ray actor, or the server itself), and decoded once,
by the client; the server and the worker-process boundary in between relay the messages without
rebuilding them, and arrays stay views on the received frames throughout (no copies).

The submit travels the same way: the client encodes it once and each process that runs an engine
decodes it once (:func:`spec_from_submit`); the server forwards the message it received.

Only numpy and the standard library are imported (plus this package's protocol and the numpy-only
motion contract): the Blender add-on uses this module.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np

from talkbridge.bridge import protocol as p
from talkbridge.core.jobs.steps import JobInfo, JobStream, Step
from talkbridge.core.motion import CHANNEL, MotionChunk

log = logging.getLogger(__name__)

FRAMES = "frames"
"""The buffer that carries a step's video frames, (n, H, W, 3) uint8, beside the motion channels."""

MAX_STEP_MESSAGE_BYTES = 64 * 2**20
"""A step larger than this (SadTalker: 250 frames of 512 px are 196 MB) goes out as several
``chunk`` messages, contiguous and in order, so every message fits a client's limits and credit
paces the stream at a useful granularity."""

INTERNAL_LIMITS = p.Limits(max_header_bytes=16 * 2**20, max_buffers=32, max_buffer_bytes=2**40, max_message_bytes=2**40)
"""Between a server and its own worker processes: both ends are trusted, the server already
checked the client's inputs against its public limits."""


# ------------------------------------------------------------------------------------------ facts


def info_message(job_id: str, info: JobInfo) -> p.Message:
    """The job's facts, sent once before its first step."""
    return p.Message(p.INFO, job_id, jsonable(info.to_wire()))


def info_from_body(body: dict[str, Any]) -> JobInfo:
    """The :class:`JobInfo` an ``info`` message's body carries."""
    return JobInfo.from_wire(body)


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON")


def jsonable(facts: dict[str, Any]) -> dict[str, Any]:
    """``facts`` as plain JSON values (numpy scalars and arrays become numbers and lists).

    A value that cannot be JSON (an object, NaN) is left out with a warning: facts about a clip must
    not fail the clip.
    """
    kept: dict[str, Any] = {}
    for key, value in facts.items():
        try:
            kept[str(key)] = json.loads(json.dumps(value, default=_plain, allow_nan=False))
        except (TypeError, ValueError) as error:
            log.warning("dropped the job fact %r: %s", key, error)
    return kept


# ------------------------------------------------------------------------------------------ steps


def step_messages(job_id: str, step: Step, max_bytes: int = MAX_STEP_MESSAGE_BYTES) -> Iterator[p.Message]:
    """``step`` as ``chunk`` messages: each channel and the frames as a buffer, split along the frame
    axis so no message passes ``max_bytes``. The buffers are views on the step's arrays."""
    chunk = step.chunk
    arrays: dict[str, np.ndarray] = dict(chunk.arrays())
    if step.frames is not None:
        arrays[FRAMES] = step.frames
    bytes_per_frame = sum(array[:1].nbytes for array in arrays.values()) or 1
    count = max(1, min(chunk.n_frames, max_bytes // bytes_per_frame))
    for offset in range(0, max(chunk.n_frames, 1), count):
        n = min(count, chunk.n_frames - offset)
        buffers = {name: array[offset : offset + n] for name, array in arrays.items()}
        yield p.Message(p.CHUNK, job_id, {"start": chunk.start + offset, "n_frames": n}, buffers)


def step_from_message(body: dict[str, Any], buffers: dict[str, Any]) -> Step:
    """The :class:`Step` a ``chunk`` message carries (its arrays stay views on the message's frames)."""
    channels = {name: value for name, value in buffers.items() if name in CHANNEL}
    frames = buffers.get(FRAMES)
    return Step(MotionChunk.from_arrays(int(body["start"]), channels), None if frames is None else np.asarray(frames))


def stream_messages(job_id: str, stream: JobStream, max_bytes: int = MAX_STEP_MESSAGE_BYTES) -> Iterator[p.Message]:
    """A whole job in its wire form: the ``info`` message, then every step's ``chunk`` messages.

    Closing the iterator closes the job (its threads and sockets end now).
    """
    try:
        yield info_message(job_id, stream.info)
        for step in stream.steps:
            yield from step_messages(job_id, step, max_bytes)
    finally:
        stream.close()


# ------------------------------------------------------------------------------------------ submit

REFERENCE_INPUTS = ("ref_eyeblink", "ref_pose")
"""SadTalker's reference inputs: the bytes of a video (or of its coefficient ``.mat``) each."""


@dataclass
class JobSpec:
    """One submitted job, as a runner sees it: inputs are in memory, never paths on the client.

    ``submit`` is the decoded message it came from (arrays are views on its frames), which a runner
    that moves the job to another process forwards as it is instead of encoding it again.
    """

    job_id: str
    engine: str
    options: dict[str, Any] = field(default_factory=dict)
    audio_file: np.ndarray | None = None  # uint8 bytes of an audio file
    audio_name: str = "audio.wav"
    audio_pcm: np.ndarray | None = None  # or 16 kHz mono float32 samples
    image_file: np.ndarray | None = None  # uint8 bytes of an image file
    image_name: str = "image.png"
    first_frame: np.ndarray | None = None
    render_size: int | None = None
    references: dict[str, tuple[np.ndarray, str]] = field(default_factory=dict)  # name -> (bytes, file name)
    submit: p.Message | None = field(default=None, repr=False, compare=False)

    def to_submit(self) -> p.Message:
        """The ``submit`` message of this job: the one it was decoded from, or one built for it
        (a job made in code, by a test or a benchmark)."""
        if self.submit is not None:
            return self.submit
        body: dict[str, Any] = {"engine": self.engine, "options": dict(self.options)}
        buffers: dict[str, Any] = {}
        if self.audio_file is not None:
            buffers["audio"], body["audio_name"] = self.audio_file, self.audio_name
        if self.audio_pcm is not None:
            buffers["audio_pcm"] = self.audio_pcm
        if self.image_file is not None:
            buffers["image"], body["image_name"] = self.image_file, self.image_name
        if self.first_frame is not None:
            buffers["first_frame"] = self.first_frame
        if self.render_size is not None:
            body["render_size"] = int(self.render_size)
        for name, (data, file_name) in self.references.items():
            buffers[name], body[f"{name}_name"] = data, file_name
        return p.Message(p.SUBMIT, self.job_id, body, buffers)


def spec_from_submit(message: p.Message) -> JobSpec:
    """The job a decoded ``submit`` asks for; arrays stay views on the received frames (no copy)."""
    body = message.body
    assert message.job_id is not None
    return JobSpec(
        job_id=message.job_id,
        engine=body["engine"],
        options=dict(body.get("options", {})),
        audio_file=message.buffers.get("audio"),
        audio_name=body.get("audio_name", "audio.wav"),
        audio_pcm=message.buffers.get("audio_pcm"),
        image_file=message.buffers.get("image"),
        image_name=body.get("image_name", "image.png"),
        first_frame=message.buffers.get("first_frame"),
        render_size=body.get("render_size"),
        references={
            name: (message.buffers[name], body.get(f"{name}_name", f"{name}.mat"))
            for name in REFERENCE_INPUTS
            if name in message.buffers
        },
        submit=message,
    )


def input_bytes(message: p.Message) -> int:
    """How many bytes of inputs a decoded submit holds (what a queued job keeps in memory)."""
    return sum(int(np.asarray(value).nbytes) for value in message.buffers.values())
