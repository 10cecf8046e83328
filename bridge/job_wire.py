"""Jobs and their outputs in the wire protocol's own encoding, for every hop that carries them.

The public socket (client -> server) and the private one between the server and a worker process
(bridge/workers.py) use the same messages: a job is a ``submit`` (JSON header, inputs as raw
buffers) and an engine output is an ``output`` (a ``chunk``'s buffers plus the runner's JSON
``info``). Keeping one conversion here means a worker sees exactly the :class:`JobSpec` the server
decoded, and nothing is ever pickled.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import numpy as np

from talkbridge.bridge import protocol as p
from talkbridge.bridge.jobs import REFERENCE_INPUTS, JobOutput, JobSpec
from talkbridge.core.motion import MotionChunk

log = logging.getLogger(__name__)

INTERNAL_LIMITS = p.Limits(max_header_bytes=16 * 2**20, max_buffers=16, max_buffer_bytes=2**40, max_message_bytes=2**40)
"""Between a server and its own worker processes: both ends are trusted, the server already
checked the client's inputs against its public limits."""


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
    )


def submit_from_spec(job: JobSpec) -> p.Message:
    """The ``submit`` that :func:`spec_from_submit` turns back into ``job`` (arrays are not copied)."""
    body: dict[str, Any] = {"engine": job.engine, "options": dict(job.options)}
    buffers: dict[str, Any] = {}
    if job.audio_file is not None:
        buffers["audio"] = job.audio_file
        body["audio_name"] = job.audio_name
    if job.audio_pcm is not None:
        buffers["audio_pcm"] = job.audio_pcm
    if job.image_file is not None:
        buffers["image"] = job.image_file
        body["image_name"] = job.image_name
    if job.first_frame is not None:
        buffers["first_frame"] = job.first_frame
    if job.render_size is not None:
        body["render_size"] = int(job.render_size)
    for name, (data, file_name) in job.references.items():
        buffers[name] = data
        body[f"{name}_name"] = file_name
    return p.Message(p.SUBMIT, job.job_id, body, buffers)


def input_bytes(message: p.Message) -> int:
    """How many bytes of inputs a decoded submit holds (what a queued job keeps in memory)."""
    return sum(int(np.asarray(value).nbytes) for value in message.buffers.values())


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON")


def jsonable_info(info: dict[str, Any]) -> dict[str, Any]:
    """``info`` as plain JSON values (numpy scalars and arrays become numbers and lists).

    A value that cannot be JSON (an object, NaN) is left out with a warning: facts about a clip must
    not fail the clip.
    """
    kept: dict[str, Any] = {}
    for key, value in info.items():
        try:
            kept[str(key)] = json.loads(json.dumps(value, default=_plain, allow_nan=False))
        except (TypeError, ValueError) as error:
            log.warning("dropped the engine's info %r: %s", key, error)
    return kept


def output_message(job_id: str, output: JobOutput) -> p.Message:
    """One engine output as an ``output`` message: the motion arrays, the frames, and ``info``."""
    chunk = output.chunk
    buffers: dict[str, Any] = dict(chunk.arrays())
    if output.frames is not None:
        buffers["frames"] = output.frames
    body = {"start": int(chunk.start), "n_frames": int(chunk.n_frames), "info": jsonable_info(output.info)}
    return p.Message(p.OUTPUT, job_id, body, buffers)


def output_from_message(message: p.Message) -> JobOutput:
    """The :class:`JobOutput` an ``output`` message carries (arrays are views on its frames)."""
    chunk = MotionChunk.from_arrays(message.body["start"], {k: v for k, v in message.buffers.items() if k != "frames"})
    return JobOutput(chunk, message.buffers.get("frames"), dict(message.body.get("info", {})))
