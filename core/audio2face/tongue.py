"""The tongue: PCA reconstruction, strength and the height/depth offsets (no smoothing, no mask)."""

from __future__ import annotations

import numpy as np

from talkbridge.core.audio2face.files import AnimatorConfig, ModelData


def tongue_offset(config: AnimatorConfig) -> np.ndarray:
    """(3,) added to every tongue vertex: (0, tongue_height_offset, tongue_depth_offset)."""
    return np.array([0.0, config.tongue_height_offset, config.tongue_depth_offset], np.float32)


def tongue_vertices(coefficients: np.ndarray, data: ModelData, config: AnimatorConfig) -> np.ndarray:
    """(T, W, 3) tongue for tongue PCA coefficients (T, K)."""
    values = np.asarray(coefficients, np.float32)
    delta = config.tongue_strength * (values if data.tongue_basis is None else values @ data.tongue_basis)
    return (data.tongue_mean[None] + delta.reshape(len(delta), -1, 3) + tongue_offset(config)).astype(np.float32)


class ProjectedTongue:
    """``D^T (tongue[rows] - n0)`` per frame from the coefficients alone (the map is linear)."""

    def __init__(self, data: ModelData, config: AnimatorConfig, rows: np.ndarray, design: np.ndarray,
                 neutral_rows: np.ndarray) -> None:
        rest = (data.tongue_mean + tongue_offset(config)).reshape(-1)[rows].astype(np.float64)
        # No PCA basis (v3.0 diffusion): the input is the tongue delta; keep only the solve's rows.
        self.select = rows if data.tongue_basis is None else None
        basis_rows = design if data.tongue_basis is None else data.tongue_basis[:, rows].astype(np.float64) @ design
        self.map = config.tongue_strength * basis_rows
        self.base = (rest - neutral_rows) @ design

    def rhs(self, coefficients: np.ndarray) -> np.ndarray:
        coefficients = np.asarray(coefficients, np.float64)
        if self.select is not None:
            coefficients = coefficients[:, self.select]
        return self.base + coefficients @ self.map
