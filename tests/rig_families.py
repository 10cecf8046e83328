"""Test heads for the rig families people bring, each with its family's real morph-target names.

Each builder writes a small multi-mesh GLB (plain JSON + numpy, no third-party assets): every mesh a
low-poly sphere whose morph targets are small regional offsets, named as that family names them.
Where the names come from is listed in docs/exporters.md ("Rig families"):

* :func:`arkit_names` - Apple's 52 ARKit names and the spellings other tools write (``mouthSmile_L``,
  ``MouthSmileLeft``, ``mouth_smile_left``);
* :data:`OCULUS_VISEME_NAMES` - the 15 Oculus (Meta) Lipsync visemes;
* :func:`write_rpm_head` - Ready Player Me / Avaturn: head, teeth and both eyes, each with the ARKit 52
  *and* the 15 visemes (two mouth sets) plus RPM's own ``mouthOpen`` / ``mouthSmile``;
* :func:`write_vroid_head` - VRoid Studio's ``Fcl_*`` face shapes; as ``.vrm`` with the VRM 0.x
  (``VRM`` blendShapeMaster) or VRM 1.0 (``VRMC_vrm`` expressions) extension binding the presets;
* :func:`write_cc4_head` - Character Creator 4 / iClone: ``CC_Base_Body`` with CC4's ARKit-compatible
  expressions and its own ``V_*`` visemes, teeth, tongue, eye occlusion, tear line and eyelashes;
* :func:`write_metahuman_head` - a MetaHuman-style head: ``*_lod0_mesh`` meshes under a
  ``neck_01 -> neck_02 -> head`` joint chain, with Live Link Face's PascalCase ARKit names.

:func:`animated_weights` reads an exported GLB back: node name -> target name -> weights per frame.
"""

from __future__ import annotations

import json
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from talkbridge.core.motion import ARKIT_52, OCULUS_VISEMES
from tests.heads import grid_sphere

OCULUS_VISEME_NAMES = OCULUS_VISEMES
RPM_EXTRA = ("mouthOpen", "mouthSmile")
"""Ready Player Me's two shapes outside ARKit and the visemes (a whole-mouth open and smile)."""

VROID_FACE = (
    "Fcl_ALL_Neutral", "Fcl_ALL_Angry", "Fcl_ALL_Fun", "Fcl_ALL_Joy", "Fcl_ALL_Sorrow", "Fcl_ALL_Surprised",
    "Fcl_BRW_Angry", "Fcl_BRW_Fun", "Fcl_BRW_Joy", "Fcl_BRW_Sorrow", "Fcl_BRW_Surprised",
    "Fcl_EYE_Natural", "Fcl_EYE_Angry", "Fcl_EYE_Close", "Fcl_EYE_Close_R", "Fcl_EYE_Close_L",
    "Fcl_EYE_Fun", "Fcl_EYE_Joy", "Fcl_EYE_Joy_R", "Fcl_EYE_Joy_L", "Fcl_EYE_Sorrow", "Fcl_EYE_Surprised",
    "Fcl_EYE_Spread", "Fcl_EYE_Iris_Hide", "Fcl_EYE_Highlight_Hide",
    "Fcl_MTH_Close", "Fcl_MTH_Up", "Fcl_MTH_Down", "Fcl_MTH_Angry", "Fcl_MTH_Small", "Fcl_MTH_Large",
    "Fcl_MTH_Neutral", "Fcl_MTH_Fun", "Fcl_MTH_Joy", "Fcl_MTH_Sorrow", "Fcl_MTH_Surprised",
    "Fcl_MTH_A", "Fcl_MTH_I", "Fcl_MTH_U", "Fcl_MTH_E", "Fcl_MTH_O",
    "Fcl_HA_Hide", "Fcl_HA_Fung1", "Fcl_HA_Short",
)
"""A VRoid Studio face (mesh ``Face``), in the order VRoid exports it."""

