"""Reading a glTF head back into a :class:`~talkbridge.core.head_mesh.HeadMesh`.

Used to preview a user's head with the renderer and to check our own GLBs in tests. It takes the
first mesh with morph targets (else the first mesh), merges its triangle primitives, applies the
node's world transform so the result is in scene (glTF) coordinates, and names the targets from
``mesh.extras.targetNames``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pygltflib

from talkbridge.core.errors import InputError
from talkbridge.core.head_mesh import HeadMesh
from talkbridge.exporters.gltf.compressed import check_draco, decode_draco, decode_meshopt, draco_attribute, draco_primitive
from talkbridge.exporters.gltf.document import world_matrices
from talkbridge.exporters.gltf.glb import read_gltf

_DTYPES = {
    pygltflib.BYTE: np.int8,
    pygltflib.UNSIGNED_BYTE: np.uint8,
    pygltflib.SHORT: np.int16,
    pygltflib.UNSIGNED_SHORT: np.uint16,
    pygltflib.UNSIGNED_INT: np.uint32,
    pygltflib.FLOAT: np.float32,
}
_WIDTHS = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT2": 4, "MAT3": 9, "MAT4": 16}
_NORMALIZE = {np.int8: 127.0, np.uint8: 255.0, np.int16: 32767.0, np.uint16: 65535.0}


def _view_array(document: pygltflib.GLTF2, buffers: list[bytes], view_index: int, offset: int, dtype, count: int, width: int) -> np.ndarray:
    view = document.bufferViews[view_index]
    data = buffers[view.buffer]
    start = (view.byteOffset or 0) + offset
    item = np.dtype(dtype).itemsize * width
    stride = view.byteStride or item
    if stride == item:
        return np.frombuffer(data, dtype, count * width, start).reshape(count, width)
    raw = np.frombuffer(data, np.uint8, stride * (count - 1) + item, start)
    rows = np.lib.stride_tricks.as_strided(raw, (count, item), (stride, 1))
    return np.ascontiguousarray(rows).view(dtype).reshape(count, width)


def read_accessor(document: pygltflib.GLTF2, buffers: list[bytes], index: int) -> np.ndarray:
    """An accessor's elements as a (count, width) array; normalized integers become floats; sparse applied."""
    accessor = document.accessors[index]
    dtype = _DTYPES[accessor.componentType]
    width = _WIDTHS[accessor.type]
    if accessor.bufferView is not None:
        values = _view_array(document, buffers, accessor.bufferView, accessor.byteOffset or 0, dtype, accessor.count, width).copy()
    else:
        values = np.zeros((accessor.count, width), dtype)
    sparse = accessor.sparse
    if sparse is not None and sparse.count:
        idx_dtype = _DTYPES[sparse.indices.componentType]
        where = _view_array(document, buffers, sparse.indices.bufferView, sparse.indices.byteOffset or 0, idx_dtype, sparse.count, 1)[:, 0]
        replacement = _view_array(document, buffers, sparse.values.bufferView, sparse.values.byteOffset or 0, dtype, sparse.count, width)
        if where.size and int(where.max()) >= accessor.count:
            raise InputError(f"accessor {index} has a sparse index {int(where.max())} past its count {accessor.count}")
        values[where.astype(np.int64)] = replacement
    if accessor.normalized and dtype in _NORMALIZE:
        return np.maximum(values.astype(np.float32) / _NORMALIZE[dtype], -1.0)
    return values


def _primitive_geometry(
    document: pygltflib.GLTF2, buffers: list[bytes], primitive: pygltflib.Primitive, path: Path
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Positions (N, 3), triangles (M, 3) and colours (N, 3) or None, from plain or Draco-compressed data."""
    draco = draco_primitive(primitive)
    if draco is not None:
        decoded = decode_draco(document, buffers, draco["bufferView"], path)
        ids = draco.get("attributes") or {}
        points = draco_attribute(decoded, ids["POSITION"], path) if "POSITION" in ids else np.asarray(decoded.points)
        tri = np.asarray(decoded.faces, np.int64).reshape(-1, 3)
        color = draco_attribute(decoded, ids["COLOR_0"], path)[:, :3] if "COLOR_0" in ids else None
        return points.astype(np.float32), tri, None if color is None else color.astype(np.float32)
    points = read_accessor(document, buffers, primitive.attributes.POSITION).astype(np.float32)
    corners = read_accessor(document, buffers, primitive.indices).reshape(-1) if primitive.indices is not None else np.arange(len(points))
    if len(corners) % 3:
        raise InputError(f"a triangle primitive has {len(corners)} corners, not a multiple of 3", path)
    tri = corners.reshape(-1, 3).astype(np.int64)
    if tri.size and tri.max() >= len(points):
        raise InputError(f"a primitive's indices reach vertex {int(tri.max())}, but it has {len(points)}", path)
    color = None
    if primitive.attributes.COLOR_0 is not None:
        color = read_accessor(document, buffers, primitive.attributes.COLOR_0)[:, :3].astype(np.float32)
    return points, tri, color


def read_head(path: str | Path) -> HeadMesh:
    """Load the head mesh of a .glb/.gltf file (see module docstring for which mesh)."""
    path = Path(path)
    document, buffers = read_gltf(path)
    buffers = decode_meshopt(document, buffers, path)
    check_draco(document, buffers, path)
    if not document.meshes:
        raise InputError("the glTF has no meshes", path)
    with_targets = [i for i, m in enumerate(document.meshes) if any(p.targets for p in m.primitives)]
    mesh_index = with_targets[0] if with_targets else 0
    mesh = document.meshes[mesh_index]
    node_index = next((i for i, n in enumerate(document.nodes) if n.mesh == mesh_index), None)
    world = world_matrices(document)[node_index] if node_index is not None else np.eye(4)
    names = mesh.extras.get("targetNames") if isinstance(mesh.extras, dict) else None
    n_targets = max((len(p.targets or []) for p in mesh.primitives), default=0)
    if n_targets and (not isinstance(names, list) or len(names) != n_targets):
        raise InputError(f"mesh {mesh.name!r} has {n_targets} morph targets without names (extras.targetNames)", path)

    positions, indices, colors, deltas = [], [], [], [[] for _ in range(n_targets)]
    base = 0
    for primitive in mesh.primitives:
        if primitive.mode not in (None, 4) or primitive.attributes.POSITION is None:
            continue
        points, tri, color = _primitive_geometry(document, buffers, primitive, path)
        count = len(points)
        positions.append(points)
        indices.append(tri + base)
        colors.append(color if color is not None else np.ones((count, 3), np.float32))
        for k in range(n_targets):
            target = (primitive.targets or [])[k] if k < len(primitive.targets or []) else {}
            position = target.get("POSITION") if isinstance(target, dict) else getattr(target, "POSITION", None)
            deltas[k].append(read_accessor(document, buffers, position).astype(np.float32) if position is not None else np.zeros((count, 3), np.float32))
        base += count
    if not positions:
        raise InputError(f"mesh {mesh.name!r} has no triangle primitives", path)
    linear = world[:3, :3]
    points = np.concatenate(positions).astype(np.float64) @ linear.T + world[:3, 3]
    has_color = any(p.attributes.COLOR_0 is not None for p in mesh.primitives)
    return HeadMesh(
        name=mesh.name or path.stem,
        positions=points.astype(np.float32),
        indices=np.concatenate(indices).astype(np.uint32),
        morph_targets={
            str(names[k]): (np.concatenate(deltas[k]).astype(np.float64) @ linear.T).astype(np.float32) for k in range(n_targets)
        },
        colors=np.concatenate(colors) if has_color else None,
    )
