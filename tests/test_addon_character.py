"""The character as the take's target (addon/character.py + addon/apply.py) on real Blender data.

Runs in a bpy subprocess on whichever bpy this Python has (4.5 in the project venv, 5.3 in
``.venv-blender5``; ``./scripts/dev test`` runs both). A multi-mesh character (head, teeth, two
eyes sharing shape-key names, parented to an armature with Armature modifiers, plus eyelashes only
deformed by it) is the target: every mesh is animated in one take action with one slot each, the
head bone is found by name, one mouth source drives the mouth, VRM presets drive their binds (the
VRM add-on's data simulated with PropertyGroups of the same names), and a character whose keys
match nothing is an error naming the meshes it looked at.
"""

from __future__ import annotations


import numpy as np
import pytest

from tests import blender_support

pytestmark = [pytest.mark.blender, pytest.mark.timeout(180)]

SCRIPT = r"""
import json, sys
import numpy as np
import bpy

sys.path.insert(0, sys.argv[1])  # holds talkbridge_addon -> the checkout's addon/
from talkbridge_addon import apply, character
from talkbridge.core.errors import InputError
from talkbridge.core.motion import ARKIT_52, OCULUS_VISEMES, MotionChunk

bpy.ops.wm.read_homefile(use_empty=True)
scene = bpy.context.scene
out = {}

def mesh(name, keys, parent=None, armature=None):
    data = bpy.data.meshes.new(name)
    data.from_pydata([(0, 0, 0), (1, 0, 0), (0, 1, 0)], [], [(0, 1, 2)])
    obj = bpy.data.objects.new(name, data)
    scene.collection.objects.link(obj)
    obj.shape_key_add(name="Basis")
    for key in keys:
        obj.shape_key_add(name=key).value = 0.0  # Blender 5 adds keys at 1.0: the rest pose is 0 here
    obj.parent = parent
    if armature is not None:
        obj.modifiers.new("Armature", "ARMATURE").object = armature
    return obj

def rig(name, bones):
    obj = bpy.data.objects.new(name, bpy.data.armatures.new(name))
    scene.collection.objects.link(obj)
    bpy.context.view_layer.objects.active = obj
    bpy.ops.object.mode_set(mode="EDIT")
    for i, bone_name in enumerate(bones):
        bone = obj.data.edit_bones.new(bone_name)
        bone.head, bone.tail = (0, 0, i * 0.1), (0, 0, i * 0.1 + 0.1)
    bpy.ops.object.mode_set(mode="OBJECT")
    return obj

def take_of(block):
    anim = block.animation_data
    return (anim.action.name, anim.action_slot.identifier) if anim and anim.action else None

def value_at(obj, key, frame):
    scene.frame_set(frame)
    return obj.data.shape_keys.key_blocks[key].value

n = 60
t = np.arange(n)[:, None]
arkit = (0.5 + 0.4 * np.sin(0.2 * t + np.arange(52))).astype(np.float32)
visemes = (0.5 + 0.4 * np.cos(0.3 * t + np.arange(len(OCULUS_VISEMES)))).astype(np.float32)
clip = MotionChunk.from_arrays(0, {"pose": (0.2 * np.sin(0.1 * t + np.arange(6))).astype(np.float32),
                                   "blink": arkit[:, 0].copy(), "arkit": arkit, "visemes": visemes})
out["clip"] = {"arkit": arkit.tolist(), "visemes": visemes.tolist()}

# 1. head bone by name for each rig family, with the bones around it that must not win
out["head_bones"] = {}
for name in ("Head", "head", "CC_Base_Head", "J_Bip_C_Head", "mixamorig:Head", "head.x", "DEF-head"):
    found = character.find_head_bone(rig(f"rig {name}", ["Root", "Neck", "HeadTop_End", "head_tip", name]))
    out["head_bones"][name] = found

# 2. the character: head, teeth, two eyes (parented, with Armature modifiers), eyelashes only deformed
body = rig("Character", ["Hips", "Spine", "CC_Base_NeckTwist01", "CC_Base_Head", "CC_Base_JawRoot"])
mouth_keys = [k for k in ARKIT_52 if k.startswith(("mouth", "jaw"))]
head = mesh("CC_Base_Body", list(ARKIT_52) + list(OCULUS_VISEMES), parent=body, armature=body)
teeth = mesh("CC_Base_Teeth", ["jawOpen", "mouthClose", "viseme_aa", "viseme_O"], parent=body, armature=body)
eye_l = mesh("CC_Base_Eye_L", ["eyeBlinkLeft", "eyeLookInLeft"], parent=body, armature=body)
eye_r = mesh("CC_Base_Eye_R", ["eyeBlinkRight", "eyeLookInRight"], parent=body, armature=body)
lashes = mesh("CC_Base_Eyelash", ["eyeBlinkLeft", "eyeBlinkRight"], armature=body)  # deformed, not parented
prop = mesh("Prop", ["jawOpen"])  # shares a name, belongs to nobody: must stay untouched
found = character.resolve_target(body)
out["meshes_looked_at"] = found.meshes
out["blocks"] = [apply.key_owner_names(b)[0] for b in found.blocks]
bone = character.find_head_bone(found.armature)
writer = apply.TakeWriter("character take", shape_keys=found.blocks, pose_target=apply.PoseTarget(found.armature, bone))
summary = writer.write_all(clip)
action = bpy.data.actions[summary.action]
out["character"] = {
    "armature": found.armature.name, "bone": bone, "actions_tagged": sum(1 for a in bpy.data.actions if a.get(apply.TAKE_TAG)),
    "slots": sorted((s.target_id_type, s.name_display) for s in action.slots),
    "takes": {o.name: take_of(o.data.shape_keys) for o in (head, teeth, eye_l, eye_r, lashes, prop)},
    "rig_take": take_of(found.armature),
    "meshes": summary.meshes, "mouth": summary.mouth_source, "left_at_rest": summary.left_at_rest,
    "values": {o.name: {k.name: [value_at(o, k.name, f) for f in (1, 11, 31)] for k in o.data.shape_keys.key_blocks[1:]}
               for o in (head, teeth, eye_l, lashes, prop)},
}

# 3. the mouth from visemes instead: ARKit mouth shapes at rest, the eyes still blink
for o in (head, teeth, eye_l, eye_r, lashes):
    o.data.shape_keys.animation_data_clear()
for k in head.data.shape_keys.key_blocks:
    k.value = 0.0
chosen = apply.TakeWriter("visemes take", shape_keys=found.blocks, mouth="visemes").write_all(clip)
out["visemes"] = {"meshes": chosen.meshes, "mouth": chosen.mouth_source, "left_at_rest": len(chosen.left_at_rest),
                  "head_values": {k: value_at(head, k, 11) for k in ("jawOpen", "viseme_aa", "eyeBlinkLeft")}}
try:
    apply.TakeWriter("vrm take", shape_keys=found.blocks, mouth="vrm").write_all(clip)
    out["missing_source"] = None
except InputError as error:
    out["missing_source"] = str(error)

# 4. nothing matches: an error naming the meshes, never a silent take
mute = rig("Mute", ["Hips", "Head"])
mesh("Mute_Body", ["Foo", "Bar"], parent=mute, armature=mute)
mesh("Mute_Teeth", ["Baz"], parent=mute, armature=mute)
bare = bpy.data.objects.new("Empty Parent", None); scene.collection.objects.link(bare)
for label, target in (("armature", mute), ("empty", bare)):
    try:
        character.resolve_target(target)
        out[f"no_match_{label}"] = None
    except InputError as error:
        out[f"no_match_{label}"] = str(error)
try:
    apply.TakeWriter("mute", shape_keys=[o.data.shape_keys for o in mute.children], pose_target=apply.PoseTarget(mute, "Head")).write_all(clip)
    out["no_match_writer"] = None
except InputError as error:
    out["no_match_writer"] = str(error)

# 5. an empty parent above a glTF-style import (armature and meshes under one root) is a character
root = bpy.data.objects.new("glTF_root", None); scene.collection.objects.link(root)
inner = rig("Armature.rpm", ["Hips", "Neck", "Head"])
inner.parent = root
mesh("Wolf3D_Head", ["jawOpen", "viseme_aa"], parent=inner, armature=inner)
mesh("Wolf3D_Teeth", ["jawOpen", "viseme_aa"], parent=inner, armature=inner)
rooted = character.resolve_target(root)
out["empty_root"] = {"meshes": rooted.meshes, "armature": rooted.armature.name, "bone": character.find_head_bone(rooted.armature)}

# 6. VRM presets through the VRM add-on's data (simulated: PropertyGroups with its property names)
P = bpy.props
class MeshObject(bpy.types.PropertyGroup):
    mesh_object_name: P.StringProperty()
class BoneRef(bpy.types.PropertyGroup):
    bone_name: P.StringProperty()
class Vrm0Bind(bpy.types.PropertyGroup):
    mesh: P.PointerProperty(type=MeshObject)
    index: P.StringProperty()
    weight: P.FloatProperty(default=1.0)
class Vrm0Group(bpy.types.PropertyGroup):
    preset_name: P.StringProperty()
    binds: P.CollectionProperty(type=Vrm0Bind)
    is_binary: P.BoolProperty()
class Vrm0Master(bpy.types.PropertyGroup):
    blend_shape_groups: P.CollectionProperty(type=Vrm0Group)
class Vrm0(bpy.types.PropertyGroup):
    blend_shape_master: P.PointerProperty(type=Vrm0Master)
class Vrm1Bind(bpy.types.PropertyGroup):
    node: P.PointerProperty(type=MeshObject)
    index: P.StringProperty()
    weight: P.FloatProperty(default=1.0)
class Vrm1Expression(bpy.types.PropertyGroup):
    morph_target_binds: P.CollectionProperty(type=Vrm1Bind)
    is_binary: P.BoolProperty()
preset_names = ("happy", "angry", "sad", "relaxed", "surprised", "neutral", "aa", "ih", "ou", "ee", "oh",
                "blink", "blink_left", "blink_right", "look_up", "look_down", "look_left", "look_right")
Vrm1Preset = type("Vrm1Preset", (bpy.types.PropertyGroup,), {"__annotations__": {p: P.PointerProperty(type=Vrm1Expression) for p in preset_names}})
class Vrm1Expressions(bpy.types.PropertyGroup):
    preset: P.PointerProperty(type=Vrm1Preset)
class HumanBone(bpy.types.PropertyGroup):
    node: P.PointerProperty(type=BoneRef)
class HumanBones(bpy.types.PropertyGroup):
    head: P.PointerProperty(type=HumanBone)
class Humanoid(bpy.types.PropertyGroup):
    human_bones: P.PointerProperty(type=HumanBones)
class Vrm1(bpy.types.PropertyGroup):
    expressions: P.PointerProperty(type=Vrm1Expressions)
    humanoid: P.PointerProperty(type=Humanoid)
class Extension(bpy.types.PropertyGroup):
    vrm0: P.PointerProperty(type=Vrm0)
    vrm1: P.PointerProperty(type=Vrm1)
for cls in (MeshObject, BoneRef, Vrm0Bind, Vrm0Group, Vrm0Master, Vrm0, Vrm1Bind, Vrm1Expression, Vrm1Preset,
            Vrm1Expressions, HumanBone, HumanBones, Humanoid, Vrm1, Extension):
    bpy.utils.register_class(cls)
bpy.types.Armature.vrm_addon_extension = P.PointerProperty(type=Extension)

vroid_keys = ["Fcl_MTH_A", "Fcl_MTH_I", "Fcl_EYE_Close", "Fcl_EYE_Close_L", "Fcl_EYE_Close_R", "Fcl_ALL_Joy", "Fcl_BRW_Fun"]
vrm1_rig = rig("VRM1", ["J_Bip_C_Neck", "J_Bip_C_Head", "HeadCtrl"])
vrm1_face = mesh("Face", vroid_keys, parent=vrm1_rig, armature=vrm1_rig)
vrm1_rig.data.vrm_addon_extension.vrm1.humanoid.human_bones.head.node.bone_name = "J_Bip_C_Head"
vrm1_binds = (("aa", "Fcl_MTH_A", 1.0), ("ih", "Fcl_MTH_I", 0.5), ("blink", "Fcl_EYE_Close", 1.0), ("happy", "Fcl_ALL_Joy", 0.8))
for preset, key, weight in vrm1_binds:
    bind = getattr(vrm1_rig.data.vrm_addon_extension.vrm1.expressions.preset, preset).morph_target_binds.add()
    bind.node.mesh_object_name, bind.index, bind.weight = "Face", key, weight
vrm1_rig.data.vrm_addon_extension.vrm1.expressions.preset.happy.is_binary = True  # on above half, else off
vrm0_rig = rig("VRM0", ["J_Bip_C_Neck", "J_Bip_C_Head"])
vrm0_face = mesh("Face0", vroid_keys, parent=vrm0_rig, armature=vrm0_rig)
for preset, key, weight in (("a", "Fcl_MTH_A", 1.0), ("i", "Fcl_MTH_I", 0.5), ("blink", "Fcl_EYE_Close", 1.0), ("joy", "Fcl_ALL_Joy", 0.8),
                            ("blink_l", "Fcl_EYE_Close_L", 1.0), ("blink_r", "Fcl_EYE_Close_R", 1.0)):
    group = vrm0_rig.data.vrm_addon_extension.vrm0.blend_shape_master.blend_shape_groups.add()
    group.preset_name = preset
    bind = group.binds.add()
    bind.mesh.mesh_object_name, bind.index, bind.weight = "Face0", key, weight
out["vrm"] = {}
for label, vrm_rig, face in (("vrm1", vrm1_rig, vrm1_face), ("vrm0", vrm0_rig, vrm0_face)):
    resolved = character.resolve_target(vrm_rig)
    s = apply.TakeWriter(f"{label} take", shape_keys=resolved.blocks, preset_binds=resolved.preset_binds).write_all(clip)
    out["vrm"][label] = {
        "bone": character.find_head_bone(vrm_rig), "binds": resolved.preset_binds, "meshes": s.meshes, "mouth": s.mouth_source,
        "values": {k: [value_at(face, k, f) for f in (1, 11, 31)] for k in vroid_keys},
    }

# 7. the panel's Generate reads the Target as a character (build_job: no sidecar is contacted)
import wave
from talkbridge_addon import operators, properties
from talkbridge.core.errors import TalkbridgeError
properties.register()
speech = sys.argv[1] + "/speech.wav"
with wave.open(speech, "wb") as w:
    w.setnchannels(1); w.setsampwidth(2); w.setframerate(16000); w.writeframes(b"\0\0" * 16000)
settings = scene.talkbridge
settings.audio, settings.sidecar_mode, settings.address = speech, "REMOTE", "tcp://127.0.0.1:9"
settings.render_frames, settings.engine = False, "lite"
panel = {}
for label, target, mouth in (("armature", body, "AUTO"), ("empty", root, "VISEMES"), ("vrm", vrm0_rig, "AUTO")):
    settings.target, settings.mouth_source, settings.rig, settings.head_bone = target, mouth, None, ""
    job = operators.build_job(bpy.context)
    job.controller.close()  # never started: release its socket so this process can exit
    plan = job.plan
    panel[label] = {"blocks": sorted(apply.key_owner_names(bpy.data.shape_keys[n])[0] for n in plan.shape_keys_names),
                    "rig": plan.rig_name, "bone": plan.bone, "mouth": plan.mouth_source, "binds": sorted(plan.preset_binds)}
rates = {}
settings.target = body
for engine in ("audio2face", "lite"):  # a motion-only audio2face take comes at the scene's own rate
    scene.render.fps, scene.render.fps_base = 30, 1.0
    settings.engine = engine
    job = operators.build_job(bpy.context)
    job.controller.close()
    rates[engine] = {"asked": job.controller.request.options.fps, "step": job.plan.frame_step, "scene": scene.render.fps}
settings.engine, settings.identity = "audio2face", " James "
job = operators.build_job(bpy.context)
job.controller.close()
rates["identity"] = job.controller.request.options.identity
settings.identity = ""
panel["rates"] = rates
settings.engine = "lite"
settings.target = mute
try:
    operators.build_job(bpy.context)
    panel["mute"] = None
except TalkbridgeError as error:
    panel["mute"] = str(error)
out["panel"] = panel
properties.unregister()  # as on disabling the add-on (bpy as a module does not exit with its classes registered)
print("RESULT " + json.dumps(out))
"""


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    return blender_support.run_addon_script(SCRIPT, tmp_path_factory.mktemp("addon-package"), timeout=150)