VROID_EXPECTED = {
    "Fcl_MTH_A": "aa", "Fcl_MTH_I": "ih", "Fcl_MTH_U": "ou", "Fcl_MTH_E": "ee", "Fcl_MTH_O": "oh",
    "Fcl_EYE_Close": "blink", "Fcl_EYE_Close_L": "blinkLeft", "Fcl_EYE_Close_R": "blinkRight",
    "Fcl_BRW_Angry": "angry", "Fcl_BRW_Fun": "relaxed", "Fcl_BRW_Joy": "happy", "Fcl_BRW_Sorrow": "sad",
    "Fcl_BRW_Surprised": "surprised",
    "Fcl_ALL_Joy": "joy", "Fcl_ALL_Angry": "anger", "Fcl_ALL_Sorrow": "sadness", "Fcl_ALL_Surprised": "amazement",
    "Fcl_ALL_Fun": "cheekiness", "Fcl_ALL_Neutral": "neutral",
}
"""What each VRoid name drives (the rest are VRoid's own styling shapes and are left alone)."""

# VRM 0.x blendShapeGroups VRoid writes: (name, presetName, [(target, weight 0..100)]).
VROID_VRM0_GROUPS = (
    ("Neutral", "neutral", []),
    ("A", "a", [("Fcl_MTH_A", 100)]),
    ("I", "i", [("Fcl_MTH_I", 100)]),
    ("U", "u", [("Fcl_MTH_U", 100)]),
    ("E", "e", [("Fcl_MTH_E", 100)]),
    ("O", "o", [("Fcl_MTH_O", 100)]),
    ("Blink", "blink", [("Fcl_EYE_Close", 100)]),
    ("Joy", "joy", [("Fcl_ALL_Joy", 100)]),
    ("Angry", "angry", [("Fcl_ALL_Angry", 100)]),
    ("Sorrow", "sorrow", [("Fcl_ALL_Sorrow", 100)]),
    ("Fun", "fun", [("Fcl_ALL_Fun", 100), ("Fcl_EYE_Fun", 40)]),
    ("Blink_L", "blink_l", [("Fcl_EYE_Close_L", 100)]),
    ("Blink_R", "blink_r", [("Fcl_EYE_Close_R", 100)]),
    ("Surprised", "unknown", [("Fcl_ALL_Surprised", 100)]),
)

# CC4 / iClone "Extended" facial profile on CC_Base_Body: the ARKit-compatible expressions.
CC4_BODY = (
    "Brow_Raise_Inner_L", "Brow_Raise_Inner_R", "Brow_Raise_Outer_L", "Brow_Raise_Outer_R",
    "Brow_Drop_L", "Brow_Drop_R",
    "Eye_Blink_L", "Eye_Blink_R", "Eye_Squint_L", "Eye_Squint_R", "Eye_Wide_L", "Eye_Wide_R",
    "Eye_L_Look_L", "Eye_L_Look_R", "Eye_L_Look_Up", "Eye_L_Look_Down",
    "Eye_R_Look_L", "Eye_R_Look_R", "Eye_R_Look_Up", "Eye_R_Look_Down",
    "Cheek_Raise_L", "Cheek_Raise_R", "Cheek_Puff_L", "Cheek_Puff_R",
    "Nose_Sneer_L", "Nose_Sneer_R",
    "Jaw_Open", "Jaw_Forward", "Jaw_L", "Jaw_R",
    "Mouth_Close", "Mouth_L", "Mouth_R",
    "Mouth_Smile_L", "Mouth_Smile_R", "Mouth_Frown_L", "Mouth_Frown_R",
    "Mouth_Dimple_L", "Mouth_Dimple_R", "Mouth_Stretch_L", "Mouth_Stretch_R",
    "Mouth_Press_L", "Mouth_Press_R",
    "Mouth_Funnel_Up_L", "Mouth_Funnel_Up_R", "Mouth_Funnel_Down_L", "Mouth_Funnel_Down_R",
    "Mouth_Pucker_Up_L", "Mouth_Pucker_Up_R", "Mouth_Pucker_Down_L", "Mouth_Pucker_Down_R",
    "Mouth_Roll_In_Upper_L", "Mouth_Roll_In_Upper_R", "Mouth_Roll_In_Lower_L", "Mouth_Roll_In_Lower_R",
    "Mouth_Shrug_Upper", "Mouth_Shrug_Lower",
    "Mouth_Up_Upper_L", "Mouth_Up_Upper_R", "Mouth_Down_Lower_L", "Mouth_Down_Lower_R",
    # CC's own lip-sync visemes: not Oculus visemes, so never a second mouth set.
    "V_None", "V_Open", "V_Explosive", "V_Dental_Lip", "V_Tight_O", "V_Tight", "V_Wide", "V_Affricate", "V_Lip_Open",
)
CC4_TEETH = ("Jaw_Open", "Jaw_Forward", "Jaw_L", "Jaw_R", "V_Open")
CC4_TONGUE = ("Tongue_Out", "Tongue_Up", "Tongue_Down", "Tongue_L", "Tongue_R", "Tongue_Tip_Up", "Tongue_Tip_Down",
              "Tongue_Narrow", "Tongue_Wide", "Jaw_Open", "V_Tongue_up", "V_Tongue_Raise", "V_Tongue_Out")
