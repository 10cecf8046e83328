"""The lower teeth: five key points moved by the network, then the best rigid motion that explains them.

The SDK fits rotation and translation from the neutral points to the moved ones with the Kabsch
method (SVD of the 3x3 cross-covariance, with the determinant sign fixed so a reflection never comes
out). talkbridge stores the result row-major in the motion contract's ``jaw`` channel (p' = R p + t);
the SDK's own buffer is the same matrix column-major.
"""

from __future__ import annotations

import numpy as np

from talkbridge.core.audio2face.files import AnimatorConfig


def jaw_points(values: np.ndarray, neutral: np.ndarray, config: AnimatorConfig) -> np.ndarray:
    """(T, 5, 3) target points: neutral + strength * network output + (0, height, depth) offsets."""
    moved = neutral[None] + config.lower_teeth_strength * np.asarray(values, np.float32).reshape(-1, 5, 3)
    offset = np.array([0.0, config.lower_teeth_height_offset, config.lower_teeth_depth_offset], np.float32)
    return (moved + offset).astype(np.float32)


def rigid_fit(source: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """(T, 4, 4) row-major transforms taking ``source`` (N, 3) onto each ``targets[k]`` (N, 3) best."""
    source = np.asarray(source, np.float64)
    targets = np.asarray(targets, np.float64)
    source_centre = source.mean(axis=0)
    target_centres = targets.mean(axis=1)
    cross = np.einsum("ni,tnj->tij", source - source_centre, targets - target_centres[:, None, :])
    u, _, vt = np.linalg.svd(cross)
    v = np.transpose(vt, (0, 2, 1))
    sign = np.sign(np.linalg.det(v @ np.transpose(u, (0, 2, 1))))
    sign[sign == 0] = 1.0
    fix = np.zeros((len(targets), 3, 3))
    fix[:, 0, 0] = 1.0
    fix[:, 1, 1] = 1.0
    fix[:, 2, 2] = sign
    rotation = v @ fix @ np.transpose(u, (0, 2, 1))
    out = np.zeros((len(targets), 4, 4), np.float32)
    out[:, :3, :3] = rotation
    out[:, :3, 3] = target_centres - np.einsum("tij,j->ti", rotation, source_centre)
    out[:, 3, 3] = 1.0
    return out
