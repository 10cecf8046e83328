"""The glTF head writer/reader and the animation exporter, checked by reading the files back."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pygltflib
import pytest

from talkbridge.core.errors import InputError
from talkbridge.core.motion import ARKIT_52
from talkbridge.exporters.gltf import ExportOptions, add_animation, read_accessor, read_head, write_head_glb
from talkbridge.exporters.gltf.glb import read_gltf
from talkbridge.exporters.gltf.pose import (
    quaternion_to_matrix,
    relative_to_first,
    rotation_matrices,
    sadtalker_to_quaternions,
)
from talkbridge.exporters.motion_file import load_motion, save_motion
from tests.heads import arkit_head, synthetic_motion, write_third_party_head


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture()
def head_glb(tmp_path) -> Path:
    return write_head_glb(arkit_head(), tmp_path / "head.glb")


def test_head_round_trips_through_glb(tmp_path):
    head = arkit_head()
    path = write_head_glb(head, tmp_path / "head.glb")
    back = read_head(path)
    np.testing.assert_allclose(back.positions, head.positions, atol=1e-6)
    np.testing.assert_array_equal(back.indices, head.indices)
    assert list(back.morph_targets) == list(head.morph_targets)
    for name, delta in head.morph_targets.items():
        np.testing.assert_allclose(back.morph_targets[name], delta, atol=1e-7)
    np.testing.assert_allclose(back.colors, head.colors, atol=1e-6)


def test_write_head_glb_refuses_to_overwrite(head_glb):
    before = digest(head_glb)
    with pytest.raises(InputError, match="already exists"):
        write_head_glb(arkit_head(), head_glb)
    assert digest(head_glb) == before


def _animation(document: pygltflib.GLTF2, name: str) -> pygltflib.Animation:
    return next(a for a in document.animations if a.name == name)


def test_animation_keys_weights_and_pose_exactly(head_glb, tmp_path):
    motion = synthetic_motion(40)
    out = tmp_path / "out.glb"
    result = add_animation(head_glb, motion, out, ExportOptions(pose_reference="absolute"))
    assert result.head_node == "head" and not result.added_pivot
    document, buffers = read_gltf(out)
    animation = _animation(document, "talkbridge")
    by_path = {c.target.path: animation.samplers[c.sampler] for c in animation.channels}
    times = read_accessor(document, buffers, by_path["weights"].input)[:, 0]
    np.testing.assert_allclose(times, np.arange(40) / 25.0, atol=1e-6)
    assert by_path["weights"].interpolation == "LINEAR"
    names = document.meshes[0].extras["targetNames"]
    weights = read_accessor(document, buffers, by_path["weights"].output).reshape(40, len(names))
    for column, name in enumerate(names):
        np.testing.assert_allclose(weights[:, column], motion.arkit[:, ARKIT_52.index(name)], atol=1e-6)
    quaternions = read_accessor(document, buffers, by_path["rotation"].output)
    np.testing.assert_allclose(quaternion_to_matrix(quaternions), rotation_matrices(motion.pose[:, :3]), atol=1e-5)


def test_pose_sign_conventions_in_gltf_frame():
    forward = np.array([0.0, 0.0, 1.0])
    up = np.array([0.0, 1.0, 0.0])
    pitch, yaw, roll = (quaternion_to_matrix(sadtalker_to_quaternions(a))[0] for a in np.eye(3) * 0.3)
    assert (pitch @ forward)[1] < 0  # pitch > 0 nods down
    assert (yaw @ forward)[0] > 0  # yaw > 0 looks to the subject's left (+X)
    assert (roll @ up)[0] < 0  # roll > 0 tilts the top of the head to the subject's right
    q = relative_to_first(sadtalker_to_quaternions(np.array([[0.2, 0.1, 0.0], [0.3, -0.2, 0.1]])))
    np.testing.assert_allclose(quaternion_to_matrix(q[0]), np.eye(3), atol=1e-12)


def test_third_party_head_keeps_everything_and_reexport_replaces_only_ours(tmp_path):
    source = write_third_party_head(tmp_path)
    files_before = {p.name: digest(p) for p in tmp_path.iterdir()}
    motion = synthetic_motion(30)
    first = add_animation(source, motion, tmp_path / "a.glb")
    assert {p.name: digest(p) for p in tmp_path.iterdir() if p.name in files_before} == files_before
    assert first.added_pivot and first.head_node == "talkbridge_head"
    matched = {m.target: m.channel for m in first.report.matches}
    assert matched["A25_Jaw_Open"] == "jawOpen" and matched["teeth.jaw_open"] == "jawOpen"
    assert {"Breathe_Chest", "Body_Fat", "Muscle_Flex", "Teeth_Forward"} <= set(first.report.unmatched_targets)
    assert sorted(first.animated_nodes) == ["Face", "Teeth", "talkbridge_head"]

    document, buffers = read_gltf(tmp_path / "a.glb")
    assert [a.name for a in document.animations] == ["Idle", "talkbridge"]
    assert document.images[0].uri is None and document.images[0].mimeType == "image/png"
    original = json.loads(source.read_text())
    names = [n.name for n in document.nodes]
    for node in original["nodes"]:
        kept = document.nodes[names.index(node["name"])]
        assert kept.scale == node.get("scale") and kept.mesh == node.get("mesh")
    pivot = document.nodes[names.index("talkbridge_head")]
    assert document.scenes[0].nodes == [names.index("talkbridge_head")]
    offset = document.nodes[pivot.children[0]]
    np.testing.assert_allclose(np.add(pivot.translation, offset.translation), 0.0, atol=1e-9)

    second_motion = synthetic_motion(20)
    second = add_animation(tmp_path / "a.glb", second_motion, tmp_path / "b.glb")
    assert not second.added_pivot and second.head_node == "talkbridge_head"
    document_b, buffers_b = read_gltf(tmp_path / "b.glb")
    assert [a.name for a in document_b.animations] == ["Idle", "talkbridge"]
    assert sum(1 for n in document_b.nodes if n.name == "talkbridge_head") == 1
    ours = _animation(document_b, "talkbridge")
    assert document_b.accessors[ours.samplers[0].input].count == 20
    # Our old keys were dropped, not left behind as dead data: same accessors, a shorter buffer.
    assert len(document_b.accessors) == len(document.accessors)
    floats_per_frame = 1 + 10 + 2 + 4  # time, Face weights, Teeth weights, rotation quaternion
    assert len(buffers[0]) - len(buffers_b[0]) == (30 - 20) * 4 * floats_per_frame
    idle = _animation(document_b, "Idle")
    np.testing.assert_allclose(read_accessor(document_b, buffers_b, idle.samplers[0].output), [[0, 0, 0], [0, 2, 0]])


def test_input_file_is_never_modified_even_when_export_fails(head_glb, tmp_path):
    before = digest(head_glb)
    motion = synthetic_motion(10)
    motion.fps = 30
    with pytest.raises(InputError, match="frame-rate mismatch"):
        add_animation(head_glb, motion, tmp_path / "x.glb", ExportOptions(fps=25))
    assert not (tmp_path / "x.glb").exists()
    add_animation(head_glb, synthetic_motion(10), head_glb, overwrite=True)  # in-place, atomically
    assert digest(head_glb) != before and read_gltf(head_glb)[0].animations


def test_bad_heads_get_clear_errors(tmp_path):
    motion = synthetic_motion(5)
    junk = tmp_path / "junk.glb"
    junk.write_bytes(b"\x00\x01not gltf at all")
    with pytest.raises(InputError, match="not a glTF"):
        add_animation(junk, motion, tmp_path / "o.glb")

    empty = tmp_path / "empty.gltf"
    empty.write_text(json.dumps({"asset": {"version": "2.0"}, "scenes": [{"nodes": []}], "nodes": []}))
    with pytest.raises(InputError, match="no meshes"):
        add_animation(empty, motion, tmp_path / "o.glb")

    old = tmp_path / "old.gltf"
    old.write_text(json.dumps({"asset": {"version": "1.0"}}))
    with pytest.raises(InputError, match="glTF 2.0"):
        add_animation(old, motion, tmp_path / "o.glb")

    source = write_third_party_head(tmp_path)
    content = json.loads(source.read_text())
    for mesh in content["meshes"]:
        mesh.pop("extras")
    unnamed = tmp_path / "unnamed.gltf"
    unnamed.write_text(json.dumps(content))
    with pytest.raises(InputError, match="without names"):
        add_animation(unnamed, motion, tmp_path / "o.glb")

    content = json.loads(source.read_text())
    for mesh in content["meshes"]:
        mesh["primitives"][0]["extras"] = mesh.pop("extras")  # names on the primitive are read too
    on_primitive = tmp_path / "on_primitive.gltf"
    on_primitive.write_text(json.dumps(content))
    assert add_animation(on_primitive, motion, tmp_path / "p.glb").report.matches

    content = json.loads(source.read_text())
    for mesh in content["meshes"]:
        mesh["extras"]["targetNames"] = [f"Sculpt_{i}" for i in range(len(mesh["extras"]["targetNames"]))]
    nothing = tmp_path / "nothing.gltf"
    nothing.write_text(json.dumps(content))
    with pytest.raises(InputError, match="none of the head's morph targets match"):
        add_animation(nothing, motion, tmp_path / "o.glb")
    assert not (tmp_path / "o.glb").exists()


def test_user_animation_with_our_name_is_not_replaced(tmp_path):
    source = write_third_party_head(tmp_path)
    with pytest.raises(InputError, match="did not write"):
        add_animation(source, synthetic_motion(5), tmp_path / "o.glb", ExportOptions(animation_name="Idle"))


def test_motion_file_of_another_version_is_rejected(tmp_path):
    path = save_motion(synthetic_motion(5), tmp_path / "m.motion.npz")
    data = dict(np.load(path))
    data["version"] = np.array(99)
    np.savez(tmp_path / "v99.motion.npz", **data)
    with pytest.raises(InputError, match="version 99"):
        load_motion(tmp_path / "v99.motion.npz")


def test_translation_channel_when_asked(head_glb, tmp_path):
    motion = synthetic_motion(12)
    add_animation(head_glb, motion, tmp_path / "t.glb", ExportOptions(translation_scale=0.1))
    document, buffers = read_gltf(tmp_path / "t.glb")
    animation = _animation(document, "talkbridge")
    sampler = next(animation.samplers[c.sampler] for c in animation.channels if c.target.path == "translation")
    values = read_accessor(document, buffers, sampler.output)
    rest = np.asarray(document.nodes[[n.name for n in document.nodes].index("head")].translation)
    np.testing.assert_allclose(values - rest, (motion.pose[:, 3:6] - motion.pose[:1, 3:6]) * 0.1, atol=1e-6)


@pytest.mark.parametrize(
    "names, expected",
    [
        (["Hips", "Spine", "Neck", "Head", "HeadTop_End"], "Head"),
        (["mixamorig:Hips", "mixamorig:Neck", "mixamorig:Head"], "mixamorig:Head"),
        (["CC_Base_NeckTwist01", "CC_Base_Head", "CC_Base_FacialBone"], "CC_Base_Head"),
        (["root", "Forehead_ctrl", "spine"], None),
    ],
)
def test_head_joint_is_found_by_name(names, expected):
    from talkbridge.exporters.gltf import find_head_node

    document = pygltflib.GLTF2(nodes=[pygltflib.Node(name=n) for n in names])
    found = find_head_node(document)
    assert (None if found is None else names[found]) == expected
    with pytest.raises(InputError, match="no node named 'Skull'"):
        find_head_node(document, "Skull")


def test_head_node_given_as_matrix_is_animated_as_trs(tmp_path):
    source = write_third_party_head(tmp_path)
    content = json.loads(source.read_text())
    root = content["nodes"][0]
    root.pop("scale")
    angle = 0.4
    c, s = np.cos(angle), np.sin(angle)
    matrix = np.array([[c * 0.01, 0, s * 0.01, 0.1], [0, 0.01, 0, 0.2], [-s * 0.01, 0, c * 0.01, 0.3], [0, 0, 0, 1]])
    root["matrix"] = [float(v) for v in matrix.T.reshape(-1)]
    path = tmp_path / "matrix.gltf"
    path.write_text(json.dumps(content))
    add_animation(path, synthetic_motion(5), tmp_path / "m.glb", ExportOptions(head_node="Character_Root"))
    document, _ = read_gltf(tmp_path / "m.glb")
    node = document.nodes[0]
    assert node.matrix is None
    from talkbridge.exporters.gltf.document import local_matrix

    np.testing.assert_allclose(local_matrix(node), matrix, atol=1e-9)


def test_vrm_expression_bindings_drive_unmatched_targets(tmp_path):
    source = write_third_party_head(tmp_path)
    content = json.loads(source.read_text())
    names = content["meshes"][0]["extras"]["targetNames"]
    names[names.index("Body_Fat")] = "Fcl_MTH_A"
    content["extensionsUsed"] = ["VRMC_vrm"]
    content["extensions"] = {"VRMC_vrm": {"specVersion": "1.0", "expressions": {"preset": {
        "aa": {"morphTargetBinds": [{"node": 1, "index": names.index("Fcl_MTH_A"), "weight": 0.5}]}}}}}
    path = tmp_path / "avatar.gltf"
    path.write_text(json.dumps(content))
    motion = synthetic_motion(8)
    result = add_animation(path, motion, tmp_path / "avatar.glb")
    bound = result.report.channel_for["Fcl_MTH_A"]
    assert (bound.channel, bound.how, bound.scale) == ("aa", "vrm binding", 0.5)
    document, buffers = read_gltf(tmp_path / "avatar.glb")
    assert document.extensions["VRMC_vrm"]["expressions"]["preset"]["aa"]
    animation = _animation(document, "talkbridge")
    face = next(animation.samplers[c.sampler] for c in animation.channels if c.target.node == 1 and c.target.path == "weights")
    weights = read_accessor(document, buffers, face.output).reshape(8, len(names))
    np.testing.assert_allclose(weights[:, names.index("Fcl_MTH_A")], 0.5 * motion.visemes[:, 10], atol=1e-6)


def test_pose_is_applied_in_scene_frame_for_rotated_rigs(tmp_path):
    """A Z-up rig (root turned -90 degrees about X) with a head bone in its own odd orientation."""
    from talkbridge.exporters.gltf.document import world_matrices
    from talkbridge.exporters.gltf.pose import matrix_to_quaternion

    source = write_third_party_head(tmp_path)
    content = json.loads(source.read_text())
    root_rotation = matrix_to_quaternion(rotation_matrices([[-np.pi / 2, 0, 0]])[0])
    bone_rotation = matrix_to_quaternion(rotation_matrices([[0.3, -0.7, 1.1]])[0])
    content["nodes"][0]["rotation"] = [float(v) for v in root_rotation]
    content["nodes"].append({"name": "Head", "rotation": [float(v) for v in bone_rotation], "translation": [0, 0, 150.0]})
    content["nodes"][0]["children"].append(len(content["nodes"]) - 1)
    path = tmp_path / "zup.gltf"
    path.write_text(json.dumps(content))
    motion = synthetic_motion(20)
    result = add_animation(path, motion, tmp_path / "zup.glb", ExportOptions(pose_reference="absolute"))
    assert result.head_node == "Head" and not result.added_pivot

    document, buffers = read_gltf(tmp_path / "zup.glb")
    head_index = [n.name for n in document.nodes].index("Head")
    rest_world = world_matrices(document)[head_index][:3, :3]
    animation = _animation(document, "talkbridge")
    sampler = next(animation.samplers[c.sampler] for c in animation.channels if c.target.node == head_index)
    keys = read_accessor(document, buffers, sampler.output)
    expected_pose = rotation_matrices(motion.pose[:, :3])
    for frame in (0, 7, 19):
        document.nodes[head_index].rotation = [float(v) for v in keys[frame]]
        world = world_matrices(document)[head_index][:3, :3]
        np.testing.assert_allclose(world, expected_pose[frame] @ rest_world, atol=1e-6)