CC4_EYE_OCCLUSION = ("Eye_Blink_L", "Eye_Blink_R", "Eye_Wide_L", "Eye_Wide_R", "Eye_Squint_L", "Eye_Squint_R")
CC4_EYELASH = ("Eye_Blink_L", "Eye_Blink_R", "Eye_Wide_L", "Eye_Wide_R")


def arkit_names(style: str = "apple") -> list[str]:
    """ARKit's 52 names in one spelling: ``apple`` (``mouthSmileLeft``), ``lr`` (``mouthSmile_L``),
    ``pascal`` (``MouthSmileLeft``, as Live Link Face writes them) or ``snake`` (``mouth_smile_left``)."""
    if style == "apple":
        return list(ARKIT_52)
    if style == "lr":
        return [re.sub(r"(Left|Right)$", lambda m: "_" + m.group(1)[0], name) for name in ARKIT_52]
    if style == "pascal":
        return [name[0].upper() + name[1:] for name in ARKIT_52]
    if style == "snake":
        return [re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), name) for name in ARKIT_52]
    raise ValueError(style)


@dataclass
class MeshSpec:
    """One mesh of a test head: its name, target names, where it sits, how many primitives."""

    name: str
    targets: list[str]
    offset: tuple[float, float, float] = (0.0, 0.0, 0.0)
    radius: float = 0.1
    primitives: int = 1


@dataclass
class HeadFile:
    """What a builder wrote: the file, its meshes, and the JSON document it holds."""

    path: Path
    meshes: list[MeshSpec]
    document: dict[str, Any] = field(repr=False, default_factory=dict)

    def targets(self, mesh: str) -> list[str]:
        return next(m.targets for m in self.meshes if m.name == mesh)


class _Blob:
    def __init__(self) -> None:
        self.data = bytearray()
        self.views: list[dict] = []
        self.accessors: list[dict] = []

    def add(self, array: np.ndarray, kind: str, target: int | None = None, bounds: bool = False) -> int:
        self.data += b"\0" * ((-len(self.data)) % 4)
        raw = np.ascontiguousarray(array).tobytes()
        view = {"buffer": 0, "byteOffset": len(self.data), "byteLength": len(raw)}
        if target is not None:
            view["target"] = target
        self.views.append(view)
        self.data += raw
        component = 5126 if array.dtype == np.float32 else 5125
        accessor = {"bufferView": len(self.views) - 1, "componentType": component, "count": int(array.shape[0]), "type": kind}
        if bounds:
            accessor["min"] = [float(v) for v in array.min(axis=0)]
            accessor["max"] = [float(v) for v in array.max(axis=0)]
        self.accessors.append(accessor)
        return len(self.accessors) - 1


