"""What the sidecar route costs per step: a 512 px lite job through a loopback sidecar, against the
same job in this process.

The sidecar runs in this process (its I/O thread and job threads) with its engine in a worker
process, as ``talkbridge serve`` runs it; the client is ``open_remote_job``, the stream the writer
reads. So everything this process spends beyond the in-process job is the route: the server's relay
and the client's decoding. Reported per step (25 frames of 512x512 RGB, 19.7 MB):

* wall seconds per step, in-process and through the sidecar (interleaved, fastest of ``--repeats``);
* CPU seconds per step spent in this process on the sidecar route (server relay + client: the
  engine runs in the worker), against the in-process job's CPU per step;
* bytes Python allocates per frame on the route (tracemalloc peak per step in this process, in a
  separate traced run): 0 means frames travel from the worker's socket to the consumer as views,
  a frame's size (786 KB) means one copy of every frame.

    ./scripts/dev bench sidecar_route [--seconds 8] [--repeats 3]

Numbers taken while other processes use the CPU are noisy; the per-step CPU and the allocated bytes
are steadier than wall time.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import tracemalloc
from dataclasses import dataclass
from typing import Any

import numpy as np

from talkbridge.bridge.remote_job import open_remote_job
from talkbridge.bridge.server import Server, ServerConfig
from talkbridge.bridge.workers import ProcessRunner, WorkerSpec
from talkbridge.core.jobs.cache import EngineCache
from talkbridge.core.jobs.local import open_local_job
from talkbridge.core.jobs.options import JobOptions
from talkbridge.core.jobs.request import JobRequest

SIZE = 512
STEP_FRAMES = 25


def speech_samples(seconds: float) -> np.ndarray:
    """Voiced, syllable-modulated harmonics at 16 kHz: enough for the lite engine to chew on."""
    t = np.arange(int(seconds * 16000)) / 16000
    voice = sum(np.sin(2 * np.pi * k * 130 * t) / k for k in range(1, 12))
    envelope = np.clip(np.sin(2 * np.pi * 3.5 * t), 0, None) ** 2
    return (0.3 * voice * envelope / np.max(np.abs(voice))).astype(np.float32)


@dataclass
class LoopbackTarget:
    """A sidecar address as ``open_remote_job`` takes it."""

    address: str

    def client(self) -> Any:
        from talkbridge.bridge.client import Client

        return Client(self.address)


@dataclass
class Run:
    wall_s: float
    cpu_s: float
    steps: int
    frames: int
    peak_bytes_per_frame: float = 0.0


def consume(stream: Any, traced: bool) -> tuple[int, int, float]:
    """Take every step and drop it (what a consumer that writes elsewhere costs the route)."""
    steps = frames = 0
    worst = 0.0
    iterator = iter(stream.steps)
    while True:
        if traced:
            before = tracemalloc.get_traced_memory()[0]  # the previous step is gone by now
            tracemalloc.reset_peak()
        step = next(iterator, None)
        if step is None:
            break
        steps += 1
        frames += 0 if step.frames is None else len(step.frames)
        if traced:
            worst = max(worst, (tracemalloc.get_traced_memory()[1] - before) / max(1, step.chunk.n_frames))
        del step
    stream.close()
    return steps, frames, worst


def run_local(request: JobRequest, cache: EngineCache, traced: bool = False) -> Run:
    start, cpu = time.perf_counter(), time.process_time()
    steps, frames, worst = consume(open_local_job(request, cache, render=True), traced)
    return Run(time.perf_counter() - start, time.process_time() - cpu, steps, frames, worst)


def run_sidecar(request: JobRequest, target: LoopbackTarget, traced: bool = False) -> Run:
    start, cpu = time.perf_counter(), time.process_time()
    steps, frames, worst = consume(open_remote_job(request, target, render=True), traced)
    return Run(time.perf_counter() - start, time.process_time() - cpu, steps, frames, worst)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="speech length of the lite job")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved runs per route (the fastest counts)")
    args = parser.parse_args(argv)

    options = JobOptions(engine="lite", size=SIZE, chunk_frames=STEP_FRAMES).checked()
    request = JobRequest(speech_samples(args.seconds), options=options)
    warm = JobRequest(speech_samples(1.0), options=options)
    cache = EngineCache()
    runner = ProcessRunner(WorkerSpec("talkbridge.bridge.jobs:EngineRunner", {"engine_kwargs": {}})).start()
    server = Server(runner, ServerConfig(bind="tcp://127.0.0.1:0")).start()
    target = LoopbackTarget(str(server.address))
    try:
        run_local(warm, cache)
        run_sidecar(warm, target)
        local: list[Run] = []
        sidecar: list[Run] = []
        for _ in range(args.repeats):
            local.append(run_local(request, cache))
            sidecar.append(run_sidecar(request, target))
        tracemalloc.start()
        traced_local = run_local(request, cache, traced=True)
        traced_sidecar = run_sidecar(request, target, traced=True)
        tracemalloc.stop()
    finally:
        server.stop()
    best_local = min(local, key=lambda r: r.wall_s)
    best_sidecar = min(sidecar, key=lambda r: r.wall_s)
    steps = best_local.steps
    assert best_sidecar.steps == steps and best_sidecar.frames == best_local.frames, "the routes streamed different jobs"
    frame_mb = SIZE * SIZE * 3 / 1e6
    print(f"lite job: {args.seconds:g} s of speech, {best_local.frames} frames at {SIZE} px in {steps} steps "
          f"of {STEP_FRAMES} frames ({STEP_FRAMES * frame_mb:.1f} MB)")
    print(f"  wall per step: in-process {1e3 * best_local.wall_s / steps:7.1f} ms   sidecar {1e3 * best_sidecar.wall_s / steps:7.1f} ms")
    cpu_local = min(r.cpu_s for r in local) / steps
    cpu_route = min(r.cpu_s for r in sidecar) / steps
    print(f"  cpu per step:  in-process job {1e3 * cpu_local:7.1f} ms   sidecar route in this process {1e3 * cpu_route:7.2f} ms "
          f"({100 * cpu_route / cpu_local:.1f}% of the job's own CPU)")
    print(f"  bytes allocated per frame (tracemalloc peak per step): in-process {traced_local.peak_bytes_per_frame:,.0f}   "
          f"sidecar route {traced_sidecar.peak_bytes_per_frame:,.0f}   (one frame is {SIZE * SIZE * 3:,} bytes)")
    print(f"  load average: {', '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} cores")
    return 0


if __name__ == "__main__":
    sys.exit(main())
