"""The five source-image preprocess modes and the crop parameters needed to paste results back.

* ``crop``: cut to the face quad found from the eyes and mouth (the default);
* ``extcrop``: the bordered rectangle around that quad (more hair and shoulders);
* ``resize``: the whole image, squashed to a square;
* ``full`` / ``extfull``: render like ``crop`` / ``extcrop``, then paste the face back into the
  full photo (see :mod:`.paste`), and drive the 73-channel MappingNet with the crop parameters.

The geometry reproduces the official FFHQ-style quad: a square oriented by the eye line and sized by
the larger of twice the eye distance and 1.8 eye-to-mouth distances, plus a 10 % border.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

MODES = ("crop", "extcrop", "resize", "full", "extfull")
QUAD_SIZE_HINT = 512  # faces larger than 4x this are geometrically shrunk first, as in the official code


def check_mode(mode: str) -> str:
    mode = mode.lower()
    if mode not in MODES:
        raise ValueError(f"unknown preprocess mode {mode!r}; choose one of {', '.join(MODES)}")
    return mode


def is_extended(mode: str) -> bool:
    return mode.startswith("ext")


def is_full(mode: str) -> bool:
    return "full" in mode


@dataclass(frozen=True)
class CropInfo:
    """How the render source was cut from the original image (original pixel coordinates).

    ``box`` is what was cut and resized to the render size; ``face_box`` the quad rectangle;
    ``bordered_box`` the rectangle with border. ``size`` is the (w, h) the official code uses for
    the output aspect ratio (the face rectangle, or the whole image in resize mode).
    """

    mode: str
    image_size: tuple[int, int]  # (W, H) of the original image
    box: tuple[int, int, int, int]  # (x1, y1, x2, y2) cut from the original
    face_box: tuple[int, int, int, int] | None
    bordered_box: tuple[int, int, int, int] | None
    quad: tuple[float, float, float, float] | None  # (lx, ly, rx, ry) inside the bordered box
    shrink: int = 1

    @property
    def size(self) -> tuple[int, int]:
        if self.face_box is None:
            return self.image_size
        x1, y1, x2, y2 = self.face_box
        return (x2 - x1, y2 - y1)

    @property
    def paste_box(self) -> tuple[int, int, int, int]:
        """Where a rendered frame goes back in full modes: the bordered box (extfull) or the face box."""
        if self.mode == "extfull" and self.bordered_box is not None:
            return self.bordered_box
        return self.box


def _face_points(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Left eye, right eye, left and right mouth corners from 68 or 5 landmarks (float64)."""
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.shape[0] == 68:
        return lm[36:42].mean(axis=0), lm[42:48].mean(axis=0), lm[48], lm[54]
    if lm.shape[0] == 5:
        return lm[0], lm[1], lm[3], lm[4]
    raise ValueError(f"expected 68 or 5 landmarks, got {lm.shape[0]}")


def face_quad(landmarks: np.ndarray) -> tuple[np.ndarray, float]:
    """The oriented square around the face: corners (4, 2) and side length."""
    eye_left, eye_right, mouth_left, mouth_right = _face_points(landmarks)
    eye_avg = (eye_left + eye_right) * 0.5
    eye_to_eye = eye_right - eye_left
    eye_to_mouth = (mouth_left + mouth_right) * 0.5 - eye_avg
    if np.hypot(*eye_to_eye) < 1e-3 or np.hypot(*eye_to_mouth) < 1e-3:
        raise ValueError("landmarks are degenerate (eyes or mouth coincide): empty face box")
    x = eye_to_eye - np.flipud(eye_to_mouth) * [-1, 1]
    x = x / np.hypot(*x)
    x = x * max(np.hypot(*eye_to_eye) * 2.0, np.hypot(*eye_to_mouth) * 1.8)
    y = np.flipud(x) * [-1, 1]
    centre = eye_avg + eye_to_mouth * 0.1
    quad = np.stack([centre - x - y, centre - x + y, centre + x + y, centre + x - y])
    return quad, float(np.hypot(*x) * 2)


