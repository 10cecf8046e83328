"""Reading speech files of any common format, rate and channel count as 16 kHz mono float32.

The samples equal what ``librosa.load(path, sr=16000)`` returns for the official SadTalker code:
integer PCM scaled to [-1, 1) (int16 / 32768), channels averaged, no gain change. Decoding goes through
libsndfile (wav, flac, ogg, mp3) and falls back to ffmpeg (16-bit PCM, as audioread asks it for) for
anything else, under a watchdog and a size bound.
Resampling uses soxr's high-quality mode, as librosa >= 0.10 does.

Audio is a hostile input like any file (docs/inputs.md): its header is read before anything is
decoded, so a tiny file claiming an absurd rate or length is refused without allocating for it, and
the decoded samples are checked (finite, amplitude) before they are resampled or muxed by ffmpeg,
whose AAC encoder spins for ever on float samples near 1e6.
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
MIN_SAMPLE_RATE = 4000  # below telephone quality there is no speech to animate (and 1 Hz files ask for days of frames)
MAX_SAMPLE_RATE = 384_000
MAX_CHANNELS = 64
DEFAULT_MAX_AUDIO_SECONDS = 1800.0
"""The longest clip a job accepts (30 min, 45,000 frames); ``talkbridge serve --max-audio-seconds`` sets its own."""
MAX_DECODED_SAMPLES = 2**28
"""Samples (frames x channels) one file may decode to: 1 GiB of float32, 46 min of 48 kHz stereo."""
MAX_PEAK = 16.0
"""Largest accepted sample magnitude (+24 dBFS). Integer PCM never exceeds 1; float files may a
little (mastering headroom) and are kept as they are with a warning; beyond this they are refused,
never normalised: ffmpeg's AAC encoder hangs on float peaks of 1e6 and more, and engines would
animate the overflow."""


def _decode(path: Path, max_seconds: float) -> tuple[np.ndarray, int]:
    """Return (samples (n, channels) float32, sample rate) without resampling: libsndfile, else
    ffmpeg under a watchdog and a size bound (:mod:`talkbridge.core.audio.ffmpeg_decode`)."""
    import soundfile

    try:
        data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
        return data, int(rate)
    except Exception as first_error:  # libsndfile does not know the container: ffmpeg does
        log.debug("libsndfile could not read %s (%s); decoding with ffmpeg", path, first_error)
        from talkbridge.core.audio.ffmpeg_decode import decode_with_ffmpeg

        return decode_with_ffmpeg(path, max_seconds)


def check_format(rate: int, frames: int, channels: int, path: Path | None, max_seconds: float = DEFAULT_MAX_AUDIO_SECONDS) -> None:
    """Refuse a stream whose rate, length or decoded size is out of bounds, from its header alone."""
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise InputError(f"audio sample rate {rate} Hz is outside {MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE} Hz", path)
    if not 1 <= channels <= MAX_CHANNELS:
        raise InputError(f"audio has {channels} channels; at most {MAX_CHANNELS} are read", path)
    seconds = frames / rate
    if seconds > max_seconds:
        raise InputError(f"audio is {seconds:.0f} s long; the limit is {max_seconds:.0f} s (split the clip)", path)
    if frames * channels > MAX_DECODED_SAMPLES:
        raise InputError(f"audio would decode to {frames * channels} samples; the limit is {MAX_DECODED_SAMPLES}", path)


def check_samples(samples: np.ndarray, path: Path | None, what: str = "audio") -> None:
    """Refuse non-finite samples and peaks beyond :data:`MAX_PEAK` (before any resampling or encoding)."""
    if samples.size == 0:
        raise InputError(f"{what} holds no samples", path)
    if not np.all(np.isfinite(samples)):
        raise InputError(f"{what} holds NaN or infinite samples", path)
    peak = float(np.max(np.abs(samples)))
    if peak > MAX_PEAK:
        raise InputError(
            f"{what} peaks at {peak:.3g}, beyond the accepted {MAX_PEAK:g} (+24 dBFS): a float file scaled wrong? "
            "normalise it to -1..1", path,
        )
    if peak > 1.0:
        log.warning("%s peaks at %.3g, above full scale (1.0); it will clip when played", path or what, peak)


def _probe(path: Path, max_seconds: float) -> None:
    """Check the header's rate, channels and length before decoding (libsndfile formats only; others
    are checked once decoded, their size already bounded by the file size limits)."""
    import soundfile

    try:
        info = soundfile.info(str(path))
    except Exception:  # not a libsndfile container: _decode tries ffmpeg and reports what fails
        return
    check_format(int(info.samplerate), int(info.frames), int(info.channels), path, max_seconds)


def load_audio(path: str | Path, *, allow_silence: bool = False, max_seconds: float = DEFAULT_MAX_AUDIO_SECONDS) -> np.ndarray:
    """Load ``path`` as 16 kHz mono float32 samples.

    Raises :class:`InputError` naming the file when it is missing, unreadable, empty, out of the
    bounds of :func:`check_format` (rate, channels, length up to ``max_seconds``) or
    :func:`check_samples` (finite, amplitude), or (unless ``allow_silence``) digitally silent: a
    silent track almost always means the wrong file or channel, and SadTalker's networks would
    animate noise.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("audio file not found", path)
    if path.stat().st_size == 0:
        raise InputError("audio file is empty (0 bytes)", path)
    _probe(path, max_seconds)
    data, rate = _decode(path, max_seconds)
    if data.size == 0:
        raise InputError("audio file holds no samples", path)
    check_format(rate, data.shape[0], data.shape[1], path, max_seconds)
    check_samples(data, path)
    mono = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]
    if rate != SAMPLE_RATE:
        import soxr

        mono = soxr.resample(mono, rate, SAMPLE_RATE, quality="HQ").astype(np.float32)
    mono = np.ascontiguousarray(mono, dtype=np.float32)
    if not allow_silence and float(np.max(np.abs(mono))) < SILENCE_PEAK:
        raise InputError("audio is silent (peak below -80 dBFS); is this the right file or channel?", path)
    return mono


def check_pcm(samples: np.ndarray, max_seconds: float = DEFAULT_MAX_AUDIO_SECONDS, what: str = "audio buffer") -> np.ndarray:
    """Raw 16 kHz samples (a wire ``audio_pcm``, a caller's array) as a flat float32 array, checked
    like a file's: length, finite, amplitude."""
    flat = np.asarray(samples)
    if flat.dtype.kind not in "fiu":
        raise InputError(f"{what} must hold numbers, not {flat.dtype}")
    flat = np.ascontiguousarray(flat, dtype=np.float32).reshape(-1)
    if flat.size / SAMPLE_RATE > max_seconds:
        raise InputError(f"{what} is {flat.size / SAMPLE_RATE:.0f} s long; the limit is {max_seconds:.0f} s (split the clip)")
    check_samples(flat, None, what)
    return flat


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
        samples = check_pcm(source, max_seconds=float("inf"))  # its length was bounded where it came in
        if not allow_silence and float(np.max(np.abs(samples))) < SILENCE_PEAK:
            raise InputError("audio buffer is silent (peak below -80 dBFS)")
        return AudioClip(samples)
    return AudioClip(load_audio(source, allow_silence=allow_silence), Path(source))
