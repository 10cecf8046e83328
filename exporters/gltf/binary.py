"""Packing numpy arrays into a glTF binary buffer with correctly described accessors.

Every GLB we write keeps its data in buffer 0 (the GLB's BIN chunk); the only other buffers are
meshopt fallback buffers, which hold no bytes. This module appends bytes to that
buffer with the alignment glTF requires, and creates the bufferView/accessor pair that describes
them, including the ``min``/``max`` bounds the validator insists on for positions and keyframe times.
"""

from __future__ import annotations

import numpy as np
import pygltflib

ARRAY_BUFFER = 34962
ELEMENT_ARRAY_BUFFER = 34963

_COMPONENT_TYPES = {
    np.dtype(np.float32): pygltflib.FLOAT,
    np.dtype(np.uint32): pygltflib.UNSIGNED_INT,
    np.dtype(np.uint16): pygltflib.UNSIGNED_SHORT,
    np.dtype(np.uint8): pygltflib.UNSIGNED_BYTE,
}
_ACCESSOR_TYPES = {1: pygltflib.SCALAR, 2: pygltflib.VEC2, 3: pygltflib.VEC3, 4: pygltflib.VEC4, 16: pygltflib.MAT4}


def _pad(length: int, alignment: int = 4) -> int:
    return (-length) % alignment


class BinaryBuilder:
    """Accumulates the BIN chunk of one GLB while adding accessors to ``document``.

    ``initial`` is the already-present buffer content (when adding to an existing head); new data
    is appended after it, so every existing bufferView keeps its offsets.
    """

    def __init__(self, document: pygltflib.GLTF2, initial: bytes = b"") -> None:
        self.document = document
        self._parts: list[bytes] = []
        self._length = 0
        if initial:
            self._append(initial)

    @property
    def length(self) -> int:
        return self._length

    def _append(self, data: bytes) -> int:
        """Append ``data`` aligned to 4 bytes (enough for every component type we write)."""
        padding = _pad(self._length)
        if padding:
            self._parts.append(b"\0" * padding)
            self._length += padding
        offset = self._length
        self._parts.append(data)
        self._length += len(data)
        return offset

    def add_view(self, data: bytes, target: int | None = None) -> int:
        """Add a bufferView over ``data`` and return its index."""
        offset = self._append(data)
        view = pygltflib.BufferView(buffer=0, byteOffset=offset, byteLength=len(data), target=target)
        self.document.bufferViews.append(view)
        return len(self.document.bufferViews) - 1

    def add_accessor(
        self,
        array: np.ndarray,
        *,
        target: int | None = None,
        bounds: bool = False,
        normalized: bool = False,
        accessor_type: str | None = None,
    ) -> int:
        """Store ``array`` (rows are elements) and return the new accessor's index.

        ``bounds`` records per-component min/max (required for POSITION, morph-target POSITION
        deltas and animation input times). ``accessor_type`` overrides the type inferred from the
        row width (e.g. MAT4 for 16 floats).
        """
        array = np.ascontiguousarray(array)
        component_type = _COMPONENT_TYPES.get(array.dtype)
        if component_type is None:
            raise TypeError(f"no glTF component type for dtype {array.dtype}")
        width = 1 if array.ndim == 1 else int(np.prod(array.shape[1:]))
        rows = array.reshape(len(array), width) if array.ndim > 1 else array.reshape(-1, 1)
        kind = accessor_type or _ACCESSOR_TYPES[width]
        view = self.add_view(array.tobytes(), target=target)
        accessor = pygltflib.Accessor(
            bufferView=view,
            componentType=component_type,
            count=int(len(rows)),
            type=kind,
            normalized=True if normalized else None,
        )
        if bounds and len(rows):
            if array.dtype == np.float32:
                accessor.min = [float(v) for v in rows.min(axis=0)]
                accessor.max = [float(v) for v in rows.max(axis=0)]
            else:
                accessor.min = [int(v) for v in rows.min(axis=0)]
                accessor.max = [int(v) for v in rows.max(axis=0)]
        self.document.accessors.append(accessor)
        return len(self.document.accessors) - 1

    def finish(self) -> bytes:
        """The complete buffer, padded to 4 bytes, also recorded as the document's buffer 0 (the BIN chunk).

        Buffers after 0 are kept: a meshopt-compressed head carries a fallback buffer there that
        has no bytes by design.
        """
        blob = b"".join(self._parts)
        blob += b"\0" * _pad(len(blob))
        self.document.buffers = [pygltflib.Buffer(byteLength=len(blob))] + list(self.document.buffers[1:])
        return blob