def crop_geometry(landmarks: np.ndarray, image_size: tuple[int, int], mode: str = "crop") -> CropInfo:
    """Crop boxes for ``mode`` from landmarks in the original image."""
    mode = check_mode(mode)
    width, height = image_size
    if mode == "resize":
        return CropInfo(mode, (width, height), (0, 0, width, height), None, None, None)
    quad, qsize = face_quad(landmarks)
    shrink = int(math.floor(qsize / QUAD_SIZE_HINT * 0.5))
    if shrink > 1:
        w_s, h_s = int(round(width / shrink)), int(round(height / shrink))
        quad, qsize = quad / shrink, qsize / shrink
    else:
        shrink, (w_s, h_s) = 1, (width, height)
    border = max(int(round(qsize * 0.1)), 3)
    clx = max(int(math.floor(quad[:, 0].min())) - border, 0)
    cly = max(int(math.floor(quad[:, 1].min())) - border, 0)
    crx = min(int(math.ceil(quad[:, 0].max())) + border, w_s)
    cry = min(int(math.ceil(quad[:, 1].max())) + border, h_s)
    if crx - clx < w_s or cry - cly < h_s:
        quad = quad - [clx, cly]
    quad = quad + 0.5
    lx = max(min(quad[0, 0], quad[1, 0]), 0)
    ly = max(min(quad[0, 1], quad[3, 1]), 0)
    rx = min(max(quad[2, 0], quad[3, 0]), w_s)
    ry = min(max(quad[1, 1], quad[2, 1]), w_s)  # the official code clamps y by the width too
    scale = lambda v: int(round(v * shrink)) if shrink > 1 else int(v)  # noqa: E731 - back to original pixels
    bordered = (scale(clx), scale(cly), scale(crx), scale(cry))
    face = (scale(clx + int(lx)), scale(cly + int(ly)), scale(clx + int(rx)), scale(cly + int(ry)))
    if face[2] <= face[0] or face[3] <= face[1]:
        raise ValueError(f"landmarks give an empty face box {face} in a {width}x{height} image")
    box = bordered if is_extended(mode) else face
    return CropInfo(mode, (width, height), box, face, bordered, (float(lx), float(ly), float(rx), float(ry)), shrink)


def cut_source(image_rgb: np.ndarray, info: CropInfo, size: int) -> np.ndarray:
    """Cut ``info.box`` from the original image and resize it (bilinear) to the render size."""
    x1, y1, x2, y2 = info.box
    if info.shrink > 1:
        # Follow the official order: shrink the whole image, then cut in shrunk pixels.
        w_s, h_s = int(round(info.image_size[0] / info.shrink)), int(round(info.image_size[1] / info.shrink))
        small = cv2.resize(image_rgb, (w_s, h_s))
        x1, y1, x2, y2 = (int(round(v / info.shrink)) for v in info.box)
        patch = small[y1:y2, x1:x2]
    else:
        patch = image_rgb[y1:y2, x1:x2]
    return cv2.resize(np.ascontiguousarray(patch), (size, size))


def landmarks_in_source(landmarks: np.ndarray, info: CropInfo, size: int) -> np.ndarray:
    """Move landmarks from original pixels into the ``size`` x ``size`` render source."""
    x1, y1, x2, y2 = info.box
    points = np.asarray(landmarks, dtype=np.float64) - [x1, y1]
    return (points * [size / (x2 - x1), size / (y2 - y1)]).astype(np.float32)


def preprocess_image(image_rgb: np.ndarray, landmarks: np.ndarray, mode: str = "crop", size: int = 256) -> tuple[np.ndarray, CropInfo]:
    """The render source (size, size, 3) uint8 and how it was cut, for one of the five modes."""
    info = crop_geometry(landmarks, (image_rgb.shape[1], image_rgb.shape[0]), mode)
    return cut_source(image_rgb, info, size), info