def _target_delta(points: np.ndarray, index: int, count: int, radius: float) -> np.ndarray:
    """A distinct small bump per target, so every target really moves some vertices."""
    angle = 2 * np.pi * index / max(count, 1)
    centre = np.array([np.sin(angle) * 0.7 * radius, (0.5 - (index % 7) / 7.0) * radius, np.cos(angle) * 0.7 * radius])
    distance = np.linalg.norm(points - centre, axis=1)
    falloff = np.clip(1.0 - distance / (0.6 * radius), 0.0, 1.0)[:, None]
    return (falloff * np.array([0.0, 0.002, 0.004])).astype(np.float32)


def write_head(
    path: Path,
    meshes: list[MeshSpec],
    joints: tuple[str, ...] = (),
    extensions: dict[str, Any] | None = None,
) -> HeadFile:
    """Write ``meshes`` as one GLB: a root node, an optional joint chain (meshes under its last
    joint), and ``extensions`` (with ``extensionsUsed``) at the document level."""
    blob = _Blob()
    gltf_meshes, nodes = [], [{"name": "Armature" if joints else "Root", "children": []}]
    parent = 0
    for depth, joint in enumerate(joints):
        nodes.append({"name": joint, "translation": [0.0, 0.05 if depth else 1.4, 0.0], "children": []})
        nodes[parent]["children"].append(len(nodes) - 1)
        parent = len(nodes) - 1
    for spec in meshes:
        points, faces = grid_sphere(spec.radius, rings=6, segments=8)
        primitives = []
        # Split the faces between primitives, as VRoid splits its face by material.
        for part in np.array_split(faces, spec.primitives):
            position = blob.add(points, "VEC3", 34962, bounds=True)
            indices = blob.add(part.reshape(-1).astype(np.uint32), "SCALAR", 34963)
            primitive = {"attributes": {"POSITION": position}, "indices": indices}
            if spec.targets:
                primitive["targets"] = [
                    {"POSITION": blob.add(_target_delta(points, i, len(spec.targets), spec.radius), "VEC3", 34962, bounds=True)}
                    for i in range(len(spec.targets))
                ]
            primitives.append(primitive)
        mesh: dict[str, Any] = {"name": spec.name, "primitives": primitives}
        if spec.targets:
            mesh.update(weights=[0.0] * len(spec.targets), extras={"targetNames": list(spec.targets)})
        gltf_meshes.append(mesh)
        nodes.append({"name": spec.name, "mesh": len(gltf_meshes) - 1, "translation": [float(v) for v in spec.offset]})
        nodes[parent]["children"].append(len(nodes) - 1)
    for node in nodes:
        if not node.get("children"):
            node.pop("children", None)
    document: dict[str, Any] = {
        "asset": {"version": "2.0", "generator": "talkbridge tests/rig_families.py"},
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": nodes,
        "meshes": gltf_meshes,
        "accessors": blob.accessors,
        "bufferViews": blob.views,
        "buffers": [{"byteLength": len(blob.data)}],
    }
    if extensions:
        document["extensions"] = extensions
        document["extensionsUsed"] = sorted(extensions)
    text = json.dumps(document, separators=(",", ":")).encode()
    text += b" " * ((-len(text)) % 4)
    data = bytes(blob.data) + b"\0" * ((-len(blob.data)) % 4)
    total = 12 + 8 + len(text) + 8 + len(data)
    Path(path).write_bytes(struct.pack("<4sII", b"glTF", 2, total) + struct.pack("<II", len(text), 0x4E4F534A) + text
                           + struct.pack("<II", len(data), 0x004E4942) + data)
    return HeadFile(Path(path), meshes, document)


