"""The engines: audio front-end, SadTalker networks and pipeline, motion model, lite engine.

Importable without Blender. Heavy dependencies (torch, librosa) are imported by the submodules that
need them, so `import talkbridge.core` stays cheap.
"""

if __name__ != "talkbridge.core":  # reached as a bare top-level `core` (the repository root on sys.path)
    raise ImportError(f"import talkbridge.core, not {__name__}: the core/ folder installs only as talkbridge.core, "
                      "and a second copy under another name would hold separate module state")
