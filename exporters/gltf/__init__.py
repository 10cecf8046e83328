"""glTF 2.0 heads: write a HeadMesh as GLB, read one back, and add talkbridge's animation to any head.

Everything here is pure Python on pygltflib and numpy (no bpy), so the CLI, the sidecar and the
tests share it.
"""

from talkbridge.exporters.gltf.animate import ExportOptions, ExportResult, add_animation, find_head_node
from talkbridge.exporters.gltf.reader import read_accessor, read_head
from talkbridge.exporters.gltf.writer import head_document, write_head_glb

__all__ = [
    "ExportOptions",
    "ExportResult",
    "add_animation",
    "find_head_node",
    "head_document",
    "read_accessor",
    "read_head",
    "write_head_glb",
]
