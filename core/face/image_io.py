"""Reading portraits from disk as RGB uint8, with errors that name the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from talkbridge.core.errors import InputError


def read_image_rgb(path: str | Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB of a PNG/JPEG/... file (alpha dropped, grey expanded)."""
    import cv2

    path = Path(path)
    if not path.is_file():
        raise InputError("portrait image not found", path)
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise InputError("cannot read the portrait as an image (use PNG or JPEG)", path)
    return np.ascontiguousarray(image[:, :, ::-1])
