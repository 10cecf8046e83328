"""Where face landmarks come from: a detector behind a small provider interface, or a user file.

Providers return 68 (or 5) (x, y) points in image pixels, y down, for the most prominent face, or
``None`` when they find no face. The face-alignment package is the bundled detector; its weights are
fetched into ``$TORCH_HOME/hub/checkpoints`` on first use, so :func:`face_alignment_weight_files`
names them for a model manager to pre-seed on offline machines. User landmark files (``--landmarks``)
serve stylised or cartoon faces that detectors miss.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from talkbridge.core.errors import CheckpointError, InputError

log = logging.getLogger(__name__)

LANDMARK_COUNTS = (68, 5)
LANDMARK_FILE_HELP = (
    "a JSON file (a list of [x, y] pairs, or {\"landmarks\": [...]}) or a .txt file with one 'x y' pair "
    "per line, holding 68 points (iBUG order) or 5 points (left eye, right eye, nose tip, left and "
    "right mouth corner), in pixels of the input image"
)

# face-alignment's weight files: (file name, download URL). Fetched into $TORCH_HOME/hub/checkpoints.
FACE_ALIGNMENT_WEIGHTS = {
    "2DFAN4-11f355bf06.pth.tar": "https://www.adrianbulat.com/downloads/python-fan/2DFAN4-11f355bf06.pth.tar",
    "s3fd-619a316812.pth": "https://www.adrianbulat.com/downloads/python-fan/s3fd-619a316812.pth",
}


class NoFaceError(InputError):
    """No face was found; the message suggests supplying landmarks instead."""

    def __init__(self, path: str | Path | None = None, detail: str = "") -> None:
        message = (
            "no face found in this image" + (f" ({detail})" if detail else "")
            + ". For stylised or cartoon faces, or when detection fails, pass the face's landmarks with "
            "--landmarks FILE: " + LANDMARK_FILE_HELP
        )
        super().__init__(message, path)


@runtime_checkable
class LandmarkProvider(Protocol):
    """Anything that finds one face's landmarks in an RGB uint8 image."""

    def detect(self, image_rgb: np.ndarray) -> np.ndarray | None:
        """(68, 2) or (5, 2) float32 (x, y) pixels of the most prominent face, or None."""


class StaticLandmarks:
    """A provider that always answers with the same points (user files, tests, cached detections)."""

    def __init__(self, points: np.ndarray) -> None:
        self.points = validate_landmarks(points)

    def detect(self, image_rgb: np.ndarray) -> np.ndarray | None:
        return self.points.copy()


def torch_hub_checkpoints() -> Path:
    """The folder face-alignment reads its weights from (honours $TORCH_HOME)."""
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints"


def face_alignment_weight_files() -> dict[str, str]:
    """File name -> URL of every weight file the face-alignment provider needs (for pre-seeding)."""
    return dict(FACE_ALIGNMENT_WEIGHTS)


def missing_face_alignment_weights(folder: Path | None = None) -> list[Path]:
    folder = torch_hub_checkpoints() if folder is None else Path(folder)
    return [folder / name for name in FACE_ALIGNMENT_WEIGHTS if not (folder / name).is_file()]


class FaceAlignmentProvider:
    """68-point landmarks from the face-alignment package (S3FD detector + 2D-FAN).

    The network loads lazily on first use. With ``allow_download=False`` (the default) a missing
    weight file is an error naming the file and folder instead of a network access.
    """

    def __init__(self, device: str = "cpu", allow_download: bool = False) -> None:
        self.device = device
        self.allow_download = allow_download
        self._model = None
        self._loading = threading.Lock()  # concurrent jobs in one sidecar worker share the provider

    def _load(self):
        with self._loading:
            return self._model if self._model is not None else self._build()

    def _build(self):
        missing = missing_face_alignment_weights()
        if missing and not self.allow_download:
            raise CheckpointError(
                "face-alignment detector weights are not installed: "
                + ", ".join(p.name for p in missing)
                + f" (expected in {missing[0].parent}); fetch them with `talkbridge models download face-alignment`,"
                " or pass --landmarks FILE",
                missing[0],
            )
        try:
            import face_alignment
        except ImportError as error:  # pragma: no cover - depends on the install
            raise CheckpointError(
                "the face-alignment package is not installed; `pip install talkbridge[face]` or pass --landmarks FILE"
            ) from error
        self._model = face_alignment.FaceAlignment(
            face_alignment.LandmarksType.TWO_D, device=self.device, flip_input=False, compile=False
        )
        return self._model

    def detect(self, image_rgb: np.ndarray) -> np.ndarray | None:
        model = self._load()
        found = model.get_landmarks_from_image(np.asarray(image_rgb)[..., :3])
        if not found:
            return None
        # get_landmarks_from_image keeps the detector's order; pick the largest face.
        areas = [float(np.ptp(p[:, 0]) * np.ptp(p[:, 1])) for p in found]
        return np.asarray(found[int(np.argmax(areas))][:, :2], dtype=np.float32)


