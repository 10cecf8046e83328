"""SadTalker's eye-blink conditioning signal: a 5-frame blink after random gaps of 10..69 frames.

The draws use Python's Mersenne Twister through ``random.Random.choice(range(lo, hi))`` in the same
order as the official code, so a given seed reproduces an official run seeded with ``random.seed``.
"""

from __future__ import annotations

import random

import numpy as np

BLINK_SHAPE = (0.5, 0.9, 1.0, 0.9, 0.5)
MIN_GAP, MAX_GAP = 10, 70
SHORTEST_CLIP_WITH_BLINKS = 21


def random_blinks(n_frames: int, rng: random.Random | int) -> np.ndarray:
    """(n_frames, 1) float64 blink levels.

    Clips of 20 frames or fewer get no blinks. Where the official code crashes (21 frames: its gap
    range is empty) this returns no blinks instead.
    """
    if not isinstance(rng, random.Random):
        rng = random.Random(rng)
    levels = np.zeros((n_frames, 1))
    if n_frames < SHORTEST_CLIP_WITH_BLINKS:
        return levels
    gaps = range(min(MIN_GAP, n_frames), min(int(n_frames / 2), MAX_GAP))
    if len(gaps) == 0:
        return levels
    frame = 0
    while 0 <= frame < n_frames:
        start = frame + rng.choice(gaps)
        if start + len(BLINK_SHAPE) > n_frames - 1:
            break
        levels[start : start + len(BLINK_SHAPE), 0] = BLINK_SHAPE
        frame = start + len(BLINK_SHAPE)
    return levels