def write_arkit_head(path: Path, style: str = "apple") -> HeadFile:
    """A face and teeth with the 52 ARKit shapes in one spelling (see :func:`arkit_names`)."""
    names = arkit_names(style)
    teeth = [n for n, canonical in zip(names, ARKIT_52) if canonical.startswith("jaw")]
    return write_head(path, [MeshSpec("Face", names), MeshSpec("Teeth", teeth, (0.0, -0.03, 0.05), 0.04)], joints=("Neck", "Head"))


def write_rpm_head(path: Path) -> HeadFile:
    """Ready Player Me: Wolf3D_Head, Wolf3D_Teeth, EyeLeft and EyeRight share ARKit 52 + 15 visemes."""
    names = list(ARKIT_52) + list(OCULUS_VISEMES) + list(RPM_EXTRA)
    meshes = [
        MeshSpec("Wolf3D_Head", names),
        MeshSpec("Wolf3D_Teeth", names, (0.0, -0.03, 0.05), 0.04),
        MeshSpec("EyeLeft", names, (0.03, 0.03, 0.08), 0.015),
        MeshSpec("EyeRight", names, (-0.03, 0.03, 0.08), 0.015),
    ]
    return write_head(path, meshes, joints=("Hips", "Spine", "Neck", "Head"))


def write_cc4_head(path: Path) -> HeadFile:
    """Character Creator 4: the body's expressions, and teeth, tongue, eye occlusion, tear line, eyelashes."""
    meshes = [
        MeshSpec("CC_Base_Body", list(CC4_BODY)),
        MeshSpec("CC_Base_Teeth", list(CC4_TEETH), (0.0, -0.03, 0.05), 0.04),
        MeshSpec("CC_Base_Tongue", list(CC4_TONGUE), (0.0, -0.035, 0.04), 0.03),
        MeshSpec("CC_Base_EyeOcclusion", list(CC4_EYE_OCCLUSION), (0.0, 0.03, 0.08), 0.03),
        MeshSpec("CC_Base_TearLine", ["Eye_Blink_L", "Eye_Blink_R"], (0.0, 0.03, 0.085), 0.03),
        MeshSpec("Eyelash_Up", list(CC4_EYELASH), (0.0, 0.035, 0.09), 0.03),
    ]
    return write_head(path, meshes, joints=("CC_Base_BoneRoot", "CC_Base_NeckTwist01", "CC_Base_Head"))


def write_metahuman_head(path: Path) -> HeadFile:
    """A MetaHuman-style head: PascalCase ARKit names (Live Link Face's) on the *_lod0_mesh meshes."""
    names = arkit_names("pascal")
    jaw_and_mouth = [n for n, canonical in zip(names, ARKIT_52) if canonical.startswith(("jaw", "mouthClose"))]
    eyes = [n for n, canonical in zip(names, ARKIT_52) if canonical.startswith("eye")]
    meshes = [
        MeshSpec("head_lod0_mesh", names),
        MeshSpec("teeth_lod0_mesh", jaw_and_mouth, (0.0, -0.03, 0.05), 0.04),
        MeshSpec("eyelashes_lod0_mesh", eyes, (0.0, 0.035, 0.09), 0.03),
        MeshSpec("eyeLeft_lod0_mesh", eyes, (0.03, 0.03, 0.08), 0.015),
        MeshSpec("eyeRight_lod0_mesh", eyes, (-0.03, 0.03, 0.08), 0.015),
    ]
    return write_head(path, meshes, joints=("root", "pelvis", "spine_05", "neck_01", "neck_02", "head"))


def _vrm_meshes() -> list[MeshSpec]:
    # VRoid: the face is split by material (two primitives sharing the targets); body and hair have none.
    return [MeshSpec("Face", list(VROID_FACE), primitives=2), MeshSpec("Body", [], (0.0, -0.2, 0.0), 0.12),
            MeshSpec("Hair", [], (0.0, 0.05, -0.02), 0.11)]


