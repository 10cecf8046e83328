"""What a character target means in Blender: its meshes, its head bone and its VRM presets.

Artists bring characters, not single meshes: a head, teeth, eyes, a tongue and eyelashes that share
shape-key names, all deformed by one armature (Character Creator, Daz, Ready Player Me, VRoid) or
parented under an empty (a glTF import). The panel's Target may be any of those objects; these
plain functions work out every mesh the take must reach, so the teeth open with the lips.

Nothing here writes data: :mod:`.apply` writes the take from what these functions find.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable

import bpy

from talkbridge.exporters.naming import VRM0_PRESETS

HEAD_BONE_NAMES = (
    "head", "Head", "CC_Base_Head", "J_Bip_C_Head", "mixamorig:Head", "head.x", "DEF-head", "Head_M",
    "Bip01 Head", "Bip001 Head", "ORG-head",
)
"""Head bones by rig family, most specific first: Rigify/MetaHuman/UE and Blender's own (``head``),
Character Creator / iClone (``CC_Base_Head``), VRoid (``J_Bip_C_Head``), Mixamo (``mixamorig:Head``),
Auto-Rig Pro (``head.x``), Rigify deform bones (``DEF-head``), Advanced Skeleton (``Head_M``), 3ds Max
Biped. A rig none of these fit still gets a bone whose name has the word "head" (see :func:`find_head_bone`)."""

_NOT_THE_HEAD = {"end", "top", "tip", "nub", "target", "ctrl", "site", "null", "mesh", "geo", "hair", "jaw", "eye"}

"""VRM 0.x blend-shape preset names -> the VRM 1.0 expression names talkbridge drives."""

VRM1_PRESETS = {
    "happy": "happy", "angry": "angry", "sad": "sad", "relaxed": "relaxed", "surprised": "surprised",
    "aa": "aa", "ih": "ih", "ou": "ou", "ee": "ee", "oh": "oh",
    "blink": "blink", "blink_left": "blinkLeft", "blink_right": "blinkRight",
    "look_up": "lookUp", "look_down": "lookDown", "look_left": "lookLeft", "look_right": "lookRight",
    "neutral": "neutral",
}
"""The VRM add-on's property names under ``vrm1.expressions.preset`` -> VRM 1.0 expression names."""


def _descendants(obj: "bpy.types.Object") -> list["bpy.types.Object"]:
    return list(getattr(obj, "children_recursive", ()))


def _deformed_by(armature: "bpy.types.Object") -> list["bpy.types.Object"]:
    """Meshes with an Armature modifier pointing at ``armature`` (wherever they sit in the outliner)."""
    found = []
    for obj in bpy.data.objects:
        if obj.type != "MESH":
            continue
        if any(mod.type == "ARMATURE" and mod.object == armature for mod in obj.modifiers):
            found.append(obj)
    return found


def character_meshes(target: "bpy.types.Object") -> list["bpy.types.Object"]:
    """Every mesh a character target stands for, in a stable order: the target itself when it is a
    mesh, everything it parents (recursively), and every mesh deformed by an armature among those."""
    seen: dict[str, "bpy.types.Object"] = {}
    pending = [target, *_descendants(target)]
    while pending:
        obj = pending.pop(0)
        if obj.name in seen:
            continue
        seen[obj.name] = obj
        if obj.type == "ARMATURE":
            for mesh in _deformed_by(obj):
                pending += [mesh, *_descendants(mesh)]
    meshes = [obj for obj in seen.values() if obj.type == "MESH"]
    first = [target] if target.type == "MESH" else []
    return first + sorted((m for m in meshes if m is not target), key=lambda m: m.name)


def shape_key_blocks(meshes: Iterable["bpy.types.Object"]) -> list["bpy.types.Key"]:
    """The shape-key blocks of ``meshes``, once each (linked duplicates share one block)."""
    blocks: list["bpy.types.Key"] = []
    for mesh in meshes:
        key = mesh.data.shape_keys
        if key is not None and len(key.key_blocks) > 1 and all(key != other for other in blocks):
            blocks.append(key)
    return blocks


