"""Head pose for Blender rigs: the exporters' SadTalker->glTF rotations, restated in Blender's frame.

The angle convention is owned by ``talkbridge.exporters.gltf.pose`` (the glTF exporter uses it too),
so this module never re-derives it; it only changes frames:

* glTF/3DMM head frame: +Y up, the face looks down +Z, +X is the head's own left;
* Blender's character convention (and what Blender's glTF importer produces): +Z up, the face looks
  down -Y, +X the character's left. A +90 degree turn about X maps the first onto the second.

Quaternions here are numpy (N, 4) arrays in glTF order (x, y, z, w) until :func:`to_blender_order`
turns them into Blender's (w, x, y, z). Nothing here imports bpy, so it is tested in plain Python.
"""

from __future__ import annotations

import numpy as np

# numpy only: importing the pose module does not pull in the glTF writer (pygltflib), which the
# add-on does not bundle; see talkbridge/exporters/gltf/__init__.py.
from talkbridge.exporters.gltf import pose as pose_math

GLTF_TO_BLENDER = np.array([np.sin(np.pi / 4), 0.0, 0.0, np.cos(np.pi / 4)])
"""(x, y, z, w) of +90 degrees about X: glTF's +Y-up head frame -> Blender's +Z-up frame."""


def head_rotations(pose: np.ndarray, reference: str = "first", first_angles: np.ndarray | None = None) -> np.ndarray:
    """(T, 4) rotations of the head in Blender's rig frame, from (T, >=3) SadTalker angles.

    ``reference="first"`` plays the clip relative to its first frame so the head starts at rest;
    ``first_angles`` is that frame's angles when ``pose`` is a later chunk of a streamed clip.
    ``"absolute"`` keeps SadTalker's angles as they are.
    """
    angles = np.asarray(pose, np.float64)[:, :3]
    rotations = pose_math.sadtalker_to_quaternions(angles)
    if reference == "first":
        first = angles[:1] if first_angles is None else np.asarray(first_angles, np.float64).reshape(1, 3)
        first_q = pose_math.sadtalker_to_quaternions(first)
        rotations = pose_math.quaternion_multiply(rotations, pose_math.quaternion_conjugate(first_q))
    elif reference != "absolute":
        raise ValueError(f"pose reference must be 'first' or 'absolute', not {reference!r}")
    return gltf_to_rig(rotations)


def gltf_to_rig(rotations: np.ndarray) -> np.ndarray:
    """(T, 4) rotations given in the glTF head frame, restated in Blender's rig frame (Z up)."""
    return pose_math.quaternion_multiply(
        pose_math.quaternion_multiply(GLTF_TO_BLENDER[None, :], np.asarray(rotations, np.float64)),
        pose_math.quaternion_conjugate(GLTF_TO_BLENDER)[None, :],
    )


def local_rotations(world_rotations: np.ndarray, frame: np.ndarray, current: np.ndarray) -> np.ndarray:
    """Rotations to key on a bone or object so it turns by ``world_rotations`` about its own pivot.

    ``frame`` is the rotation of the space the target's rotation is expressed in (a bone's rest
    orientation in armature space, or an object's parent's world rotation) and ``current`` the
    target's present rotation, which stays the starting point: ``local = F^-1 * R * F * current``.
    """
    frame = np.asarray(frame, np.float64).reshape(4)
    current = np.asarray(current, np.float64).reshape(4)
    local = pose_math.quaternion_multiply(
        pose_math.quaternion_multiply(pose_math.quaternion_conjugate(frame)[None, :], world_rotations),
        pose_math.quaternion_multiply(frame, current)[None, :],
    )
    local /= np.linalg.norm(local, axis=1, keepdims=True)
    return local


def head_offsets(pose: np.ndarray, first_translation: np.ndarray, metres_per_unit: float) -> np.ndarray:
    """(T, 3) head movement in Blender's rig frame, in metres, relative to the clip's first frame.

    SadTalker's translation (pose columns 3..5) shares the glTF head frame's axes; the same +90
    degree turn about X as the rotations carries it into Blender's frame: (x, y, z) -> (x, -z, y).
    """
    moved = (np.asarray(pose, np.float64)[:, 3:6] - np.asarray(first_translation, np.float64).reshape(1, 3)) * metres_per_unit
    return np.stack([moved[:, 0], -moved[:, 2], moved[:, 1]], axis=1)


def local_offsets(world_offsets: np.ndarray, frame: np.ndarray, current: np.ndarray) -> np.ndarray:
    """Locations to key on a bone or object so it moves by ``world_offsets`` from ``current``.

    ``frame`` is the rotation of the space the target's location is expressed in (as for
    :func:`local_rotations`); offsets are turned into that space and added to the present location.
    """
    inverse = pose_math.quaternion_conjugate(np.asarray(frame, np.float64).reshape(1, 4))[0]
    rotated = np.asarray(world_offsets, np.float64) @ pose_math.quaternion_to_matrix(inverse).T
    return rotated + np.asarray(current, np.float64).reshape(1, 3)


def make_continuous(quaternions: np.ndarray, previous: np.ndarray | None = None) -> np.ndarray:
    """Sign-flip keys into one hemisphere, continuing from ``previous`` (the last key of the last chunk)."""
    q = np.asarray(quaternions, np.float64)
    if previous is not None and len(q):
        if float(np.dot(q[0], previous)) < 0.0:
            q = -q
    return pose_math.make_continuous(q)


def to_blender_order(quaternions: np.ndarray) -> np.ndarray:
    """(N, 4) (x, y, z, w) -> Blender's (w, x, y, z)."""
    q = np.asarray(quaternions)
    return np.concatenate([q[:, 3:4], q[:, :3]], axis=1)


def from_blender_order(quaternion) -> np.ndarray:
    """A Blender (w, x, y, z) quaternion (mathutils or sequence) -> numpy (x, y, z, w)."""
    w, x, y, z = (float(v) for v in quaternion)
    return np.array([x, y, z, w])
