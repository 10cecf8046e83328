"""SadTalker's audio features: a normalised 80-bin log-mel and one 16-step window per video frame.

This follows the Wav2Lip-era recipe the official checkpoints were trained on (pre-emphasis 0.97,
800-sample Hann STFT with hop 200 and 400 zero samples of centre padding, amplitude spectrum, Slaney
mel filterbank 55..7600 Hz, dB with a -100 dB floor, mapped to [-4, 4]). It runs in float64, as the
official pipeline does, so it agrees with it to ~1e-13 rather than the ~5e-5 of a float32 port.

Mel rows are computed on demand, in blocks, each row once: the first chunk of an hour-long clip
needs only its own rows. They are kept for the whole clip in one float32 array allocated once (1 KB
per video frame, 40% of the audio samples the clip already holds), so every later window, whichever
network asks for it, is a gather from that array and never a second STFT. The windows are the
float32 cast of the float64 rows either way, so storing the rows as float32 changes no window.

The one BLAS call (the mel projection) runs with OpenBLAS limited to one thread: its worker threads
otherwise spin for a while after each small product and take the cores from torch's threads.
"""

from __future__ import annotations

import threading
from functools import lru_cache

import numpy as np

from talkbridge.core.audio.loading import SAMPLE_RATE
from talkbridge.core.motion import FPS

SAMPLES_PER_FRAME = SAMPLE_RATE // FPS  # 640 audio samples per 25 fps video frame
N_FFT = 800
HOP = 200
N_MELS = 80
FMIN, FMAX = 55.0, 7600.0
PREEMPHASIS = 0.97
MIN_LEVEL_DB = -100.0
REF_LEVEL_DB = 20.0
MAX_ABS_VALUE = 4.0
WINDOW_STEPS = 16  # mel rows per video frame window (0.2 s)
WINDOW_LEAD_FRAMES = 2  # a frame's window starts this many video frames earlier
ROW_BLOCK = 1024  # mel rows computed per step (~320 video frames): few BLAS calls, a fast first chunk


def frame_count(n_samples: int) -> int:
    """Whole 25 fps video frames in ``n_samples`` of 16 kHz audio (a trailing partial frame is dropped)."""
    return int(n_samples) // SAMPLES_PER_FRAME


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney's mel scale: linear up to 1 kHz (200/3 Hz per mel), logarithmic above."""
    hz = np.asarray(hz, np.float64)
    linear = hz / (200.0 / 3.0)
    log_step = np.log(6.4) / 27.0
    return np.where(hz >= 1000.0, 15.0 + np.log(np.maximum(hz, 1e-10) / 1000.0) / log_step, linear)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, np.float64)
    log_step = np.log(6.4) / 27.0
    return np.where(mel >= 15.0, 1000.0 * np.exp(log_step * (mel - 15.0)), (200.0 / 3.0) * mel)


@lru_cache(maxsize=1)
def mel_filterbank() -> np.ndarray:
    """The (80, 401) float32 Slaney-normalised triangular filterbank, rounded as librosa stores it."""
    edges = _mel_to_hz(np.linspace(_hz_to_mel(FMIN), _hz_to_mel(FMAX), N_MELS + 2))
    bin_hz = np.linspace(0.0, SAMPLE_RATE / 2, 1 + N_FFT // 2)
    widths = np.diff(edges)
    basis = np.zeros((N_MELS, bin_hz.size), np.float32)
    for m in range(N_MELS):
        rising = (bin_hz - edges[m]) / widths[m]
        falling = (edges[m + 2] - bin_hz) / widths[m + 1]
        basis[m] = np.maximum(0.0, np.minimum(rising, falling))
    basis *= (2.0 / (edges[2:] - edges[:-2]))[:, None]  # equal area per filter, applied in float32 storage
    basis.setflags(write=False)
    return basis


@lru_cache(maxsize=1)
def _hann_window() -> np.ndarray:
    n = np.arange(N_FFT, dtype=np.float64)
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * n / N_FFT)


@lru_cache(maxsize=1)
def _filterbank_columns() -> np.ndarray:
    """The filterbank as the float64 (401, 80) right-hand side of the projection, converted once."""
    columns = mel_filterbank().T.astype(np.float64)  # Fortran order, as the product always used
    columns.setflags(write=False)
    return columns


_blas_lock = threading.Lock()
_blas: list = []


def _one_blas_thread():
    """A context limiting BLAS (numpy's OpenBLAS) to one thread; the controller is built once."""
    from threadpoolctl import ThreadpoolController

    with _blas_lock:
        if not _blas:
            _blas.append(ThreadpoolController())
    return _blas[0].limit(limits=1, user_api="blas")


