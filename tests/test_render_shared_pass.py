"""Cross-job batching: frames of several jobs rendered in one generator pass equal their solo runs.

Tiny recipe renderers at 64x64 (structurally complete, milliseconds per frame) with the golden
``sn_u_x10`` adjustment, so frames are not saturated; the jobs differ in portrait, first-frame row,
still mode, expression scale and free-view pose, so any row mix-up shows. Passes have a fixed size
(``pad_to``): kernels may sum in a batch-size dependent order, and at a fixed size and one CPU thread
a row's result is independent of the other rows; on most CPUs it is also independent of its position,
but not on all (see ``assert_frames_match``), so a job's frames are compared within one grey level on
at most 0.1% of values. With several threads, torch's CPU elementwise kernels (exp, grid_sample) compute the
tail of each thread's chunk with scalar code instead of vector code, so the last bit of a few values
depends on where the thread split falls: there a job's frames are within one grey level.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from talkbridge.core.sadtalker.render.job import RenderJob
from talkbridge.core.sadtalker.render.renderer import FaceRenderer, free_view_poses
from talkbridge.core.sadtalker.render.shared_pass import drive_slices, render_slices
from tests.render_helpers import assert_float_frames_match, assert_frames_match, sn_u_x10, tiny_recipe_models

SIZE = 64


@pytest.fixture
def threads():
    """Run a test at a chosen torch thread count, restoring the previous one afterwards."""
    before = torch.get_num_threads()
    yield torch.set_num_threads
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def models():
    return sn_u_x10(tiny_recipe_models(seed=1))


def _portrait(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    first = rng.normal(0, 0.3, 73).astype(np.float32)
    coeffs = rng.normal(0, 0.3, (9, 70)).astype(np.float32)
    return image, first, coeffs


JOBS = [
    dict(seed=11, options={}, free_view=None),
    dict(seed=12, options={"still": True}, free_view={"yaw": [20]}),
    dict(seed=13, options={"expression_scale": 1.5}, free_view={"pitch": [-10, 10]}),
]


def _solo(models, job, batch_size: int, fixed_batch: bool = True) -> np.ndarray:
    image, first, coeffs = _portrait(job["seed"])
    renderer = FaceRenderer(
        models, image, first, size=SIZE, batch_size=batch_size, fixed_batch=fixed_batch, **job["options"]
    )
    return renderer.render(coeffs, **(job["free_view"] or {}))


def _job(models, job) -> tuple[RenderJob, np.ndarray]:
    image, first, coeffs = _portrait(job["seed"])
    poses = None if job["free_view"] is None else free_view_poses(len(coeffs), **job["free_view"])
    state = RenderJob(models, image, first, size=SIZE, poses=poses, **job["options"])
    return state, coeffs


def _mixed_passes(models) -> list[np.ndarray]:
    """Render the three jobs in shared passes of 6: 3 + 2 + 1 frames, the order rotating each pass."""
    jobs = [_job(models, job) for job in JOBS]
    for state, coeffs in jobs:
        state.feed(coeffs)
        state.close()
    got = [[] for _ in JOBS]
    # Uneven interleaving: each pass holds 3 frames of one job, 2 of the next and 1 of the last, rotating.
    turn = 0
    while not all(state.finished for state, _ in jobs):
        order = [(turn + k) % len(jobs) for k in range(len(jobs))]
        slices = [(i, jobs[i][0].take(limit)) for i, limit in zip(order, (3, 2, 1))]
        for (i, piece), frames in zip(slices, render_slices(models, [p for _, p in slices], pad_to=6)):
            assert len(frames) == len(piece)
            got[i].append(frames)
        turn += 1
    return [np.concatenate(frames) for frames in got]


def test_one_pass_over_three_jobs_equals_each_solo_run(models, threads):
    threads(1)
    solo = [_solo(models, job, batch_size=6) for job in JOBS]
    for index, frames in enumerate(_mixed_passes(models)):
        assert_frames_match(frames, solo[index], f"job {index}")
        # Without fixed passes the solo run differs only by summation order, below one grey level.
        unpadded = _solo(models, JOBS[index], batch_size=3, fixed_batch=False)
        assert np.abs(unpadded.astype(int) - solo[index].astype(int)).max() <= 1


def test_with_several_threads_shared_frames_stay_within_one_grey_level(models, threads):
    threads(2)
    solo = [_solo(models, job, batch_size=6) for job in JOBS]
    for index, frames in enumerate(_mixed_passes(models)):
        assert np.abs(frames.astype(int) - solo[index].astype(int)).max() <= 1, f"job {index}"


def test_shared_pass_float_output_equals_the_solo_pass(models, threads):
    threads(1)
    (a, coeffs_a), (b, coeffs_b) = _job(models, JOBS[0]), _job(models, JOBS[2])
    rows_a, rows_b = a.driving_rows(coeffs_a), b.driving_rows(coeffs_b)
    slice_a, slice_b = a.frame_slice(rows_a, range(2), a.poses), b.frame_slice(rows_b, range(3, 5), b.poses)
    alone_a, alone_b = drive_slices(models, [slice_a], pad_to=5), drive_slices(models, [slice_b], pad_to=5)
    together = drive_slices(models, [slice_a, slice_b], pad_to=5)
    swapped = drive_slices(models, [slice_b, slice_a], pad_to=5)
    assert_float_frames_match(together[:2], alone_a)
    assert_float_frames_match(together[2:], alone_b)
    assert_float_frames_match(swapped[2:], alone_a)
    assert_float_frames_match(swapped[:2], alone_b)
    assert float(together.std()) > 0.1  # well-conditioned: real image content, not a saturated map
    with pytest.raises(ValueError, match="do not fit"):
        drive_slices(models, [slice_a, slice_b], pad_to=3)


def test_streamed_job_hands_out_frames_once_their_look_ahead_is_complete(models):
    state, coeffs = _job(models, JOBS[0])
    assert state.feed(coeffs[:5]) == 0  # 13 frames of look-ahead needed
    assert len(state.take()) == 0
    state.close()
    first = state.take(2)
    assert (first.first, len(first)) == (0, 2) and state.ready == 3
    assert len(state.take()) == 3 and state.finished
    with pytest.raises(ValueError, match="already ended"):
        state.feed(coeffs)


def test_jobs_of_different_sizes_cannot_share_a_pass(models):
    small, _ = _job(models, JOBS[0])
    image, first, coeffs = _portrait(5)
    large = RenderJob(models, np.zeros((2 * SIZE, 2 * SIZE, 3), np.uint8), first, size=2 * SIZE)
    pieces = [small.frame_slice(small.driving_rows(coeffs), [0]), large.frame_slice(large.driving_rows(coeffs), [0])]
    with pytest.raises(ValueError, match="different render sizes"):
        render_slices(models, pieces)
