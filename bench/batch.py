"""Batch throughput: rows per minute in-process, on a 1-node and a 2-node Ray cluster, in one run.

Every backend runs the same lite-engine manifest (``--rows`` clips of ``--seconds`` of speech, video
at ``--size`` px) through ``talkbridge batch``'s driver, after one warm-up row, so engines are loaded
and actors placed before the clock starts. Printed: seconds and rows per minute per backend, the
ratios to in-process and 2 nodes to 1, and Ray's overhead per row: the time to ship a row's inputs,
schedule its job and stream its steps (frames included) back through the object store, measured on
an actor that replays a recorded row with no engine work. A Ray row can beat an in-process one: the
actor computes the next steps while the driver encodes the video, where in-process does both in turn.
The last line is the same as JSON.

Ray must only talk over loopback on shared machines, and it binds the interface address even when
told 127.0.0.1, so by default the bench re-runs itself inside a private network namespace
(``unshare -n``, needs root) where only ``lo`` exists. ``--no-isolate`` runs it as it is (a real
cluster's private network). Each Ray "node" is a raylet on this machine with ``--node-cpus`` CPUs, so
on a small machine 2 nodes share the same cores and cannot double the rate.

    ./scripts/dev bench batch [--rows 8] [--seconds 2] [--size 128]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
from talkbridge.batch.backends import InProcessBackend
from talkbridge.batch.manifest import read_manifest
from talkbridge.batch.runner import BatchRun
from tests.speech import speech_like, write_wav


def make_manifests(folder: Path, rows: int, seconds: float, size: int) -> tuple[Path, Path]:
    """The measured manifest and a one-row warm-up manifest (different audio, same settings)."""
    lines = ["audio,name,engine,seed,size"]
    for i in range(rows):
        write_wav(folder / f"row{i}.wav", speech_like(seconds, seed=i))
        lines.append(f"row{i}.wav,,lite,{i},{size}")
    (folder / "rows.csv").write_text("\n".join(lines) + "\n")
    write_wav(folder / "warm.wav", speech_like(seconds, seed=999))
    (folder / "warm.csv").write_text(f"audio,engine,size\nwarm.wav,lite,{size}\n")
    return folder / "rows.csv", folder / "warm.csv"


def timed_batch(backend, manifest: Path, out: Path) -> float:
    started = time.perf_counter()
    report = BatchRun(read_manifest(manifest), out, backend, progress=False).run()
    seconds = time.perf_counter() - started
    if report.counts["done"] != len(report.rows):
        raise SystemExit(f"bench rows failed: {[(r.name, r.reason) for r in report.rows if r.status != 'done']}")
    return seconds


class EchoActor:
    """Replays one row's recorded JobInfo and steps: a row with Ray's costs and no engine work."""

    def __init__(self, info, steps) -> None:
        self.info, self.steps = info, steps

    def facts(self) -> dict:
        import ray

        return {"node_id": ray.get_runtime_context().get_node_id()}

    def run(self, request, files, render):
        yield self.info
        for step in self.steps:  # Ray drives the generator with send(): no `yield from` a list
            yield step
        yield self.info


def transport_seconds_per_row(rows, address: str) -> float:
    """Ray's own cost per row: ship the inputs, schedule the job, stream a real row's steps (frames
    included) back through the object store; measured on an actor that only replays them."""
    import ray

    from talkbridge.cluster import pool as ray_pool
    from talkbridge.cluster.batch_backend import remote_stream
    from talkbridge.core.jobs.cache import EngineCache
    from talkbridge.core.jobs.local import open_local_job

    recorded = open_local_job(rows[0].request, EngineCache(), render=True)
    steps = list(recorded.steps)
    ray.init(address=address, log_to_driver=False)
    try:
        pool = ray_pool.ActorPool(EchoActor, (recorded.info, steps), size=1)
        with pool.lease() as actor:
            for _ in remote_stream(pool, actor, rows[0].request, True).steps:  # warm-up
                pass
            started = time.perf_counter()
            for row in rows:
                for _ in remote_stream(pool, actor, row.request, True).steps:
                    pass
            seconds = (time.perf_counter() - started) / len(rows)
        pool.close()
    finally:
        ray.shutdown()
    return seconds


def measure(args: argparse.Namespace) -> dict:
    from ray.cluster_utils import Cluster

    from talkbridge.cluster.batch_backend import RayBackend

    folder = Path(tempfile.mkdtemp(prefix="talkbridge-bench-batch-"))
    try:
        manifest, warm = make_manifests(folder, args.rows, args.seconds, args.size)
        results: dict = {"rows": args.rows, "seconds_of_audio": args.seconds, "size": args.size}
        local = InProcessBackend()
        timed_batch(local, warm, folder / "warm_local")
        results["in_process_s"] = timed_batch(local, manifest, folder / "local")

        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
        try:
            for nodes in (1, 2):
                cluster.add_node(num_cpus=args.node_cpus)
                cluster.wait_for_nodes()
                started = time.perf_counter()
                backend = RayBackend(cluster.address)
                results[f"ray{nodes}_startup_s"] = time.perf_counter() - started
                try:
                    timed_batch(backend, warm, folder / f"warm_ray{nodes}")
                    results[f"ray{nodes}_s"] = timed_batch(backend, manifest, folder / f"ray{nodes}")
                finally:
                    backend.close()
            results["ray_overhead_per_row_s"] = transport_seconds_per_row(read_manifest(manifest), cluster.address)
        finally:
            cluster.shutdown()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    rows = args.rows
    for key in ("in_process", "ray1", "ray2"):
        results[f"{key}_rows_per_min"] = rows / results[f"{key}_s"] * 60
    results["ray1_vs_in_process"] = results["ray1_rows_per_min"] / results["in_process_rows_per_min"]
    results["ray2_vs_in_process"] = results["ray2_rows_per_min"] / results["in_process_rows_per_min"]
    results["ray2_vs_ray1"] = results["ray2_rows_per_min"] / results["ray1_rows_per_min"]
    return results


def report(results: dict) -> None:
    print(f"{results['rows']} lite rows of {results['seconds_of_audio']:.1f} s speech, {results['size']} px video")
    print(f"{'backend':<12} {'seconds':>8} {'rows/min':>9} {'vs in-process':>14}")
    for key, label in (("in_process", "in-process"), ("ray1", "ray 1 node"), ("ray2", "ray 2 nodes")):
        ratio = results[f"{key}_rows_per_min"] / results["in_process_rows_per_min"]
        print(f"{label:<12} {results[key + '_s']:>8.2f} {results[key + '_rows_per_min']:>9.1f} {ratio:>13.2f}x")
    print(f"ray 2 nodes / 1 node: {results['ray2_vs_ray1']:.2f}x")
    print(f"ray overhead per row (inputs out, steps and frames back, no engine work): {results['ray_overhead_per_row_s'] * 1000:.0f} ms "
          f"(pool start-up: {results['ray1_startup_s']:.1f} s with 1 node, {results['ray2_startup_s']:.1f} s with 2)")
    print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in results.items()}))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=2.0, help="speech per row")
    parser.add_argument("--size", type=int, default=128, help="video size (px)")
    parser.add_argument("--node-cpus", type=int, default=1, help="CPUs each Ray node offers (one actor per node)")
    parser.add_argument("--no-isolate", action="store_true", help="do not re-run inside a loopback-only network namespace")
    args = parser.parse_args()
    interfaces = sorted(name for _, name in socket.if_nameindex())
    if not args.no_isolate and interfaces != ["lo"]:
        # Itself again as a module of the checkout (`python -m bench.batch`), inside the namespace.
        command = ["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$0" "$@"', sys.executable, "-m", "bench.batch", *sys.argv[1:]]
        # One math thread everywhere, as Ray gives an actor with one CPU: the comparison is of routes, not thread counts.
        threads = {name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
        return subprocess.call(command, env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0", **threads}, cwd=ROOT)
    report(measure(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
