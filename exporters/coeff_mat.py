"""The ``coeff_3dmm`` ``.mat`` file the official SadTalker tools write and read.

MATLAB v5, one float32 ("single") array ``coeff_3dmm`` of shape (T, 70): 64 expression coefficients,
3 rotation angles (radians: pitch, yaw, roll) and 3 translations per frame. Existing SadTalker
tooling (its renderer, its notebooks) reads this file unchanged.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from talkbridge.core.errors import InputError
from talkbridge.core.motion import COEFF_DIM
from talkbridge.exporters.atomic import atomic_output


def write_coeff_mat(path: str | Path, coefficients: np.ndarray, overwrite: bool = False) -> Path:
    """Write (T, 70) coefficients atomically as the official ``coeff_3dmm`` layout."""
    from scipy.io import savemat

    rows = np.asarray(coefficients, np.float32)
    if rows.ndim != 2 or rows.shape[1] != COEFF_DIM or len(rows) == 0:
        raise InputError(f"coefficients must be (T, {COEFF_DIM}) with T >= 1, got {rows.shape}", path)
    path = Path(path)
    with atomic_output(path, overwrite=overwrite) as temp:
        with open(temp, "wb") as handle:
            savemat(handle, {"coeff_3dmm": rows})
    return path
