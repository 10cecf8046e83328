"""The engines: audio front-end, SadTalker networks and pipeline, motion model, lite engine.

Importable without Blender. Heavy dependencies (torch, librosa) are imported by the submodules that
need them, so `import talkbridge.core` stays cheap.
"""
