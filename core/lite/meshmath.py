"""Small mesh computations shared by the mannequin builder and the preview renderer."""

from __future__ import annotations

import numpy as np


def vertex_normals(positions: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """Unit vertex normals, each the area-weighted mean of its triangles' normals."""
    positions = np.asarray(positions, np.float32)
    v0, v1, v2 = (positions[indices[:, k]] for k in range(3))
    face_normals = np.cross(v1 - v0, v2 - v0)  # length = twice the area: larger faces weigh more
    normals = np.zeros_like(positions)
    n = len(positions)
    for k in range(3):
        for axis in range(3):
            normals[:, axis] += np.bincount(indices[:, k], weights=face_normals[:, axis], minlength=n)
    length = np.linalg.norm(normals, axis=1, keepdims=True)
    return normals / np.maximum(length, 1e-12)
