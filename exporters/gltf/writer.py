"""Writing a :class:`~talkbridge.core.head_mesh.HeadMesh` as a self-contained GLB.

The file is what every DCC and engine expects from a blend-shape head: one mesh whose morph
targets are named in ``mesh.extras.targetNames`` (the de-facto convention read by Blender, three.js
and Unreal), optional vertex colours, and, when the head has joints, a skin whose head joint the
animation exporter later drives.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pygltflib

from talkbridge.core.head_mesh import HeadMesh
from talkbridge.exporters.gltf.binary import ARRAY_BUFFER, ELEMENT_ARRAY_BUFFER, BinaryBuilder
from talkbridge.exporters.gltf.glb import write_glb

GENERATOR = "talkbridge"


def vertex_normals(positions: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """Area-weighted smooth normals, so heads without authored normals still shade smoothly."""
    corners = positions[indices]
    face_normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    normals = np.zeros_like(positions, dtype=np.float64)
    for k in range(3):
        np.add.at(normals, indices[:, k], face_normals)
    length = np.linalg.norm(normals, axis=1, keepdims=True)
    normals = np.where(length > 1e-20, normals / np.maximum(length, 1e-20), np.array([0.0, 0.0, 1.0]))
    return normals.astype(np.float32)


def _unit_rows(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, np.float64)
    length = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.where(length > 1e-20, vectors / np.maximum(length, 1e-20), np.array([0.0, 0.0, 1.0])).astype(np.float32)


def head_document(head: HeadMesh) -> tuple[pygltflib.GLTF2, bytes]:
    """Build the glTF document and binary buffer for ``head`` without writing anything."""
    document = pygltflib.GLTF2(asset=pygltflib.Asset(version="2.0", generator=GENERATOR))
    builder = BinaryBuilder(document)

    attributes = pygltflib.Attributes()
    attributes.POSITION = builder.add_accessor(head.positions, target=ARRAY_BUFFER, bounds=True)
    normals = head.normals if head.normals is not None else vertex_normals(head.positions, head.indices)
    attributes.NORMAL = builder.add_accessor(_unit_rows(normals), target=ARRAY_BUFFER)
    if head.colors is not None:
        colors = np.clip(np.asarray(head.colors, np.float32), 0.0, 1.0)
        attributes.COLOR_0 = builder.add_accessor(colors, target=ARRAY_BUFFER)

    skinned = bool(head.joints) and head.skin_joints is not None and head.skin_weights is not None
    if head.joints and not skinned and head.head_joint and head.head_joint not in {j.name for j in head.joints}:
        raise ValueError(f"head joint {head.head_joint!r} is not one of the head's joints")
    if skinned:
        weights = np.asarray(head.skin_weights, np.float32)
        weights = weights / np.maximum(weights.sum(axis=1, keepdims=True), 1e-12)
        # glTF wants unused influence slots to name joint 0 (the validator warns otherwise).
        joints = np.where(weights > 0, np.asarray(head.skin_joints, np.uint16), 0).astype(np.uint16)
        attributes.JOINTS_0 = builder.add_accessor(joints, target=ARRAY_BUFFER)
        attributes.WEIGHTS_0 = builder.add_accessor(weights.astype(np.float32), target=ARRAY_BUFFER)

    indices = builder.add_accessor(head.indices.reshape(-1), target=ELEMENT_ARRAY_BUFFER)

    target_names = list(head.morph_targets)
    targets = []
    for name in target_names:
        delta = head.morph_targets[name]
        targets.append({"POSITION": builder.add_accessor(delta, target=ARRAY_BUFFER, bounds=True)})

    document.materials.append(
        pygltflib.Material(
            name=f"{head.name}_skin",
            pbrMetallicRoughness=pygltflib.PbrMetallicRoughness(
                baseColorFactor=[1.0, 1.0, 1.0, 1.0] if head.colors is not None else [0.8, 0.68, 0.6, 1.0],
                metallicFactor=0.0,
                roughnessFactor=0.6,
            ),
        )
    )
    primitive = pygltflib.Primitive(attributes=attributes, indices=indices, material=0, targets=targets or None)
    mesh = pygltflib.Mesh(name=head.name, primitives=[primitive])
    if target_names:
        mesh.weights = [0.0] * len(target_names)
        mesh.extras = {"targetNames": target_names}
    document.meshes.append(mesh)

    mesh_node = pygltflib.Node(name=head.name, mesh=0)
    document.nodes.append(mesh_node)
    roots = [0]
    if head.joints:
        first_joint = len(document.nodes)
        world = np.zeros((len(head.joints), 3), np.float64)
        for index, joint in enumerate(head.joints):
            if joint.parent >= index:
                raise ValueError(f"joint {joint.name!r} must come after its parent in HeadMesh.joints")
            world[index] = np.asarray(joint.translation, np.float64) + (world[joint.parent] if joint.parent >= 0 else 0.0)
            document.nodes.append(pygltflib.Node(name=joint.name, translation=[float(v) for v in joint.translation]))
        for index, joint in enumerate(head.joints):
            if joint.parent >= 0:
                parent = document.nodes[first_joint + joint.parent]
                parent.children = (parent.children or []) + [first_joint + index]
            else:
                roots.append(first_joint + index)
        if skinned:
            inverse_bind = np.tile(np.eye(4, dtype=np.float32), (len(head.joints), 1, 1))
            inverse_bind[:, 3, 0:3] = -world  # column-major storage: translation is the last column
            matrices = builder.add_accessor(inverse_bind.reshape(len(head.joints), 16), accessor_type=pygltflib.MAT4)
            document.skins.append(
                pygltflib.Skin(
                    name=f"{head.name}_skin",
                    joints=list(range(first_joint, first_joint + len(head.joints))),
                    inverseBindMatrices=matrices,
                )
            )
            mesh_node.skin = 0
        elif head.head_joint:
            # No skin weights: the whole mesh rides rigidly on the head joint, placed so that the
            # rest pose is unchanged.
            names = [joint.name for joint in head.joints]
            joint_index = names.index(head.head_joint)
            roots.remove(0)
            joint_node = document.nodes[first_joint + joint_index]
            joint_node.children = (joint_node.children or []) + [0]
            mesh_node.translation = [float(-v) for v in world[joint_index]]
    if head.head_joint:
        document.extras = {"talkbridge": {"head_joint": head.head_joint}}
    document.scenes.append(pygltflib.Scene(name=head.name, nodes=roots))
    document.scene = 0
    return document, builder.finish()


def write_head_glb(head: HeadMesh, path: str | Path, overwrite: bool = False) -> Path:
    """Write ``head`` to ``path`` as a GLB (atomically; an existing file is kept unless ``overwrite``)."""
    document, blob = head_document(head)
    return write_glb(document, blob, path, overwrite=overwrite)
