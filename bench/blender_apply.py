"""How fast a take lands on a rig: 15,000 frames x 52 ARKit shape keys + head rotation.

Runs Blender as a Python module (pip ``bpy``), builds a small mesh with the 52 ARKit shape keys and
an armature with a head bone, then applies a 10-minute clip with the add-on's own writer
(``addon/apply.py``: ``keyframe_points.add`` + ``foreach_set`` into a slotted action). Also times a
streamed run (the same clip in 100-frame chunks, each followed by a streaming flush as the panel's timer does).

Target: the one-shot apply under 1 s. Usage: ``./scripts/dev bench blender_apply [--frames N]``.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TARGET_S = 1.0


def load_addon_package(name: str = "talkbridge_addon"):
    """Import the repository's ``addon/`` folder as a package (it is not installed by setup.py)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "addon" / "__init__.py", submodule_search_locations=[str(ROOT / "addon")])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def build_rig(bpy, names):
    """A triangle mesh with one shape key per name, and an armature with neck and head bones."""
    mesh = bpy.data.meshes.new("bench_face")
    mesh.from_pydata([(0, 0, 0), (0.1, 0, 0), (0, 0, 0.1)], [], [(0, 1, 2)])
    face = bpy.data.objects.new("bench_face", mesh)
    bpy.context.scene.collection.objects.link(face)
    face.shape_key_add(name="Basis")
    for n in names:
        face.shape_key_add(name=n)
    armature = bpy.data.armatures.new("bench_rig")
    rig = bpy.data.objects.new("bench_rig", armature)
    bpy.context.scene.collection.objects.link(rig)
    bpy.context.view_layer.objects.active = rig
    bpy.ops.object.mode_set(mode="EDIT")
    neck = armature.edit_bones.new("neck")
    neck.head, neck.tail = (0, 0, 1.4), (0, 0, 1.5)
    head = armature.edit_bones.new("head")
    head.head, head.tail, head.parent = (0, 0, 1.5), (0, 0, 1.7), neck
    bpy.ops.object.mode_set(mode="OBJECT")
    return face, rig


def clip(n_frames: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    t = np.arange(n_frames)[:, None]
    return {
        "pose": (0.2 * np.sin(0.01 * t + np.arange(6))).astype(np.float32),
        "blink": rng.random(n_frames).astype(np.float32),
        "arkit": rng.random((n_frames, 52)).astype(np.float32),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=15_000)
    parser.add_argument("--chunk", type=int, default=100)
    args = parser.parse_args()
    import bpy

    from talkbridge.core.motion import ARKIT_52, MotionChunk

    bpy.ops.wm.read_factory_settings(use_empty=True)
    load_addon_package()
    apply = importlib.import_module("talkbridge_addon.apply")
    face, rig = build_rig(bpy, ARKIT_52)
    data = clip(args.frames)

    began = time.perf_counter()
    writer = apply.TakeWriter("bench", shape_keys=face.data.shape_keys, pose_target=apply.PoseTarget(rig, "head"))
    writer.write_all(MotionChunk.from_arrays(0, data))
    one_shot = time.perf_counter() - began
    curves = len(writer.summary.shape_keys) + 4

    face2, rig2 = build_rig(bpy, ARKIT_52)
    began = time.perf_counter()
    streamed = apply.TakeWriter("bench streamed", shape_keys=face2.data.shape_keys, pose_target=apply.PoseTarget(rig2, "head"))
    flushes = 0
    for index, start in enumerate(range(0, args.frames, args.chunk)):
        streamed.add_chunk(MotionChunk.from_arrays(start, {k: v[start:start + args.chunk] for k, v in data.items()}))
        streamed.flush(final=False)  # what the timer does after each chunk: rewrites only grown curves
        flushes += 1
    streamed.flush()
    streaming = time.perf_counter() - began

    keys = args.frames * curves
    print(f"frames {args.frames}, curves {curves} ({len(writer.summary.shape_keys)} shape keys + 4 head rotation), keys {keys}")
    print(f"one-shot apply: {one_shot:.3f} s  ({one_shot / args.frames * 1e6:.1f} us/frame, {keys / one_shot / 1e6:.1f} M keys/s)")
    print(f"target {TARGET_S:.1f} s: ratio {one_shot / TARGET_S:.2f} ({'met' if one_shot < TARGET_S else 'MISSED'})")
    print(f"streamed in {args.chunk}-frame chunks, {flushes + 1} flush calls: {streaming:.3f} s ({streaming / one_shot:.1f}x one-shot)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
