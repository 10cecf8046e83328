"""How much the sidecar's transport costs: loopback throughput and its share of a real job.

1. Throughput: a sidecar in a separate process streams chunks of 512x512 RGB frames made by the
   synthetic runner (one pre-made buffer, so only transport is measured) to a client that copies
   every chunk into its own buffer, as the Blender add-on does. The in-process baseline does the
   same copy straight from the runner. Reported as frames/s and MB/s, for tcp loopback and ipc,
   unsigned and HMAC-signed, and with the runner in a worker process behind the server (the
   extra hop `talkbridge serve` adds, see bridge/workers.py). Target: >= 1 GB/s on loopback.
2. Share of job time: a lite-engine job with 512x512 preview frames, run in-process and through a
   sidecar process on tcp loopback (engine in a worker process, as `talkbridge serve` runs it) (interleaved, fastest of several); the protocol's share is
   (sidecar wall - in-process wall) / sidecar wall. Because that difference drowns in noise on a
   shared CPU, it also prints the share estimated from the isolated transport cost per frame
   measured in part 1. Target: < 5%.

    ./scripts/dev bench transport [--frames 1500] [--chunk 25] [--seconds 4] [--repeats 2]

Numbers taken while other processes use the CPU are noisy; run it on an idle machine.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
from talkbridge.bridge import protocol as p
from talkbridge.bridge.client import Client, ServerUnavailable
from talkbridge.bridge.client_connect import wait_for_server
from talkbridge.bridge.codec import JobSpec
from talkbridge.bridge.synthetic import SyntheticRunner

SIZE = 512
FRAME_BYTES = SIZE * SIZE * 3

SERVER_SCRIPT = """
import sys, time
from talkbridge.bridge.server import Server, ServerConfig
from talkbridge.bridge.synthetic import SyntheticRunner
from talkbridge.bridge.workers import ProcessRunner, WorkerSpec
kind, bind, key = sys.argv[1], sys.argv[2], bytes.fromhex(sys.argv[3]) if len(sys.argv) > 3 else None
if kind == "synthetic":
    runner = SyntheticRunner()
elif kind == "synthetic-process":
    runner = ProcessRunner(WorkerSpec("talkbridge.bridge.synthetic:SyntheticRunner")).start()
else:  # the engines in a worker process, as `talkbridge serve` runs them
    runner = ProcessRunner(WorkerSpec("talkbridge.bridge.jobs:EngineRunner", {"engine_kwargs": {}})).start()
Server(runner, ServerConfig(bind=bind, signing_key=key)).start()
while True:
    time.sleep(1)