def _column(results, kind: str, name: str) -> np.ndarray:
    from talkbridge.core.motion import ARKIT_52, OCULUS_VISEMES

    names = ARKIT_52 if kind == "arkit" else OCULUS_VISEMES
    return np.array(results["clip"][kind])[:, list(names).index(name)]


def test_the_head_bone_is_found_by_each_rig_familys_name(results):
    assert results["head_bones"] == {name: name for name in results["head_bones"]}
    assert results["character"]["bone"] == "CC_Base_Head"
    assert results["empty_root"]["bone"] == "Head"
    assert results["vrm"]["vrm1"]["bone"] == "J_Bip_C_Head" and results["vrm"]["vrm0"]["bone"] == "J_Bip_C_Head"


def test_every_mesh_the_armature_deforms_or_parents_is_animated_in_one_action_with_a_slot_each(results):
    c = results["character"]
    meshes = ["CC_Base_Body", "CC_Base_Eye_L", "CC_Base_Eye_R", "CC_Base_Eyelash", "CC_Base_Teeth"]
    assert sorted(results["meshes_looked_at"]) == meshes and "Prop" not in results["meshes_looked_at"]
    assert c["slots"] == sorted([["KEY", name] for name in meshes] + [["OBJECT", "Character"]])
    actions = {take[0] for name, take in c["takes"].items() if name != "Prop"} | {c["rig_take"][0]}
    assert actions == {"character take"} and c["actions_tagged"] == 1
    identifiers = [take[1] for name, take in c["takes"].items() if name != "Prop"]
    assert len(set(identifiers)) == 5  # one slot per shape-key block
    assert c["takes"]["Prop"] is None and set(c["values"]["Prop"]["jawOpen"]) == {0.0}


