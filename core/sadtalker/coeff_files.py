"""Reading the 3DMM coefficient ``.mat`` files SadTalker's tools write (``coeff_3dmm`` rows).

A source image's file holds one row of 73 values (64 expression, 3 angles, 3 translation, 3 crop
parameters); a reference video's holds one row per frame. Files written by other tools may hold only
the first 70 columns, which is enough for the audio side.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from talkbridge.core.errors import InputError
from talkbridge.core.motion import COEFF_DIM, EXPRESSION_DIM, FIRST_FRAME_DIM


def read_coeff_rows(path: str | Path, min_width: int = COEFF_DIM) -> np.ndarray:
    """The ``coeff_3dmm`` array of a ``.mat`` (or a ``.npy``) file as (N, width) float32."""
    path = Path(path)
    if not path.is_file():
        raise InputError("coefficient file not found", path)
    try:
        if path.suffix.lower() == ".npy":
            rows = np.load(path, allow_pickle=False)
        else:
            from scipy.io import loadmat

            content = loadmat(str(path))
            if "coeff_3dmm" not in content:
                keys = sorted(k for k in content if not k.startswith("__"))
                raise InputError(f"has no 'coeff_3dmm' entry (found {keys}); is it a SadTalker coefficient file?", path)
            rows = content["coeff_3dmm"]
    except InputError:
        raise
    except Exception as error:
        raise InputError(f"cannot read coefficients: {error}", path) from error
    return validate_coeff_rows(rows, min_width, path)


def validate_coeff_rows(rows: np.ndarray, min_width: int = COEFF_DIM, path: str | Path | None = None) -> np.ndarray:
    rows = np.asarray(rows)
    if rows.ndim == 1:
        rows = rows[None, :]
    if rows.ndim != 2 or rows.shape[0] == 0 or rows.shape[1] < min_width or rows.shape[1] > FIRST_FRAME_DIM:
        raise InputError(
            f"coefficients have shape {rows.shape}; expected (N, {min_width}..{FIRST_FRAME_DIM}) rows "
            f"(64 expression, 3 angles, 3 translation[, 3 crop])",
            path,
        )
    rows = rows.astype(np.float32)
    if not np.all(np.isfinite(rows)):
        raise InputError("coefficients hold NaN or infinite values", path)
    return rows


def first_frame_row(source: str | Path | np.ndarray) -> np.ndarray:
    """The source image's first-frame row (at least 70 values; 73 with crop parameters)."""
    if isinstance(source, np.ndarray):
        rows = validate_coeff_rows(source)
    else:
        rows = read_coeff_rows(source)
    return rows[0]


def reference_rows(source: str | Path | np.ndarray, min_width: int) -> np.ndarray:
    """A reference video's per-frame rows (expression only needs 64 columns, pose needs 70)."""
    if isinstance(source, np.ndarray):
        return validate_coeff_rows(source, min_width)
    return read_coeff_rows(source, min_width)


def tile_to_length(rows: np.ndarray, n_frames: int) -> np.ndarray:
    """Repeat a reference sequence whole until it covers ``n_frames``, then cut (official tiling)."""
    repeats = -(-n_frames // len(rows))
    return np.concatenate([rows] * repeats, axis=0)[:n_frames]


__all__ = ["read_coeff_rows", "validate_coeff_rows", "first_frame_row", "reference_rows", "tile_to_length", "EXPRESSION_DIM"]
