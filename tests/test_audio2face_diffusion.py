"""The v3.0 diffusion runner: CPU refusal, GRU state across calls, seeded noise, window and 60 fps placement."""

from __future__ import annotations

import numpy as np
import pytest

from talkbridge.core.audio2face.diffusion import DiffusionInfo, DiffusionNetwork
from talkbridge.core.errors import CheckpointError, InputError
from tests.audio2face_models import write_diffusion_onnx
from tests.speech import speech_like

INFO = DiffusionInfo(identities=("Claire", "James", "Mark"), emotions=tuple(f"e{i}" for i in range(10)), dims=5,
                     gru_latent_dim=4)
STATE_SIZE = INFO.num_diffusion_steps * INFO.num_gru_layers * INFO.gru_latent_dim


@pytest.fixture(scope="module")
def network_path(tmp_path_factory):
    return write_diffusion_onnx(tmp_path_factory.mktemp("diffusion") / "network.onnx", INFO)


def no_emotion(times):
    return np.zeros((len(times), 10), np.float32)


def reference(samples, seed, fps, n_frames):
    """Calls every 8000 samples from -16000 while the first kept frame (start + 4000) is in the clip."""
    rng = np.random.default_rng(seed)
    starts = []
    while not starts or starts[-1] + 8000 + 4000 < samples.size:
        starts.append(-16000 + 8000 * len(starts))
    total_state, kept, times = 0.0, [], []
    for start in starts:
        window = np.array([samples[t] if 0 <= t < samples.size else 0.0 for t in range(start, start + 16000)])
        noise = rng.standard_normal((1, 3, 60, INFO.dims), dtype=np.float32)
        mean = window.mean()
        frames = noise[0].mean(axis=0) + total_state + mean
        kept.append(frames[15:45])
        times.extend(start + 16000 * (15 + j) / 60 for j in range(30))
        total_state += STATE_SIZE * mean
    kept = np.concatenate(kept)
    wanted = np.arange(n_frames) * 16000 / fps
    return np.stack([np.interp(wanted, times, kept[:, d]) for d in range(INFO.dims)], axis=1), starts


def test_cpu_is_refused_unless_forced(network_path):
    with pytest.raises(InputError) as caught:
        DiffusionNetwork(network_path, INFO, device="cpu")
    assert "force_cpu_diffusion" in str(caught.value) and "network.onnx" in str(caught.value)
    real = DiffusionInfo(identities=INFO.identities, emotions=INFO.emotions, dims=72006 + 16806 + 15 + 4)
    assert 60 < real.noise_bytes() / 2**20 < 70  # the SPEC's "about 64 MB a call"
    assert real.fps == 60 and real.stride == 8000


@pytest.mark.parametrize("fps", [25, 30])
def test_state_windows_and_resampling_match_the_reference(network_path, fps):
    samples = speech_like(1.7, seed=8).astype(np.float32)
    n_frames = -(-samples.size * fps // 16000)
    network = DiffusionNetwork(network_path, INFO, device="cpu", force_cpu=True)
    got = network.clip(samples, "Mark", no_emotion, seed=11, fps=fps, n_frames=n_frames)
    expected, starts = reference(samples, 11, fps, n_frames)
    assert list(INFO.call_starts(samples.size)) == starts
    assert np.allclose(got, expected, atol=1e-4)


def test_the_seed_reproduces_and_another_seed_differs(network_path):
    samples = speech_like(0.8, seed=9).astype(np.float32)
    network = DiffusionNetwork(network_path, INFO, device="cpu", force_cpu=True)
    runs = [network.clip(samples, "Claire", no_emotion, seed=seed, fps=25, n_frames=20) for seed in (4, 4, 5)]
    assert np.array_equal(runs[0], runs[1]) and not np.allclose(runs[0], runs[2])


def test_emotion_is_asked_at_the_kept_frame_times_and_identity_checked(network_path):
    samples = speech_like(0.6, seed=1).astype(np.float32)
    network = DiffusionNetwork(network_path, INFO, device="cpu", force_cpu=True)
    asked = []
    network.clip(samples, "James", lambda times: asked.append(np.array(times)) or no_emotion(times), seed=0, fps=25, n_frames=15)
    assert np.allclose(asked[0], -16000 + 16000 * (15 + np.arange(30)) / 60)
    assert np.allclose(np.diff(np.concatenate(asked)), 16000 / 60)
    with pytest.raises(InputError, match="no identity 'Nobody'"):
        network.clip(samples, "Nobody", no_emotion, seed=0, fps=25, n_frames=15)


def test_wrong_tensor_names_name_the_file(tmp_path):
    path = write_diffusion_onnx(tmp_path / "network.onnx", INFO, names=("audio", "prediction"))
    with pytest.raises(CheckpointError) as caught:
        DiffusionNetwork(path, INFO, device="cpu", force_cpu=True)
    assert "window" in str(caught.value) and "network.onnx" in str(caught.value)
