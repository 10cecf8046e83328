"""5-point alignment of a face to the recon net's 224x224 frame (the Deep3DFaceRecon geometry).

An affine camera is fitted by least squares from the 3-D template to the five image points; its
mean scale says how large the face is, and the image is rescaled so the template spans
``RESCALE_FACTOR`` pixels, then cropped around the fitted centre. Landmarks use the y-up convention
(``y = H - 1 - row``) throughout, as the official pipeline does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from talkbridge.core.face.template import ALIGNED_SIZE, RESCALE_FACTOR, TEMPLATE_5P_3D, landmarks_68_to_5


@dataclass
class AlignedFace:
    """Result of :func:`align_img`."""

    image: np.ndarray  # (224, 224, 3) uint8 RGB
    landmarks: np.ndarray  # input landmarks moved into the aligned frame (y-up), float64
    trans_params: np.ndarray  # [w0, h0, scale, tx, ty] float64
    lm5p: np.ndarray  # the five image points used for the fit (float64)
    fit_translation: np.ndarray  # (tx, ty) of the fit
    fit_scale: float  # mean scale of the fit before rescaling


def fit_affine_camera(points_2d: np.ndarray, points_3d: np.ndarray) -> tuple[np.ndarray, float]:
    """Least-squares affine camera mapping 3-D template points to image points.

    Solves ``a.X + tx = u`` and ``b.X + ty = v`` for all points at once and returns ``(tx, ty)`` and
    the mean of ``|a|`` and ``|b|`` (the face's scale in pixels per template unit).
    """
    count = points_2d.shape[0]
    design = np.zeros((2 * count, 8))
    design[0::2, 0:3] = points_3d
    design[0::2, 3] = 1
    design[1::2, 4:7] = points_3d
    design[1::2, 7] = 1
    target = np.asarray(points_2d, dtype=np.float64).reshape(2 * count)
    solution = np.linalg.lstsq(design, target, rcond=None)[0]
    scale = (np.linalg.norm(solution[0:3]) + np.linalg.norm(solution[4:7])) / 2
    return np.array([solution[3], solution[7]]), float(scale)


def align_img(
    image: Image.Image | np.ndarray,
    landmarks: np.ndarray,
    template: np.ndarray = TEMPLATE_5P_3D,
    target_size: int = ALIGNED_SIZE,
    rescale_factor: float = RESCALE_FACTOR,
) -> AlignedFace:
    """Align ``image`` by its 68 or 5 y-up landmarks; out-of-image area becomes black."""
    if isinstance(image, np.ndarray):
        image = Image.fromarray(np.asarray(image, dtype=np.uint8))
    landmarks = np.asarray(landmarks)
    points = landmarks_68_to_5(landmarks) if landmarks.shape[0] == 68 else landmarks
    if points.shape != (5, 2):
        raise ValueError(f"alignment needs 68 or 5 (x, y) landmarks, got {landmarks.shape}")
    translation, fit_scale = fit_affine_camera(points.astype(np.float64), np.asarray(template, dtype=np.float64))
    scale = rescale_factor / fit_scale
    w0, h0 = image.size
    width, height = int(w0 * scale), int(h0 * scale)
    half = target_size / 2
    left = int(width / 2 - half + (translation[0] - w0 / 2) * scale)
    up = int(height / 2 - half + (h0 / 2 - translation[1]) * scale)
    resized = image.resize((width, height), resample=Image.BICUBIC)
    cropped = resized.crop((left, up, left + target_size, up + target_size))
    moved = np.stack(
        [landmarks[:, 0] - translation[0] + w0 / 2, landmarks[:, 1] - translation[1] + h0 / 2], axis=1
    ) * scale
    moved = moved - np.array([[width / 2 - half, height / 2 - half]])
    return AlignedFace(
        image=np.asarray(cropped.convert("RGB"), dtype=np.uint8),
        landmarks=moved,
        trans_params=np.array([w0, h0, scale, translation[0], translation[1]], dtype=np.float64),
        lm5p=points.astype(np.float64),
        fit_translation=translation,
        fit_scale=fit_scale,
    )
