"""addon/apply.py on real Blender data (pip bpy, 4.5 or 5.x, in a subprocess): streaming, budgets, Euler
targets under a rotated parent, retakes and the artist's action, frame-rate mapping, bad rigs.

The add-on package is imported from ``addon/`` under the name ``talkbridge_addon``; the
installed-extension path is covered by ``tests/test_addon_blender.py``.
"""

from __future__ import annotations


import numpy as np
import pytest

from tests import blender_support

pytestmark = [pytest.mark.blender, pytest.mark.timeout(180)]

SCRIPT = r"""
import json, sys, warnings
import numpy as np
import bpy

deprecations = []  # Blender's API deprecations ("... is expected to be removed in Blender 6.0") and our own
warnings.simplefilter("always", DeprecationWarning)
warnings.showwarning = lambda message, category, filename, lineno, *rest: deprecations.append(f"{filename}:{lineno}: {message}")

sys.path.insert(0, sys.argv[1])  # holds talkbridge_addon -> the checkout's addon/ (a plain package import)
from talkbridge_addon import apply
from talkbridge.core.errors import InputError
from talkbridge.core.motion import ARKIT_52, MotionChunk

bpy.ops.wm.read_homefile(use_empty=True)
out = {}

def face(name, keys):
    mesh = bpy.data.meshes.new(name)
    mesh.from_pydata([(0, 0, 0), (1, 0, 0), (0, 1, 0)], [], [(0, 1, 2)])
    obj = bpy.data.objects.new(name, mesh)
    bpy.context.scene.collection.objects.link(obj)
    obj.shape_key_add(name="Basis")
    for k in keys:
        obj.shape_key_add(name=k)
    return obj

def curves(action):
    rows = {}
    for layer in action.layers:
        for strip in layer.strips:
            for bag in strip.channelbags:
                for fc in bag.fcurves:
                    co = np.zeros(2 * len(fc.keyframe_points), np.float32)
                    fc.keyframe_points.foreach_get("co", co)
                    rows[f"{fc.data_path}[{fc.array_index}]"] = co.reshape(-1, 2).tolist()
    return rows

rng = np.random.default_rng(0)
n = 1000
t = np.arange(n)[:, None]
clip = {"pose": (0.3 * np.sin(0.02 * t + np.arange(6))).astype(np.float32),
        "blink": rng.random(n).astype(np.float32),
        "arkit": rng.random((n, 52)).astype(np.float32)}

# 1. streamed chunks with streaming flushes == one shot
a, b = face("A", ARKIT_52), face("B", ARKIT_52)
one = apply.TakeWriter("one", shape_keys=a.data.shape_keys)
one.write_all(MotionChunk.from_arrays(0, clip))
streamed = apply.TakeWriter("streamed", shape_keys=b.data.shape_keys)
visible = []
for start in range(0, n, 150):
    streamed.add_chunk(MotionChunk.from_arrays(start, {k: v[start:start + 150] for k, v in clip.items()}))
    streamed.flush(final=False)
    visible.append(len(curves(streamed.action)['key_blocks["jawOpen"].value[0]']))
streamed.flush()
out["stream_equal"] = curves(one.action) == {k: v for k, v in curves(streamed.action).items()}
out["visible_during_stream"] = visible

# 2. a zero budget writes at most one curve per call, and repeated calls finish
c = face("C", ARKIT_52)
budgeted = apply.TakeWriter("budgeted", shape_keys=c.data.shape_keys)
budgeted.add_chunk(MotionChunk.from_arrays(0, clip))
calls = 1
while not budgeted.flush(budget_s=0.0):
    calls += 1
out["budget_calls"] = calls
out["budget_equal"] = curves(budgeted.action) == curves(one.action)

# 3. an Euler-mode object under a parent turned 90 degrees about Z, at 24 fps
scene = bpy.context.scene
scene.render.fps, scene.render.fps_base = 24, 1.0
parent = bpy.data.objects.new("parent", None); scene.collection.objects.link(parent)
parent.rotation_euler = (0.0, 0.0, np.pi / 2)
head = bpy.data.objects.new("head", None); scene.collection.objects.link(head)
head.parent = parent
head.rotation_mode = "XYZ"
head.rotation_euler = (0.1, 0.0, 0.0)
bpy.context.view_layer.update()
rest_world = np.array(head.matrix_world)[:3, :3]
euler = apply.TakeWriter("euler", pose_target=apply.PoseTarget(head), start_frame=1, frame_step=apply.frame_step_for(scene))
euler.write_all(MotionChunk.from_arrays(0, clip))
rows = curves(euler.action)
out["euler_paths"] = sorted(rows)
out["euler_frames"] = [rows["rotation_euler[0]"][i][0] for i in (0, 1, 25)]
observed = []
for i in (0, 250, 600):
    scene.frame_set(1 + i * 24 // 25) if (i * 24) % 25 == 0 else scene.frame_set(int(1 + i * 24 / 25), subframe=(1 + i * 24 / 25) % 1)
    observed.append((np.array(head.matrix_world)[:3, :3] @ np.linalg.inv(rest_world)).tolist())
out["euler_observed"] = observed
out["euler_samples"] = [0, 250, 600]

# 4. the artist's action is kept once; a retake replaces our own previous take
d = face("D", ["jawOpen", "Custom"])
block = d.data.shape_keys.key_blocks["Custom"]
block.value = 0.5; block.keyframe_insert("value", frame=1)
user_action = d.data.shape_keys.animation_data.action.name
first = apply.TakeWriter("take 1", shape_keys=d.data.shape_keys); first.write_all(MotionChunk.from_arrays(0, clip))
second = apply.TakeWriter("take 2", shape_keys=d.data.shape_keys); second.write_all(MotionChunk.from_arrays(0, clip))
anim = d.data.shape_keys.animation_data
out["retake"] = {
    "active": anim.action.name, "tracks": [[tr.name, [s.action.name for s in tr.strips]] for tr in anim.nla_tracks],
    "first_kept": first.action.name in bpy.data.actions and bpy.data.actions[first.action.name].use_fake_user,
    "user_action": user_action, "matched": second.summary.shape_keys,
    "left_alone": second.summary.report.unmatched_targets,
}

# 4b. the action renamed, a curve deleted and the action removed while a take streams
g = face("G", ARKIT_52)
live = apply.TakeWriter("live", shape_keys=g.data.shape_keys)
live.add_chunk(MotionChunk.from_arrays(0, {k: v[:400] for k, v in clip.items()}))
live.flush(final=False)
live.action.name = "renamed by the artist"
bag = live.action.layers[0].strips[0].channelbags[0]
bag.fcurves.remove(bag.fcurves.find('key_blocks["jawOpen"].value', index=0))
live.add_chunk(MotionChunk.from_arrays(400, {k: v[400:] for k, v in clip.items()}))
live.flush()
out["survives_rename_and_lost_curve"] = curves(live.action) == curves(one.action) and live.action_name == "renamed by the artist"
bpy.data.actions.remove(live.action)
live.add_chunk(MotionChunk.from_arrays(1000, {k: v[:10] for k, v in clip.items()}))
try:
    live.flush()
    out["action_removed"] = None
except Exception as error:
    out["action_removed"] = [type(error).__name__, str(error)]

# 6. head movement: an object under the turned parent and a tilted, rolled bone both move by the
#    clip's translation carried into Blender's frame, at 0.5 scene units per 3DMM unit
scene.render.fps = 25
mover = bpy.data.objects.new("mover", None); scene.collection.objects.link(mover)
mover.parent = parent
mover.location = (0.2, -0.1, 0.3)
arm_data = bpy.data.armatures.new("rig")
rig = bpy.data.objects.new("rig", arm_data); scene.collection.objects.link(rig)
bpy.context.view_layer.objects.active = rig
bpy.ops.object.mode_set(mode="EDIT")
bone = arm_data.edit_bones.new("head")
bone.head, bone.tail, bone.roll = (0.0, 0.1, 1.0), (0.3, 0.4, 1.5), 0.7
bpy.ops.object.mode_set(mode="OBJECT")
bpy.context.view_layer.update()
def world_positions(writer_target, sample_frames):
    rows = []
    for frame in sample_frames:
        scene.frame_set(1 + frame)
        if writer_target == "bone":
            rows.append(list(rig.matrix_world @ rig.pose.bones["head"].head))
        else:
            rows.append(list(mover.matrix_world.translation))
    return rows
samples = [0, 100, 321]
moved = {}
for kind, target in (("object", apply.PoseTarget(mover)), ("bone", apply.PoseTarget(rig, "head"))):
    writer = apply.TakeWriter(f"move {kind}", pose_target=target, head_movement=0.5)
    for start in range(0, n, 300):
        writer.add_chunk(MotionChunk.from_arrays(start, {k: v[start:start + 300] for k, v in clip.items()}))
    writer.flush()
    moved[kind] = {"paths": sorted(curves(writer.action)), "world": world_positions(kind, samples)}
still = apply.TakeWriter("turn only", pose_target=apply.PoseTarget(head))
still.write_all(MotionChunk.from_arrays(0, clip))
moved["turn_only_paths"] = sorted(curves(still.action))
moved["samples"] = samples
out["head_movement"] = moved
try:
    apply.TakeWriter("bad", pose_target=apply.PoseTarget(mover), head_movement=-1)
    out["bad_movement"] = None
except InputError as error:
    out["bad_movement"] = str(error)

# 5. nothing to drive
e = face("E", ["Foo", "Bar"])
try:
    apply.TakeWriter("none", shape_keys=e.data.shape_keys).write_all(MotionChunk.from_arrays(0, clip))
    out["no_match"] = None
except InputError as error:
    out["no_match"] = str(error)
try:
    apply.TakeWriter("nothing")
    out["nothing"] = None
except InputError as error:
    out["nothing"] = str(error)
out["deprecations"] = [d for d in deprecations if "talkbridge_addon" in d or "expected to be removed" in d]
print("RESULT " + json.dumps(out))
"""


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    return blender_support.run_addon_script(SCRIPT, tmp_path_factory.mktemp("addon-package"), timeout=120)


