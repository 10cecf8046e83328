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
from talkbridge.exporters.gltf.compressed import MESHOPT, check_draco, decode_meshopt, meshopt_view
from talkbridge.exporters.gltf.glb import is_fallback_buffer
from talkbridge.exporters.gltf.pose import matrix_to_quaternion, quaternion_to_matrix
from talkbridge.exporters.gltf.safety import read_uri


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
            if not accessor.min or not accessor.max or len(accessor.min) < 3 or len(accessor.max) < 3:
                continue  # bounds are required for POSITION, but a head without them still animates
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


def merge_buffers(document: pygltflib.GLTF2, buffers: list[bytes], head: Path) -> bytes:
    """Rewrite ``document`` to keep all its data in buffer 0; embed external images.

    Each source buffer starts at an 8-byte boundary so every existing bufferView keeps its
    alignment; compressed views (meshopt, Draco) are moved, never re-encoded. An
    ``EXT_meshopt_compression`` fallback buffer has no bytes by design: it stays a buffer of its
    own after buffer 0, without a URI, as that extension defines it. Compressed streams are
    decoded once first, so a broken one is refused here. Returns buffer 0's bytes (the caller
    appends new data after them).
    """
    decode_meshopt(document, buffers, head)
    check_draco(document, buffers, head)
    fallback = [is_fallback_buffer(buffer) for buffer in document.buffers]
    parts: list[bytes] = []
    starts: list[int] = []
    kept: list[pygltflib.Buffer] = []
    new_index: list[int] = []
    length = 0
    for index, data in enumerate(buffers):
        if fallback[index]:
            kept_buffer = document.buffers[index]
            if kept_buffer.uri is not None:
                # We do not carry its bytes, so only meshopt-aware loaders can read those views now.
                kept_buffer.uri = None
                required = document.extensionsRequired or []
                if MESHOPT not in required:
                    document.extensionsRequired = required + [MESHOPT]
            kept.append(kept_buffer)
            new_index.append(len(kept))
            starts.append(0)
            continue
        padding = (-length) % 8
        parts.append(b"\0" * padding)
        length += padding
        starts.append(length)
        new_index.append(0)
        parts.append(data)
        length += len(data)
    for index, view in enumerate(document.bufferViews):
        source = view.buffer
        view.byteOffset = (view.byteOffset or 0) + starts[source]
        view.buffer = new_index[source]
        ext = meshopt_view(view)
        if ext is not None:
            if fallback[ext["buffer"]]:
                raise InputError(f"bufferView {index}: its {MESHOPT} data is in a fallback buffer, which has no bytes", head)
            ext["byteOffset"] = ext.get("byteOffset", 0) + starts[ext["buffer"]]
            ext["buffer"] = 0
    merged = bytearray(b"".join(parts))
    for position, image in enumerate(document.images):
        if image.uri is None:
            continue
        data = read_uri(image.uri, head.parent, f"image {position}", head)
        mime = image.mimeType
        if mime is None:
            match = re.match(r"data:([^;,]+)", image.uri)
            mime = match.group(1) if match else mimetypes.guess_type(image.uri)[0]
        if mime not in ("image/png", "image/jpeg", "image/webp", "image/ktx2", "image/avif"):
            raise InputError(f"image {position} ({image.uri[:60]!r}) has an unknown type; use PNG or JPEG", head)
        merged += b"\0" * ((-len(merged)) % 8)
        document.bufferViews.append(pygltflib.BufferView(buffer=0, byteOffset=len(merged), byteLength=len(data)))
        merged += data
        image.bufferView = len(document.bufferViews) - 1
        image.mimeType = mime
        image.uri = None
    document.buffers = ([pygltflib.Buffer(byteLength=len(merged))] if merged or kept else []) + kept
    return bytes(merged)