def _spectrogram_to_features(frames: np.ndarray) -> np.ndarray:
    """(rows, 800) float64 padded signal frames -> (rows, 80) normalised log-mel."""
    magnitude = np.abs(np.fft.rfft(frames * _hann_window(), axis=1))
    with _one_blas_thread():
        mel = magnitude @ _filterbank_columns()
    floor = np.exp(MIN_LEVEL_DB / 20.0 * np.log(10.0))
    level_db = 20.0 * np.log10(np.maximum(floor, mel)) - REF_LEVEL_DB
    scaled = 2.0 * MAX_ABS_VALUE * ((level_db - MIN_LEVEL_DB) / -MIN_LEVEL_DB) - MAX_ABS_VALUE
    return np.clip(scaled, -MAX_ABS_VALUE, MAX_ABS_VALUE)


class MelWindows:
    """Lazily computed log-mel rows and per-frame windows of one clip.

    ``samples`` are 16 kHz mono float32; they are cut to a whole number of video frames, as the
    official pipeline does.
    """

    def __init__(self, samples: np.ndarray) -> None:
        samples = np.asarray(samples, np.float32).reshape(-1)
        self.n_frames = frame_count(samples.size)
        self.samples = samples[: self.n_frames * SAMPLES_PER_FRAME]
        self.n_rows = 1 + self.samples.size // HOP
        self._rows: np.ndarray | None = None  # (n_rows, 80) float32, rows [0, _rows_ready) valid
        self._rows_ready = 0
        self._rows_lock = threading.Lock()

    def _preemphasized(self, lo: int, hi: int) -> np.ndarray:
        """Pre-emphasised signal for sample indices [lo, hi), zero outside the clip."""
        out = np.zeros(hi - lo, np.float64)
        a, b = max(lo, 0), min(hi, self.samples.size)
        if a < b:
            segment = self.samples[a:b].astype(np.float64)
            previous = np.empty_like(segment)
            previous[0] = self.samples[a - 1] if a > 0 else 0.0
            previous[1:] = segment[:-1]
            out[a - lo : b - lo] = segment - PREEMPHASIS * previous
        return out

    def mel_rows(self, first: int, stop: int) -> np.ndarray:
        """Normalised log-mel rows ``first .. stop-1`` as (rows, 80) float64."""
        first, stop = max(first, 0), min(stop, self.n_rows)
        if stop <= first:
            return np.zeros((0, N_MELS))
        pad = N_FFT // 2  # centred frames: row r covers samples [r*HOP - 400, r*HOP + 400)
        signal = self._preemphasized(first * HOP - pad, (stop - 1) * HOP + pad)
        frames = np.lib.stride_tricks.sliding_window_view(signal, N_FFT)[::HOP]
        return _spectrogram_to_features(frames)

    def window_rows(self, first_frame: int, stop_frame: int) -> np.ndarray:
        """(n, 16) mel row indices each video frame's window reads, clamped to the clip."""
        frames = np.arange(first_frame, stop_frame, dtype=np.float64)
        # int() truncation toward zero, in the official float arithmetic: frame 0 starts at -6, not -7
        starts = np.trunc(80.0 * ((frames - WINDOW_LEAD_FRAMES) / 25.0)).astype(np.int64)
        return np.clip(starts[:, None] + np.arange(WINDOW_STEPS), 0, self.n_rows - 1)

    def windows(self, first_frame: int, stop_frame: int) -> np.ndarray:
        """Mel windows of video frames ``first_frame .. stop_frame-1`` as (n, 80, 16) float32."""
        stop_frame = min(stop_frame, self.n_frames)
        if stop_frame <= first_frame:
            return np.zeros((0, N_MELS, WINDOW_STEPS), np.float32)
        rows = self.window_rows(first_frame, stop_frame)
        cached = self.float_rows(int(rows.max()) + 1)
        return np.ascontiguousarray(cached[rows].transpose(0, 2, 1))

    def float_rows(self, stop: int) -> np.ndarray:
        """The clip's float32 mel rows with at least ``[0, stop)`` computed (a view; rows past it unset).

        Rows are computed in blocks of :data:`ROW_BLOCK`, each once, into one array for the clip.
        """
        stop = min(stop, self.n_rows)
        with self._rows_lock:
            if self._rows is None:
                self._rows = np.empty((self.n_rows, N_MELS), np.float32)
            while self._rows_ready < stop:
                first = self._rows_ready
                block_stop = min(self.n_rows, max(stop, first + ROW_BLOCK))
                self._rows[first:block_stop] = self.mel_rows(first, block_stop)
                self._rows_ready = block_stop
            return self._rows


def log_mel(samples: np.ndarray, pad_mode: str = "constant") -> np.ndarray:
    """The whole clip's (T_mel, 80) normalised log-mel, float64.

    ``pad_mode="constant"`` is what the official (librosa >= 0.9) pipeline computes. ``"reflect"``
    reproduces the older librosa/Wav2Lip default, which differs in the first and last two rows; it is
    offered for comparison with models trained on that front end.
    """
    source = MelWindows(samples)
    if pad_mode == "constant":
        return source.mel_rows(0, source.n_rows)
    if pad_mode != "reflect":
        raise ValueError(f"pad_mode must be 'constant' or 'reflect', got {pad_mode!r}")
    signal = source._preemphasized(0, source.samples.size)
    padded = np.pad(signal, N_FFT // 2, mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP]
    return _spectrogram_to_features(frames)
