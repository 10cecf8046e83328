"""Jaw and eye joints in the glTF export: audio2face's ``jaw`` and ``eyes`` channels become joint keys.

The head is the tests' skinned ARKit head with jaw and eye joints added under its rig family's
names; the motion is the synthetic clip plus audio2face-like channels with known values. Each
joint's keyed local rotation, carried through its parents' rest frames, must turn it in the scene
by exactly the rotation the channel describes.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pygltflib
import pytest

from talkbridge.core.head_mesh import HeadJoint
from talkbridge.exporters import rig_joints
from talkbridge.exporters.gltf import ExportOptions, add_animation, read_accessor, write_head_glb
from talkbridge.exporters.gltf.glb import read_gltf, write_glb
from talkbridge.exporters.gltf.document import merge_buffers, parents, world_matrices
from talkbridge.exporters.gltf.pose import quaternion_to_matrix
from tests.heads import arkit_head, synthetic_motion
from tests.test_export_validation import run_validator

FRAMES = 30


def _rx(a: float) -> np.ndarray:
    return np.array([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]])


def _ry(a: float) -> np.ndarray:
    return np.array([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])


def a2f_motion(frames: int = FRAMES):
    """The synthetic clip plus eye angles and a jaw that opens about x and slides forward."""
    motion = synthetic_motion(frames)
    t = np.arange(frames) / motion.fps
    eyes = np.stack([0.2 * np.sin(3 * t), -0.3 * np.cos(2 * t), 0.1 + 0.15 * np.sin(t), 0.25 * np.sin(4 * t)], 1)
    jaw = np.tile(np.eye(4), (frames, 1, 1))
    for k in range(frames):
        jaw[k, :3, :3] = _ry(0.05 * np.sin(2 * t[k])) @ _rx(0.3 * (1 + np.sin(5 * t[k])) / 2)
        jaw[k, :3, 3] = [0.0, -0.1 * k / frames, 0.2 * k / frames]
    return dataclasses.replace(motion, eyes=eyes.astype(np.float32), jaw=jaw.astype(np.float32))


def rigged_head(tmp_path, names=("CC_Base_JawRoot", "CC_Base_L_Eye", "CC_Base_R_Eye"), turn_joints=False):
    head = arkit_head()
    head.joints = head.joints + [
        HeadJoint(names[0], 1, (0.0, -0.02, 0.03)),
        HeadJoint(names[1], 1, (0.035, 0.05, 0.08)),
        HeadJoint(names[2], 1, (-0.035, 0.05, 0.08)),
    ]
    path = write_head_glb(head, tmp_path / "head.glb")
    if turn_joints:
        # Rest rotations on the head and the joints, as real rigs have (bones along +Y, Z-up DCCs):
        # the keys must undo them so the motion still means the scene-frame turn.
        document, buffers = read_gltf(path)
        blob = merge_buffers(document, buffers, path)
        turns = {"head": [math.sin(0.6), 0.0, 0.0, math.cos(0.6)], names[0]: [0.0, math.sin(-0.4), 0.0, math.cos(-0.4)],
                 names[1]: [0.0, 0.0, math.sin(0.3), math.cos(0.3)]}
        for node in document.nodes:
            if node.name in turns:
                node.rotation = turns[node.name]
        path = write_glb(document, blob, tmp_path / "turned.glb")
    return path


def keyed(out, node_name: str, path_name: str = "rotation") -> tuple[np.ndarray, pygltflib.GLTF2, int]:
    document, buffers = read_gltf(out)
    index = next(i for i, n in enumerate(document.nodes) if n.name == node_name)
    animation = next(a for a in document.animations if a.name == "talkbridge")
    samplers = [animation.samplers[c.sampler] for c in animation.channels if c.target.node == index and c.target.path == path_name]
    assert len(samplers) == 1, f"{node_name} {path_name}: {len(samplers)} channels"
    return read_accessor(document, buffers, samplers[0].output), document, index


def scene_turn(document: pygltflib.GLTF2, index: int, local_quaternions: np.ndarray) -> np.ndarray:
    """(T, 3, 3) scene-frame rotation of node ``index`` keyed with ``local_quaternions``, relative to its rest."""
    parent_world = world_matrices(document)[parents(document)[index]][:3, :3]
    node = document.nodes[index]
    rest = quaternion_to_matrix(np.asarray(node.rotation or [0, 0, 0, 1], np.float64))
    rest_world = parent_world @ rest
    return np.einsum("ij,tjk,kl->til", parent_world, quaternion_to_matrix(local_quaternions), np.linalg.inv(rest_world))


@pytest.mark.parametrize("turn_joints", [False, True])
def test_jaw_and_eye_joints_turn_by_the_channels(tmp_path, turn_joints):
    motion = a2f_motion()
    head = rigged_head(tmp_path, turn_joints=turn_joints)
    out = tmp_path / "out.glb"
    result = add_animation(head, motion, out, ExportOptions(animate_pose=False))
    assert {"CC_Base_JawRoot", "CC_Base_L_Eye", "CC_Base_R_Eye"} <= set(result.animated_nodes)

    keys, document, index = keyed(out, "CC_Base_JawRoot")
    np.testing.assert_allclose(scene_turn(document, index, keys), motion.jaw[:, :3, :3], atol=2e-5)
    for name, (pitch, yaw) in (("CC_Base_L_Eye", (0, 1)), ("CC_Base_R_Eye", (2, 3))):
        keys, document, index = keyed(out, name)
        expected = np.array([_ry(y) @ _rx(p) for p, y in zip(motion.eyes[:, pitch], motion.eyes[:, yaw])])
        np.testing.assert_allclose(scene_turn(document, index, keys), expected, atol=2e-5)
    # No translation unless asked: the jaw's translation is in the engine model's units.
    animation = next(a for a in document.animations if a.name == "talkbridge")
    assert not any(c.target.path == "translation" for c in animation.channels)


def test_eye_signs_look_down_and_to_the_subjects_left():
    eyes = np.array([[0.3, 0.0, 0.0, 0.4]])
    turns = rig_joints.eye_rotations(eyes)
    forward = np.array([0.0, 0.0, 1.0])
    assert (quaternion_to_matrix(turns["leftEye"][0]) @ forward)[1] < -0.2  # pitch > 0 looks down (-Y)
    assert (quaternion_to_matrix(turns["rightEye"][0]) @ forward)[0] > 0.3  # yaw > 0 towards +X, the subject's left


def test_jaw_translation_when_asked(tmp_path):
    motion = a2f_motion()
    out = tmp_path / "out.glb"
    add_animation(rigged_head(tmp_path), motion, out, ExportOptions(animate_pose=False, jaw_translation_scale=0.01))
    values, document, index = keyed(out, "CC_Base_JawRoot", "translation")
    np.testing.assert_allclose(values - np.array([0.0, -0.02, 0.03]), motion.jaw[:, :3, 3] * 0.01, atol=1e-6)


@pytest.mark.parametrize("names", [
    ("FACIAL_C_Jaw", "FACIAL_L_Eye", "FACIAL_R_Eye"),  # MetaHuman
    ("jaw", "J_Adj_L_FaceEye", "J_Adj_R_FaceEye"),  # VRoid eyes
    ("Jaw", "LeftEye", "RightEye"),  # humanoid / Mixamo-style
    ("teeth_lower", "eye_L", "eye_R"),
])
def test_rig_families_find_their_joints(names):
    found = rig_joints.find_rig_joints(["root", "head", "jaw_end_ctrl", *names])
    assert found == {"jaw": 3, "leftEye": 4, "rightEye": 5}


def test_left_and_right_are_never_swapped_and_lookalikes_are_not_taken():
    assert rig_joints.find_rig_joints(["RightEye", "LeftEye"]) == {"leftEye": 1, "rightEye": 0}
    assert rig_joints.find_rig_joints(["jawline_mesh", "eyebrow_L", "Eyelid_L", "head"]) == {}
    assert rig_joints.find_rig_joints(["EYE_L", "JAW"]) == {"leftEye": 0, "jaw": 1}  # case-insensitive


def test_head_without_joints_or_motion_without_channels_is_unchanged(tmp_path):
    plain = write_head_glb(arkit_head(), tmp_path / "plain.glb")
    with_channels = add_animation(plain, a2f_motion(), tmp_path / "a.glb")
    without = add_animation(plain, synthetic_motion(FRAMES), tmp_path / "b.glb")
    assert with_channels.animated_nodes == without.animated_nodes == ["test_head", "head"]
    rigged = add_animation(rigged_head(tmp_path), synthetic_motion(FRAMES), tmp_path / "c.glb")
    assert rigged.animated_nodes == ["test_head", "head"]  # joints present, but no jaw/eyes channels


def test_validator_accepts_the_joint_animation(tmp_path):
    out = tmp_path / "out.glb"
    add_animation(rigged_head(tmp_path), a2f_motion(), out, ExportOptions(jaw_translation_scale=0.01))
    report = run_validator([out])[str(out)]
    assert report["errors"] == 0 and report["warnings"] == 0, report["messages"]
