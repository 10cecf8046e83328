"""Scene-graph helpers over a pygltflib document: world transforms, parents, mesh bounds, merging buffers.

The animation exporter has to add to a head it did not write, so it needs to know where things are
(world matrices, the head joint's parent) and to turn whatever buffers the head came with (a GLB
chunk, data URIs, ``.bin`` files beside a ``.gltf``) into the single buffer of the GLB it writes.
"""

from __future__ import annotations

import mimetypes
import re
from pathlib import Path

import numpy as np
import pygltflib

from talkbridge.core.errors import InputError
from talkbridge.exporters.gltf.glb import read_uri_bytes
from talkbridge.exporters.gltf.pose import matrix_to_quaternion, quaternion_to_matrix


def local_matrix(node: pygltflib.Node) -> np.ndarray:
    """The node's 4x4 local transform (matrix, or T·R·S)."""
    if node.matrix is not None and len(node.matrix) == 16:
        return np.asarray(node.matrix, np.float64).reshape(4, 4).T  # stored column-major
    out = np.eye(4)
    scale = np.asarray(node.scale if node.scale is not None else [1, 1, 1], np.float64)
    rotation = np.asarray(node.rotation if node.rotation is not None else [0, 0, 0, 1], np.float64)
    out[:3, :3] = quaternion_to_matrix(rotation / max(np.linalg.norm(rotation), 1e-12)) * scale[None, :]
    out[:3, 3] = node.translation if node.translation is not None else [0, 0, 0]
    return out


def decompose_matrix(matrix: np.ndarray, name: str | None = None, path: Path | None = None) -> tuple[list[float], list[float], list[float]]:
    """Translation, rotation quaternion and scale of a 4x4 transform without shear."""
    linear = matrix[:3, :3]
    scale = np.linalg.norm(linear, axis=0)
    if np.any(scale < 1e-12):
        raise InputError(f"node {name!r} has a degenerate matrix transform", path)
    if np.linalg.det(linear) < 0:
        scale[0] = -scale[0]
    rotation = linear / scale[None, :]
    if np.abs(rotation.T @ rotation - np.eye(3)).max() > 1e-4:
        raise InputError(f"node {name!r} has a sheared matrix transform that glTF cannot animate", path)
    return (
        [float(v) for v in matrix[:3, 3]],
        [float(v) for v in matrix_to_quaternion(rotation)],
        [float(v) for v in scale],
    )


def parents(document: pygltflib.GLTF2) -> list[int]:
    """Parent index of every node (-1 for roots)."""
    parent = [-1] * len(document.nodes)
    for index, node in enumerate(document.nodes):
        for child in node.children or []:
            parent[child] = index
    return parent


def world_matrices(document: pygltflib.GLTF2) -> list[np.ndarray]:
    """Every node's world matrix at rest."""
    parent = parents(document)
    cache: list[np.ndarray | None] = [None] * len(document.nodes)

    def world(index: int) -> np.ndarray:
        chain = []
        while index >= 0 and cache[index] is None:
            chain.append(index)
            index = parent[index]
        matrix = np.eye(4) if index < 0 else cache[index]
        for item in reversed(chain):
            matrix = matrix @ local_matrix(document.nodes[item])
            cache[item] = matrix
        return cache[chain[0]] if chain else matrix

    return [world(i) for i in range(len(document.nodes))]


def mesh_world_bounds(document: pygltflib.GLTF2, node_indices: list[int]) -> tuple[np.ndarray, np.ndarray] | None:
    """World-space bounding box of the meshes on ``node_indices`` (from accessor min/max)."""
    worlds = world_matrices(document)
    corners = []
    for index in node_indices:
        node = document.nodes[index]
        if node.mesh is None:
            continue
        for primitive in document.meshes[node.mesh].primitives:
            position = primitive.attributes.POSITION
            if position is None:
                continue
            accessor = document.accessors[position]
            if accessor.min is None or accessor.max is None:
                continue
            lo, hi = np.asarray(accessor.min, np.float64), np.asarray(accessor.max, np.float64)
            box = np.array([[x, y, z, 1.0] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
            corners.append((worlds[index] @ box.T).T[:, :3])
    if not corners:
        return None
    points = np.concatenate(corners)
    return points.min(axis=0), points.max(axis=0)


def scene_index(document: pygltflib.GLTF2) -> int:
    if not document.scenes:
        raise InputError("the glTF has no scene to animate")
    return document.scene if document.scene is not None else 0


def merge_buffers(document: pygltflib.GLTF2, buffers: list[bytes], base: Path) -> bytes:
    """Rewrite ``document`` to use one buffer (index 0) holding all data; embed external images.

    Each source buffer starts at an 8-byte boundary so every existing bufferView keeps its
    alignment. Returns the merged bytes (the caller appends new data after them).
    """
    for extension in ("EXT_meshopt_compression",):
        if extension in (document.extensionsUsed or []):
            raise InputError(f"heads using {extension} are not supported; export the head without it", base)
    parts: list[bytes] = []
    starts: list[int] = []
    length = 0
    for data in buffers:
        padding = (-length) % 8
        parts.append(b"\0" * padding)
        length += padding
        starts.append(length)
        parts.append(data)
        length += len(data)
    for view in document.bufferViews:
        view.byteOffset = (view.byteOffset or 0) + starts[view.buffer]
        view.buffer = 0
    merged = bytearray(b"".join(parts))
    for image in document.images:
        if image.uri is None:
            continue
        try:
            data = read_uri_bytes(image.uri, base)
        except (OSError, ValueError) as error:
            raise InputError(f"image {image.uri!r} cannot be read: {error}", base) from error
        mime = image.mimeType
        if mime is None:
            match = re.match(r"data:([^;,]+)", image.uri)
            mime = match.group(1) if match else mimetypes.guess_type(image.uri)[0]
        if mime not in ("image/png", "image/jpeg", "image/webp", "image/ktx2"):
            raise InputError(f"image {image.uri!r} has an unknown type; use PNG or JPEG", base)
        merged += b"\0" * ((-len(merged)) % 8)
        document.bufferViews.append(pygltflib.BufferView(buffer=0, byteOffset=len(merged), byteLength=len(data)))
        merged += data
        image.bufferView = len(document.bufferViews) - 1
        image.mimeType = mime
        image.uri = None
    document.buffers = [pygltflib.Buffer(byteLength=len(merged))] if merged else []
    return bytes(merged)
