"""`talkbridge generate` with the SadTalker engine, end to end on CPU with official-layout checkpoints.

Recipe weights make no real face, but every stage runs for real: landmarks from a file, crop, align,
recon net, ExpNet/PoseVAE, MappingNet, face-vid2vid, paste-back, H.264 + audio, motion files, .mat.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import scipy.io

from talkbridge.exporters.motion_file import load_motion
from tests.render_helpers import portrait_job_inputs

SCRIPT = Path(sys.executable).with_name("talkbridge")
FRAMES = 2


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    made = portrait_job_inputs(tmp_path_factory.mktemp("sadtalker_e2e"), FRAMES / 25 + 0.01, seed=3, speech_name="hello.wav")
    return made.folder, made.checkpoints, made.portrait, made.landmarks_file, made.speech


def ffprobe(path: Path) -> dict:
    probe = shutil.which("ffprobe")
    assert probe, "ffprobe is missing: ./scripts/dev setup installs ffmpeg"
    result = subprocess.run(
        [probe, "-v", "error", "-count_frames", "-show_streams", "-of", "json", str(path)],
        capture_output=True, text=True, check=True, timeout=60,
    )
    return {s["codec_type"]: s for s in json.loads(result.stdout)["streams"]}


def generate(inputs, out: Path, *extra: str) -> subprocess.CompletedProcess:
    folder, checkpoints, portrait, points, speech = inputs
    return subprocess.run(
        [str(SCRIPT), "generate", str(portrait), str(speech), "-o", str(out), "--engine", "sadtalker",
         "--checkpoints", str(checkpoints), "--landmarks", str(points), "--device", "cpu", *extra],
        capture_output=True, text=True, timeout=900,
    )


@pytest.mark.slow
def test_full_mode_video_motion_and_mat(inputs, tmp_path):
    result = generate(inputs, tmp_path, "--preprocess", "full", "--pose-style", "7", "--expression-scale", "1.5", "--seed", "2")
    assert result.returncode == 0, result.stderr
    streams = ffprobe(tmp_path / "hello.mp4")
    video = streams["video"]
    assert video["codec_name"] == "h264" and video["r_frame_rate"] == "25/1"
    assert int(video["nb_read_frames"]) == FRAMES
    assert (int(video["width"]), int(video["height"])) == (256, 256)  # full mode: the photo's size
    assert "audio" in streams

    motion = load_motion(tmp_path / "hello.motion.npz")
    assert motion.engine == "sadtalker" and motion.n_frames == FRAMES and motion.fps == 25
    assert motion.first_frame.shape == (73,)
    assert motion.metadata["options"]["pose_style"] == 7 and motion.metadata["crop"]["mode"] == "full"
    official = scipy.io.loadmat(tmp_path / "hello.mat")["coeff_3dmm"]
    assert official.shape == (FRAMES, 70) and official.dtype == np.float32
    assert np.allclose(motion.expression, 1.5 * official[:, :64], atol=1e-6)  # the video's expression
    assert np.allclose(motion.pose, official[:, 64:])

    from talkbridge.core.sadtalker.audio2coeff import CoeffRequest
    from talkbridge.core.sadtalker.audio_models import AudioCheckpoints, load_audio2coeff

    folder, checkpoints, *_ = inputs
    api = load_audio2coeff(AudioCheckpoints.find(checkpoints)).generate(
        CoeffRequest(folder / "hello.wav", motion.first_frame, pose_style=7, seed=2)
    )
    assert np.allclose(official, api, atol=1e-5)  # the CLI's coefficients are the API's

    summary = json.loads((tmp_path / "hello.motion.json").read_text())
    assert summary["frames"] == FRAMES and summary["engine"] == "sadtalker"


@pytest.mark.slow
def test_crop_mode_keeps_outputs_and_refuses_bad_input(inputs, tmp_path):
    folder, checkpoints, portrait, points, speech = inputs
    result = generate(inputs, tmp_path, "--still", "--yaw", "0", "20")
    assert result.returncode == 0, result.stderr
    motion = load_motion(tmp_path / "hello.motion.npz")
    assert np.allclose(motion.pose, motion.first_frame[None, 64:70])  # still: the source pose throughout
    before = (tmp_path / "hello.mat").read_bytes()
    again = generate(inputs, tmp_path)
    assert again.returncode == 1 and "already exists" in again.stderr
    assert (tmp_path / "hello.mat").read_bytes() == before

    fresh = tmp_path / "fresh"
    bad_style = generate(inputs, fresh, "--pose-style", "46")
    assert bad_style.returncode == 1 and "option 'pose_style' (--pose-style) must be within [0, 45], got 46" in bad_style.stderr
    assert not any(fresh.glob("*.mp4")) and not any(fresh.glob(".*partial*"))


@pytest.mark.slow
def test_old_version_files_give_the_same_result(inputs, tmp_path):
    """The separate .pth/.pth.tar files (v0.0.2) hold the same networks as the combined safetensors."""
    from tests.official_checkpoints import write_legacy_checkpoint_dir

    folder, checkpoints, portrait, points, speech = inputs
    legacy = write_legacy_checkpoint_dir(tmp_path / "legacy")
    outputs = {}
    for label, source in (("combined", checkpoints), ("legacy", legacy)):
        out = tmp_path / label
        result = subprocess.run(
            [str(SCRIPT), "generate", str(portrait), str(speech), "-o", str(out), "--engine", "sadtalker",
             "--checkpoints", str(source), "--landmarks", str(points), "--device", "cpu", "--seed", "4"],
            capture_output=True, text=True, timeout=900,
        )
        assert result.returncode == 0, result.stderr
        outputs[label] = out
    a = scipy.io.loadmat(outputs["combined"] / "hello.mat")["coeff_3dmm"]
    b = scipy.io.loadmat(outputs["legacy"] / "hello.mat")["coeff_3dmm"]
    assert np.array_equal(a, b)
    frames = []
    for label in ("combined", "legacy"):
        capture = cv2.VideoCapture(str(outputs[label] / "hello.mp4"))
        ok, frame = capture.read()
        capture.release()
        assert ok
        frames.append(frame.astype(int))
    assert np.abs(frames[0] - frames[1]).max() <= 2  # same pixels up to encoder rounding


@pytest.mark.slow
def test_reference_video_without_detector_weights_says_what_to_fetch(inputs, tmp_path):
    import os

    folder, checkpoints, portrait, points, speech = inputs
    video = tmp_path / "ref.mp4"
    frame = cv2.imread(str(portrait))
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 25, (frame.shape[1], frame.shape[0]))
    for _ in range(3):
        writer.write(frame)
    writer.release()
    result = subprocess.run(
        [str(SCRIPT), "generate", str(portrait), str(speech), "-o", str(tmp_path / "out"), "--engine", "sadtalker",
         "--checkpoints", str(checkpoints), "--landmarks", str(points), "--device", "cpu", "--ref-eyeblink", str(video)],
        capture_output=True, text=True, timeout=600, env={**os.environ, "TORCH_HOME": str(tmp_path / "torch")},
    )
    assert result.returncode == 1
    assert "face-alignment" in result.stderr and "talkbridge models download" in result.stderr
    assert not any((tmp_path / "out").glob("*.mp4"))


def test_gfpgan_without_its_package_is_explained_before_any_work(inputs, tmp_path):
    import importlib.util

    assert importlib.util.find_spec("gfpgan") is None, "this test covers the message when gfpgan is absent"
    folder, checkpoints, portrait, points, speech = inputs
    result = generate(inputs, tmp_path, "--enhancer", "gfpgan")
    assert result.returncode == 1
    assert "--enhancer gfpgan needs the gfpgan package: pip install gfpgan" in result.stderr
    assert list(tmp_path.iterdir()) == []
