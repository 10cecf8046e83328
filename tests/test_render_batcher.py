"""Cross-job batching (core/sadtalker/render/batcher.py): concurrent jobs share passes, each job's
frames equal its solo run, waiting jobs share every pass fairly, and nobody waits past ``max_wait_ms``.

Tiny recipe renderers at 64x64 with the golden ``sn_u_x10`` adjustment (see test_render_shared_pass),
on one torch thread, where a fixed-size pass makes a row's result independent of its neighbours (and
within one grey level of its solo run wherever it sits: ``assert_frames_match``).
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from talkbridge.core.sadtalker.render import batcher as batcher_module
from talkbridge.core.sadtalker.render.batcher import BatchPolicy, FrameBatcher, PassRecord
from talkbridge.core.sadtalker.render.job import RenderJob
from talkbridge.core.sadtalker.render.renderer import FaceRenderer, free_view_poses
from tests.render_helpers import assert_frames_match, sn_u_x10, tiny_recipe_models
from tests.test_render_shared_pass import JOBS, SIZE, _portrait, _solo

pytestmark = [pytest.mark.usefixtures("one_torch_thread"), pytest.mark.timeout(120)]


@pytest.fixture(scope="module")
def models():
    return sn_u_x10(tiny_recipe_models(seed=1))


def _stream_in_thread(models, job, batcher, results, index, chunk_rows=4):
    image, first, coeffs = _portrait(job["seed"])
    renderer = FaceRenderer(models, image, first, size=SIZE, batcher=batcher, **job["options"])
    poses = free_view_poses(len(coeffs), **(job["free_view"] or {}))
    chunks = [coeffs[i : i + chunk_rows] for i in range(0, len(coeffs), chunk_rows)]
    results[index] = np.concatenate([frames for frames in renderer.stream(chunks, poses) if len(frames)])


def _run_concurrently(models, batcher, jobs):
    results: list = [None] * len(jobs)
    threads = [threading.Thread(target=_stream_in_thread, args=(models, job, batcher, results, i)) for i, job in enumerate(jobs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(thread.is_alive() for thread in threads)
    return results


def test_concurrent_jobs_share_passes_and_each_gets_its_solo_frames(models):
    records: list[PassRecord] = []
    batcher = FrameBatcher(models, BatchPolicy(max_frames=4, max_wait_ms=200), on_pass=records.append)
    results = _run_concurrently(models, batcher, JOBS)
    for job, frames in zip(JOBS, results):
        solo = _solo(models, job, batch_size=4, fixed_batch=True)
        assert frames.shape == solo.shape == (9, SIZE, SIZE, 3)
        assert_frames_match(frames, solo, str(job))
    assert any(len(record.frames) > 1 for record in records), "no pass mixed jobs"
    assert sum(sum(r.frames.values()) for r in records) == batcher.frames == 27
    assert all(sum(r.frames.values()) + r.padding == 4 for r in records)


def test_a_job_alone_at_a_batcher_equals_the_fixed_batch_renderer(models):
    batcher = FrameBatcher(models, BatchPolicy(max_frames=3, max_wait_ms=0))
    [frames] = _run_concurrently(models, batcher, JOBS[1:2])
    assert np.array_equal(frames, _solo(models, JOBS[1], batch_size=3, fixed_batch=True))


def _request(batcher, job, count, out, key):
    """Join, render ``count`` frames of ``job`` in one request, record them under ``key``."""
    with batcher.join() as seat:
        out[key] = (seat.id, seat.render(job.take(count)))


def _long_job(models, seed, frames):
    image, first, _ = _portrait(seed)
    job = RenderJob(models, image, first, size=SIZE)
    job.feed(np.random.default_rng(seed).normal(0, 0.3, (frames, 70)).astype(np.float32))
    job.close()
    return job


def test_waiting_jobs_share_each_pass_fairly_and_a_newcomer_is_served_in_the_next_pass(models):
    """A job with 30 ready frames does not keep two later jobs waiting: each pass deals frames in turn."""
    jobs = {name: _long_job(models, seed, n) for name, seed, n in (("a", 21, 30), ("b", 22, 3), ("c", 23, 12))}
    records: list[PassRecord] = []
    others_waiting = threading.Event()

    def on_pass(record: PassRecord) -> None:
        records.append(record)
        if len(records) == 1:  # hold the first pass until the other two jobs are waiting
            assert others_waiting.wait(30)

    batcher = FrameBatcher(models, BatchPolicy(max_frames=6, max_wait_ms=10_000), on_pass=on_pass)
    out: dict = {}
    first = threading.Thread(target=_request, args=(batcher, jobs["a"], 30, out, "a"))
    first.start()
    while batcher.passes_started < 1:
        time.sleep(0.005)
    later = [threading.Thread(target=_request, args=(batcher, jobs[k], n, out, k)) for k, n in (("b", 3), ("c", 12))]
    for thread in later:
        thread.start()
    while batcher.waiting_requests < 3:
        time.sleep(0.005)
    others_waiting.set()
    for thread in (first, *later):
        thread.join(60)
    seat = {key: seat_id for key, (seat_id, _) in out.items()}
    dealt = [{key: record.frames.get(seat[key], 0) for key in "abc"} for record in records]
    assert dealt[0] == {"a": 6, "b": 0, "c": 0}
    assert dealt[1] == {"a": 2, "b": 2, "c": 2}  # the newcomers' first frames come in the very next pass
    assert dealt[2] == {"a": 3, "b": 1, "c": 2}  # b's last frame; the room goes to a and c in turn
    left = {"a": 24, "b": 3, "c": 12}
    for record in dealt[1:]:  # from the first pass all three were waiting for
        waiting = [k for k in "abc" if left[k] > 0]
        shares = [record[k] for k in waiting if left[k] > record[k]]  # jobs that still had frames after the pass
        assert not shares or max(record[k] for k in waiting) - min(shares) <= 1, record
        for k in "abc":
            left[k] -= record[k]
    assert left == {"a": 0, "b": 0, "c": 0}
    for key, count in (("a", 30), ("b", 3), ("c", 12)):
        assert out[key][1].shape == (count, SIZE, SIZE, 3)


def test_with_more_jobs_than_rows_the_jobs_left_out_of_a_pass_lead_the_next(models):
    """Five waiting jobs, two rows per pass: the turn rotates, so nobody waits more than three passes."""
    names = "abcde"
    jobs = {name: _long_job(models, 40 + i, 4) for i, name in enumerate(names)}
    records: list[PassRecord] = []
    others_waiting = threading.Event()

    def on_pass(record: PassRecord) -> None:
        records.append(record)
        if len(records) == 1:
            assert others_waiting.wait(30)

    batcher = FrameBatcher(models, BatchPolicy(max_frames=2, max_wait_ms=10_000), on_pass=on_pass)
    out: dict = {}
    threads = {name: threading.Thread(target=_request, args=(batcher, jobs[name], 4, out, name)) for name in names}
    threads["a"].start()
    while batcher.passes_started < 1:
        time.sleep(0.005)
    for name in names[1:]:
        threads[name].start()
        while batcher.waiting_requests < names.index(name) + 1:  # arrival order b, c, d, e
            time.sleep(0.005)
    others_waiting.set()
    for thread in threads.values():
        thread.join(60)
    seat = {name: seat_id for name, (seat_id, _) in out.items()}
    served = ["".join(sorted(n for n in names if record.frames.get(seat[n]))) for record in records]
    assert served[:5] == ["a", "bc", "de", "ab", "cd"], served
    assert all(out[name][1].shape == (4, SIZE, SIZE, 3) for name in names)


def test_a_pass_waits_for_other_jobs_at_most_max_wait_ms(models):
    batcher = FrameBatcher(models, BatchPolicy(max_frames=8, max_wait_ms=300))
    job = _long_job(models, 31, 2)
    with batcher.join(), batcher.join() as seat:  # the other seat never asks for frames
        started = time.monotonic()
        frames = seat.render(job.take(2))
        waited = time.monotonic() - started
    assert frames.shape == (2, SIZE, SIZE, 3)
    assert waited >= 0.3  # it did wait for a fuller pass ...
    assert waited < 5.0  # ... and then rendered alone (a generous bound against a loaded machine)


def test_a_pass_does_not_wait_when_every_job_that_joined_is_waiting(models):
    batcher = FrameBatcher(models, BatchPolicy(max_frames=8, max_wait_ms=10_000))
    job = _long_job(models, 32, 2)
    with batcher.join() as seat:
        other = batcher.join()
        other.leave()  # a job that ended is not waited for
        started = time.monotonic()
        seat.render(job.take(2))
    assert time.monotonic() - started < 5.0  # far below the 10 s it would wait for a missing job


def test_a_failed_pass_fails_its_jobs_and_the_batcher_carries_on(models, monkeypatch):
    real = batcher_module.render_slices
    calls = []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("CUDA out of memory")
        return real(*args, **kwargs)

    monkeypatch.setattr(batcher_module, "render_slices", flaky)
    batcher = FrameBatcher(models, BatchPolicy(max_frames=4, max_wait_ms=0))
    job = _long_job(models, 33, 6)
    with batcher.join() as seat:
        with pytest.raises(RuntimeError, match="CUDA out of memory"):
            seat.render(job.take(3))
        assert seat.render(job.take(3)).shape == (3, SIZE, SIZE, 3)


def test_the_render_thread_ends_when_idle_and_a_new_request_starts_another(models, monkeypatch):
    monkeypatch.setattr(batcher_module, "IDLE_EXIT_S", 0.05)
    batcher = FrameBatcher(models, BatchPolicy(max_frames=2, max_wait_ms=0))
    job = _long_job(models, 34, 4)
    with batcher.join() as seat:
        seat.render(job.take(2))
        deadline = time.monotonic() + 10
        while batcher.render_thread_alive and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not batcher.render_thread_alive
        assert seat.render(job.take(2)).shape == (2, SIZE, SIZE, 3)


def test_policy_limits_are_checked():
    with pytest.raises(ValueError, match="at least 1 frame"):
        BatchPolicy(max_frames=0)
    with pytest.raises(ValueError, match="max_wait_ms"):
        BatchPolicy(max_wait_ms=-1)


def test_each_pass_share_comes_back_at_once_and_a_closed_stream_withdraws_the_rest(models):
    """A job gets its frames pass by pass (first frames after one pass, not after its whole request);
    a job that stops listening has none of its remaining frames rendered."""
    records: list[PassRecord] = []
    got_first = threading.Event()

    def on_pass(record: PassRecord) -> None:
        records.append(record)
        if len(records) == 2:  # the second pass is held until the job has its first frames
            assert got_first.wait(10), "the first pass's frames were not handed back before the next pass"

    batcher = FrameBatcher(models, BatchPolicy(max_frames=4, max_wait_ms=0), on_pass=on_pass)
    job = _long_job(models, 35, 12)
    expected = _solo_frames(models, 35, 12, pass_size=4)
    with batcher.join() as seat:
        parts = seat.frames(job.take(8))
        first = next(parts)
        got_first.set()
        assert first.shape == (4, SIZE, SIZE, 3)  # out after the first pass
        rest = list(parts)
        assert [len(part) for part in rest] == [4]
        assert np.array_equal(np.concatenate([first, *rest]), expected[:8])
        stopped = seat.frames(job.take(4))
        assert len(next(stopped)) == 4
        stopped.close()  # nothing was left: closing changes nothing
        withdrawn = seat.frames(_long_job(models, 36, 40).take(40))
        next(withdrawn)
        withdrawn.close()  # the job went away after its first frames
    deadline = time.monotonic() + 10
    while batcher.waiting_requests and time.monotonic() < deadline:
        time.sleep(0.01)
    assert batcher.waiting_requests == 0
    assert batcher.frames < 12 + 40  # the withdrawn request's remaining frames were never rendered
    assert sum(sum(r.frames.values()) for r in records) == batcher.frames


def _solo_frames(models, seed, count, pass_size):
    from talkbridge.core.sadtalker.render.shared_pass import render_slices

    job = _long_job(models, seed, count)
    out = []
    while job.ready:
        out.extend(render_slices(models, [job.take(pass_size)], None, pass_size))
    return np.concatenate(out)