def test_the_teeth_open_with_the_lips_and_the_eyes_blink(results):
    values = results["character"]["values"]
    jaw = _column(results, "arkit", "jawOpen")[[0, 10, 30]]
    np.testing.assert_allclose(values["CC_Base_Body"]["jawOpen"], jaw, atol=1e-5)
    np.testing.assert_allclose(values["CC_Base_Teeth"]["jawOpen"], jaw, atol=1e-5)
    blink = _column(results, "arkit", "eyeBlinkLeft")[[0, 10, 30]]
    np.testing.assert_allclose(values["CC_Base_Eye_L"]["eyeBlinkLeft"], blink, atol=1e-5)
    np.testing.assert_allclose(values["CC_Base_Eyelash"]["eyeBlinkLeft"], blink, atol=1e-5)


def test_one_mouth_source_drives_the_mouth_and_the_others_stay_at_rest(results):
    c = results["character"]
    assert c["mouth"] == "arkit"  # the head's ARKit mouth is complete
    values = c["values"]
    assert set(values["CC_Base_Body"]["viseme_aa"]) == {0.0} and set(values["CC_Base_Teeth"]["viseme_O"]) == {0.0}
    assert "CC_Base_Teeth: viseme_aa" in c["left_at_rest"] and "CC_Base_Body: viseme_sil" in c["left_at_rest"]
    assert not any(name.startswith("viseme") for name in c["meshes"]["CC_Base_Body"])
    v = results["visemes"]
    assert v["mouth"] == "visemes" and "jawOpen" not in v["meshes"]["CC_Base_Body"]
    assert v["head_values"]["jawOpen"] == 0.0
    np.testing.assert_allclose(v["head_values"]["viseme_aa"], _column(results, "visemes", "viseme_aa")[10], atol=1e-5)
    np.testing.assert_allclose(v["head_values"]["eyeBlinkLeft"], _column(results, "arkit", "eyeBlinkLeft")[10], atol=1e-5)
    assert "mouth source 'vrm'" in results["missing_source"] and "the head has no VRM vowels" in results["missing_source"]