def test_streamed_chunks_end_equal_to_a_one_shot_write_and_show_up_early(results):
    assert results["stream_equal"]
    visible = results["visible_during_stream"]
    assert visible[0] == 150 and visible[-1] == 1000  # keys are in Blender while the job streams
    assert visible == sorted(visible) and len(set(visible)) >= 4


def test_a_spent_budget_defers_curves_to_later_calls(results):
    assert results["budget_calls"] >= 52 and results["budget_equal"]


def test_euler_object_under_a_rotated_parent_turns_in_the_scene_frame_at_any_frame_rate(results):
    from talkbridge.exporters.gltf.pose import rotation_matrices

    assert results["euler_paths"] == [f"rotation_euler[{i}]" for i in range(3)]
    np.testing.assert_allclose(results["euler_frames"], [1.0, 1.96, 25.0], atol=1e-5)  # 24 fps scene, 25 fps motion
    t = np.arange(1000)[:, None]
    pose = (0.3 * np.sin(0.02 * t + np.arange(6))).astype(np.float32).astype(np.float64)
    reference = rotation_matrices(pose[:, :3])
    c = np.array([[1, 0, 0], [0, 0, -1], [0, 1, 0]], np.float64)
    for index, observed in zip(results["euler_samples"], results["euler_observed"]):
        expected = c @ reference[index] @ reference[0].T @ c.T
        np.testing.assert_allclose(observed, expected, atol=5e-4)