def character_armature(target: "bpy.types.Object") -> "bpy.types.Object | None":
    """The armature that turns the character's head: the target itself, one it parents, its parent
    chain's armature, or the one deforming its meshes."""
    if target.type == "ARMATURE":
        return target
    for obj in _descendants(target):
        if obj.type == "ARMATURE":
            return obj
    parent = target.parent
    while parent is not None:
        if parent.type == "ARMATURE":
            return parent
        parent = parent.parent
    for mesh in character_meshes(target):
        for mod in mesh.modifiers:
            if mod.type == "ARMATURE" and mod.object is not None:
                return mod.object
    return None


def _words(name: str) -> set[str]:
    return set(re.split(r"[^a-z]+", re.sub(r"([a-z])([A-Z])", r"\1 \2", name).lower())) - {""}


def _vrm_extension(armature_obj: "bpy.types.Object") -> Any:
    return getattr(armature_obj.data, "vrm_addon_extension", None) if armature_obj.type == "ARMATURE" else None


def _vrm_head_bone(armature_obj: "bpy.types.Object") -> str | None:
    """The head bone the VRM add-on's humanoid mapping names (VRM 1.0, then 0.x), if any."""
    extension = _vrm_extension(armature_obj)
    if extension is None:
        return None
    head = getattr(getattr(getattr(getattr(extension, "vrm1", None), "humanoid", None), "human_bones", None), "head", None)
    name = getattr(getattr(head, "node", None), "bone_name", "")
    if name:
        return str(name)
    for human_bone in getattr(getattr(getattr(extension, "vrm0", None), "humanoid", None), "human_bones", ()):
        if getattr(human_bone, "bone", "") == "head":
            name = getattr(getattr(human_bone, "node", None), "bone_name", "")
            if name:
                return str(name)
    return None


def find_head_bone(rig: "bpy.types.Object") -> str | None:
    """The bone that turns the head: the VRM humanoid's head, a known rig family's head bone, else a
    bone with the word "head" in its name (not an end, tip, target or control bone)."""
    names = [bone.name for bone in rig.data.bones]
    vrm = _vrm_head_bone(rig)
    if vrm in names:
        return vrm
    present = set(names)
    for name in HEAD_BONE_NAMES:
        if name in present:
            return name
    for name in names:
        if name.lower() == "head":
            return name
    for name in names:
        words = _words(name)
        if "head" in words and not words & _NOT_THE_HEAD:
            return name
    return None


@dataclass(frozen=True)
class PresetBind:
    """One VRM preset's morph bind: the shape key ``block`` of mesh object ``mesh`` at ``weight``;
    ``binary`` presets (``is_binary``) switch fully on above half and are off below."""

    preset: str  # a VRM 1.0 expression name (aa, blink, happy ...)
    mesh: str
    block: str
    weight: float
    binary: bool = False


def _mesh_name(holder: Any) -> str:
    name = getattr(holder, "mesh_object_name", "")
    if not name:
        obj = getattr(holder, "bpy_object", None)
        name = getattr(obj, "name", "") if obj is not None else ""
    return str(name or "")


