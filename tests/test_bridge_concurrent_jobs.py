"""Several jobs at once in one worker process (``jobs_per_device`` / ``jobs_per_worker``).

The runners below are built inside the worker process from their "module:callable" name, as
`talkbridge serve` builds the engine runner, so these tests cross the real process boundary. A
module-level rendezvous in the worker proves that jobs really run at the same time in one process:
each job waits (up to its ``meet_s`` option) until ``meet_n`` jobs (default 2) are running there.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from talkbridge.bridge import protocol as p
from talkbridge.bridge.codec import JobSpec
from talkbridge.bridge.server import Server, ServerConfig
from talkbridge.bridge.synthetic import SyntheticRunner, synthetic_chunk, synthetic_frames
from talkbridge.bridge.relay import RemoteJobError
from talkbridge.bridge.workers import ProcessRunner, WorkerSpec
from tests.test_bridge_server import connect, wait_for
from tests.test_bridge_workers import _alive, _first_chunk, one_chunk, serve_in_processes

pytestmark = pytest.mark.timeout(120)

AUDIO = np.zeros(1600, np.float32)
MEETING = WorkerSpec("tests.test_bridge_concurrent_jobs:MeetingRunner")
LONG = {"n_frames": 10**6, "chunk_frames": 5, "delay_s": 0.02}

_running = 0  # jobs running in this (worker) process
_ended: list[str] = []  # jobs that have ended in this process, in order
_peak: dict[str, int] = {}  # job id -> most jobs running at once while it ran (a meeting is not missed
#                             when the other job starts and ends before this one looks)
_changed = threading.Condition()


class MeetingRunner(SyntheticRunner):
    """The synthetic runner; each job first waits up to ``meet_s`` until ``meet_n`` jobs run in this process.

    The job's facts (its ``info`` metadata) say in which process it ran (``pid``), whether it met
    another job (``met``), when it started (monotonic seconds, one clock for the whole machine) and
    which jobs had already ended in that process (``ended_before``). With ``stubborn`` a job yields
    one chunk and then ignores its cancel, like an engine stuck in native code.
    """

    def run(self, job, device, cancel):
        global _running
        with _changed:
            _running += 1
            _peak[job.job_id] = 0
            for job_id in [j for j in _peak if j not in _ended]:
                _peak[job_id] = max(_peak[job_id], _running)
            _changed.notify_all()
        try:
            if job.options.get("stubborn"):
                yield from one_chunk(job)
                time.sleep(600)
            yield from super().run(job, device, cancel)
        finally:
            with _changed:
                _running -= 1
                _ended.append(job.job_id)
                _changed.notify_all()

    def facts(self, job):
        started = time.monotonic()
        with _changed:
            wanted = int(job.options.get("meet_n", 2))
            met = _changed.wait_for(lambda: _peak.get(job.job_id, 0) >= wanted, timeout=float(job.options.get("meet_s", 0.0)))
            ended = list(_ended)
        return {"pid": os.getpid(), "met": met, "started": started, "ended_before": ended}


def facts_of(events) -> dict:
    """The ``info`` metadata among a job's events."""
    return next(event.info().metadata for event in events if event.type == p.INFO)


def _serve(jobs: int, **runner_options):
    return serve_in_processes(MEETING, runner_options={"jobs_per_worker": jobs, **runner_options}, jobs_per_device=jobs)


