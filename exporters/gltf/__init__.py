"""glTF 2.0 heads: write a HeadMesh as GLB, read one back, and add talkbridge's animation to any head.

Everything here is pure Python on pygltflib and numpy (no bpy), so the CLI, the sidecar and the
tests share it.

The names below are imported on first use (PEP 562 ``__getattr__``), not when the package is: the
Blender add-on bundles talkbridge without pygltflib and needs only ``talkbridge.exporters.gltf.pose``
(numpy only), which ``from talkbridge.exporters.gltf import pose`` must load without the writer.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from talkbridge.exporters.gltf.animate import ExportOptions, ExportResult, add_animation, find_head_node
    from talkbridge.exporters.gltf.reader import read_accessor, read_head
    from talkbridge.exporters.gltf.writer import head_document, write_head_glb

_LAZY = {
    "ExportOptions": "animate",
    "ExportResult": "animate",
    "add_animation": "animate",
    "find_head_node": "animate",
    "read_accessor": "reader",
    "read_head": "reader",
    "head_document": "writer",
    "write_head_glb": "writer",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # later lookups skip this hook
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
