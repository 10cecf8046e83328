"""A job on a sidecar, as a :class:`~talkbridge.core.jobs.steps.JobStream`.

``talkbridge generate --sidecar``, ``talkbridge batch --sidecar`` and Python callers send the job's
files and options to a ``talkbridge serve`` (often on a GPU box) and get back the same steps a local
run makes: official motion chunks with their frames. The sidecar sends the job's facts
(:class:`~talkbridge.core.jobs.steps.JobInfo`) with its ``done`` message, so the writer produces
the same files and metadata as a local run. Closing or cancelling the stream cancels the remote job.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from talkbridge.bridge import protocol as p
from talkbridge.core.errors import InputError, TalkbridgeError
from talkbridge.core.jobs.request import JobRequest
from talkbridge.core.jobs.steps import JobInfo, JobStream, Step

log = logging.getLogger(__name__)

REFERENCE_ROLES = ("ref_eyeblink", "ref_pose")


def choose_remote_engine(requested: str, capabilities: dict[str, Any], address: str) -> str:
    """``auto`` picks SadTalker when the server can render it, else lite; a named engine must be served."""
    render_engines = list(capabilities.get("render_engines", []))
    if requested == "auto":
        engine = "sadtalker" if "sadtalker" in render_engines else "lite"
        log.info("engine: %s (auto: the sidecar at %s renders %s)", engine, address, ", ".join(render_engines) or "nothing")
        return engine
    if requested not in render_engines:
        raise InputError(
            f"the sidecar at {address} does not render {requested!r} video (it renders: {', '.join(render_engines) or 'nothing'}); "
            + ("start it with --checkpoints" if requested == "sadtalker" else "pick another engine")
        )
    log.info("engine: %s (on the sidecar at %s)", requested, address)
    return requested


def submit_inputs(request: JobRequest, engine: str) -> dict[str, Any]:
    """The submit's inputs: file paths the client sends as bytes (never paths the server would open)."""
    inputs: dict[str, Any] = {"audio": request.audio}
    if engine == "sadtalker":
        inputs["image"] = request.image  # the lite video shows the mannequin: no portrait to send
        for role in REFERENCE_ROLES:
            source = getattr(request, role)
            if source is None:
                continue
            if not isinstance(source, (str, Path)):
                raise InputError(f"--{role.replace('_', '-')}: with --sidecar a reference must be a file (a video or a .mat), not rows in memory")
            if not Path(source).is_file():
                raise InputError(f"--{role.replace('_', '-')}: reference file not found", Path(source))
            inputs[role] = Path(source)
    return inputs


def open_remote_job(request: JobRequest, target: Any, render: bool = True) -> JobStream:
    """Submit ``request`` to the sidecar at ``target`` (``.address``, ``.client()``) and stream its steps.

    Connection, engine choice and the submit happen here, so refusals surface before any output.
    """
    client = target.client()
    try:
        welcome = client.connect(timeout=10.0)
        engine = choose_remote_engine(request.options.engine, welcome["capabilities"], target.address)
        size = request.options.resolved_size(engine)
        handle = client.submit(
            engine,
            options=request.options.to_wire(),
            render_size=size if render else None,
            **submit_inputs(request, engine),
        )
    except BaseException:
        client.close()
        raise
    info = JobInfo(engine=engine, engine_version="", n_frames=0, expression_scale=request.options.expression_scale)
    stream = JobStream(info, iter(()), cancel=lambda: handle.cancel())
    stream.steps = _remote_steps(handle, client, stream, target.address)
    return stream


def _remote_steps(handle: Any, client: Any, stream: JobStream, address: str) -> Iterator[Step]:
    final = None
    try:
        for event in handle:
            if event.type == p.CHUNK:
                frames = event.arrays.get("frames")
                yield Step(event.motion_chunk(), None if frames is None else np.asarray(frames))
            elif event.terminal:
                final = event
                break
        if final is None or final.type != p.DONE:
            reason = "the connection ended" if final is None else final.body.get("message", final.type)
            raise TalkbridgeError(f"the sidecar at {address} did not finish the job: {reason}")
        facts = final.body.get("job")
        if not isinstance(facts, dict):
            raise TalkbridgeError(f"the sidecar at {address} sent no job facts with 'done' (is it an older talkbridge?)")
        stream.info = JobInfo.from_wire(facts)
    except BaseException:
        if final is None:
            handle.cancel()
        raise
    finally:
        client.close()
