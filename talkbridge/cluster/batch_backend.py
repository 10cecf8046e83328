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
from pathlib import Path
from typing import Any, Iterator

from talkbridge.batch.manifest import BatchRow
from talkbridge.batch.runner import RowResult, stop_aware
from talkbridge.cluster import pool as ray_pool
from talkbridge.cluster.actors import RowActor, pack_request
from talkbridge.cluster.session import RaySession
from talkbridge.core.jobs.request import JobRequest
from talkbridge.core.jobs.steps import JobInfo, JobStream, Step
from talkbridge.exporters.job_files import OutputPlan

log = logging.getLogger(__name__)


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
    if not isinstance(info, JobInfo):
        ray_pool.cancel(generator)
        raise RuntimeError(f"the Ray job began with a {type(info).__name__}, not its JobInfo")
    steps: Iterator[Step] = values
    return JobStream(info, steps, lambda: ray_pool.cancel(generator))


class RayBackend:
    """Rows on a Ray cluster (``address``, or ``"local"`` for Ray started in this process).

    ``engine_options`` (engine name -> constructor keywords) go to every actor's engine cache.
    """

    inline = False

    def __init__(self, address: str, checkpoints: Path | None = None, actors: int | None = None,
                 setup: str | None = None, engine_options: dict[str, dict[str, Any]] | None = None) -> None:
        self.session = RaySession.open(address)
        try:
            actor_args = (None if checkpoints is None else str(checkpoints), setup, engine_options)
            self.pool = ray_pool.ActorPool(RowActor, actor_args, actors)
        except BaseException:
            self.session.close()
            raise
        self.address = address
        self.slots = self.pool.size
        devices = self.pool.devices
        self.name = f"ray {address} ({self.pool.size} actors, {devices['job_nodes']} nodes, {devices['gpus']} GPUs)"

    def run_row(self, row: BatchRow, plan: OutputPlan, stop: threading.Event) -> RowResult:
        """The row through :func:`talkbridge.api.run_job`, its job on a leased actor."""
        from talkbridge.api import run_job

        assert row.request is not None
        with self.pool.lease() as actor:

            def opener(request: JobRequest, render: bool) -> JobStream:
                return stop_aware(remote_stream(self.pool, actor, request, render), stop)

            result = run_job(row.request, plan, opener=opener, route={"route": f"ray {self.address}"})
        return RowResult(result.files, result.engine)

    def close(self) -> None:
        try:
            self.pool.close()
        finally:
            self.session.close()
