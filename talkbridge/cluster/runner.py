"""``talkbridge serve --ray``: the ZeroMQ gateway runs its jobs on a Ray cluster's actors.

:class:`RayRunner` is an ordinary :class:`~talkbridge.bridge.jobs.JobRunner`, so the gateway keeps
its protocol, keys, limits, fair queue and credit flow unchanged: the server's device threads become
one per cluster actor (``ray:0@<node>/cuda``, ...), each job's outputs stream back from its actor
through a Ray streaming generator, and a client that grants no credit stops the server's thread,
which stops reading the generator, which (with Ray's back-pressure) pauses the actor. Clients (the
Blender add-on, ``generate --sidecar``, ``batch --sidecar``) see a sidecar with many devices.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Iterator

from talkbridge.cluster import pool as ray_pool
from talkbridge.cluster.actors import GatewayActor
from talkbridge.cluster.session import RaySession, cluster_devices, import_ray

log = logging.getLogger(__name__)


class RayRunner:
    """Runs sidecar jobs on ``actors`` :class:`GatewayActor` s (default: one per GPU, else per node),
    each building the runner of ``spec`` (a :class:`~talkbridge.bridge.workers.WorkerSpec`)."""

    def __init__(self, address: str, spec: Any, actors: int | None = None, setup: str | None = None) -> None:
        self.session = RaySession.open(address)
        try:
            self.pool = ray_pool.ActorPool(GatewayActor, (spec.to_json(), setup), actors)
            ray = import_ray()
            self._engine_capabilities = ray.get(self.pool.actors[0].capabilities.remote())
        except BaseException:
            self.session.close()
            raise
        self.devices = tuple(
            f"ray:{i}@{fact['node_id'][:8]}/{fact['device']}" for i, fact in enumerate(self.pool.facts)
        )
        self._actors = dict(zip(self.devices, self.pool.actors))
        log.info("serving on the Ray cluster at %s: %s", address, ", ".join(self.devices))

    def capabilities(self) -> dict[str, Any]:
        """The engines' capabilities plus the cluster's nodes, CPUs and GPUs (shown by ``ping``)."""
        return {**self._engine_capabilities, "cluster": {**cluster_devices(), "actors": len(self.devices)}}

    def run(self, job: Any, device: str, cancel: threading.Event) -> Iterator[Any]:
        actor = self._actors.get(device)
        if actor is None:
            raise ValueError(f"unknown device {device!r}; this runner serves {', '.join(self.devices)}")
        generator = self.pool.stream(actor, "run", job)
        try:
            for output in ray_pool.items(generator):
                if cancel.is_set():
                    return
                yield output
        finally:
            ray_pool.cancel(generator)

    def close(self) -> None:
        try:
            self.pool.close()
        finally:
            self.session.close()
