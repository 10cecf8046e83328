"""Adding talkbridge's facial animation to any glTF 2.0 head.

Given a head (``.glb`` or ``.gltf``) and a :class:`~talkbridge.core.motion.Motion`, write a GLB that
is the head unchanged plus one named animation:

* a ``weights`` channel on every node whose mesh has morph targets we can match (see
  :mod:`talkbridge.exporters.naming`); targets we do not drive hold their default weight. One set
  drives the mouth (:mod:`talkbridge.exporters.mouth_source`), and a VRM file's expressions are
  driven through their morph binds (:mod:`talkbridge.exporters.gltf.vrm`);
* a ``rotation`` channel (and, if asked, ``translation``) on the head joint, or, when the head has
  no head joint, on a pivot node we add above the scene's root nodes (skinned-mesh nodes stay at the
  root, as glTF requires).

Keys are one per motion frame at ``t = frame / fps`` with LINEAR interpolation. The animation and
nodes we add are tagged in ``extras.talkbridge``, so exporting onto our own output replaces our
previous animation (and drops its data) while the user's animations stay as they were.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pygltflib

from talkbridge.core.errors import InputError
from talkbridge.core.motion import Motion
from talkbridge.exporters.gltf import pose as pose_math
from talkbridge.exporters.gltf.binary import BinaryBuilder
from talkbridge.exporters.gltf.document import mesh_world_bounds, merge_buffers, scene_index
from talkbridge.exporters.gltf.glb import read_gltf, write_glb
from talkbridge.exporters.gltf.joints import animate_rig_joints, local_offset_keys, local_rotation_keys
from talkbridge.exporters.gltf.vrm import binary_channels, bind_vrm_expressions, read_vrm_expressions
from talkbridge.exporters.mouth_source import choose_sources
from talkbridge.exporters.naming import MatchReport, family_of, match_targets, motion_channels, weight_matrix

log = logging.getLogger(__name__)

TAG = "talkbridge"
PIVOT_ROLE = "head_pivot"
OFFSET_ROLE = "head_pivot_offset"
_HEAD_EXCLUDED_TOKENS = {"end", "top", "tip", "nub", "site", "null", "target", "mesh", "geo", "hair", "ctrl"}


@dataclass
class ExportOptions:
    """How to put a motion on a head.

    ``mouth``: which of the head's mouth sets drives the mouth (``"arkit"``, ``"visemes"``, ``"vrm"``;
    None picks ARKit when complete, else visemes, else VRM vowels). ``pose_reference``: ``"first"``
    plays rotations relative to the clip's first frame (the head starts in its rest pose, the usual
    wish for a 3D character), ``"absolute"`` uses SadTalker's
    angles as they are (a portrait turned 15 degrees keeps the 3D head turned). ``translation_scale``
    is metres per 3DMM translation unit; 0 (the default) leaves the head's position alone.
    """

    animation_name: str = "talkbridge"
    head_node: str | None = None
    animate_pose: bool = True
    pose_reference: str = "first"
    translation_scale: float = 0.0
    name_map: dict[str, tuple[str | None, float]] | None = None
    mouth: str | None = None
    fps: int | None = None  # the frame rate the caller expects; a different motion fps is an error
    jaw_translation_scale: float = 0.0  # head units per engine-model unit for the jaw's translation; 0 = rotation only


@dataclass
class ExportResult:
    path: Path
    report: MatchReport
    frames: int
    fps: int
    animated_nodes: list[str] = field(default_factory=list)
    head_node: str | None = None
    added_pivot: bool = False
    mesh_reports: dict[str, MatchReport] = field(default_factory=dict)
    vrm_version: str | None = None  # "0.x" or "1.0" when the head's VRM expressions were driven

    @property
    def mouth_source(self) -> str | None:
        return self.report.mouth_source


def _name_tokens(name: str) -> list[str]:
    spaced = re.sub(r"([a-z])([A-Z])", r"\1 \2", name)
    return [t for t in re.split(r"[^0-9a-zA-Z]+", spaced.lower()) if t]


def find_head_node(document: pygltflib.GLTF2, requested: str | None = None) -> int | None:
    """The node head pose should drive: the requested name, a skin joint called head, or any 'head' node."""
    names = [node.name or "" for node in document.nodes]
    if requested:
        if requested in names:
            return names.index(requested)
        candidates = [n for n in names if n][:20]
        raise InputError(f"no node named {requested!r} in the head; nodes are: {', '.join(candidates)}")
    for index, node in enumerate(document.nodes):
        if isinstance(node.extras, dict) and isinstance(node.extras.get(TAG), dict) and node.extras[TAG].get("role") == PIVOT_ROLE:
            return index
    tag = document.extras.get(TAG) if isinstance(document.extras, dict) else None
    hint = tag.get("head_joint") if isinstance(tag, dict) else None
    if isinstance(hint, str) and hint in names:
        return names.index(hint)
    joints = {j for skin in document.skins for j in skin.joints}

    def is_head(index: int) -> bool:
        node = document.nodes[index]
        tokens = _name_tokens(node.name or "")
        if node.mesh is not None or not tokens:
            return False
        return (tokens[-1] == "head" or "head" in tokens) and not (set(tokens) & _HEAD_EXCLUDED_TOKENS)

    for pool in (sorted(joints), range(len(document.nodes))):
        for index in pool:
            if is_head(index):
                return index
    return None


def _morph_meshes(document: pygltflib.GLTF2, path: Path) -> dict[int, list[str]]:
    """Mesh index -> target names, for every mesh with morph targets; unnamed targets are an error."""
    found: dict[int, list[str]] = {}
    for index, mesh in enumerate(document.meshes):
        counts = {len(p.targets or []) for p in mesh.primitives}
        if counts == {0}:
            continue
        if len(counts) > 1:
            raise InputError(f"mesh {mesh.name or index!r} has primitives with different morph target counts", path)
        count = counts.pop()
        names = mesh.extras.get("targetNames") if isinstance(mesh.extras, dict) else None
        first = mesh.primitives[0]
        if names is None and isinstance(first.extras, dict):
            names = first.extras.get("targetNames")  # where some exporters (Babylon, older three.js) put them
        if not isinstance(names, list) or len(names) != count or not all(isinstance(n, str) and n for n in names):
            raise InputError(
                f"mesh {mesh.name or index!r} has {count} morph targets without names "
                "(mesh.extras.targetNames); re-export it with shape-key names so they can be matched",
                path,
            )
        found[index] = names
    return found


def _remove_previous(document: pygltflib.GLTF2, blob: bytes, name: str, path: Path) -> bytes:
    """Drop our earlier animation called ``name`` (and its data, when it sits at the end)."""
    for index, animation in enumerate(list(document.animations)):
        if animation.name != name:
            continue
        tag = animation.extras.get(TAG) if isinstance(animation.extras, dict) else None
        if not isinstance(tag, dict):
            raise InputError(
                f"the head already has an animation called {name!r} that talkbridge did not write; "
                "choose another animation name",
                path,
            )
        del document.animations[index]
        first_accessor = tag.get("first_accessor")
        first_view = tag.get("first_buffer_view")
        used = {s.input for a in document.animations for s in a.samplers} | {s.output for a in document.animations for s in a.samplers}
        if (
            isinstance(first_accessor, int)
            and isinstance(first_view, int)
            and 0 <= first_accessor <= len(document.accessors)
            and 0 <= first_view <= len(document.bufferViews)
            and not any(i >= first_accessor for i in used)
            and all(a.bufferView is None or a.bufferView >= first_view for a in document.accessors[first_accessor:])
            and all(a.bufferView is None or a.bufferView < first_view for a in document.accessors[:first_accessor])
            and all(image.bufferView is None or image.bufferView < first_view for image in document.images)
        ):
            tail = document.bufferViews[first_view:]
            cut = min((v.byteOffset or 0 for v in tail), default=len(blob))
            if all((v.byteOffset or 0) + v.byteLength <= len(blob) for v in tail):
                del document.accessors[first_accessor:]
                del document.bufferViews[first_view:]
                blob = blob[:cut]
        else:
            log.warning("kept the data of the earlier %r animation (it is no longer at the end of the file)", name)
        break
    return blob


def _pose_keys(motion: Motion, options: ExportOptions) -> tuple[np.ndarray, np.ndarray]:
    """(T, 4) world-frame head rotations and (T, 3) world-frame offsets in metres."""
    rotations = pose_math.sadtalker_to_quaternions(motion.pose[:, 0:3])
    if options.pose_reference == "first":
        rotations = pose_math.relative_to_first(rotations)
    elif options.pose_reference != "absolute":
        raise InputError(f"pose reference must be 'first' or 'absolute', not {options.pose_reference!r}")
    offsets = (np.asarray(motion.pose[:, 3:6], np.float64) - motion.pose[:1, 3:6]) * options.translation_scale
    return rotations, offsets


def _add_pivot(document: pygltflib.GLTF2, scene: pygltflib.Scene, meshes: set[int]) -> int:
    """Insert pivot -> offset above the scene's non-skinned roots, rotating about the head's neck point."""
    mesh_nodes = [i for i, n in enumerate(document.nodes) if n.mesh in meshes]
    bounds = mesh_world_bounds(document, mesh_nodes)
    if bounds is None:
        point = np.zeros(3)
    else:
        low, high = bounds
        # Turn about a point low in the head, near the top of the neck, rather than its centre.
        point = np.array([(low[0] + high[0]) / 2, low[1] + 0.3 * (high[1] - low[1]), (low[2] + high[2]) / 2])
    keep_at_root = [i for i in scene.nodes if document.nodes[i].skin is not None]
    moved = [i for i in scene.nodes if document.nodes[i].skin is None]
    offset = pygltflib.Node(name="talkbridge_head_offset", translation=[float(-v) for v in point], children=moved,
                            extras={TAG: {"role": OFFSET_ROLE}})
    document.nodes.append(offset)
    pivot = pygltflib.Node(name="talkbridge_head", translation=[float(v) for v in point],
                           children=[len(document.nodes) - 1], extras={TAG: {"role": PIVOT_ROLE}})
    document.nodes.append(pivot)
    scene.nodes = [len(document.nodes) - 1] + keep_at_root
    return len(document.nodes) - 1


def add_animation(
    head_path: str | Path,
    motion: Motion,
    out_path: str | Path,
    options: ExportOptions | None = None,
    overwrite: bool = False,
) -> ExportResult:
    """Write ``head_path`` plus ``motion`` as an animation to ``out_path`` (GLB); the head is never modified."""
    options = options or ExportOptions()
    head_path = Path(head_path)
    out_path = Path(out_path)
    if motion.n_frames < 1:
        raise InputError("the motion has no frames")
    if motion.fps <= 0:
        raise InputError(f"the motion's frame rate {motion.fps} is not positive")
    if options.fps is not None and int(options.fps) != int(motion.fps):
        raise InputError(
            f"frame-rate mismatch: the motion is {motion.fps} fps but {options.fps} fps was requested; "
            "talkbridge does not resample (leave --fps out to use the motion's)"
        )
    if not np.all(np.isfinite(motion.pose)):
        raise InputError("the motion's pose contains NaN or infinite values")

    document, buffers = read_gltf(head_path)
    if not document.meshes:
        raise InputError("the glTF has no meshes to animate", head_path)
    morph_meshes = _morph_meshes(document, head_path)
    if not morph_meshes:
        raise InputError("no mesh in the head has morph targets (blend shapes / shape keys) to animate", head_path)

    channels = motion_channels(motion)
    available = set(channels)
    reports: dict[int, MatchReport] = {}
    for mesh_index, names in morph_meshes.items():
        reports[mesh_index] = match_targets(names, available, options.name_map)
    vrm = read_vrm_expressions(document, head_path)
    if vrm is not None:
        bind_vrm_expressions(vrm, morph_meshes, reports, available, options.name_map)
        channels = binary_channels(vrm, channels)
    choose_sources(list(reports.values()), options.mouth, head_path)
    mesh_reports: dict[str, MatchReport] = {}
    combined = MatchReport()
    for mesh_index, report in reports.items():
        label = document.meshes[mesh_index].name or f"mesh{mesh_index}"
        mesh_reports[label if label not in mesh_reports else f"{label}#{mesh_index}"] = report
        combined.matches += report.matches
        combined.unmatched_targets += report.unmatched_targets
        combined.ignored_targets += report.ignored_targets
        combined.at_rest += report.at_rest
        combined.mouth_source = report.mouth_source
        combined.missing_channels += [c for c in report.missing_channels if c not in combined.missing_channels]
    taken = {m.channel for m in combined.matches}
    combined.unused_channels = sorted(c for c in channels if c not in taken and family_of(c) != "vrm")
    if not combined.matches:
        sample = ", ".join(sorted({n for names in morph_meshes.values() for n in names})[:10])
        raise InputError(
            f"none of the head's morph targets match a talkbridge channel (targets: {sample} ...); "
            "name them as ARKit/visemes/VRM/exp_XX or pass a JSON name map with --map",
            head_path,
        )

    blob = merge_buffers(document, buffers, head_path)
    blob = _remove_previous(document, blob, options.animation_name, head_path)
    builder = BinaryBuilder(document, blob)
    first_accessor = len(document.accessors)
    first_view = len(document.bufferViews)

    n = motion.n_frames
    times = (np.arange(n, dtype=np.float64) / motion.fps).astype(np.float32)
    time_accessor = builder.add_accessor(times, bounds=True)
    samplers: list[pygltflib.AnimationSampler] = []
    anim_channels: list[pygltflib.AnimationChannel] = []
    animated_nodes: list[str] = []

    def add_channel(node: int, path_name: str, values: np.ndarray, accessor: int | None = None) -> int:
        if accessor is None:
            accessor = builder.add_accessor(np.ascontiguousarray(values, np.float32))
        samplers.append(pygltflib.AnimationSampler(input=time_accessor, output=accessor, interpolation="LINEAR"))
        anim_channels.append(
            pygltflib.AnimationChannel(sampler=len(samplers) - 1, target=pygltflib.AnimationChannelTarget(node=node, path=path_name))
        )
        return accessor

    for mesh_index, names in morph_meshes.items():
        report = reports[mesh_index]
        if not report.matches:
            continue
        mesh = document.meshes[mesh_index]
        rest = mesh.weights if mesh.weights is not None and len(mesh.weights) == len(names) else None
        weights = weight_matrix(report, names, channels, n, rest=rest)
        accessor = None
        for node_index, node in enumerate(document.nodes):
            if node.mesh == mesh_index:
                accessor = add_channel(node_index, "weights", weights.reshape(-1), accessor)
                animated_nodes.append(node.name or f"node{node_index}")

    head_index = None
    added_pivot = False
    if options.animate_pose:
        scene = document.scenes[scene_index(document)]
        head_index = find_head_node(document, options.head_node)
        if head_index is None:
            head_index = _add_pivot(document, scene, set(morph_meshes))
            added_pivot = True
        rotations, offsets = _pose_keys(motion, options)
        # world(t) = R_pose(t) * W_parent * rest  =>  local(t) = W_parent^-1 * R_pose(t) * W_parent * rest
        add_channel(head_index, "rotation", local_rotation_keys(document, head_index, rotations, head_path))
        head = document.nodes[head_index]
        if options.translation_scale:
            add_channel(head_index, "translation", local_offset_keys(document, head_index, offsets))
        animated_nodes.append(head.name or f"node{head_index}")
    animated_nodes += animate_rig_joints(
        document, motion, add_channel, head_path, options.jaw_translation_scale,
        skip=None if head_index is None else {head_index},
    )

    document.animations.append(
        pygltflib.Animation(
            name=options.animation_name,
            samplers=samplers,
            channels=anim_channels,
            extras={
                TAG: {
                    "engine": motion.engine,
                    "engine_version": motion.engine_version,
                    "fps": motion.fps,
                    "frames": n,
                    "expression_source": motion.metadata.get("expression_source"),
                    "first_accessor": first_accessor,
                    "first_buffer_view": first_view,
                }
            },
        )
    )
    data = builder.finish()
    write_glb(document, data, out_path, overwrite=overwrite)
    log.info("wrote %s: %d frames at %d fps; %s", out_path, n, motion.fps, combined.summary().replace("\n", "; "))
    return ExportResult(
        path=out_path,
        report=combined,
        frames=n,
        fps=motion.fps,
        animated_nodes=animated_nodes,
        head_node=None if head_index is None else (document.nodes[head_index].name or f"node{head_index}"),
        added_pivot=added_pivot,
        mesh_reports=mesh_reports,
        vrm_version=None if vrm is None else vrm.version,
    )
