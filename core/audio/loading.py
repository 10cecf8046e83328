"""Reading speech files of any common format, rate and channel count as 16 kHz mono float32.

The samples equal what ``librosa.load(path, sr=16000)`` returns for the official SadTalker code:
integer PCM scaled to [-1, 1) (int16 / 32768), channels averaged, no gain change. Decoding goes through
libsndfile (wav, flac, ogg, mp3) and falls back to librosa/audioread (ffmpeg) for anything else.
Resampling uses soxr's high-quality mode, as librosa >= 0.10 does.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from talkbridge.core.errors import InputError

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
SILENCE_PEAK = 1e-4  # -80 dBFS: below this a clip is digital silence, not quiet speech


def _decode(path: Path) -> tuple[np.ndarray, int]:
    """Return (samples (n, channels) float32, sample rate) without resampling."""
    import soundfile

    try:
        data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
        return data, int(rate)
    except Exception as first_error:  # libsndfile does not know the container: try ffmpeg via librosa
        log.debug("libsndfile could not read %s (%s); trying librosa", path, first_error)
        try:
            import warnings

            import librosa

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                data, rate = librosa.load(str(path), sr=None, mono=False)
        except Exception as error:
            raise InputError(
                f"cannot decode audio ({first_error}); use wav, flac, ogg or mp3, or install ffmpeg for other formats",
                path,
            ) from error
        data = np.atleast_2d(np.asarray(data, np.float32))
        return np.ascontiguousarray(data.T), int(rate)


def load_audio(path: str | Path, *, allow_silence: bool = False) -> np.ndarray:
    """Load ``path`` as 16 kHz mono float32 samples.

    Raises :class:`InputError` naming the file when it is missing, unreadable, empty, or (unless
    ``allow_silence``) digitally silent: a silent track almost always means the wrong file or
    channel, and SadTalker's networks would animate noise.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("audio file not found", path)
    if path.stat().st_size == 0:
        raise InputError("audio file is empty (0 bytes)", path)
    data, rate = _decode(path)
    if data.size == 0:
        raise InputError("audio file holds no samples", path)
    mono = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]
    if rate != SAMPLE_RATE:
        import soxr

        mono = soxr.resample(mono, rate, SAMPLE_RATE, quality="HQ").astype(np.float32)
    mono = np.ascontiguousarray(mono, dtype=np.float32)
    if not np.all(np.isfinite(mono)):
        raise InputError("audio holds NaN or infinite samples", path)
    if not allow_silence and float(np.max(np.abs(mono))) < SILENCE_PEAK:
        raise InputError("audio is silent (peak below -80 dBFS); is this the right file or channel?", path)
    return mono


@dataclass(frozen=True)
class AudioClip:
    """Decoded 16 kHz mono samples and where they came from (for messages and output names)."""

    samples: np.ndarray
    source: Path | None = None

    @property
    def duration(self) -> float:
        return len(self.samples) / SAMPLE_RATE

    @property
    def name(self) -> str:
        return self.source.stem if self.source is not None else "audio"


def load_clip(source: str | Path | np.ndarray | AudioClip, *, allow_silence: bool = False) -> AudioClip:
    """Accept a path, raw 16 kHz samples or a clip, and return a validated :class:`AudioClip`."""
    if isinstance(source, AudioClip):
        return source
    if isinstance(source, np.ndarray):
        samples = np.ascontiguousarray(source, dtype=np.float32).reshape(-1)
        if samples.size == 0:
            raise InputError("audio buffer holds no samples")
        if not np.all(np.isfinite(samples)):
            raise InputError("audio buffer holds NaN or infinite samples")
        if not allow_silence and float(np.max(np.abs(samples))) < SILENCE_PEAK:
            raise InputError("audio buffer is silent (peak below -80 dBFS)")
        return AudioClip(samples)
    return AudioClip(load_audio(source, allow_silence=allow_silence), Path(source))
