"""Jaw and eye bones in the add-on's take (pip bpy 4.5 or 5.x, in a subprocess).

An armature with a rolled head bone and rolled jaw/eye bones under Character Creator's names (one
eye in an Euler mode) gets a take from a clip with audio2face-like ``jaw`` and ``eyes`` channels.
At sampled frames each bone's evaluated rotation, taken relative to its rest and to the head's own
turn, must be the channel's rotation carried into Blender's Z-up rig frame. A rig without those
bones, and a clip without those channels, key nothing more than before.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests import blender_support

pytestmark = [pytest.mark.blender, pytest.mark.timeout(180)]

SAMPLES = (0, 7, 23)

SCRIPT = r"""
import json, math, sys
import numpy as np
import bpy

sys.path.insert(0, sys.argv[1])
from talkbridge_addon import apply
from talkbridge.core.motion import MotionChunk

bpy.ops.wm.read_homefile(use_empty=True)
scene = bpy.context.scene
out = {}

def rig(name, bones):
    data = bpy.data.armatures.new(name)
    obj = bpy.data.objects.new(name, data)
    scene.collection.objects.link(obj)
    bpy.context.view_layer.objects.active = obj
    bpy.ops.object.mode_set(mode="EDIT")
    made = {}
    for bone_name, parent, head, tail, roll in bones:
        bone = data.edit_bones.new(bone_name)
        bone.head, bone.tail, bone.roll = head, tail, roll
        if parent:
            bone.parent = made[parent]
        made[bone_name] = bone
    bpy.ops.object.mode_set(mode="OBJECT")
    return obj

def rx(a):
    return np.array([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]])

def ry(a):
    return np.array([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])

n = 30
t = np.arange(n) / 25.0
eyes = np.stack([0.2 * np.sin(3 * t), -0.3 * np.cos(2 * t), 0.1 + 0.15 * np.sin(t), 0.25 * np.sin(4 * t)], 1)
jaw = np.tile(np.eye(4), (n, 1, 1))
for k in range(n):
    jaw[k, :3, :3] = ry(0.05 * np.sin(2 * t[k])) @ rx(0.3 * (1 + np.sin(5 * t[k])) / 2)
    jaw[k, :3, 3] = [0.0, -0.1 * k / n, 0.2 * k / n]
pose = np.zeros((n, 6)); pose[:, 0] = 0.2 * np.sin(2 * t); pose[:, 1] = 0.3 * np.cos(t)
base = {"pose": pose.astype(np.float32), "blink": np.zeros(n, np.float32)}
full = dict(base, eyes=eyes.astype(np.float32), jaw=jaw.astype(np.float32))

bones = [("CC_Base_Head", None, (0, 0, 1.6), (0, 0, 1.8), 0.4),
         ("CC_Base_JawRoot", "CC_Base_Head", (0, -0.02, 1.62), (0, -0.1, 1.58), 1.1),
         ("CC_Base_L_Eye", "CC_Base_Head", (0.03, -0.08, 1.7), (0.03, -0.1, 1.7), -0.5),
         ("CC_Base_R_Eye", "CC_Base_Head", (-0.03, -0.08, 1.7), (-0.03, -0.1, 1.7), 0.2)]
body = rig("Character", bones)
body.pose.bones["CC_Base_R_Eye"].rotation_mode = "YXZ"
summary = apply.TakeWriter("joints", pose_target=apply.PoseTarget(body, "CC_Base_Head")).write_all(MotionChunk.from_arrays(0, full))
out["joint_bones"] = summary.joint_bones
frames = {}
for frame in %(samples)s:
    scene.frame_set(1 + frame)
    rows = {}
    for name in ("CC_Base_Head", "CC_Base_JawRoot", "CC_Base_L_Eye", "CC_Base_R_Eye"):
        posed = np.array(body.pose.bones[name].matrix.to_3x3())
        rest = np.array(body.data.bones[name].matrix_local.to_3x3())
        rows[name] = (posed @ rest.T).tolist()  # the bone's turn in armature space since rest
    frames[frame] = rows
out["frames"] = frames
out["eyes"] = eyes.tolist(); out["jaw"] = jaw.tolist()

plain = rig("Plain", bones[:1])
summary = apply.TakeWriter("plain", pose_target=apply.PoseTarget(plain, "CC_Base_Head")).write_all(MotionChunk.from_arrays(0, full))
out["plain"] = {"joint_bones": summary.joint_bones, "paths": sorted({fc.data_path for layer in bpy.data.actions[summary.action].layers
                for strip in layer.strips for bag in strip.channelbags for fc in bag.fcurves})}
summary = apply.TakeWriter("no channels", pose_target=apply.PoseTarget(body, "CC_Base_Head")).write_all(MotionChunk.from_arrays(0, base))
out["no_channels"] = summary.joint_bones
print("RESULT " + json.dumps(out))
"""


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    return blender_support.run_addon_script(SCRIPT % {"samples": list(SAMPLES)}, tmp_path_factory.mktemp("addon-package"))


def _rx(a: float) -> np.ndarray:
    return np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])


def _ry(a: float) -> np.ndarray:
    return np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])


GLTF_TO_BLENDER = _rx(np.pi / 2)  # +Y-up head frame -> Blender's +Z up (the face looks down -Y)


def test_jaw_and_eye_bones_turn_by_the_channels_on_top_of_the_head(results):
    assert sorted(results["joint_bones"]) == ["CC_Base_JawRoot", "CC_Base_L_Eye", "CC_Base_R_Eye"]
    eyes = np.array(results["eyes"])
    jaw = np.array(results["jaw"])
    for frame in SAMPLES:
        rows = {name: np.array(m) for name, m in results["frames"][str(frame)].items()}
        head_turn = rows["CC_Base_Head"]
        assert frame == 0 or not np.allclose(head_turn, np.eye(3), atol=1e-3)  # the head moves (from frame 0) and carries them
        expected = {
            "CC_Base_JawRoot": jaw[frame, :3, :3],
            "CC_Base_L_Eye": _ry(eyes[frame, 1]) @ _rx(eyes[frame, 0]),
            "CC_Base_R_Eye": _ry(eyes[frame, 3]) @ _rx(eyes[frame, 2]),
        }
        for name, turn in expected.items():
            own = head_turn.T @ rows[name]
            np.testing.assert_allclose(own, GLTF_TO_BLENDER @ turn @ GLTF_TO_BLENDER.T, atol=2e-4, err_msg=f"{name} at {frame}")


def test_a_rig_without_those_bones_or_a_clip_without_those_channels_keys_only_the_head(results):
    assert results["plain"]["joint_bones"] == []
    assert results["plain"]["paths"] == ['pose.bones["CC_Base_Head"].rotation_quaternion']
    assert results["no_channels"] == []
