"""Soak test of the sidecar: N clients x M jobs for a bounded time while faults are injected.

A sidecar runs in its own process with its engines in worker processes (as `talkbridge serve`
does). N client threads each run up to M jobs one after another and check every finished job's
arrays; a watcher pings every 100 ms. Meanwhile an injector takes turns at:

* client_kill: a client process submits a long job and is SIGKILLed mid-stream;
* worker_kill: a worker process is SIGKILLed (the job on it must end `worker_lost`, then the
  device works again);
* malformed: a raw socket sends broken messages (each must be answered with an error);
* oversized: an input over the announced limit, sent raw (must be answered `too_large`) and through
  the client library (must fail at once with `too_large`).

It prints jobs done, failed and lost, the faults and how they were answered, the slowest ping, and
the RSS of the server and its workers at start and end; it exits 1 when an output was wrong, a fault
went unanswered, the server stopped answering, jobs were left on the server, or it did not exit
cleanly.

    ./scripts/dev bench soak [--clients 4] [--jobs 10] [--seconds 60] [--engine synthetic|lite]
                             [--faults client_kill,worker_kill,malformed,oversized | none]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import zmq

ROOT = Path(__file__).resolve().parents[1]
from talkbridge.bridge import protocol as p
from talkbridge.bridge.client import Client, InputTooLarge
from talkbridge.bridge.client_connect import wait_for_server
from talkbridge.bridge.synthetic import synthetic_chunk

FAULTS = ("client_kill", "worker_kill", "malformed", "oversized")
MAX_INPUT = 256 * 1024  # the soak server's --max-input-mb, small so oversized inputs are cheap
LOST_CODES = {p.E_WORKER_LOST, p.E_SERVER_LOST, p.E_NO_ANSWER}

SERVER_SCRIPT = """
import json, sys
from talkbridge.bridge.protocol import Limits
from talkbridge.bridge.server import Server, ServerConfig
from talkbridge.bridge.workers import ProcessRunner, WorkerSpec
bind, factory, kwargs, devices, max_input = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), tuple(sys.argv[4].split(",")), int(sys.argv[5])
runner = ProcessRunner(WorkerSpec(factory, kwargs), devices, hang_timeout_s=20.0).start()
config = ServerConfig(bind=bind, devices=devices, limits=Limits.for_server(max_input), client_timeout_s=3.0, stall_timeout_s=10.0)
Server(runner, config).serve_forever()
"""

DOOMED_CLIENT = """
import sys, time, numpy as np
from talkbridge.bridge.client import Client
client = Client(sys.argv[1])
client.connect()
for event in client.submit(sys.argv[2], audio=np.zeros(1600, np.float32), options={"n_frames": 100000, "chunk_frames": 5, "delay_s": 0.02}):
    if event.type == "chunk":
        print("streaming", flush=True)
        time.sleep(600)
