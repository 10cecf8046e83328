"""The v3.0 diffusion network on onnxruntime: call after call with its GRU state and fresh seeded noise.

Unlike the regression models, the diffusion network is recurrent across calls: each call takes the
GRU state the previous one returned (``output_latents`` -> ``input_latents``, zeros at the start of
a clip), so calls run strictly in order, one per track. Each call also takes a fresh standard-normal
noise tensor of [B, steps + 1, frames, dims]; for the real model (88,831 values a frame) that is about
64 MB a call, which is why a CPU run is refused unless forced. Noise comes from the job's seed, so a
seed reproduces a clip.

Timing (SDK ``executor_diffusion_core.cpp``): the model's own rate is ``frames * samplerate /
buffer_len`` (60 fps for v3.0). Call ``i`` reads ``buffer_len`` samples from ``i * stride -
padding_left`` (stride = ``buffer_len * center / frames``, 8000 samples) and its ``center`` frames
after the ``left`` truncated ones are kept; kept frame ``j`` sits at sample ``start + buffer_len *
(left + j) / frames``. Calls run while the first kept frame lies inside the clip. The kept frames are
then resampled linearly to the job's frame rate.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from talkbridge.core.audio2face.network import _import_onnxruntime, providers_for
from talkbridge.core.audio2face.windows import audio_windows
from talkbridge.core.errors import CheckpointError, InputError

log = logging.getLogger(__name__)

INPUTS = ("window", "identity", "emotion", "input_latents", "noise")
OUTPUTS = ("prediction", "output_latents")
CPU_REFUSAL = ("the Audio2Face-3D v3.0 diffusion model draws a fresh noise tensor of about {mb:.0f} MB for every call "
               "and is meant for a CUDA GPU (onnxruntime-gpu); on this CPU it would be very slow. Use a regression "
               "model (audio2face-mark/-claire/-james), or force it with the flag --force-cpu-diffusion (generate, coeffs, "
               "batch, serve), the audio2face engine option force_cpu_diffusion=True or the environment variable "
               "TALKBRIDGE_A2F_FORCE_CPU_DIFFUSION=1")


@dataclass(frozen=True)
class DiffusionInfo:
    """The diffusion fields of ``network_info.json`` the runner needs (names as in the SPEC, section 8)."""

    identities: tuple[str, ...]
    emotions: tuple[str, ...]
    dims: int  # skin_size + tongue_size + jaw_size + eyes_size
    num_diffusion_steps: int = 2
    num_gru_layers: int = 2
    gru_latent_dim: int = 256
    left: int = 15
    right: int = 15
    center: int = 30
    buffer_len: int = 16000
    padding_left: int = 16000
    samplerate: int = 16000

    @property
    def frames(self) -> int:
        return self.left + self.right + self.center

    @property
    def fps(self) -> float:
        return self.frames * self.samplerate / self.buffer_len

    @property
    def stride(self) -> int:
        return self.buffer_len * self.center // self.frames

    def noise_bytes(self) -> int:
        return 4 * (self.num_diffusion_steps + 1) * self.frames * self.dims

    def call_starts(self, n_samples: int) -> np.ndarray:
        """First window sample of every call a clip of ``n_samples`` needs."""
        first_kept = self.buffer_len * self.left // self.frames - self.padding_left
        calls = max(1, -(-(int(n_samples) - first_kept) // self.stride)) if n_samples > first_kept else 1
        return np.arange(calls, dtype=np.int64) * self.stride - self.padding_left

    def kept_times(self, starts: np.ndarray) -> np.ndarray:
        """Sample time (float) of every kept frame, call after call."""
        offsets = self.buffer_len * (self.left + np.arange(self.center)) / self.frames
        return (starts[:, None] + offsets[None, :]).reshape(-1)


class DiffusionNetwork:
    """One onnxruntime session of the v3.0 diffusion network and the per-clip recurrence around it."""

    def __init__(self, path: str | Path, info: DiffusionInfo, device: str = "auto", force_cpu: bool = False) -> None:
        ort = _import_onnxruntime()
        self.path = Path(path)
        self.info = info
        self.providers = providers_for(device, ort.get_available_providers())
        if self.providers[0] != "CUDAExecutionProvider" and not force_cpu:
            raise InputError(CPU_REFUSAL.format(mb=info.noise_bytes() / 2**20), self.path)
        try:
            self.session = ort.InferenceSession(str(self.path), providers=self.providers)
        except Exception as error:  # onnxruntime's own error types for unreadable graphs
            raise CheckpointError(f"onnxruntime cannot load this diffusion network ({error})", self.path) from None
        inputs = {node.name for node in self.session.get_inputs()}
        outputs = {node.name for node in self.session.get_outputs()}
        missing = [name for name in INPUTS if name not in inputs] + [name for name in OUTPUTS if name not in outputs]
        if missing:
            raise CheckpointError(f"diffusion network lacks tensor(s) {', '.join(missing)} (inputs: {', '.join(sorted(inputs))}; "
                                  f"outputs: {', '.join(sorted(outputs))})", self.path)
        log.info("audio2face diffusion %s on %s", self.path.name, self.providers[0])

    def initial_state(self) -> np.ndarray:
        i = self.info
        return np.zeros((i.num_diffusion_steps, i.num_gru_layers, 1, i.gru_latent_dim), np.float32)

    def call(self, window: np.ndarray, identity: np.ndarray, emotion: np.ndarray, state: np.ndarray,
             rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """One call: (kept frames (center, dims), next GRU state). ``emotion`` is (center, emotions)."""
        i = self.info
        noise = rng.standard_normal((1, i.num_diffusion_steps + 1, i.frames, i.dims), dtype=np.float32)
        feed = {
            "window": np.ascontiguousarray(window.reshape(1, -1), np.float32),
            "identity": np.ascontiguousarray(identity.reshape(1, -1), np.float32),
            "emotion": np.ascontiguousarray(emotion.reshape(1, i.center, -1), np.float32),
            "input_latents": state, "noise": noise,
        }
        prediction, latents = self.session.run(list(OUTPUTS), feed)
        if prediction.shape != (1, i.frames, i.dims):
            raise CheckpointError(f"'prediction' came back as {prediction.shape}, expected [1, {i.frames}, {i.dims}]", self.path)
        if latents.shape != state.shape:
            raise CheckpointError(f"'output_latents' came back as {latents.shape}, expected {list(state.shape)}", self.path)
        return prediction[0, i.left : i.left + i.center], np.ascontiguousarray(latents, np.float32)

    def clip(self, samples: np.ndarray, identity: str, emotion_at, seed: int, fps: int, n_frames: int,
             input_strength: float = 1.0) -> np.ndarray:
        """(n_frames, dims) predictions at the job's ``fps`` for a whole clip.

        ``emotion_at(times)`` gives (len(times), emotions) explicit emotions at sample times.
        """
        i = self.info
        if identity not in i.identities:
            raise InputError(f"the diffusion model has no identity {identity!r}; it has: {', '.join(i.identities)}", self.path)
        one_hot = np.zeros(len(i.identities), np.float32)
        one_hot[i.identities.index(identity)] = 1.0
        starts = i.call_starts(samples.size)
        # audio_windows starts a window buffer_ofs before its target: shift so it starts at `starts`.
        windows = audio_windows(samples, starts + i.padding_left, i.buffer_len, i.padding_left, input_strength)
        times = i.kept_times(starts)
        rng = np.random.default_rng(seed)
        state = self.initial_state()
        kept = []
        for call, window in enumerate(windows):
            frames, state = self.call(window, one_hot, emotion_at(times[call * i.center : (call + 1) * i.center]), state, rng)
            kept.append(frames)
        predictions = np.concatenate(kept, axis=0)
        return resample_frames(predictions, times, np.arange(n_frames, dtype=np.float64) * i.samplerate / fps)


def resample_frames(values: np.ndarray, times: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Rows of ``values`` (at increasing ``times``) linearly interpolated at ``wanted``, held at the ends."""
    right = np.clip(np.searchsorted(times, wanted, side="right"), 1, len(times) - 1)
    left = right - 1
    span = times[right] - times[left]
    weight = np.clip((wanted - times[left]) / np.where(span > 0, span, 1.0), 0.0, 1.0)[:, None]
    return ((1.0 - weight) * values[left] + weight * values[right]).astype(np.float32)
