"""The tongue: PCA reconstruction, strength and the height/depth offsets (no smoothing, no mask)."""

from __future__ import annotations

import numpy as np

from talkbridge.core.audio2face.files import AnimatorConfig, ModelData


def tongue_offset(config: AnimatorConfig) -> np.ndarray:
    """(3,) added to every tongue vertex: (0, tongue_height_offset, tongue_depth_offset)."""
    return np.array([0.0, config.tongue_height_offset, config.tongue_depth_offset], np.float32)


def tongue_vertices(coefficients: np.ndarray, data: ModelData, config: AnimatorConfig) -> np.ndarray:
    """(T, W, 3) tongue for tongue PCA coefficients (T, K)."""
    delta = config.tongue_strength * (np.asarray(coefficients, np.float32) @ data.tongue_basis)
    return (data.tongue_mean[None] + delta.reshape(len(delta), -1, 3) + tongue_offset(config)).astype(np.float32)


class ProjectedTongue:
    """``D^T (tongue[rows] - n0)`` per frame from the coefficients alone (the map is linear)."""

    def __init__(self, data: ModelData, config: AnimatorConfig, rows: np.ndarray, design: np.ndarray,
                 neutral_rows: np.ndarray) -> None:
        rest = (data.tongue_mean + tongue_offset(config)).reshape(-1)[rows].astype(np.float64)
        self.map = (config.tongue_strength * data.tongue_basis[:, rows].astype(np.float64)) @ design
        self.base = (rest - neutral_rows) @ design

    def rhs(self, coefficients: np.ndarray) -> np.ndarray:
        return self.base + np.asarray(coefficients, np.float64) @ self.map
