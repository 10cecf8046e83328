"""The Blender side of ``talkbridge preview``: import an animated GLB into bpy and render its frames.

Run as ``python -m talkbridge.exporters.preview_render SPEC.json`` by :mod:`.preview`, always in a
child process: bpy is one global Blender per process (batch rows run on threads, and a scene left
from one row must not leak into the next), it loads a large library the caller should not keep, and
a child can be timed out so a bad head never hangs a pipeline. This is the only module that imports
bpy outside the add-on.

Rendering is Blender's own Workbench engine (works headless, without a GPU, in about a tenth of a
second per small frame): studio light, the head's textures when it has any, else its vertex
colours, else its material colours, an orthographic camera looking at the face from the front (glTF heads face +Z, which is
Blender's -Y after import), centred where the shape keys move vertices (the face) and wide enough
for the head around it, within the bounding box of the meshes that carry shape keys.

Frames are written as raw RGB (``frames.rgb``, top row first) plus ``frames.json`` (count, size,
first frame) for the parent to encode with :class:`~talkbridge.exporters.video.VideoWriter`.
"""

from __future__ import annotations

import json
import logging
import math
import sys
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

FRAMING_MARGIN = 1.15  # the head fills this fraction less than the frame
HEAD_PER_FACE = 1.8  # how much wider than the moving part of the face (eyes to chin) the view is


def _import_head(path: Path, fps: int) -> None:
    import bpy

    bpy.ops.wm.read_homefile(use_empty=True)
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = int(fps), 1.0  # glTF keys at t = frame / fps land on frames
    result = bpy.ops.import_scene.gltf(filepath=str(path))
    if "FINISHED" not in result:
        raise RuntimeError(f"Blender could not import {path}")


def _world_points(obj, coordinates: np.ndarray) -> np.ndarray:
    matrix = np.array(obj.matrix_world)
    return coordinates @ matrix[:3, :3].T + matrix[:3, 3]


def _moving_vertices(obj) -> np.ndarray:
    """Rest positions of the vertices any shape key moves: on a full-body mesh, the face."""
    blocks = obj.data.shape_keys.key_blocks
    count = len(obj.data.vertices)
    basis = np.empty(count * 3, np.float32)
    blocks[0].data.foreach_get("co", basis)
    moved = np.zeros(count, bool)
    shaped = np.empty(count * 3, np.float32)
    for block in blocks[1:]:
        block.data.foreach_get("co", shaped)
        moved |= (np.abs(shaped - basis).reshape(-1, 3) > 1e-6).any(axis=1)
    return basis.reshape(-1, 3)[moved].astype(np.float64)


def _framing() -> tuple[np.ndarray, float]:
    """Where the camera looks and how wide it sees (world units), from the rest pose.

    The face is where the shape keys move vertices: the view is centred there and sized to take in
    the head around it (a full-body character is framed on its face, not its whole height), never
    wider than the shape-key meshes themselves.
    """
    import bpy

    meshes = [o for o in bpy.context.scene.objects if o.type == "MESH"]
    faces = [o for o in meshes if o.data.shape_keys is not None and len(o.data.shape_keys.key_blocks) > 1] or meshes
    if not faces:
        raise RuntimeError("the head has no meshes to render")
    corners = np.concatenate([_world_points(o, np.array([tuple(c) for c in o.bound_box], np.float64)) for o in faces])
    low, high = corners.min(axis=0), corners.max(axis=0)
    whole = float(max(high[0] - low[0], high[2] - low[2], 1e-3)) * FRAMING_MARGIN
    moving = [_world_points(o, _moving_vertices(o)) for o in faces if o.data.shape_keys is not None]
    moving = [points for points in moving if len(points)]
    if not moving:
        return (low + high) / 2, whole
    points = np.concatenate(moving)
    face_low, face_high = points.min(axis=0), points.max(axis=0)
    face = float(max(face_high[0] - face_low[0], face_high[2] - face_low[2], 1e-3)) * HEAD_PER_FACE
    centre = (face_low + face_high) / 2
    if face >= whole:
        return (low + high) / 2, whole
    centre[1] = (low[1] + high[1]) / 2
    return centre, face


def _scene_depth() -> float:
    """The largest extent of every mesh, so the camera stands outside all of them."""
    import bpy

    corners = [_world_points(o, np.array([tuple(c) for c in o.bound_box], np.float64))
               for o in bpy.context.scene.objects if o.type == "MESH"]
    points = np.concatenate(corners)
    return float((points.max(axis=0) - points.min(axis=0)).max())


