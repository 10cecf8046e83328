"""A pool of job actors spread over the cluster, and the Ray options that make it fault tolerant.

One actor per GPU when the cluster has GPUs (each requests one), else one per alive node (each
requests one CPU), spread across nodes. Actors restart after their node dies (``max_restarts``) and
an interrupted job is re-run on the restarted actor (``max_task_retries``); for a streaming job Ray
re-runs the generator and skips the items the driver already received, so nothing is lost or
repeated. Application errors (bad input) are never retried. :meth:`ActorPool.lease` hands a free
actor to one job at a time, so a fast node simply takes more jobs.
"""

from __future__ import annotations

import contextlib
import logging
import queue
from typing import Any, Iterator

from talkbridge.cluster.session import cluster_devices, import_ray
from talkbridge.core.errors import InputError

log = logging.getLogger(__name__)

MAX_RESTARTS = 8
MAX_TASK_RETRIES = 8
BACKPRESSURE = 8
"""Steps an actor may run ahead of the driver (bounds object-store memory per job)."""


def actor_resources(devices: dict[str, Any]) -> dict[str, float]:
    """A GPU per actor where the cluster has GPUs, else a CPU."""
    return {"num_gpus": 1, "num_cpus": 1} if devices["gpus"] > 0 else {"num_cpus": 1}


def default_size(devices: dict[str, Any]) -> int:
    return max(1, devices["gpus"] if devices["gpus"] > 0 else devices["job_nodes"])


class ActorPool:
    """``size`` actors of ``actor_class`` (built with ``args``), leased one job at a time."""

    def __init__(self, actor_class: type, args: tuple = (), size: int | None = None) -> None:
        ray = import_ray()
        self.devices = cluster_devices()
        if self.devices["job_nodes"] == 0:
            raise InputError("the Ray cluster has no node with a CPU or GPU for jobs (start workers with `ray start --address ...`)")
        self.size = size or default_size(self.devices)
        resources = actor_resources(self.devices)
        remote_class = ray.remote(actor_class).options(
            **resources,
            max_restarts=MAX_RESTARTS,
            max_task_retries=MAX_TASK_RETRIES,
            scheduling_strategy="SPREAD",
        )
        self.actors = [remote_class.remote(*args) for _ in range(self.size)]
        self.facts = ray.get([actor.facts.remote() for actor in self.actors])  # waits until each is placed and built
        self._free: queue.Queue = queue.Queue()
        for actor in self.actors:
            self._free.put(actor)
        nodes = len({fact["node_id"] for fact in self.facts})
        log.info("%d %s actors on %d nodes (%s each)", self.size, actor_class.__name__, nodes,
                 ", ".join(f"{k}={v}" for k, v in resources.items()))

    @contextlib.contextmanager
    def lease(self) -> Iterator[Any]:
        """A free actor for one job (waits for one)."""
        actor = self._free.get()
        try:
            yield actor
        finally:
            self._free.put(actor)

    def stream(self, actor: Any, method: str, *args: Any) -> Any:
        """Start ``actor.method(*args)`` as a Ray streaming generator (its ObjectRefGenerator)."""
        return getattr(actor, method).options(
            num_returns="streaming", _generator_backpressure_num_objects=BACKPRESSURE
        ).remote(*args)

    def close(self) -> None:
        ray = import_ray()
        for actor in self.actors:
            with contextlib.suppress(Exception):
                ray.kill(actor, no_restart=True)
        self.actors = []


def items(generator: Any) -> Iterator[Any]:
    """The values of a Ray streaming generator, in order; a remote error is raised as its cause.

    Bad input raised in the actor (:class:`TalkbridgeError`) comes out as itself, so a batch row or a
    sidecar client sees the same message as from a local run.
    """
    ray = import_ray()
    from ray.exceptions import RayTaskError

    for ref in generator:
        try:
            yield ray.get(ref)
        except RayTaskError as error:
            cause = getattr(error, "cause", None)
            if isinstance(cause, Exception):
                raise cause from None
            raise


def cancel(generator: Any) -> None:
    """Stop a streaming job (safe to call more than once, or after it ended)."""
    ray = import_ray()
    with contextlib.suppress(Exception):
        ray.cancel(generator)