"""


def start_server(kind: str, bind: str, key: bytes | None = None) -> subprocess.Popen:
    args = [sys.executable, "-c", SERVER_SCRIPT, kind, bind] + ([key.hex()] if key else [])
    process = subprocess.Popen(args, cwd=ROOT)
    try:
        wait_for_server(bind, timeout=60, process=process, signing_key=key)
    except ServerUnavailable:
        process.kill()
        raise
    return process


def in_process_frames(n_frames: int, chunk: int) -> float:
    """Seconds to take every chunk straight from the runner and copy it (no transport)."""
    runner = SyntheticRunner()
    spec = JobSpec("bench", "synthetic", {"n_frames": n_frames, "chunk_frames": chunk, "reuse_frames": True}, render_size=SIZE)
    sink = np.empty((chunk, SIZE, SIZE, 3), np.uint8)
    start = time.perf_counter()
    for message in runner.run(spec, "cpu", threading.Event()):
        frames = message.array("frames")  # the info message carries none
        if frames is not None:
            np.copyto(sink[: len(frames)], frames)
    return time.perf_counter() - start


def sidecar_frames(address: str, n_frames: int, chunk: int, key: bytes | None, credit: int) -> float:
    """Seconds for the same stream through a sidecar process, consumer copying every chunk."""
    sink = np.empty((chunk, SIZE, SIZE, 3), np.uint8)
    client = Client(address, signing_key=key)
    try:
        client.connect()
        options = {"n_frames": n_frames, "chunk_frames": chunk, "reuse_frames": True}
        start = time.perf_counter()
        for event in client.submit("synthetic", audio=np.zeros(16, np.float32), options=options, render_size=SIZE, credit=credit):
            if event.type == p.CHUNK:
                frames = event.arrays["frames"]
                np.copyto(sink[: len(frames)], frames)
            elif event.terminal and event.type != p.DONE:
                raise RuntimeError(f"job failed: {event.body}")
        return time.perf_counter() - start
    finally:
        client.close()


def report(label: str, n_frames: int, seconds: float, baseline: float | None = None) -> None:
    mb_s = n_frames * FRAME_BYTES / seconds / 1e6
    ratio = f"  ({baseline / seconds:.2f}x of in-process)" if baseline else ""
    print(f"  {label:<28} {n_frames / seconds:8.0f} frames/s  {mb_s:8.0f} MB/s  {1e3 * seconds / n_frames:6.3f} ms/frame{ratio}")


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds another process and its running children (the server's engine
    workers) have used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    total = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = (task / "children").read_text().split()
        except OSError:
            continue
        for child in children:
            try:
                total += process_cpu_seconds(int(child))
            except OSError:
                pass
    return total


def speech_samples(seconds: float) -> np.ndarray:
    """Voiced, syllable-modulated harmonics at 16 kHz: enough for the lite engine to chew on."""
    t = np.arange(int(seconds * 16000)) / 16000
    voice = sum(np.sin(2 * np.pi * k * 130 * t) / k for k in range(1, 12))
    envelope = np.clip(np.sin(2 * np.pi * 3.5 * t), 0, None) ** 2
    return (0.3 * voice * envelope / np.max(np.abs(voice))).astype(np.float32)


def lite_job_share(seconds: float, chunk: int, repeats: int, transport_s_per_frame: float) -> None:
    """In-process vs sidecar wall time of a lite job with 512 px previews, runs interleaved."""
    from talkbridge.bridge.jobs import EngineRunner

    audio = speech_samples(seconds)
    runner = EngineRunner()
    options = {"chunk_frames": chunk}
    address = "tcp://127.0.0.1:5593"
    server = start_server("lite", address)
    client = Client(address)
    local = remote = local_cpu = remote_cpu = float("inf")
    try:
        client.connect()
        warm = audio[:16000]
        list(runner.run(JobSpec("warm", "lite", options, audio_pcm=warm, render_size=SIZE), "cpu", threading.Event()))
        client.submit("lite", audio=warm, options=options, render_size=SIZE).result()
        for _ in range(repeats):
            start, cpu = time.perf_counter(), time.process_time()
            spec = JobSpec("bench", "lite", options, audio_pcm=audio, render_size=SIZE)
            n_frames = sum(len(m.array("frames")) for m in runner.run(spec, "cpu", threading.Event()) if m.type == p.CHUNK)
            local = min(local, time.perf_counter() - start)
            local_cpu = min(local_cpu, time.process_time() - cpu)
            start, cpu, server_cpu = time.perf_counter(), time.process_time(), process_cpu_seconds(server.pid)
            result = client.submit("lite", audio=audio, options=options, render_size=SIZE).result()
            remote = min(remote, time.perf_counter() - start)
            remote_cpu = min(remote_cpu, time.process_time() - cpu + process_cpu_seconds(server.pid) - server_cpu)
            assert result.final.type == p.DONE and result.array("frames").shape[0] == n_frames
    finally:
        client.close()
        server.kill()
        server.wait()
    measured = max(0.0, remote - local) / remote
    measured_cpu = max(0.0, remote_cpu - local_cpu) / remote_cpu
    estimate = n_frames * transport_s_per_frame / (local + n_frames * transport_s_per_frame)
    print(f"  lite job, {seconds:.0f} s audio, {n_frames} frames at {SIZE}px")
    print(f"  wall: in-process {local:.2f} s, via sidecar {remote:.2f} s -> protocol share {100 * measured:.1f}% (noisy on a shared CPU)")
    print(f"  cpu:  in-process {local_cpu:.2f} s, server + client {remote_cpu:.2f} s -> protocol share {100 * measured_cpu:.1f}%")
    print(f"  isolated transport cost {1e3 * transport_s_per_frame:.2f} ms/frame -> protocol share {100 * estimate:.2f}%")
    verdict = "OK" if estimate < 0.05 else "MISSED"
    print(f"  target < 5% (judged on the isolated transport cost; the A/B lines show the noise) -> {verdict}")
    print(f"  load average now: {', '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} cores")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=1500, help="frames per throughput run")
    parser.add_argument("--chunk", type=int, default=25, help="frames per chunk")
    parser.add_argument("--credit", type=int, default=4, help="chunks in flight")
    parser.add_argument("--seconds", type=float, default=4.0, help="audio length of the lite job")
    parser.add_argument("--repeats", type=int, default=2, help="runs per measurement (the fastest counts)")
    args = parser.parse_args()
    print(f"cpu cores: {os.cpu_count()}; chunk: {args.chunk} frames of {SIZE}x{SIZE} RGB ({args.chunk * FRAME_BYTES / 1e6:.1f} MB)")

    print("throughput")
    baseline = min(in_process_frames(args.frames, args.chunk) for _ in range(2))
    report("in-process (copy only)", args.frames, baseline)
    key = os.urandom(32)
    best_loopback = loopback_s_per_frame = 0.0
    with tempfile.TemporaryDirectory() as folder:
        for label, kind, bind, signing in (
            ("tcp loopback", "synthetic", "tcp://127.0.0.1:5591", None),
            ("ipc", "synthetic", f"ipc://{folder}/bench.sock", None),
            ("tcp loopback, HMAC-signed", "synthetic", "tcp://127.0.0.1:5592", key),
            ("tcp, runner in a worker", "synthetic-process", "tcp://127.0.0.1:5594", None),
        ):
            server = start_server(kind, bind, signing)
            try:
                sidecar_frames(bind, args.chunk * 4, args.chunk, signing, args.credit)  # warm-up
                seconds = min(sidecar_frames(bind, args.frames, args.chunk, signing, args.credit) for _ in range(args.repeats))
            finally:
                server.kill()
                server.wait()
            report(label, args.frames, seconds, baseline)
            if label == "tcp loopback":
                best_loopback = args.frames * FRAME_BYTES / seconds / 1e9
                loopback_s_per_frame = seconds / args.frames
    print(f"  loopback: {best_loopback:.2f} GB/s (target >= 1 GB/s) -> {'OK' if best_loopback >= 1 else 'MISSED'}")

    print("share of a real job")
    lite_job_share(args.seconds, args.chunk, max(args.repeats, 3), loopback_s_per_frame)
    return 0


if __name__ == "__main__":
    sys.exit(main())
