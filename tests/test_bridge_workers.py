"""Engines in worker processes (bridge/workers.py): streaming, info, faults, cancel, and the GIL.

The runners below are built inside the worker process from their "module:callable" name, exactly as
`talkbridge serve` builds the engine runner, so these tests cross the real process boundary.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import zmq

from talkbridge.bridge import protocol as p
from talkbridge.bridge.codec import JobSpec, step_messages
from talkbridge.core.jobs.steps import Step
from talkbridge.bridge.server import Server, ServerConfig
from talkbridge.bridge.synthetic import SyntheticRunner, synthetic_chunk, synthetic_frames
from talkbridge.bridge.workers import ProcessRunner, WorkerSpec, WorkerStartError
from tests.test_bridge_server import connect

pytestmark = pytest.mark.timeout(120)

AUDIO = np.zeros(1600, np.float32)
SYNTHETIC = WorkerSpec("talkbridge.bridge.synthetic:SyntheticRunner")
FACTS = {"fps_hint": 25, "names": ["a", "b"], "nested": {"x": [1.5, None]}, "scale": 1.25, "row": [0.25, -1.0, 3.0]}


class InfoRunner(SyntheticRunner):
    """The synthetic runner whose job facts hold rich JSON, numpy scalars and arrays included."""

    def facts(self, job: JobSpec) -> dict:
        return {**FACTS, "scale": np.float32(1.25), "row": np.array(FACTS["row"], np.float64)}


def one_chunk(job: JobSpec):
    """The first messages of a synthetic job: its facts, then one 5-frame step."""
    runner = SyntheticRunner()
    info = next(iter(runner.run(JobSpec(job.job_id, "synthetic", {"n_frames": 5}), "cpu", threading.Event())))
    return [info, *step_messages(job.job_id, Step(synthetic_chunk(0, 5)))]


class ExitingRunner(SyntheticRunner):
    """An engine whose library calls sys.exit() (or os._exit with option "hard") mid-job."""

    def run(self, job, device, cancel):
        yield from one_chunk(job)
        if job.options.get("hard"):
            os._exit(3)
        sys.exit("a library gave up")


class StubbornRunner(SyntheticRunner):
    """Yields one chunk, then sits in a call that never looks at the cancel flag."""

    def run(self, job, device, cancel):
        yield from one_chunk(job)
        time.sleep(600)


@contextlib.contextmanager
def serve_in_processes(spec: WorkerSpec = SYNTHETIC, devices: tuple[str, ...] = ("cpu",), runner_options: dict | None = None, **options):
    runner = ProcessRunner(spec, devices, **(runner_options or {}))
    server = Server(runner, ServerConfig(bind="tcp://127.0.0.1:*", devices=devices, **options)).start()
    try:
        yield server, runner
    finally:
        server.stop()  # also stops the worker processes


def _first_chunk(handle) -> tuple[list, object]:
    events = iter(handle)
    seen = []
    for event in events:
        seen.append(event)
        if event.type == p.CHUNK:
            break
    return seen, events


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(OSError):  # a zombie counts as gone
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split()[2] != "Z"
    return True


def test_a_worker_process_streams_the_same_arrays_and_the_info_arrives_intact():
    spec = WorkerSpec("tests.test_bridge_workers:InfoRunner")
    with serve_in_processes(spec) as (server, runner), connect(server) as client:
        assert client.welcome["capabilities"]["engines"] == ["synthetic"]
        result = client.submit("synthetic", audio=AUDIO, render_size=64, options={"n_frames": 57, "chunk_frames": 8, "seed": 3}).result()
        worker = runner.worker_pid("cpu")
    assert worker is not None and worker != os.getpid()
    assert result.final.type == p.DONE, result.final.body
    assert np.array_equal(result.array("expression"), synthetic_chunk(0, 57, seed=3).expression)
    assert np.array_equal(result.array("frames"), synthetic_frames(0, 57, 64))
    assert {key: result.info.metadata[key] for key in FACTS} == FACTS  # nested JSON, numpy scalars and arrays made plain
    assert result.info.engine == "synthetic" and result.info.n_frames == 57
    assert result.final.body == {"n_frames": 57, "n_chunks": 8}


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGSEGV])
def test_a_killed_worker_fails_only_its_job_with_worker_lost_and_is_replaced(how):
    with serve_in_processes(devices=("dev0", "dev1")) as (server, runner), connect(server) as victim, connect(server) as bystander:
        slow = {"n_frames": 10**6, "chunk_frames": 5, "delay_s": 0.02}
        doomed = victim.submit("synthetic", audio=AUDIO, options=slow)
        seen, events = _first_chunk(doomed)
        device = next(e.body["device"] for e in seen if e.type == p.PROGRESS)
        other = bystander.submit("synthetic", audio=AUDIO, options={"n_frames": 40, "chunk_frames": 5, "delay_s": 0.05})
        os.kill(runner.worker_pid(device), how)
        final = list(events)[-1]
        assert final.type == p.ERROR and final.code == p.E_WORKER_LOST and final.body["retryable"] is True
        assert device in final.body["message"] and how.name in final.body["message"] and "submit it again" in final.body["message"]
        assert list(other)[-1].type == p.DONE  # the other device's job never noticed
        again = victim.submit("synthetic", audio=AUDIO, options={"n_frames": 20}).result()
        assert again.final.type == p.DONE and again.array("pose").shape == (20, 6)
        assert runner.restarts == 1 and victim.ping() < 0.5


def test_a_hung_worker_is_killed_after_the_hang_timeout_and_the_next_job_runs():
    with serve_in_processes(runner_options={"hang_timeout_s": 1.0}) as (server, runner), connect(server) as client:
        handle = client.submit("synthetic", audio=AUDIO, options={"n_frames": 10**6, "chunk_frames": 5, "delay_s": 0.02})
        _, events = _first_chunk(handle)
        pid = runner.worker_pid("cpu")
        os.kill(pid, signal.SIGSTOP)  # alive but silent: a deadlock, a stuck driver call
        started = time.monotonic()
        final = list(events)[-1]
        assert final.code == p.E_WORKER_LOST and "no sign of life" in final.body["message"]
        assert time.monotonic() - started < 5.0
        assert not _alive(pid)
        assert client.submit("synthetic", audio=AUDIO).result().final.type == p.DONE


def test_cancel_reaches_the_worker_and_a_worker_that_ignores_it_is_replaced():
    with serve_in_processes(runner_options={"cancel_grace_s": 1.0}) as (server, runner), connect(server) as client:
        handle = client.submit("synthetic", audio=AUDIO, options={"n_frames": 10**6, "chunk_frames": 5, "delay_s": 0.02})
        _, events = _first_chunk(handle)
        pid = runner.worker_pid("cpu")
        handle.cancel()
        assert list(events)[-1].type == p.CANCELLED
        assert client.submit("synthetic", audio=AUDIO, options={"n_frames": 10}).result().final.type == p.DONE
        assert runner.worker_pid("cpu") == pid and runner.restarts == 0  # the child stopped the job itself

    with serve_in_processes(WorkerSpec("tests.test_bridge_workers:StubbornRunner"), runner_options={"cancel_grace_s": 1.0}) as (server, runner), connect(server) as client:
        handle = client.submit("synthetic", audio=AUDIO)
        _, events = _first_chunk(handle)
        pid = runner.worker_pid("cpu")
        started = time.monotonic()
        handle.cancel()
        assert list(events)[-1].type == p.CANCELLED
        assert time.monotonic() - started < 4.0 and not _alive(pid) and runner.restarts == 1


def test_a_worker_that_cannot_start_says_why():
    with pytest.raises(WorkerStartError, match="No module named 'no_such_module'"):
        ProcessRunner(WorkerSpec("no_such_module:Runner")).start()
    with pytest.raises(WorkerStartError, match="'package.module:callable'"):
        ProcessRunner(WorkerSpec("just_a_name")).start()


def test_workers_exit_when_their_server_process_dies(tmp_path):
    code = (
        "import sys; from talkbridge.bridge.workers import ProcessRunner, WorkerSpec;"
        "r = ProcessRunner(WorkerSpec('talkbridge.bridge.synthetic:SyntheticRunner')).start();"
        "print(r.worker_pid('cpu'), flush=True); import os; os._exit(0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=Path(__file__).parents[1])
    pid = int(result.stdout.split()[0])
    deadline = time.monotonic() + 5
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pid)


@pytest.mark.slow
def test_a_60_s_lite_job_never_delays_another_clients_pings(tmp_path):
    """The lite phone recogniser holds the GIL for seconds; in its own process it cannot stall the server."""
    from tests.speech import speech_like, write_wav

    speech = write_wav(tmp_path / "speech.wav", speech_like(60.0, seed=3))
    spec = WorkerSpec("talkbridge.bridge.jobs:EngineRunner", {"engine_kwargs": {}}, (("engine", ("lite", "$device")),))
    with serve_in_processes(spec, runner_options={"start_timeout_s": 120}) as (server, _), connect(server) as submitter, connect(server) as bystander:
        pings: list[float] = []
        stop = threading.Event()

        def keep_pinging() -> None:
            while not stop.is_set():
                pings.append(bystander.ping(timeout=5.0))
                time.sleep(0.1)

        pinger = threading.Thread(target=keep_pinging)
        pinger.start()
        try:
            result = submitter.submit("lite", audio=speech).result()
        finally:
            stop.set()
            pinger.join(10)
        lost = [e for e in list(submitter.events.queue) + list(bystander.events.queue) if e.code == p.E_SERVER_LOST]
    assert result.final.type == p.DONE, result.final.body
    assert result.final.body["n_frames"] == 1500
    assert len(pings) >= 10 and max(pings) < 0.5, max(pings)
    assert lost == []


def test_outputs_cross_the_process_boundary_without_copies():
    """The runner's frames arrive as read-only views on the received message, not as copies."""
    with ProcessRunner(SYNTHETIC) as runner:
        job = JobSpec("zero-copy", "synthetic", {"n_frames": 30, "chunk_frames": 10}, audio_pcm=AUDIO, render_size=64)
        messages = list(runner.run(job, "cpu", threading.Event()))
    assert [m.type for m in messages] == [p.INFO, p.CHUNK, p.CHUNK, p.CHUNK]
    assert [m.body["start"] for m in messages[1:]] == [0, 10, 20]
    frames = messages[2].buffers["frames"]
    owner = frames
    while isinstance(owner, np.ndarray):
        owner = owner.base
    assert not frames.flags.owndata and isinstance(owner, memoryview) and isinstance(owner.obj, zmq.Frame)
    assert np.array_equal(frames, synthetic_frames(10, 10, 64))


def test_an_engine_that_exits_fails_its_job_and_the_worker_carries_on_or_is_replaced():
    with serve_in_processes(WorkerSpec("tests.test_bridge_workers:ExitingRunner")) as (server, runner), connect(server) as client:
        soft = client.submit("synthetic", audio=AUDIO).result().final
        assert soft.code == p.E_ENGINE_FAILED and "SystemExit: a library gave up" in soft.body["message"]
        assert runner.restarts == 0
        hard = client.submit("synthetic", audio=AUDIO, options={"hard": True}).result().final
        assert hard.code == p.E_WORKER_LOST and "exited with code 3" in hard.body["message"]
        assert client.submit("synthetic", audio=AUDIO).result().final.code == p.E_ENGINE_FAILED  # a fresh worker took it
        assert runner.restarts == 1