def _colour_source() -> str:
    """Workbench's colour: the head's textures if it has any, else its vertex colours, else its materials."""
    import bpy

    for material in bpy.data.materials:
        tree = material.node_tree if material.use_nodes else None
        if tree is not None and any(node.type == "TEX_IMAGE" and node.image is not None for node in tree.nodes):
            return "TEXTURE"
    if any(o.type == "MESH" and len(o.data.color_attributes) for o in bpy.context.scene.objects):
        return "VERTEX"
    return "MATERIAL"


def _set_up_scene(size: int) -> None:
    import bpy

    scene = bpy.context.scene
    center, view = _framing()
    camera = bpy.data.objects.new("talkbridge preview camera", bpy.data.cameras.new("talkbridge preview camera"))
    scene.collection.objects.link(camera)
    camera.data.type = "ORTHO"
    camera.data.ortho_scale = view
    distance = _scene_depth() * 3 + 0.1
    camera.location = (float(center[0]), float(center[1]) - distance, float(center[2]))
    camera.rotation_euler = (math.pi / 2, 0.0, 0.0)  # looking down +Y: at the face, which looks down -Y
    camera.data.clip_start = distance / 100
    camera.data.clip_end = distance * 3
    scene.camera = camera
    scene.render.engine = "BLENDER_WORKBENCH"
    scene.render.resolution_x = scene.render.resolution_y = int(size)
    scene.render.resolution_percentage = 100
    scene.render.image_settings.file_format = "PNG"
    scene.render.image_settings.color_mode = "RGB"
    shading = scene.display.shading
    shading.light = "STUDIO"
    shading.color_type = _colour_source()
    shading.show_cavity = False
    world = scene.world or bpy.data.worlds.new("talkbridge preview")
    scene.world = world
    world.color = (0.02, 0.02, 0.025)  # a dark backdrop: a grey untextured head stands out


def _play_only(animation: str) -> tuple[int, int]:
    """Make the take the one animation that plays; returns its first and last frame.

    Blender's importer makes one action per glTF animation and leaves the first one active, the
    others in muted NLA tracks: a head with its own animations (an idle loop) would play that instead
    of the take. Each animated data block gets the take's action and slot; the others play nothing.
    """
    import bpy

    take = None
    holders = list(bpy.data.objects) + list(bpy.data.shape_keys)
    for holder in holders:
        anim = holder.animation_data
        if anim is None:
            continue
        strip = next((s for track in anim.nla_tracks for s in track.strips
                      if s.action is not None and s.action.name.split(".")[0] == animation), None)
        if strip is None and anim.action is not None and anim.action.name.split(".")[0] == animation:
            take = anim.action
            continue
        anim.action = None
        if strip is not None:
            anim.action = strip.action
            anim.action_slot = strip.action_slot
            take = strip.action
        for track in anim.nla_tracks:
            track.mute = True
    if take is None:
        raise RuntimeError(f"the animated head has no {animation!r} animation after import")
    first, last = take.frame_range
    return int(round(first)), int(round(last))


def _read_pixels(path: Path, size: int) -> np.ndarray:
    import bpy

    image = bpy.data.images.load(str(path))
    try:
        pixels = np.empty(size * size * 4, np.float32)
        image.pixels.foreach_get(pixels)
    finally:
        bpy.data.images.remove(image)
    rgba = pixels.reshape(size, size, 4)[::-1]  # Blender's rows start at the bottom
    return np.clip(rgba[:, :, :3] * 255.0 + 0.5, 0, 255).astype(np.uint8)


def render(spec: dict) -> dict:
    """Render ``spec["frames"]`` frames of ``spec["glb"]`` at ``spec["size"]`` px into ``spec["folder"]``."""
    import bpy

    folder = Path(spec["folder"])
    size, count = int(spec["size"]), int(spec["frames"])
    _import_head(Path(spec["glb"]), int(spec["fps"]))
    first, _ = _play_only(str(spec.get("animation", "talkbridge")))
    _set_up_scene(size)
    scene = bpy.context.scene
    still = folder / "frame.png"
    with open(folder / "frames.rgb", "wb") as raw:
        for index in range(count):
            scene.frame_set(first + index)
            scene.render.filepath = str(still)
            bpy.ops.render.render(write_still=True)
            raw.write(_read_pixels(still, size).tobytes())
            raw.flush()  # the parent counts frames by this file's size
    info = {"frames": count, "size": size, "first_frame": first}
    (folder / "frames.json").write_text(json.dumps(info), encoding="utf-8")
    return info


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m talkbridge.exporters.preview_render SPEC.json", file=sys.stderr)
        return 2
    spec = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    try:
        render(spec)
    except Exception as error:  # noqa: BLE001 - the parent turns this one line into its error
        print(f"PREVIEW-ERROR {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