def test_a_character_whose_keys_match_nothing_is_an_error_naming_its_meshes(results):
    message = results["no_match_armature"]
    assert "'Mute'" in message and "Mute_Body" in message and "Mute_Teeth" in message
    assert "Empty Parent" in results["no_match_empty"] and "no shape keys" in results["no_match_empty"]
    writer = results["no_match_writer"]
    assert "none of the shape keys of 'Mute_Body', 'Mute_Teeth' match" in writer or "none of the shape keys of 'Mute_Teeth', 'Mute_Body' match" in writer


def test_an_empty_above_an_imported_character_is_a_character(results):
    root = results["empty_root"]
    assert sorted(root["meshes"]) == ["Wolf3D_Head", "Wolf3D_Teeth"] and root["armature"] == "Armature.rpm"


def test_the_panel_reads_the_target_as_a_character_and_finds_its_head_bone(results):
    panel = results["panel"]
    assert panel["armature"] == {"blocks": ["CC_Base_Body", "CC_Base_Eye_L", "CC_Base_Eye_R", "CC_Base_Eyelash", "CC_Base_Teeth"],
                                 "rig": "Character", "bone": "CC_Base_Head", "mouth": "auto", "binds": []}
    assert panel["empty"] == {"blocks": ["Wolf3D_Head", "Wolf3D_Teeth"], "rig": "Armature.rpm", "bone": "Head",
                              "mouth": "visemes", "binds": []}
    assert panel["vrm"]["bone"] == "J_Bip_C_Head" and len(panel["vrm"]["binds"]) == 1
    assert "Mute_Body" in panel["mute"] and "Mute_Teeth" in panel["mute"]


