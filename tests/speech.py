"""Synthetic test audio: voiced, syllable-rate modulated harmonics that exercise the mel front-end
like speech does (energy in 100..4000 Hz, bursts and pauses), without needing a TTS engine."""

from __future__ import annotations

from pathlib import Path

import numpy as np

RATE = 16000


def speech_like(seconds: float, seed: int = 0, rate: int = RATE) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    pitch = 120 + 25 * np.sin(2 * np.pi * 0.7 * t + rng.uniform(0, 6))
    phase = 2 * np.pi * np.cumsum(pitch) / rate
    voice = sum(np.sin(k * phase) / k for k in range(1, 20))
    syllables = np.clip(np.sin(2 * np.pi * 4.0 * t + rng.uniform(0, 6)), 0, None) ** 2
    pauses = (np.sin(2 * np.pi * 0.35 * t) > -0.6).astype(float)
    noise = 0.05 * rng.standard_normal(t.size)
    signal = (voice * 0.15 + noise) * syllables * pauses
    return (0.8 * signal / np.max(np.abs(signal))).astype(np.float32)


def write_wav(path: Path, samples: np.ndarray, rate: int = RATE, subtype: str = "PCM_16") -> Path:
    import soundfile

    soundfile.write(str(path), samples, rate, subtype=subtype)
    return path