def test_retake_keeps_the_artists_action_once_and_earlier_takes(results):
    retake = results["retake"]
    assert retake["active"] == "take 2" and retake["first_kept"]
    assert retake["tracks"] == [[f"[talkbridge kept] {retake['user_action']}", [retake["user_action"]]]]
    assert retake["matched"] == ["jawOpen"] and retake["left_alone"] == ["Custom"]


def test_a_take_survives_renames_and_lost_curves_and_stops_clearly_when_its_action_is_gone(results):
    assert results["survives_rename_and_lost_curve"]
    kind, message = results["action_removed"]
    assert kind == "TalkbridgeError" and "renamed by the artist" in message and "deleted or undone" in message


def test_nothing_to_drive_is_a_clear_error(results):
    assert "none of the shape keys of 'E' match" in results["no_match"] and "Foo" in results["no_match"]
    assert "nothing to animate" in results["nothing"]


def test_head_movement_follows_the_clip_translation_in_blenders_frame(results):
    moved = results["head_movement"]
    t = np.arange(1000)[:, None]
    pose = (0.3 * np.sin(0.02 * t + np.arange(6))).astype(np.float32)
    for kind in ("object", "bone"):
        world = np.array(moved[kind]["world"])
        assert any(path.endswith("location[2]") for path in moved[kind]["paths"]), moved[kind]["paths"]
        for row, frame in enumerate(moved["samples"]):
            shift = (pose[frame, 3:6].astype(np.float64) - pose[0, 3:6]) * 0.5
            expected = np.array([shift[0], -shift[2], shift[1]])  # glTF/3DMM axes -> Blender's
            np.testing.assert_allclose(world[row] - world[0], expected, atol=1e-4, err_msg=f"{kind} frame {frame}")
    assert not any("location" in path for path in moved["turn_only_paths"])
    assert "head movement must be between 0 and 100" in results["bad_movement"]


def test_no_deprecated_blender_api_is_used(results):
    assert results["deprecations"] == []
