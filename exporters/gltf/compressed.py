"""Compressed heads: EXT_meshopt_compression and KHR_draco_mesh_compression.

The exporter never re-encodes geometry: compressed bufferViews are copied byte for byte and only
the animation is added, as plain accessors. Decoding is still needed for two things, and is done by
the libraries that implement the codecs (``meshopt``, a binding of meshoptimizer, and ``DracoPy``, a
binding of Google's Draco), never by code of ours:

* proving a head's streams decode before we write a file around them, so a broken stream is a clear
  error naming the file and the bufferView rather than a GLB no engine can load;
* reading the geometry itself (:func:`~talkbridge.exporters.gltf.reader.read_head`).

Both libraries are imported only when a head uses the extension.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import numpy as np
import pygltflib

from talkbridge.core.errors import InputError

MESHOPT = "EXT_meshopt_compression"
DRACO = "KHR_draco_mesh_compression"
_MESHOPT_MODES = {"ATTRIBUTES", "TRIANGLES", "INDICES"}
_MESHOPT_FILTERS = {None, "NONE", "OCTAHEDRAL", "QUATERNION", "EXPONENTIAL"}


def _extension(owner: Any, name: str) -> dict | None:
    extensions = getattr(owner, "extensions", None)
    value = extensions.get(name) if isinstance(extensions, dict) else None
    return value if isinstance(value, dict) else None


def _import(module: str, path: Path, extension: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError:
        raise InputError(
            f"the head uses {extension}; reading it needs the Python package {module!r} "
            "(pip install 'talkbridge[export]')",
            path,
        ) from None


def meshopt_view(view: pygltflib.BufferView) -> dict | None:
    """The view's EXT_meshopt_compression object, or None for a plain view."""
    return _extension(view, MESHOPT)


def draco_primitive(primitive: pygltflib.Primitive) -> dict | None:
    """The primitive's KHR_draco_mesh_compression object, or None for plain geometry."""
    return _extension(primitive, DRACO)


def decode_meshopt(document: pygltflib.GLTF2, buffers: list[bytes], path: Path) -> list[bytes]:
    """``buffers`` with every meshopt-compressed view decoded into place (fallback buffers filled in).

    Accessors over compressed views can then be read like plain ones. A stream that does not decode,
    or names an unknown mode or filter, is an InputError naming the bufferView.
    """
    compressed = [(index, view, meshopt_view(view)) for index, view in enumerate(document.bufferViews)]
    compressed = [(index, view, ext) for index, view, ext in compressed if ext is not None]
    if not compressed:
        return buffers
    meshopt = _import("meshopt", path, MESHOPT)
    out = [bytearray(data) for data in buffers]
    for position, buffer in enumerate(document.buffers):
        if len(out[position]) < (buffer.byteLength or 0):
            out[position] += bytes((buffer.byteLength or 0) - len(out[position]))
    for index, view, ext in compressed:
        mode, filter_name = ext.get("mode"), ext.get("filter")
        if mode not in _MESHOPT_MODES or filter_name not in _MESHOPT_FILTERS:
            raise InputError(f"bufferView {index}: unknown {MESHOPT} mode {mode!r} or filter {filter_name!r}", path)
        start = ext.get("byteOffset", 0)
        source = bytes(out[ext["buffer"]][start : start + ext["byteLength"]])
        try:
            rows = meshopt.decode_gltf_buffer(source, ext["count"], ext["byteStride"], mode, filter_name)
        except (ValueError, RuntimeError) as error:
            raise InputError(f"bufferView {index}: the {MESHOPT} stream does not decode ({error})", path) from error
        data = np.ascontiguousarray(rows).tobytes()
        offset = view.byteOffset or 0
        out[view.buffer][offset : offset + len(data)] = data
    return [bytes(data) for data in out]


def decode_draco(document: pygltflib.GLTF2, buffers: list[bytes], view_index: int, path: Path) -> Any:
    """The DracoPy mesh stored in ``view_index`` (an InputError if it does not decode)."""
    draco = _import("DracoPy", path, DRACO)
    view = document.bufferViews[view_index]
    start = view.byteOffset or 0
    data = buffers[view.buffer][start : start + view.byteLength]
    try:
        return draco.decode(data)
    except Exception as error:  # DracoPy raises its own FileTypeException and assorted ValueErrors
        raise InputError(f"bufferView {view_index}: the {DRACO} stream does not decode ({error})", path) from error


def check_draco(document: pygltflib.GLTF2, buffers: list[bytes], path: Path) -> None:
    """Decode every Draco primitive once and check it against its accessors' counts."""
    for mesh_index, mesh in enumerate(document.meshes):
        for primitive_index, primitive in enumerate(mesh.primitives):
            ext = draco_primitive(primitive)
            if ext is None:
                continue
            where = f"mesh {mesh_index} primitive {primitive_index}"
            if not isinstance(ext.get("bufferView"), int) or not isinstance(ext.get("attributes"), dict):
                raise InputError(f"{where}: {DRACO} needs a bufferView and attributes", path)
            decoded = decode_draco(document, buffers, ext["bufferView"], path)
            points = len(decoded.points)
            for name, unique_id in ext["attributes"].items():
                accessor_index = getattr(primitive.attributes, name, None)
                if accessor_index is None:
                    raise InputError(f"{where}: {DRACO} compresses {name}, which the primitive does not have", path)
                if decoded.get_attribute_by_unique_id(unique_id) is None:
                    raise InputError(f"{where}: the Draco stream has no attribute {unique_id} for {name}", path)
                if document.accessors[accessor_index].count != points:
                    raise InputError(
                        f"{where}: accessor {accessor_index} ({name}) has count "
                        f"{document.accessors[accessor_index].count}, the Draco stream {points} points",
                        path,
                    )
            triangles = primitive.mode in (None, 4)  # strips and fans decode to a different number of corners
            if triangles and primitive.indices is not None and document.accessors[primitive.indices].count != decoded.faces.size:
                raise InputError(f"{where}: the indices accessor's count does not match the Draco stream's faces", path)


def draco_attribute(decoded: Any, unique_id: int, path: Path) -> np.ndarray:
    """One attribute of a decoded Draco mesh as (count, width)."""
    attribute = decoded.get_attribute_by_unique_id(unique_id)
    if attribute is None:
        raise InputError(f"a {DRACO} stream has no attribute with id {unique_id}", path)
    data = np.asarray(attribute["data"])
    return data.reshape(len(data), -1)
