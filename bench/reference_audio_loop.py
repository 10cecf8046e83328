"""The official audio-to-coefficient loop re-written from ../shared/reference/sadtalker/audio/SPEC.md.

The fallback baseline of bench/audio2coeff.py when no official checkout is given: the same work the
official code does, the way it does it (whole-clip float64 mel, a Python loop building every
frame's window, unfused networks, ExpNet in slices of 10 frames, PoseVAE re-encoding the last 32
windows for the remainder chunk, one Savitzky-Golay pass over the clip), on talkbridge's unfused
modules with the same weights. Random draws follow talkbridge's ``seed`` (blinks from
``random.Random(seed)``, latents from a seeded ``torch.Generator``), so the outputs can be compared.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import numpy as np
import scipy.signal
import torch

from talkbridge.core.audio import load_audio
from talkbridge.core.audio.mel import mel_filterbank
from talkbridge.core.sadtalker.blink import random_blinks


def spec_log_mel(wav: np.ndarray) -> np.ndarray:
    """SPEC section 2: (T_mel, 80) float64, zero-padded centred STFT of the pre-emphasised signal."""
    emphasised = scipy.signal.lfilter([1.0, -0.97], [1.0], wav)
    padded = np.pad(emphasised, 400)
    frames = np.lib.stride_tricks.sliding_window_view(padded, 800)[::200]
    hann = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(800) / 800)
    magnitude = np.abs(np.fft.rfft(frames * hann, axis=1))
    mel = magnitude @ mel_filterbank().T.astype(np.float64)
    level = 20 * np.log10(np.maximum(np.exp(-5 * np.log(10)), mel)) - 20
    return np.clip(8 * (level + 100) / 100 - 4, -4, 4)


def spec_windows(mel: np.ndarray, n_frames: int) -> np.ndarray:
    """SPEC section 3, frame by frame as the official loop does: (T, 80, 16) float32."""
    windows = []
    for i in range(n_frames):
        start = int(80.0 * ((i - 2) / 25.0))
        rows = [min(max(r, 0), len(mel) - 1) for r in range(start, start + 16)]
        windows.append(mel[rows].T)
    return np.asarray(windows).astype(np.float32)


def run_reference(expnet, posevae, wav_path: Path, first_frame: np.ndarray, seed: int) -> tuple[float, dict[str, float], np.ndarray]:
    """Seconds in total, seconds per stage and the (T, 70) coefficients."""
    totals: dict[str, float] = {}
    start = time.perf_counter()
    wav = load_audio(wav_path)
    n = wav.size // 640
    clock = time.perf_counter()
    windows = torch.from_numpy(spec_windows(spec_log_mel(wav[: n * 640]), n))
    totals["mel"] = time.perf_counter() - clock
    blink = torch.from_numpy(random_blinks(n, random.Random(seed)).astype(np.float32).reshape(n, 1))
    ref = torch.from_numpy(np.repeat(first_frame[None, :64], n, 0).astype(np.float32))
    generator = torch.Generator().manual_seed(seed)
    with torch.inference_mode():
        clock = time.perf_counter()
        expression = torch.cat([expnet(windows[i : i + 10].unsqueeze(1), ref[i : i + 10], blink[i : i + 10]) for i in range(0, n, 10)])
        totals["expnet"] = time.perf_counter() - clock
        clock = time.perf_counter()
        moving = windows[1:]
        full, rest = divmod(n - 1, 32)
        first_pose = torch.from_numpy(first_frame[None, 64:70].astype(np.float32))
        style = torch.tensor([0])
        motion = [torch.zeros(1, 6)]
        for c in range(full):
            embedding = posevae.audio_encoder(moving[32 * c : 32 * c + 32][None, :, None])
            z = torch.randn(1, 64, generator=generator)
            motion.append(posevae.decode(z, style, first_pose, embedding)[0])
        if rest:
            embedding = posevae.audio_encoder(moving[-32:][None, :, None])
            if embedding.shape[1] < 32:
                embedding = torch.cat([embedding[:, :1].expand(-1, 32 - embedding.shape[1], -1), embedding], dim=1)
            z = torch.randn(1, 64, generator=generator)
            motion.append(posevae.decode(z, style, first_pose, embedding)[0][-rest:])
        pose = (torch.cat(motion) + first_pose).numpy()
        totals["posevae"] = time.perf_counter() - clock
    window = 13 if n >= 13 else int((n - 1) / 2) * 2 + 1
    pose = scipy.signal.savgol_filter(pose, window, 2, axis=0).astype(np.float32)
    coefficients = np.concatenate([expression.numpy(), pose], axis=1)
    total = time.perf_counter() - start
    totals["other"] = total - sum(totals.values())
    return total, totals, coefficients
