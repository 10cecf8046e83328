"""Head pose: SadTalker's angles as rotations in glTF's frame.

SadTalker (via Deep3DFaceRecon's 3DMM) stores per frame three angles in radians, in the order
``pitch, yaw, roll`` = rotations about x, y, z of the 3DMM's model frame. The reconstruction renderer
multiplies row-vector vertices by ``(Rz(roll) @ Ry(yaw) @ Rx(pitch)).T``, which is the same as
rotating column vectors by ``R = Rz @ Ry @ Rx``, with the standard right-handed matrices (e.g.
``Rx = [[1,0,0],[0,c,-s],[0,s,c]]``).

The 3DMM's model frame is right-handed with +x towards the subject's left (the viewer's right), +y
up and +z out of the face towards the camera: its camera sits at z = 10 looking down -z, projected
x grows to the image's right, and the renderer flips image rows so +y is up. That is exactly glTF's
frame for a head (+Y up, the face looking down +Z, +X the head's own left), so **no axis change or
sign flip is needed**: the glTF rotation is the quaternion of ``Rz(roll) Ry(yaw) Rx(pitch)``.

What the signs mean on the head, for a head at rest facing +Z:

* pitch > 0: the face turns towards -Y (nods down);
* yaw > 0: the face turns towards +X (the subject looks to their own left);
* roll > 0: the top of the head tilts towards -X (towards the subject's right shoulder).

The 3DMM translation shares the axes, in the model's units (about 0.1 m; see ``TRANSLATION_UNIT_M``).
"""

from __future__ import annotations

import numpy as np

TRANSLATION_UNIT_M = 0.1
"""Approximate metres per 3DMM translation unit (the BFM used by Deep3DFaceRecon is in decimetres)."""


def _axis_quaternions(angles: np.ndarray, axis: int) -> np.ndarray:
    half = np.asarray(angles, np.float64) * 0.5
    q = np.zeros((len(half), 4), np.float64)  # glTF order x, y, z, w
    q[:, axis] = np.sin(half)
    q[:, 3] = np.cos(half)
    return q


def quaternion_multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product ``a * b`` of (N, 4) or (4,) quaternions in (x, y, z, w) order."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    ax, ay, az, aw = np.moveaxis(a, -1, 0)
    bx, by, bz, bw = np.moveaxis(b, -1, 0)
    return np.stack(
        [
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
            aw * bw - ax * bx - ay * by - az * bz,
        ],
        axis=-1,
    )


def quaternion_conjugate(q: np.ndarray) -> np.ndarray:
    q = np.array(q, np.float64)
    q[..., :3] *= -1.0
    return q


def sadtalker_to_quaternions(angles: np.ndarray) -> np.ndarray:
    """(T, 3) pitch/yaw/roll radians -> (T, 4) glTF quaternions (x, y, z, w) of Rz·Ry·Rx."""
    angles = np.asarray(angles, np.float64).reshape(-1, 3)
    qx = _axis_quaternions(angles[:, 0], 0)
    qy = _axis_quaternions(angles[:, 1], 1)
    qz = _axis_quaternions(angles[:, 2], 2)
    return quaternion_multiply(quaternion_multiply(qz, qy), qx)


def rotation_matrices(angles: np.ndarray) -> np.ndarray:
    """(T, 3) pitch/yaw/roll -> (T, 3, 3) ``Rz @ Ry @ Rx``; the reference the quaternions must equal."""
    angles = np.asarray(angles, np.float64).reshape(-1, 3)
    out = []
    for x, y, z in angles:
        cx, sx, cy, sy, cz, sz = np.cos(x), np.sin(x), np.cos(y), np.sin(y), np.cos(z), np.sin(z)
        rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
        ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
        rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
        out.append(rz @ ry @ rx)
    return np.array(out).reshape(-1, 3, 3)


def quaternion_to_matrix(q: np.ndarray) -> np.ndarray:
    """(..., 4) unit quaternions (x, y, z, w) -> (..., 3, 3) rotation matrices."""
    q = np.asarray(q, np.float64)
    x, y, z, w = np.moveaxis(q, -1, 0)
    return np.stack(
        [
            np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
            np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
            np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1),
        ],
        -2,
    )


def matrix_to_quaternion(m: np.ndarray) -> np.ndarray:
    """A (3, 3) rotation matrix (scale removed by the caller) -> unit quaternion (x, y, z, w)."""
    m = np.asarray(m, np.float64)
    trace = m[0, 0] + m[1, 1] + m[2, 2]
    if trace > 0:
        s = 2.0 * np.sqrt(trace + 1.0)
        q = [(m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s, 0.25 * s]
    elif m[0, 0] > m[1, 1] and m[0, 0] > m[2, 2]:
        s = 2.0 * np.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2])
        q = [0.25 * s, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s, (m[2, 1] - m[1, 2]) / s]
    elif m[1, 1] > m[2, 2]:
        s = 2.0 * np.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2])
        q = [(m[0, 1] + m[1, 0]) / s, 0.25 * s, (m[1, 2] + m[2, 1]) / s, (m[0, 2] - m[2, 0]) / s]
    else:
        s = 2.0 * np.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1])
        q = [(m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, 0.25 * s, (m[1, 0] - m[0, 1]) / s]
    q = np.array(q)
    return q / np.linalg.norm(q)


def make_continuous(quaternions: np.ndarray) -> np.ndarray:
    """Flip signs so consecutive keys are in the same hemisphere (interpolation takes the short way)."""
    q = np.array(quaternions, np.float64)
    if len(q) < 2:
        return q
    dots = np.einsum("ij,ij->i", q[1:], q[:-1])
    flips = np.concatenate([[1.0], np.cumprod(np.where(dots < 0, -1.0, 1.0))])
    return q * flips[:, None]


def relative_to_first(quaternions: np.ndarray) -> np.ndarray:
    """Rotations expressed relative to frame 0: ``R(t) R(0)^-1``, so the head starts at rest."""
    q = np.asarray(quaternions, np.float64)
    return quaternion_multiply(q, quaternion_conjugate(q[:1]))
