"""File formats for motion: glTF/GLB animation, coefficient files, video. Pure Python, no bpy."""

if __name__ != "talkbridge.exporters":  # reached as a bare top-level `exporters` (the repository root on sys.path)
    raise ImportError(f"import talkbridge.exporters, not {__name__}: the exporters/ folder installs only as talkbridge.exporters, "
                      "and a second copy under another name would hold separate module state")