"""


def rss_mib(pid: int) -> float:
    """Resident memory of ``pid`` in MiB (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def worker_pids(server_pid: int) -> list[int]:
    """The server's worker processes (children running talkbridge.bridge.worker_main)."""
    found = []
    for task in Path(f"/proc/{server_pid}/task").glob("*"):
        try:
            children = (task / "children").read_text().split()
        except OSError:
            continue
        for child in children:
            try:
                if b"worker_main" in Path(f"/proc/{child}/cmdline").read_bytes():
                    found.append(int(child))
            except OSError:
                continue
    return found


class Tally:
    """Counters shared by the threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.jobs: Counter[str] = Counter()
        self.codes: Counter[str] = Counter()
        self.faults: Counter[str] = Counter()
        self.problems: list[str] = []

    def add(self, counter: str, key: str, n: int = 1) -> None:
        with self.lock:
            getattr(self, counter)[key] += n

    def problem(self, text: str) -> None:
        with self.lock:
            self.problems.append(text)


def job_options(engine: str, rng: random.Random) -> dict:
    if engine == "synthetic":
        return {"n_frames": rng.randint(20, 200), "chunk_frames": rng.choice([5, 10, 25]), "seed": rng.randint(0, 1000), "delay_s": 0.01}
    return {}


def run_client(address: str, engine: str, audio, n_jobs: int, deadline: float, seed: int, tally: Tally) -> None:
    rng = random.Random(seed)
    with Client(address, server_timeout_s=5.0) as client:
        for _ in range(n_jobs):
            if time.monotonic() > deadline:
                return
            options = job_options(engine, rng)
            tally.add("jobs", "submitted")
            final = None
            try:
                result = client.submit(engine, audio=audio, options=options).result()
                final = result.final
            except p.BridgeError as error:
                tally.add("jobs", "failed")
                tally.problem(f"submit raised {error}")
                continue
            if final.type == p.DONE:
                tally.add("jobs", "done")
                if engine == "synthetic":
                    expected = synthetic_chunk(0, options["n_frames"], options["seed"])
                    if not np.array_equal(result.array("expression"), expected.expression):
                        tally.add("jobs", "wrong")
                        tally.problem(f"job {final.job_id}: its arrays differ from the synthetic clip")
                elif result.array("pose") is None:
                    tally.add("jobs", "wrong")
            elif final.type == p.ERROR and final.code in LOST_CODES:
                tally.add("jobs", "lost")
                tally.add("codes", final.code)
            else:
                tally.add("jobs", "failed")
                tally.add("codes", final.code or final.type)


def watch_pings(address: str, stop: threading.Event, tally: Tally, pings: list[float]) -> None:
    with Client(address) as client:
        while not stop.is_set():
            try:
                pings.append(client.ping(timeout=2.0))
            except p.BridgeError:
                tally.problem("a ping went unanswered for 2 s")
            time.sleep(0.1)
        lost = [e for e in list(client.events.queue) if e.code == p.E_SERVER_LOST]
        if lost:
            tally.problem("the ping watcher lost the server")


def _malformed_messages() -> list[list[bytes]]:
    good = p.encode(p.Message(p.SUBMIT, "soak-bad", {"engine": "synthetic"}, {"audio_pcm": np.zeros(4, np.float32)}))
    header = json.loads(good[1])
    wrong_table = dict(header, buffers=[{"name": "audio_pcm", "dtype": "float32", "shape": [99]}])
    return [
        [b"garbage"],
        [b"XXXX\x01", good[1]],
        [good[0], b"{not json"],
        [good[0], json.dumps(dict(header, type="launch")).encode()],
        [good[0], json.dumps(wrong_table).encode(), good[2]],
        [good[0], good[1].replace(b'"seq":0', b'"seq":NaN')],
        [p.MAGIC + bytes([99]), good[1], good[2]],
        [good[0], json.dumps(dict(header, type=p.INFO, body={"engine": "x"})).encode()],  # a server's message, from a client
    ]


def inject_malformed(context: zmq.Context, address: str, tally: Tally) -> None:
    dealer = context.socket(zmq.DEALER)
    dealer.linger = 0
    dealer.connect(address)
    try:
        messages = _malformed_messages()
        for frames in messages:
            dealer.send_multipart(frames)
        answered = 0
        deadline = time.monotonic() + 5
        while answered < len(messages) and time.monotonic() < deadline:
            if dealer.poll(100):
                reply = p.decode(dealer.recv_multipart())
                answered += reply.type == p.ERROR
        tally.add("faults", "malformed", len(messages))
        tally.add("faults", "malformed answered", answered)
        if answered < len(messages):
            tally.problem(f"only {answered} of {len(messages)} malformed messages were answered")
    finally:
        dealer.close()


def inject_oversized(context: zmq.Context, address: str, tally: Tally) -> None:
    big = np.zeros(MAX_INPUT * 3 // 2, np.uint8)
    dealer = context.socket(zmq.DEALER)
    dealer.linger = 0
    dealer.connect(address)
    try:
        dealer.send_multipart(p.encode(p.Message(p.SUBMIT, "soak-big", {"engine": "synthetic"}, {"audio": big})))
        reply = p.decode(dealer.recv_multipart()) if dealer.poll(5000) else None
        tally.add("faults", "oversized")
        if reply is not None and reply.type == p.ERROR and reply.body["code"] == p.E_TOO_LARGE:
            tally.add("faults", "oversized answered too_large")
        else:
            tally.problem(f"an oversized submit was answered {reply.body if reply else 'not at all'}")
    finally:
        dealer.close()
    with Client(address) as client:
        started = time.monotonic()
        try:
            client.submit("synthetic", audio=big.tobytes())
            tally.problem("the client library sent an input over the announced limit")
        except InputTooLarge:
            tally.add("faults", "oversized")
            tally.add("faults", "oversized answered too_large")
        if time.monotonic() - started > 1.0:
            tally.problem("the client took over 1 s to refuse an oversized input")


def inject_client_kill(address: str, engine: str, tally: Tally) -> None:
    doomed = subprocess.Popen([sys.executable, "-c", DOOMED_CLIENT, address, engine], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        line = doomed.stdout.readline()  # blocks until the job streams (or the client died)
        if "streaming" in line:
            doomed.kill()
            tally.add("faults", "client_kill")
    finally:
        if doomed.poll() is None:
            doomed.kill()
        doomed.wait(10)
        doomed.stdout.close()


def inject_worker_kill(server_pid: int, rng: random.Random, tally: Tally) -> None:
    workers = worker_pids(server_pid)
    if not workers:
        return
    try:
        os.kill(rng.choice(workers), signal.SIGKILL)
        tally.add("faults", "worker_kill")
    except ProcessLookupError:
        pass


def inject_faults(faults: list[str], address: str, engine: str, server_pid: int, deadline: float, stop: threading.Event, tally: Tally, seed: int) -> None:
    rng = random.Random(seed)
    context = zmq.Context()
    try:
        _inject_in_turn(faults, address, engine, server_pid, deadline, stop, tally, rng, context)
    except Exception as error:  # noqa: BLE001 - a broken injector must fail the soak, not end it quietly
        tally.problem(f"the fault injector failed: {type(error).__name__}: {error}")
    finally:
        context.destroy(linger=0)


def _inject_in_turn(faults: list[str], address: str, engine: str, server_pid: int, deadline: float, stop: threading.Event,
                    tally: Tally, rng: random.Random, context: zmq.Context) -> None:
    """Each fault kind in turn until the deadline; every kind at least once (the clients may finish first)."""
    turn = 0
    while faults and time.monotonic() < deadline:
        if stop.wait(rng.uniform(0.2, 1.0)) and turn >= len(faults):
            break
        fault = faults[turn % len(faults)]
        turn += 1
        if fault == "malformed":
            inject_malformed(context, address, tally)
        elif fault == "oversized" and engine == "synthetic":
            inject_oversized(context, address, tally)
        elif fault == "client_kill" and engine == "synthetic":
            inject_client_kill(address, engine, tally)
        elif fault == "worker_kill":
            inject_worker_kill(server_pid, rng, tally)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--jobs", type=int, default=10, help="jobs per client")
    parser.add_argument("--seconds", type=float, default=60.0, help="no new jobs after this; the run ends soon after")
    parser.add_argument("--engine", choices=("synthetic", "lite"), default="synthetic")
    parser.add_argument("--devices", default="cpu,cpu2", help="one worker process each")
    parser.add_argument("--faults", default=",".join(FAULTS), help=f"comma-separated from {', '.join(FAULTS)}, or none")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    faults = [] if args.faults == "none" else [f.strip() for f in args.faults.split(",") if f.strip()]
    unknown = set(faults) - set(FAULTS)
    if unknown:
        parser.error(f"unknown faults: {sorted(unknown)}")

    folder = Path(tempfile.mkdtemp(prefix="talkbridge-soak-"))
    address = f"ipc://{folder}/sidecar.sock"
    if args.engine == "synthetic":
        factory, kwargs, audio = "talkbridge.bridge.synthetic:SyntheticRunner", {}, np.zeros(1600, np.float32)
    else:
        from tests.speech import speech_like, write_wav

        factory, kwargs = "talkbridge.bridge.jobs:EngineRunner", {"engine_kwargs": {}}
        audio = write_wav(folder / "speech.wav", speech_like(4.0, seed=args.seed))
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER_SCRIPT, address, factory, json.dumps(kwargs), args.devices, str(MAX_INPUT)], cwd=ROOT
    )
    tally = Tally()
    try:
        wait_for_server(address, timeout=60, process=server)
        time.sleep(0.5)  # let every worker finish starting before the first RSS reading
        rss_start = rss_mib(server.pid), sum(rss_mib(pid) for pid in worker_pids(server.pid))
        started = time.monotonic()
        deadline = started + args.seconds
        stop = threading.Event()
        pings: list[float] = []
        watcher = threading.Thread(target=watch_pings, args=(address, stop, tally, pings))
        injector = threading.Thread(target=inject_faults, args=(faults, address, args.engine, server.pid, deadline, stop, tally, args.seed))
        clients = [
            threading.Thread(target=run_client, args=(address, args.engine, audio, args.jobs, deadline, args.seed * 1000 + i, tally))
            for i in range(args.clients)
        ]
        for thread in [watcher, injector, *clients]:
            thread.start()
        for thread in clients:
            thread.join(args.seconds + 120)
        stop.set()
        injector.join(30)
        watcher.join(10)
        if any(thread.is_alive() for thread in clients):
            tally.problem("a client was still waiting for its job 120 s after the deadline")
        time.sleep(4.0)  # past the server's client_timeout_s: killed clients' jobs must be gone
        with Client(address) as probe:
            queued = probe.welcome["capabilities"]["queued_jobs"]
        if queued:
            tally.problem(f"{queued} job(s) still queued on the server at the end")
        rss_end = rss_mib(server.pid), sum(rss_mib(pid) for pid in worker_pids(server.pid))
        elapsed = time.monotonic() - started
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
        try:
            exit_code = server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            exit_code = server.wait(10)
    if exit_code != 0:
        tally.problem(f"the server exited with code {exit_code} on SIGTERM")

    jobs, faults_seen = tally.jobs, tally.faults
    print(f"soak: {args.clients} clients x {args.jobs} jobs, engine {args.engine}, devices {args.devices}, {elapsed:.1f} s")
    print(f"jobs: {jobs['submitted']} submitted, {jobs['done']} done, {jobs['failed']} failed, {jobs['lost']} lost, {jobs['wrong']} wrong")
    if tally.codes:
        print("endings other than done: " + ", ".join(f"{code} {n}" for code, n in sorted(tally.codes.items())))
    print("faults: " + (", ".join(f"{name} {n}" for name, n in sorted(faults_seen.items())) or "none"))
    print(f"pings: {len(pings)}, slowest {max(pings, default=0) * 1000:.1f} ms")
    print(f"server RSS: start {rss_start[0]:.1f} MiB, end {rss_end[0]:.1f} MiB ({rss_end[0] - rss_start[0]:+.1f})")
    print(f"workers RSS: start {rss_start[1]:.1f} MiB, end {rss_end[1]:.1f} MiB ({rss_end[1] - rss_start[1]:+.1f})")
    print(f"server exit code on SIGTERM: {exit_code}")
    for problem in tally.problems:
        print(f"PROBLEM: {problem}")
    unexpected = jobs["failed"] or jobs["wrong"] or (jobs["lost"] and "worker_kill" not in faults)
    return 1 if tally.problems or unexpected else 0


if __name__ == "__main__":
    sys.exit(main())