def vrm_preset_binds(armature_obj: "bpy.types.Object | None") -> list[PresetBind]:
    """The VRM presets' shape-key binds the VRM add-on keeps on ``armature_obj`` (VRM 1.0 expressions,
    else VRM 0.x blend-shape groups); empty when the add-on's data is absent.

    The VRM add-on (saturday06/VRM-Addon-for-Blender) stores them on the armature data as
    ``vrm_addon_extension.vrm1.expressions.preset.<name>.morph_target_binds`` (``node.mesh_object_name``,
    ``index``: the shape key's name, ``weight``) and ``vrm_addon_extension.vrm0.blend_shape_master
    .blend_shape_groups`` (``preset_name``, ``binds``: ``mesh.mesh_object_name``, ``index``, ``weight``).
    """
    if armature_obj is None:
        return []
    extension = _vrm_extension(armature_obj)
    if extension is None:
        return []
    binds: list[PresetBind] = []
    presets = getattr(getattr(getattr(extension, "vrm1", None), "expressions", None), "preset", None)
    if presets is not None:
        for prop, preset in VRM1_PRESETS.items():
            expression = getattr(presets, prop, None)
            binary = bool(getattr(expression, "is_binary", False))
            for bind in getattr(expression, "morph_target_binds", ()):
                mesh, block = _mesh_name(getattr(bind, "node", None)), str(getattr(bind, "index", ""))
                if mesh and block:
                    binds.append(PresetBind(preset, mesh, block, float(getattr(bind, "weight", 1.0)), binary))
    if binds:
        return binds
    groups = getattr(getattr(getattr(extension, "vrm0", None), "blend_shape_master", None), "blend_shape_groups", ())
    for group in groups:
        preset = VRM0_PRESETS.get(str(getattr(group, "preset_name", "")).lower())
        if preset is None:
            continue
        binary = bool(getattr(group, "is_binary", False))
        for bind in getattr(group, "binds", ()):
            mesh, block = _mesh_name(getattr(bind, "mesh", None)), str(getattr(bind, "index", ""))
            if mesh and block:
                binds.append(PresetBind(preset, mesh, block, float(getattr(bind, "weight", 1.0)), binary))
    return binds


def binds_by_block(binds: Iterable[PresetBind]) -> dict[str, dict[str, list[tuple[str, float, bool]]]]:
    """``{mesh object name: {shape key: [(preset, weight, binary), ...]}}`` for the take writer."""
    table: dict[str, dict[str, list[tuple[str, float, bool]]]] = {}
    for bind in binds:
        table.setdefault(bind.mesh, {}).setdefault(bind.block, []).append((bind.preset, bind.weight, bind.binary))
    return table


@dataclass
class CharacterTarget:
    """What the panel's Target resolves to: the shape-key blocks to animate, the meshes looked at,
    the armature that turns the head, and the VRM preset binds by shape-key block name."""

    blocks: list["bpy.types.Key"]
    meshes: list[str]
    armature: "bpy.types.Object | None"
    preset_binds: dict[str, dict[str, list[tuple[str, float, bool]]]]


def resolve_target(
    target: "bpy.types.Object", name_map: dict[str, tuple[str | None, float]] | None = None, required: bool = True
) -> CharacterTarget:
    """Resolve a character target; raises when none of its meshes has a shape key talkbridge can drive.

    ``required=False`` (the active object stood in for an empty Target) returns no blocks instead of
    raising when the object has no shape keys at all; a character whose keys all fail to match is
    still an error, naming the meshes it looked at, so a take never says "done" having animated nothing.
    """
    from talkbridge.core.errors import InputError
    from talkbridge.exporters.naming import match_targets

    meshes = character_meshes(target)
    armature = character_armature(target)
    by_object = binds_by_block(vrm_preset_binds(armature))
    preset_binds: dict[str, dict[str, list[tuple[str, float, bool]]]] = {}
    for object_name, table in by_object.items():
        obj = bpy.data.objects.get(object_name)
        if obj is not None and obj.type == "MESH" and obj.data.shape_keys is not None:
            preset_binds[obj.data.shape_keys.name] = table
            if obj not in meshes:
                meshes.append(obj)
    blocks = shape_key_blocks(meshes)
    looked_at = [mesh.name for mesh in meshes]
    if not blocks:
        if not required:
            return CharacterTarget([], looked_at, armature, {})
        where = f"its meshes ({', '.join(looked_at)})" if looked_at else "it has no meshes"
        raise InputError(f"the target {target.name!r} has no shape keys to animate: {where}")
    drivable = [
        key for key in blocks
        if preset_binds.get(key.name) or match_targets(
            [block.name for block in key.key_blocks if key.reference_key is None or block.name != key.reference_key.name],
            None, name_map,
        ).matches
    ]
    if not drivable:
        raise InputError(
            f"none of the shape keys of the target {target.name!r} match a talkbridge channel; meshes looked at: "
            f"{', '.join(looked_at)}. Rename the keys (ARKit, visemes, VRM, exp_XX) or give a name map"
        )
    return CharacterTarget(drivable, looked_at, armature, {k.name: preset_binds[k.name] for k in drivable if k.name in preset_binds})
