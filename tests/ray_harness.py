"""Run Ray test scenarios where Ray can only reach loopback: a private network namespace per scenario.

Ray binds the machine's interface address even when told to use 127.0.0.1, so a Ray test must not
run in the test process. :func:`run_scenario` starts a child Python inside a new network namespace
(``unshare -n``; CI runs as root) whose only interface is ``lo``, brought up first; the child checks
that, runs ``module:function(payload)`` and writes its JSON result back through a file. Nothing the
scenario does can reach another address. :func:`local_cluster` starts a multi-node
``ray.cluster_utils.Cluster`` inside (each node is a raylet, all on 127.0.0.1).

Ray start-ups are slow (seconds each), so tests group several assertions per scenario.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterator

ROOT = Path(__file__).resolve().parents[1]


class ScenarioFailed(AssertionError):
    pass


def run_scenario(target: str, payload: dict[str, Any], timeout: float = 300.0) -> dict[str, Any]:
    """Run ``target`` (``"tests.module:function"``) on ``payload`` in a loopback-only namespace; its result."""
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        raise ScenarioFailed("the Ray tests need `unshare` (util-linux) and `ip` (iproute2) to isolate Ray on loopback")
    with tempfile.TemporaryDirectory(prefix="talkbridge-ray-") as folder:
        given, result = Path(folder) / "payload.json", Path(folder) / "result.json"
        given.write_text(json.dumps(payload))
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
            "RAY_USAGE_STATS_ENABLED": "0",
            "OMP_NUM_THREADS": "1",
            "OPENBLAS_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
        }
        command = [
            "unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$0" -m tests.ray_harness "$@"',
            sys.executable, target, str(given), str(result),
        ]
        try:
            done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as error:
            tail = (error.stderr or b"")[-4000:]
            raise ScenarioFailed(f"{target} ran past {timeout:.0f} s; its last output:\n{tail!r}") from None
        if done.returncode != 0 or not result.is_file():
            raise ScenarioFailed(f"{target} failed (exit {done.returncode}):\n{done.stderr[-6000:]}")
        return json.loads(result.read_text())


def interfaces() -> list[str]:
    return sorted(name for _, name in socket.if_nameindex())


@contextlib.contextmanager
def local_cluster(nodes: int = 2, cpus: int = 2) -> Iterator[Any]:
    """A head with no CPUs (the driver's node) and ``nodes`` worker nodes of ``cpus`` CPUs each."""
    if interfaces() != ["lo"]:
        raise ScenarioFailed(f"refusing to start Ray outside a loopback-only namespace (interfaces: {interfaces()})")
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    try:
        for _ in range(nodes):
            cluster.add_node(num_cpus=cpus)
        cluster.wait_for_nodes()
        yield cluster
    finally:
        import ray

        if ray.is_initialized():
            ray.shutdown()
        cluster.shutdown()


def _main(target: str, given: str, result: str) -> int:
    names = interfaces()
    if names != ["lo"]:
        print(f"not in a private network namespace: interfaces {names}", file=sys.stderr)
        return 3
    module_name, _, function = target.partition(":")
    outcome = getattr(importlib.import_module(module_name), function)(json.loads(Path(given).read_text()))
    Path(result).write_text(json.dumps({**outcome, "interfaces": names}))
    return 0


if __name__ == "__main__":
    sys.exit(_main(*sys.argv[1:4]))