def test_a_motion_only_audio2face_take_is_made_at_the_scenes_rate(results):
    rates = results["panel"]["rates"]
    assert rates["audio2face"] == {"asked": 30, "step": 1.0, "scene": 30}  # keys on the scene's frames, scene kept
    assert rates["lite"] == {"asked": 25, "step": 1.0, "scene": 25}  # 25 fps motion: the scene is matched to it
    assert rates["identity"] == "James"  # the panel's Identity travels as the job's option


def test_vrm_presets_drive_their_binds_with_their_weights(results):
    aa = _column(results, "visemes", "viseme_aa")[[0, 10, 30]]
    ih = _column(results, "visemes", "viseme_I")[[0, 10, 30]]
    happy = 0.5 * (_column(results, "arkit", "mouthSmileLeft") + _column(results, "arkit", "mouthSmileRight"))[[0, 10, 30]]
    for label in ("vrm1", "vrm0"):
        vrm = results["vrm"][label]
        values = vrm["values"]
        np.testing.assert_allclose(values["Fcl_MTH_A"], aa, atol=1e-5, err_msg=label)
        np.testing.assert_allclose(values["Fcl_MTH_I"], 0.5 * ih, atol=1e-5, err_msg=label)
        # Per-eye blinks drive the eyes and the both-eyes one rests (never each eye twice). In the VRM 1.0
        # model only the both-eyes preset is bound, but VRoid's own names (Fcl_EYE_Close_L/_R) give the
        # per-eye ones, as in the GLB export: an unbound preset is still matched by name.
        assert set(values["Fcl_EYE_Close"]) == {0.0}, label
        np.testing.assert_allclose(values["Fcl_EYE_Close_L"], _column(results, "arkit", "eyeBlinkLeft")[[0, 10, 30]], atol=1e-5)
        np.testing.assert_allclose(values["Fcl_EYE_Close_R"], _column(results, "arkit", "eyeBlinkRight")[[0, 10, 30]], atol=1e-5)
        joy = 0.8 * (happy > 0.5) if label == "vrm1" else 0.8 * happy  # the VRM 1.0 model's happy is binary
        np.testing.assert_allclose(values["Fcl_ALL_Joy"], joy, atol=1e-5, err_msg=label)
        assert set(values["Fcl_BRW_Fun"]) == {0.0}  # bound by no preset
        assert vrm["mouth"] == "vrm"
