"""Putting rendered faces back: the output frame size of crop modes and the seamless paste of full modes.

Full modes blend every rendered frame into the original photo with Poisson (seamless) cloning so
the face's edges take the photo's colours; crop modes only restore the face box's aspect ratio.
"""

from __future__ import annotations

import cv2
import numpy as np

from talkbridge.core.face.preprocess import CropInfo, is_full


def output_size(info: CropInfo, size: int) -> tuple[int, int]:
    """(width, height) of a crop-mode output frame: ``size`` wide with the face box's aspect ratio."""
    w, h = info.size
    return size, int(size * h / w)


def paste_frame(frame_rgb: np.ndarray, original_rgb: np.ndarray, info: CropInfo) -> np.ndarray:
    """Blend one rendered frame (S, S, 3) uint8 into a copy of the original image (full modes)."""
    x1, y1, x2, y2 = info.paste_box
    patch = cv2.resize(np.ascontiguousarray(frame_rgb), (x2 - x1, y2 - y1))
    mask = np.full(patch.shape, 255, dtype=np.uint8)
    centre = ((x1 + x2) // 2, (y1 + y2) // 2)
    return cv2.seamlessClone(patch, np.ascontiguousarray(original_rgb), mask, centre, cv2.NORMAL_CLONE)


def finish_frame(frame_rgb: np.ndarray, original_rgb: np.ndarray, info: CropInfo, size: int | None = None) -> np.ndarray:
    """The frame as the user sees it: pasted into the photo (full modes) or resized to the face aspect."""
    if is_full(info.mode):
        return paste_frame(frame_rgb, original_rgb, info)
    width, height = output_size(info, size or frame_rgb.shape[1])
    return cv2.resize(np.ascontiguousarray(frame_rgb), (width, height))
