"""Reference videos become per-frame coefficient rows, as the official preprocessing makes them."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from talkbridge.core.errors import InputError
from talkbridge.core.face.extract import extract_first_frame
from talkbridge.core.face.landmarks import StaticLandmarks
from talkbridge.core.face.recon_net import ReconNet
from talkbridge.core.face.video_coeffs import is_video, video_coefficients
from tests.render_helpers import landmarks_y_down


@pytest.fixture(scope="module")
def recon() -> ReconNet:
    torch.manual_seed(0)
    return ReconNet().eval()


def write_video(path, frames) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25, (frames[0].shape[1], frames[0].shape[0]))
    for frame in frames:
        writer.write(np.ascontiguousarray(frame[:, :, ::-1]))
    writer.release()


def test_rows_equal_per_frame_extraction(tmp_path, recon):
    image, landmarks = landmarks_y_down()
    shifted = np.roll(image, 3, axis=1)
    path = tmp_path / "ref.mp4"
    write_video(path, [image, shifted, image])
    rows = video_coefficients(path, recon, StaticLandmarks(landmarks))
    assert rows.shape == (3, 73) and rows.dtype == np.float32
    capture = cv2.VideoCapture(str(path))
    decoded = [capture.read()[1][:, :, ::-1].copy() for _ in range(3)]
    capture.release()
    for row, frame in zip(rows, decoded):
        expected = extract_first_frame(frame, recon, landmarks=landmarks).row
        assert np.allclose(row, expected, atol=1e-5)
    assert not np.allclose(rows[0], rows[1])  # the shifted frame reconstructs differently


def test_bad_reference_videos_are_named(tmp_path, recon):
    _, landmarks = landmarks_y_down()
    with pytest.raises(InputError, match="reference video not found"):
        video_coefficients(tmp_path / "none.mp4", recon, StaticLandmarks(landmarks))
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video")
    with pytest.raises(InputError) as info:
        video_coefficients(junk, recon, StaticLandmarks(landmarks))
    assert "junk.mp4" in str(info.value)


def test_video_suffixes():
    assert is_video("take.MP4") and is_video("a/b.mov")
    assert not is_video("coeffs.mat") and not is_video(np.zeros(3))
