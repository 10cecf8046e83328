"""glTF 2.0 heads: write a HeadMesh as GLB, read one back, and add talkbridge's animation to any head.

Everything here is pure Python on pygltflib and numpy (no bpy), so the CLI, the sidecar and the
tests share it.
"""

from talkbridge.exporters.gltf.writer import head_document, write_head_glb

__all__ = ["head_document", "write_head_glb"]
