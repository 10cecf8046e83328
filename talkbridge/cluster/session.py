"""Connecting a driver to Ray: an existing cluster by address, or a private one started here.

``--ray local`` starts Ray inside this process on loopback and stops it when the work ends; any other
value is a cluster address (``ray://...`` or ``HOST:PORT`` of a head started with ``ray start --head``),
from which this driver only disconnects at the end.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from talkbridge.core.errors import InputError

log = logging.getLogger(__name__)

LOCAL = "local"


def import_ray() -> Any:
    """ray, or a clear error naming the extra to install."""
    try:
        import ray
    except ImportError:
        raise InputError("the Ray backend needs the ray package: pip install 'talkbridge[ray]'") from None
    return ray


@dataclass
class RaySession:
    """A driver's connection to Ray; :meth:`close` disconnects (and stops Ray when it started it)."""

    address: str
    started_here: bool

    @classmethod
    def open(cls, address: str) -> "RaySession":
        ray = import_ray()
        if ray.is_initialized():
            return cls(address, started_here=False)  # an embedding program already connected
        if address == LOCAL:
            log.info("starting a local Ray instance (loopback only)")
            ray.init(address="local", include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False,
                     configure_logging=False)
            return cls(address, started_here=True)
        log.info("connecting to the Ray cluster at %s", address)
        try:
            ray.init(address=address, log_to_driver=False, configure_logging=False)
        except (ConnectionError, RuntimeError, ValueError) as error:
            raise InputError(f"cannot connect to the Ray cluster at {address}: {error}") from None
        return cls(address, started_here=False)

    def close(self) -> None:
        ray = import_ray()
        if ray.is_initialized():
            ray.shutdown()

    def __enter__(self) -> "RaySession":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def cluster_devices() -> dict[str, Any]:
    """What the connected cluster offers: alive nodes (``job_nodes``: those with a CPU or GPU to run
    jobs, unlike a head started with ``--num-cpus 0``), their CPUs and GPUs."""
    ray = import_ray()
    nodes = [node for node in ray.nodes() if node.get("Alive")]
    return {
        "nodes": len(nodes),
        "job_nodes": sum(1 for node in nodes if node["Resources"].get("CPU", 0) >= 1 or node["Resources"].get("GPU", 0) >= 1),
        "cpus": int(sum(node["Resources"].get("CPU", 0) for node in nodes)),
        "gpus": int(sum(node["Resources"].get("GPU", 0) for node in nodes)),
    }