def write_vroid_head(path: Path, vrm: str | None = None) -> HeadFile:
    """A VRoid face; ``vrm="0.x"`` or ``"1.0"`` adds that VRM extension binding the presets.

    The 1.0 binds carry fractional weights (``happy`` moves Fcl_ALL_Joy at 1.0 and Fcl_EYE_Joy at
    0.6; ``relaxed`` moves Fcl_ALL_Fun at 0.8) so a test can see the weights applied.
    """
    meshes = _vrm_meshes()
    index = {name: i for i, name in enumerate(VROID_FACE)}
    extensions: dict[str, Any] | None = None
    if vrm == "0.x":
        groups = [{"name": name, "presetName": preset, "isBinary": False, "materialValues": [],
                   "binds": [{"mesh": 0, "index": index[target], "weight": weight} for target, weight in binds]}
                  for name, preset, binds in VROID_VRM0_GROUPS]
        extensions = {"VRM": {"exporterVersion": "VRoidStudio-1.x", "specVersion": "0.0",
                              "meta": {"title": "test avatar", "version": "1"},
                              "humanoid": {"humanBones": []},
                              "blendShapeMaster": {"blendShapeGroups": groups}}}
    elif vrm == "1.0":
        face_node = 1 + 4  # the root, four joints, then the Face node

        def binds(*pairs: tuple[str, float]) -> dict:
            return {"morphTargetBinds": [{"node": face_node, "index": index[t], "weight": w} for t, w in pairs]}

        preset = {
            "aa": binds(("Fcl_MTH_A", 1.0)), "ih": binds(("Fcl_MTH_I", 1.0)), "ou": binds(("Fcl_MTH_U", 1.0)),
            "ee": binds(("Fcl_MTH_E", 1.0)), "oh": binds(("Fcl_MTH_O", 1.0)),
            "blink": binds(("Fcl_EYE_Close", 1.0)),
            "blinkLeft": binds(("Fcl_EYE_Close_L", 1.0)), "blinkRight": binds(("Fcl_EYE_Close_R", 1.0)),
            "happy": binds(("Fcl_ALL_Joy", 1.0), ("Fcl_EYE_Joy", 0.6)),
            "angry": binds(("Fcl_ALL_Angry", 1.0)), "sad": binds(("Fcl_ALL_Sorrow", 1.0)),
            "relaxed": binds(("Fcl_ALL_Fun", 0.8)), "surprised": {**binds(("Fcl_ALL_Surprised", 1.0)), "isBinary": True},
            "neutral": {},
        }
        extensions = {"VRMC_vrm": {"specVersion": "1.0", "meta": {"name": "test avatar", "authors": ["talkbridge tests"],
                                                                  "licenseUrl": "https://vrm.dev/licenses/1.0/"},
                                   "humanoid": {"humanBones": {"head": {"node": 4}}},
                                   "expressions": {"preset": preset}}}
    return write_head(path, meshes, joints=("J_Bip_C_Hips", "J_Bip_C_Spine", "J_Bip_C_Neck", "J_Bip_C_Head"),
                      extensions=extensions)


def animated_weights(path: Path, animation: str = "talkbridge") -> dict[str, dict[str, np.ndarray]]:
    """node name -> target name -> (T,) weights, from ``animation`` of an exported GLB."""
    from talkbridge.exporters.gltf.glb import read_gltf
    from talkbridge.exporters.gltf.reader import read_accessor

    document, buffers = read_gltf(path)
    anim = next(a for a in document.animations if a.name == animation)
    result: dict[str, dict[str, np.ndarray]] = {}
    for channel in anim.channels:
        if channel.target.path != "weights":
            continue
        node = document.nodes[channel.target.node]
        mesh = document.meshes[node.mesh]
        names = mesh.extras["targetNames"]
        values = np.asarray(read_accessor(document, buffers, anim.samplers[channel.sampler].output), np.float32)
        values = values.reshape(-1, len(names))
        result[node.name] = {name: values[:, i] for i, name in enumerate(names)}
    return result