def _worker_processes() -> list[int]:
    """Live worker processes started by this test process."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == os.getpid() and fields[0] != "Z" and b"talkbridge.bridge.worker_main" in command:
            found.append(int(entry.name))
    return found


@pytest.mark.parametrize("jobs", [1, 2])
def test_two_jobs_share_one_worker_process_only_when_the_device_takes_two(jobs):
    meet_s = 10.0 if jobs == 2 else 0.5  # with one job at a time the second can never come: give up soon
    options = {"n_frames": 20, "chunk_frames": 5, "meet_s": meet_s}
    with _serve(jobs) as (server, runner), connect(server) as first, connect(server) as second:
        handles = [first.submit("synthetic", audio=AUDIO, options=options), second.submit("synthetic", audio=AUDIO, options=options)]
        results = [handle.result() for handle in handles]
        pid = runner.worker_pid("cpu")
    assert [result.final.type for result in results] == [p.DONE, p.DONE], [result.final.body for result in results]
    ids = {id(result): handle.job_id for result, handle in zip(results, handles)}
    ordered = sorted(results, key=lambda result: result.info.metadata["started"])
    facts = [result.info.metadata for result in ordered]
    assert [fact["pid"] for fact in facts] == [pid, pid] and pid != os.getpid()
    if jobs == 2:
        assert [fact["met"] for fact in facts] == [True, True]
    else:
        assert [fact["met"] for fact in facts] == [False, False]
        assert ids[id(ordered[0])] in facts[1]["ended_before"]  # the second began after the first had ended


def test_interleaved_streams_arrive_intact_and_in_order():
    jobs = {f"seed{seed}": (seed, n) for seed, n in ((1, 47), (2, 53), (3, 61))}
    with _serve(3) as (server, _), connect(server) as client:
        ids = {}
        for name, (seed, n) in jobs.items():
            options = {"n_frames": n, "chunk_frames": 4, "seed": seed, "delay_s": 0.01, "meet_s": 10.0, "meet_n": len(jobs)}
            ids[client.submit_nowait("synthetic", audio=AUDIO, render_size=16, options=options)] = name
        events = []
        deadline = time.monotonic() + 60
        while sum(event.terminal for event in events) < len(jobs) and time.monotonic() < deadline:
            events += [event for event in client.poll_events() if event.job_id in ids]
            time.sleep(0.005)
    order = [ids[event.job_id] for event in events if event.type == p.CHUNK]
    assert sum(a != b for a, b in zip(order, order[1:])) > len(jobs) - 1  # the streams really interleaved
    for job_id, name in ids.items():
        seed, n = jobs[name]
        mine = [event for event in events if event.job_id == job_id]
        chunks = [event for event in mine if event.type == p.CHUNK]
        assert mine[-1].type == p.DONE and facts_of(mine)["met"] is True, mine[-1].body
        assert [chunk.body["start"] for chunk in chunks] == list(range(0, n, 4))
        assert np.array_equal(np.concatenate([c.arrays["expression"] for c in chunks]), synthetic_chunk(0, n, seed).expression)
        assert np.array_equal(np.concatenate([c.arrays["pose"] for c in chunks]), synthetic_chunk(0, n, seed).pose)
        assert np.array_equal(np.concatenate([c.arrays["frames"] for c in chunks]), synthetic_frames(0, n, 16))


def test_cancelling_one_job_leaves_the_other_running_to_done():
    with _serve(2) as (server, runner), connect(server) as canceller, connect(server) as bystander:
        doomed = canceller.submit("synthetic", audio=AUDIO, options={**LONG, "meet_s": 10.0})
        other = bystander.submit("synthetic", audio=AUDIO, options={"n_frames": 200, "chunk_frames": 5, "delay_s": 0.02, "meet_s": 10.0})
        _, doomed_events = _first_chunk(doomed)  # both have met: they run side by side
        other_seen, other_events = _first_chunk(other)
        assert facts_of(other_seen)["met"] is True
        pid = runner.worker_pid("cpu")
        doomed.cancel()
        assert list(doomed_events)[-1].type == p.CANCELLED
        rest = list(other_events)
        assert rest[-1].type == p.DONE and rest[-1].body["n_frames"] == 200
        assert runner.worker_pid("cpu") == pid and runner.restarts == 0  # the child stopped one job itself


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGSTOP], ids=["killed", "hung"])
def test_a_lost_worker_fails_all_its_jobs_and_is_replaced_once(how):
    with _serve(2, hang_timeout_s=1.0) as (server, runner), connect(server) as first, connect(server) as second:
        handles = [client.submit("synthetic", audio=AUDIO, options={**LONG, "meet_s": 10.0}) for client in (first, second)]
        streams = [_first_chunk(handle)[1] for handle in handles]
        pid = runner.worker_pid("cpu")
        assert _worker_processes() == [pid]
        os.kill(pid, how)  # SIGSTOP: alive but silent, a hang
        finals = [list(stream)[-1] for stream in streams]
        for final in finals:
            assert final.code == p.E_WORKER_LOST and final.body["retryable"] is True, final.body
            assert (how.name if how == signal.SIGKILL else "no sign of life") in final.body["message"]
        assert runner.restarts == 1 and not _alive(pid)
        successor = runner.worker_pid("cpu")
        assert successor not in (None, pid) and _worker_processes() == [successor]
        again = first.submit("synthetic", audio=AUDIO, options={"n_frames": 20}).result()
        assert again.final.type == p.DONE and again.info.metadata["pid"] == successor
        assert runner.restarts == 1 and _worker_processes() == [successor]


def test_a_job_that_ignores_its_cancel_costs_the_worker_and_the_other_job_says_why():
    with _serve(2, cancel_grace_s=1.0) as (server, runner), connect(server) as canceller, connect(server) as bystander:
        stuck = canceller.submit("synthetic", audio=AUDIO, options={"stubborn": True, "meet_s": 10.0})
        other = bystander.submit("synthetic", audio=AUDIO, options={**LONG, "meet_s": 10.0})
        _, stuck_events = _first_chunk(stuck)
        _, other_events = _first_chunk(other)
        pid = runner.worker_pid("cpu")
        stuck.cancel()
        assert list(stuck_events)[-1].type == p.CANCELLED
        lost = list(other_events)[-1]
        assert lost.code == p.E_WORKER_LOST and lost.body["retryable"] is True
        assert f"job {stuck.job_id} did not stop" in lost.body["message"] and "submit it again" in lost.body["message"]
        assert runner.restarts == 1 and not _alive(pid)


def test_a_client_that_grants_no_credit_stalls_only_its_own_job():
    with _serve(2) as (server, _), connect(server) as paused, connect(server) as other:
        held = paused.submit_nowait("synthetic", audio=AUDIO, credit=1, render_size=16, options={"n_frames": 300, "chunk_frames": 5, "meet_s": 10.0})
        done = other.submit("synthetic", audio=AUDIO, options={"n_frames": 100, "chunk_frames": 5, "delay_s": 0.01, "meet_s": 10.0}).result()
        assert done.final.type == p.DONE and done.info.metadata["met"] is True  # both ran in the worker at once
        assert np.array_equal(done.array("expression"), synthetic_chunk(0, 100).expression)
        mine = [event for event in list(paused.events.queue) if event.job_id == held]
        assert not any(event.terminal for event in mine) and sum(event.type == p.CHUNK for event in mine) <= 1
        events = []
        assert wait_for(lambda: events.extend(e for e in paused.poll_events() if e.job_id == held) or (events and events[-1].terminal), 30.0)
    chunks = [event for event in events if event.type == p.CHUNK]
    assert events[-1].type == p.DONE and [c.body["start"] for c in chunks] == list(range(0, 300, 5))
    assert np.array_equal(np.concatenate([c.arrays["frames"] for c in chunks]), synthetic_frames(0, 300, 16))


def test_a_worker_refuses_more_jobs_than_it_takes_and_runs_that_many_from_threads():
    def run_all(runner: ProcessRunner, n: int, meet_s: float) -> list:
        results: list = [None] * n

        def one(index: int) -> None:
            job = JobSpec(f"job{index}", "synthetic", {"n_frames": 20, "chunk_frames": 5, "meet_s": meet_s}, audio_pcm=AUDIO)
            try:
                results[index] = list(runner.run(job, "cpu", threading.Event()))
            except RemoteJobError as error:
                results[index] = error

        threads = [threading.Thread(target=one, args=(index,)) for index in range(n)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        return results

    with ProcessRunner(MEETING, jobs_per_worker=2) as runner:
        both = run_all(runner, 2, 10.0)
    assert all(isinstance(messages, list) and len(messages) == 5 and messages[0].body["metadata"]["met"] for messages in both), both
    with ProcessRunner(MEETING, jobs_per_worker=1) as runner:
        crowded = run_all(runner, 2, 2.0)  # the first job is still waiting when the second comes
    refused = [result for result in crowded if isinstance(result, RemoteJobError)]
    assert len(refused) == 1 and refused[0].code == p.E_BUSY and refused[0].retryable, crowded
    assert "its limit is 1" in str(refused[0])


def test_a_server_will_not_run_more_jobs_per_device_than_its_workers_take():
    runner = ProcessRunner(MEETING, jobs_per_worker=1)
    try:
        with pytest.raises(ValueError, match="jobs_per_worker=2"):
            Server(runner, ServerConfig(bind="tcp://127.0.0.1:*", jobs_per_device=2))
        with pytest.raises(ValueError, match="at least 1"):
            Server(runner, ServerConfig(bind="tcp://127.0.0.1:*", jobs_per_device=0))
        assert runner.worker_pid("cpu") is None  # refused before any worker started
    finally:
        runner.close()


def test_serve_wires_jobs_per_device_and_refuses_it_with_ray(monkeypatch, caplog):
    from talkbridge.cli import main
    from tests.sidecars import record_serve

    built = record_serve(monkeypatch)
    assert main(["serve", "--bind", "tcp://127.0.0.1:0", "--jobs-per-device", "3"]) == 0
    runner, config = built[-1]
    assert config.jobs_per_device == 3 and runner.jobs_per_worker == 3
    runner.close()
    assert main(["serve", "--bind", "tcp://127.0.0.1:0"]) == 0
    runner, config = built[-1]
    assert config.jobs_per_device == 1 and runner.jobs_per_worker == 1
    runner.close()

    with caplog.at_level(logging.ERROR):
        assert main(["serve", "--ray", "local", "--jobs-per-device", "2"]) == 1
        assert main(["serve", "--jobs-per-device", "0"]) == 1
    assert "with --ray each cluster actor runs one job at a time" in caplog.text
    assert "--jobs-per-device must be at least 1, not 0" in caplog.text
    assert len(built) == 2
