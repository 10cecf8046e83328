"""Reading portraits from disk as RGB uint8, with errors that name the file.

A portrait is checked from its header before any pixel is decoded: a 1 MB PNG can declare
20000x20000 pixels and decode to 1.2 GB (OpenCV's own limit is 2**30 pixels), so anything above
:data:`MAX_IMAGE_PIXELS` is refused first (docs/inputs.md).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from talkbridge.core.errors import InputError

MAX_IMAGE_PIXELS = 40_000_000
"""Largest accepted portrait, in pixels (40 MP: an 8K frame is 33 MP); SadTalker crops to 256 or 512 px."""

_UNREADABLE = "cannot read the portrait as an image (use PNG or JPEG)"


def image_size(path: str | Path) -> tuple[int, int]:
    """(width, height) of an image file from its header alone, checked against :data:`MAX_IMAGE_PIXELS`."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise InputError("portrait image not found", path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own bound follows
            with Image.open(path) as image:  # reads the header; pixels are decoded only on load()
                width, height = (int(v) for v in image.size)
    except Image.DecompressionBombError as error:  # Pillow refuses over 2 x its own 89 MP
        raise InputError(f"the portrait is too large ({error}); the limit is {MAX_IMAGE_PIXELS // 10**6} MP", path) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise InputError(_UNREADABLE, path) from None
    if width < 1 or height < 1:
        raise InputError(f"the portrait declares {width}x{height} pixels", path)
    if width * height > MAX_IMAGE_PIXELS:
        raise InputError(
            f"the portrait is {width}x{height} ({width * height / 1e6:.0f} MP); the limit is {MAX_IMAGE_PIXELS // 10**6} MP "
            "(scale it down)", path,
        )
    return width, height


def read_image_rgb(path: str | Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB of a PNG/JPEG/... file (alpha dropped, grey expanded), its size checked first."""
    import cv2

    path = Path(path)
    image_size(path)
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise InputError(_UNREADABLE, path)
    return np.ascontiguousarray(image[:, :, ::-1])
