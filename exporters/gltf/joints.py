"""Joint animation in the glTF: the head, jaw and eye rotations restated in each joint's local frame.

Every rotation talkbridge applies is given in the scene's head frame (the head at rest faces +Z), so
a joint's own orientation and its parents' never change what the motion means. With ``W`` the
joint's parent world rotation at rest, ``rest`` its rest rotation and ``R(t)`` the wanted turn
about its own pivot: ``local(t) = W^-1 R(t) W rest``. The jaw and eyes are children of the head, so
the head's turn carries them and theirs comes on top.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable

import numpy as np
import pygltflib

from talkbridge.core.motion import Motion
from talkbridge.exporters import rig_joints
from talkbridge.exporters.gltf import pose as pose_math
from talkbridge.exporters.gltf.document import decompose_matrix, local_matrix, parents, world_matrices

log = logging.getLogger(__name__)

AddChannel = Callable[[int, str, np.ndarray], object]


def _rotation_part(matrix: np.ndarray) -> np.ndarray:
    linear = matrix[:3, :3]
    u, _, vt = np.linalg.svd(linear)
    rotation = u @ vt
    if np.linalg.det(rotation) < 0:
        rotation = u @ np.diag([1, 1, -1]) @ vt
    return rotation


def parent_world(document: pygltflib.GLTF2, index: int) -> np.ndarray:
    """The 4x4 world matrix of ``index``'s parent at rest (identity for a root)."""
    parent_index = parents(document)[index]
    return world_matrices(document)[parent_index] if parent_index >= 0 else np.eye(4)


def as_trs(document: pygltflib.GLTF2, index: int, path: Path) -> pygltflib.Node:
    """The node, restated as T, R, S when given by a matrix (glTF forbids animating a matrix node)."""
    node = document.nodes[index]
    if node.matrix is not None:
        node.translation, node.rotation, node.scale = decompose_matrix(local_matrix(node), node.name, path)
        node.matrix = None
    return node


def local_rotation_keys(document: pygltflib.GLTF2, index: int, rotations: np.ndarray, path: Path) -> np.ndarray:
    """(T, 4) local rotations that turn node ``index`` by head-frame ``rotations`` about its pivot."""
    world = parent_world(document, index)
    node = as_trs(document, index, path)
    parent_q = pose_math.matrix_to_quaternion(_rotation_part(world))
    rest_q = np.asarray(node.rotation if node.rotation is not None else [0, 0, 0, 1], np.float64)
    local = pose_math.quaternion_multiply(
        pose_math.quaternion_multiply(pose_math.quaternion_conjugate(parent_q), rotations),
        pose_math.quaternion_multiply(parent_q, rest_q),
    )
    local /= np.linalg.norm(local, axis=1, keepdims=True)
    return pose_math.make_continuous(local)


def local_offset_keys(document: pygltflib.GLTF2, index: int, offsets: np.ndarray) -> np.ndarray:
    """(T, 3) local translations that move node ``index`` by scene-frame ``offsets`` from its rest place."""
    node = document.nodes[index]
    rest_t = np.asarray(node.translation if node.translation is not None else [0, 0, 0], np.float64)
    return rest_t[None, :] + np.asarray(offsets, np.float64) @ np.linalg.inv(parent_world(document, index)[:3, :3]).T


def animate_rig_joints(
    document: pygltflib.GLTF2,
    motion: Motion,
    add_channel: AddChannel,
    path: Path,
    jaw_translation_scale: float = 0.0,
    skip: set[int] | None = None,
) -> list[str]:
    """Key the jaw joint from ``motion.jaw`` and the eye joints from ``motion.eyes``; names animated.

    Only joints found by :func:`talkbridge.exporters.rig_joints.find_rig_joints` and only channels the
    motion has; ``skip`` holds nodes already animated (the head), which are never keyed twice.
    """
    wanted = rig_joints.joint_rotations(motion.eyes, motion.jaw)
    if not wanted:
        return []
    names = [node.name or "" for node in document.nodes]
    found = rig_joints.find_rig_joints(names)
    animated: list[str] = []
    for role, index in found.items():
        if role not in wanted or (skip and index in skip) or document.nodes[index].mesh is not None:
            continue
        add_channel(index, "rotation", local_rotation_keys(document, index, wanted[role], path))
        if role == "jaw" and jaw_translation_scale:
            offsets = rig_joints.jaw_rotations(motion.jaw)[1] * jaw_translation_scale
            add_channel(index, "translation", local_offset_keys(document, index, offsets))
        animated.append(names[index] or f"node{index}")
    missing = [role for role in wanted if role not in found]
    if missing:
        log.info("the motion has %s but the head has no %s joint", "/".join(sorted({"jaw" if r == "jaw" else "eyes" for r in wanted})),
                 ", ".join(missing))
    return animated
