"""``talkbridge batch --ray``: rows run on a pool of Ray actors; this driver writes every file.

Each row's job runs in a :class:`~talkbridge.cluster.actors.RowActor` (its engines stay loaded for
the next row) and streams back through a Ray streaming generator; the driver turns that into a
:class:`JobStream` and hands it to the one writer, so the files are those of an in-process run.
When a node dies, Ray restarts its actors elsewhere and re-runs their jobs, skipping the steps the
driver already has (see :mod:`.pool`); the files are only renamed into place once complete, so a
re-run never leaves duplicates.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterator

from talkbridge.batch.manifest import BatchRow
from talkbridge.batch.runner import RowResult, stop_aware
from talkbridge.cluster import pool as ray_pool
from talkbridge.cluster.actors import RowActor, pack_request
from talkbridge.cluster.session import RaySession
from talkbridge.core.jobs.request import JobRequest
from talkbridge.core.jobs.steps import JobInfo, JobStream, Step
from talkbridge.exporters.job_files import OutputPlan, write_job

log = logging.getLogger(__name__)


def request_metadata(request: JobRequest, route: dict[str, Any]) -> dict[str, Any]:
    """What the motion file records about the request: as :func:`talkbridge.api.run_job` records it
    (inputs, options, portrait size) plus this route."""
    from talkbridge.core.face.image_io import read_image_rgb

    described = request.describe()
    if request.image is not None:
        portrait = read_image_rgb(Path(request.image))
        described["image_size"] = [int(portrait.shape[1]), int(portrait.shape[0])]
    return {**described, **route}


def remote_stream(pool: ray_pool.ActorPool, actor: Any, request: JobRequest, render: bool) -> JobStream:
    """The actor's job as a JobStream; the first item (the JobInfo) is awaited here, so bad input
    fails before any file is opened."""
    generator = pool.stream(actor, "run", *pack_request(request), render)
    values = ray_pool.items(generator)
    try:
        info = next(values)
    except StopIteration:
        raise RuntimeError("the Ray job ended before it started") from None
    except BaseException:
        ray_pool.cancel(generator)
        raise
    stream = JobStream(info, iter(()), lambda: ray_pool.cancel(generator))

    def steps() -> Iterator[Step]:
        for value in values:
            if isinstance(value, JobInfo):
                stream.info = value  # the job's final facts
            else:
                yield value

    stream.steps = steps()
    return stream


class RayBackend:
    """Rows on a Ray cluster (``address``, or ``"local"`` for Ray started in this process)."""

    inline = False

    def __init__(self, address: str, checkpoints: Path | None = None, actors: int | None = None,
                 setup: str | None = None) -> None:
        self.session = RaySession.open(address)
        try:
            self.pool = ray_pool.ActorPool(RowActor, (None if checkpoints is None else str(checkpoints), setup), actors)
        except BaseException:
            self.session.close()
            raise
        self.address = address
        self.slots = self.pool.size
        devices = self.pool.devices
        self.name = f"ray {address} ({self.pool.size} actors, {devices['job_nodes']} nodes, {devices['gpus']} GPUs)"

    def run_row(self, row: BatchRow, plan: OutputPlan, stop: threading.Event) -> RowResult:
        assert row.request is not None
        request = replace(row.request, options=row.request.options.checked())
        from talkbridge.api import _enhanced, _enhancer  # the face enhancer runs where frames are written, as run_job does

        metadata = request_metadata(request, {"route": f"ray {self.address}"})
        plan.prepare(None)
        enhance = _enhancer(request.options.enhancer, request.options.device)
        with self.pool.lease() as actor:
            stream = remote_stream(self.pool, actor, request, plan.video)
            try:
                plan.prepare(stream.info.engine)
            except BaseException:
                stream.cancel()
                raise
            if enhance is not None:
                stream.steps = _enhanced(stream.steps, enhance)
            audio = Path(request.audio) if isinstance(request.audio, (str, Path)) else None
            files = write_job(stop_aware(stream, stop), plan, audio=audio, request_metadata=metadata)
        return RowResult(files, stream.info.engine)

    def close(self) -> None:
        try:
            self.pool.close()
        finally:
            self.session.close()