def validate_landmarks(points, path: str | Path | None = None, image_size: tuple[int, int] | None = None) -> np.ndarray:
    """Check a landmark array: 68 or 5 finite (x, y) points, optionally inside a (W, H) image."""
    try:
        array = np.asarray(points, dtype=np.float32)
    except (TypeError, ValueError) as error:
        raise InputError(f"landmarks must be numbers: {error}. Expected {LANDMARK_FILE_HELP}", path) from error
    if array.ndim == 1 and array.size in (136, 10):
        array = array.reshape(-1, 2)
    if array.ndim != 2 or array.shape[1] < 2 or array.shape[0] not in LANDMARK_COUNTS:
        raise InputError(f"expected 68 or 5 (x, y) points, got an array of shape {array.shape}. Expected {LANDMARK_FILE_HELP}", path)
    array = np.ascontiguousarray(array[:, :2])
    if not np.all(np.isfinite(array)):
        raise InputError("landmarks contain NaN or infinite values", path)
    if image_size is not None:
        width, height = image_size
        outside = (array[:, 0] < -0.5) | (array[:, 0] > width - 0.5) | (array[:, 1] < -0.5) | (array[:, 1] > height - 0.5)
        if np.any(outside):
            first = int(np.argmax(outside))
            raise InputError(
                f"landmark {first} at ({array[first, 0]:.1f}, {array[first, 1]:.1f}) lies outside the "
                f"{width}x{height} image; are the points in pixels of this image?",
                path,
            )
    return array


def load_landmark_file(path: str | Path, image_size: tuple[int, int] | None = None) -> np.ndarray:
    """Read user landmarks from JSON or text: (68, 2) or (5, 2) float32 pixels, y down."""
    path = Path(path)
    if not path.is_file():
        raise InputError("landmark file not found", path)
    text = path.read_text(encoding="utf-8", errors="replace")
    if path.suffix.lower() == ".json" or text.lstrip().startswith(("[", "{")):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise InputError(f"not valid JSON ({error}); expected {LANDMARK_FILE_HELP}", path) from error
        if isinstance(data, dict):
            for key in ("landmarks", "points", "lm"):
                if key in data:
                    data = data[key]
                    break
            else:
                raise InputError(f"JSON object has no 'landmarks' list; expected {LANDMARK_FILE_HELP}", path)
        if isinstance(data, list) and data and isinstance(data[0], dict):
            data = [[p.get("x"), p.get("y")] for p in data]
        points = data
    else:
        rows = []
        for number, line in enumerate(text.splitlines(), start=1):
            line = line.split("#", 1)[0].replace(",", " ").strip()
            if not line:
                continue
            try:
                rows.append([float(v) for v in line.split()])
            except ValueError as error:
                raise InputError(f"line {number} is not 'x y' numbers: {line!r}", path) from error
        widths = {len(r) for r in rows}
        if len(rows) == 1:
            points = rows[0]  # all coordinates on one line: x1 y1 x2 y2 ...
        elif len(widths) == 1 and min(widths) >= 2:
            points = [r[:2] for r in rows]  # 'x y' or 'x y z' per line; z is ignored
        else:
            raise InputError(f"lines hold different numbers of values ({sorted(widths)}); expected {LANDMARK_FILE_HELP}", path)
    return validate_landmarks(points, path, image_size)


def resolve_landmarks(
    image_rgb: np.ndarray,
    landmarks: np.ndarray | str | os.PathLike | None = None,
    provider: LandmarkProvider | None = None,
    image_path: str | Path | None = None,
) -> np.ndarray:
    """User landmarks (array or file) win; otherwise ask the provider; no face -> :class:`NoFaceError`."""
    size = (image_rgb.shape[1], image_rgb.shape[0])
    if landmarks is not None:
        if isinstance(landmarks, (str, os.PathLike)):
            return load_landmark_file(landmarks, size)
        return validate_landmarks(landmarks, None, size)
    if provider is None:
        provider = FaceAlignmentProvider()
    found = provider.detect(image_rgb)
    if found is None:
        raise NoFaceError(image_path)
    return validate_landmarks(found, image_path)
