"""`talkbridge coeffs` writes the official .mat and a motion file, atomically, and refuses bad input."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
import scipy.io

from talkbridge.core.sadtalker.audio2coeff import Audio2Coeff, CoeffRequest
from talkbridge.exporters.motion_file import load_motion
from tests.helpers import run_cli
from tests.sadtalker_weights import seeded_audio_models, write_combined_safetensors
from tests.speech import speech_like, write_wav



@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    folder = tmp_path_factory.mktemp("coeffs")
    checkpoints = folder / "checkpoints"
    checkpoints.mkdir()
    write_combined_safetensors(checkpoints, seed=5)
    first = np.random.default_rng(1).normal(0, 0.2, (1, 73)).astype(np.float32)
    scipy.io.savemat(folder / "portrait.mat", {"coeff_3dmm": first})
    wav = write_wav(folder / "speech.wav", speech_like(2.0, seed=9))
    return folder, checkpoints, wav, first


def run(*args: str) -> subprocess.CompletedProcess:
    return run_cli("coeffs", *args, timeout=300)


def test_writes_mat_and_motion_matching_the_api(setup):
    folder, checkpoints, wav, first = setup
    out = folder / "out.mat"
    result = run(str(wav), "--first-frame", str(folder / "portrait.mat"), "--checkpoints", str(checkpoints),
                 "-o", str(out), "--pose-style", "3", "--seed", "2", "--device", "cpu")
    assert result.returncode == 0, result.stderr
    written = scipy.io.loadmat(out)["coeff_3dmm"]
    assert written.dtype == np.float32 and written.shape == (50, 70)
    expected = Audio2Coeff(*seeded_audio_models(5)).generate(CoeffRequest(wav, first, pose_style=3, seed=2))
    assert np.allclose(written, expected, atol=1e-5)
    motion = load_motion(folder / "out.motion.npz")
    assert motion.engine == "sadtalker" and motion.fps == 25
    assert np.allclose(motion.coefficients(), written)
    assert motion.first_frame.shape == (73,)

    again = run(str(wav), "--first-frame", str(folder / "portrait.mat"), "--checkpoints", str(checkpoints), "-o", str(out))
    assert again.returncode == 1 and "already exists" in again.stderr
    assert np.array_equal(scipy.io.loadmat(out)["coeff_3dmm"], written)


def test_bad_pose_style_leaves_nothing_behind(setup):
    folder, checkpoints, wav, _ = setup
    out = folder / "bad.mat"
    result = run(str(wav), "--first-frame", str(folder / "portrait.mat"), "--checkpoints", str(checkpoints),
                 "-o", str(out), "--pose-style", "46")
    assert result.returncode == 1
    assert "option 'pose_style' (--pose-style) must be within [0, 45], got 46" in result.stderr
    assert not out.exists() and not list(folder.glob(".bad*"))


def test_missing_checkpoints_are_explained(setup, tmp_path):
    folder, _, wav, _ = setup
    result = run(str(wav), "--first-frame", str(folder / "portrait.mat"), "--checkpoints", str(tmp_path), "-o", str(tmp_path / "x.mat"))
    assert result.returncode == 1
    assert "holds neither SadTalker_V0.0.2_256.safetensors" in result.stderr
