"""Which audio each output frame hears: the SDK's frame timing and window rule.

Frame ``k`` at ``num/den`` fps is centred on sample ``t_k = floor(k * rate * den / num)`` (integer
arithmetic, so 25 and 30 fps land on exact samples and fractional rates never drift). Its window is
``buffer_len`` samples starting ``buffer_ofs`` before ``t_k``; samples outside the clip are zeros, and
only the clip's own samples are scaled by ``input_strength``.
"""

from __future__ import annotations

from math import gcd

import numpy as np


def reduced_rate(fps_num: int, fps_den: int = 1) -> tuple[int, int]:
    """``num/den`` in lowest terms, as the SDK reduces the caller's frame rate."""
    if fps_num <= 0 or fps_den <= 0:
        raise ValueError(f"frame rate must be positive, got {fps_num}/{fps_den}")
    divisor = gcd(int(fps_num), int(fps_den))
    return int(fps_num) // divisor, int(fps_den) // divisor


def frame_count(n_samples: int, fps_num: int, fps_den: int = 1, rate: int = 16000) -> int:
    """Frames of a clip of ``n_samples``: every ``k`` whose own sample lies inside the clip."""
    num, den = reduced_rate(fps_num, fps_den)
    return -(-int(n_samples) * num // (rate * den))  # ceil(n * num / (rate * den))


def target_samples(start: int, stop: int, fps_num: int, fps_den: int = 1, rate: int = 16000) -> np.ndarray:
    """``t_k`` for frames ``start .. stop - 1`` (int64)."""
    num, den = reduced_rate(fps_num, fps_den)
    frames = np.arange(int(start), int(stop), dtype=np.int64)
    return (frames * (rate * den)) // num


def audio_windows(samples: np.ndarray, targets: np.ndarray, buffer_len: int, buffer_ofs: int, strength: float) -> np.ndarray:
    """(len(targets), buffer_len) float32 windows, zero outside the clip, clip samples times ``strength``."""
    clip = np.asarray(samples, np.float32).reshape(-1) * np.float32(strength)
    padded = np.zeros(buffer_ofs + clip.size + buffer_len, np.float32)
    padded[buffer_ofs : buffer_ofs + clip.size] = clip
    # In padded coordinates a window starts at t_k exactly (t_k - buffer_ofs + buffer_ofs).
    view = np.lib.stride_tricks.sliding_window_view(padded, buffer_len)
    starts = np.clip(np.asarray(targets, np.int64), 0, view.shape[0] - 1)
    return np.ascontiguousarray(view[starts])
