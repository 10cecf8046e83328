"""The one output writer: what it writes from a stream of steps, and what it never leaves behind."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.io

from talkbridge.core.errors import InputError
from talkbridge.core.jobs import JobInfo, JobStream, Step
from talkbridge.core.motion import MotionChunk
from talkbridge.exporters.job_files import OutputPlan, write_job
from talkbridge.exporters.motion_file import load_motion


def sadtalker_steps(n_steps: int = 3, frames: int = 5, fail_at: int | None = None, closed: list | None = None):
    rng = np.random.default_rng(0)
    try:
        for index in range(n_steps):
            if index == fail_at:
                raise RuntimeError("engine fell over")
            chunk = MotionChunk(index * frames, rng.normal(size=(frames, 6)), rng.random(frames), rng.normal(size=(frames, 64)))
            yield Step(chunk, np.full((frames, 32, 48, 3), 40 * index, np.uint8))
    finally:
        if closed is not None:
            closed.append(True)


def stream_of(steps, scale: float = 2.0, cancelled: list | None = None) -> JobStream:
    info = JobInfo("sadtalker", "test", n_frames=15, expression_scale=scale, metadata={"crop": {"mode": "crop"}})
    return JobStream(info, steps, cancel=lambda: cancelled.append(True) if cancelled is not None else None)


def test_the_mat_keeps_official_rows_and_the_motion_file_shows_the_scale(tmp_path):
    plan = OutputPlan(tmp_path, "clip")
    plan.prepare("sadtalker")
    written = write_job(stream_of(sadtalker_steps()), plan, audio=None, request_metadata={"route": "local", "audio": "a.wav"})
    files = written.files
    assert set(files) == {"video", "motion", "summary", "coefficients"}
    official = scipy.io.loadmat(files["coefficients"])["coeff_3dmm"]
    motion = load_motion(files["motion"])
    # The motion handed back is the file's, arrays and metadata alike (the caller never reads it again).
    assert written.motion.metadata == motion.metadata
    for name, array in motion.arrays().items():
        np.testing.assert_array_equal(written.motion.arrays()[name], array, err_msg=name)
    assert official.shape == (15, 70) and motion.n_frames == 15
    assert np.allclose(motion.expression, 2.0 * official[:, :64]) and np.array_equal(motion.pose, official[:, 64:])
    assert motion.metadata["expression_scale_applied"] == 2.0
    assert motion.metadata["crop"] == {"mode": "crop"} and motion.metadata["route"] == "local"  # engine's and caller's facts
    assert motion.metadata["video"] == "clip.mp4"
    assert json.loads(files["summary"].read_text())["frames"] == 15


def test_a_failing_job_leaves_nothing_and_is_closed(tmp_path):
    (tmp_path / "clip.mp4").write_bytes(b"an earlier good take")
    cancelled, closed = [], []
    plan = OutputPlan(tmp_path, "clip", overwrite=True)
    with pytest.raises(RuntimeError, match="engine fell over"):
        write_job(stream_of(sadtalker_steps(fail_at=2, closed=closed), cancelled=cancelled), plan, audio=None, request_metadata={})
    assert cancelled == [True] and closed == [True]  # the job is told, and its steps are closed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]
    assert (tmp_path / "clip.mp4").read_bytes() == b"an earlier good take"


def test_targets_are_checked_before_any_work(tmp_path):
    (tmp_path / "clip.motion.npz").write_bytes(b"keep me")
    with pytest.raises(InputError, match="clip.motion.npz: already exists"):
        OutputPlan(tmp_path, "clip").prepare("lite")
    assert set(OutputPlan(tmp_path, "x").targets("lite")) == {"video", "motion", "summary"}
    assert set(OutputPlan(tmp_path, "x", video=False).targets("sadtalker")) == {"motion", "summary", "coefficients"}
    with pytest.raises(InputError, match="cannot create the output folder"):
        OutputPlan(tmp_path / "clip.motion.npz" / "below", "x").prepare(None)
    with pytest.raises(InputError, match="cannot create the output folder"):
        OutputPlan(type(tmp_path)("/proc/talkbridge-out"), "x").prepare(None)


def test_a_job_without_frames_cannot_make_a_video(tmp_path):
    def motion_only():
        for step in sadtalker_steps():
            yield Step(step.chunk)

    with pytest.raises(InputError, match="rendered no frames"):
        write_job(stream_of(motion_only()), OutputPlan(tmp_path, "clip"), audio=None, request_metadata={})
    assert list(tmp_path.iterdir()) == []


def test_the_files_are_committed_together_or_not_at_all(tmp_path):
    """A failure while writing the motion files (here: metadata JSON cannot hold) also keeps the
    finished video from appearing: the set is complete or absent."""
    plan = OutputPlan(tmp_path, "clip")
    with pytest.raises(TypeError):
        write_job(stream_of(sadtalker_steps()), plan, audio=None, request_metadata={"unserialisable": {1, 2}})
    assert list(tmp_path.iterdir()) == []
