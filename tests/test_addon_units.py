"""The add-on's plain-Python parts, without Blender: pose frames, PNG frames, the job controller."""

from __future__ import annotations

import importlib.util
import json
import socket
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from talkbridge.core.errors import TalkbridgeError

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str):
    """An add-on module that needs no bpy, loaded from addon/ under a private package name."""
    package = "talkbridge_addon_plain"
    if package not in sys.modules:
        spec = importlib.util.spec_from_loader(package, loader=None, is_package=True)
        module = importlib.util.module_from_spec(spec)
        module.__path__ = [str(ROOT / "addon")]
        sys.modules[package] = module
    return importlib.import_module(f"{package}.{name}")


posemath = _load("posemath")
frames = _load("frames")
job = _load("job")


def _rotate(q_xyzw: np.ndarray, v: np.ndarray) -> np.ndarray:
    from talkbridge.exporters.gltf.pose import quaternion_to_matrix

    return quaternion_to_matrix(q_xyzw) @ v


FACE_BLENDER = np.array([0.0, -1.0, 0.0])  # a character faces -Y in Blender


def test_pose_signs_in_blenders_frame():
    nod = posemath.head_rotations(np.array([[0.3, 0, 0]]), "absolute")[0]
    assert _rotate(nod, FACE_BLENDER)[2] < -0.25  # pitch > 0: the face turns down (-Z)
    look = posemath.head_rotations(np.array([[0, 0.3, 0]]), "absolute")[0]
    assert _rotate(look, FACE_BLENDER)[0] > 0.25  # yaw > 0: towards the subject's left (+X)
    tilt = posemath.head_rotations(np.array([[0, 0, 0.3]]), "absolute")[0]
    assert _rotate(tilt, np.array([0.0, 0.0, 1.0]))[0] < -0.25  # roll > 0: top of the head to -X


def test_first_frame_reference_starts_at_rest_even_across_chunks():
    pose = np.random.default_rng(0).uniform(-0.3, 0.3, (40, 6))
    whole = posemath.head_rotations(pose, "first")
    np.testing.assert_allclose(np.abs(whole[0]), [0, 0, 0, 1], atol=1e-12)
    later = posemath.head_rotations(pose[25:], "first", first_angles=pose[0, :3])
    np.testing.assert_allclose(later, whole[25:], atol=1e-12)
    with pytest.raises(ValueError, match="pose reference"):
        posemath.head_rotations(pose, "sideways")


def test_local_rotations_reproduce_the_rig_rotation_under_any_frame():
    rng = np.random.default_rng(1)
    world = posemath.head_rotations(rng.uniform(-0.4, 0.4, (10, 3)), "absolute")
    frame = rng.normal(size=4)
    frame /= np.linalg.norm(frame)
    local = posemath.local_rotations(world, frame, np.array([0, 0, 0, 1.0]))
    pm = posemath.pose_math
    back = pm.quaternion_multiply(pm.quaternion_multiply(frame[None, :], local), pm.quaternion_conjugate(frame)[None, :])
    np.testing.assert_allclose(pm.quaternion_to_matrix(back), pm.quaternion_to_matrix(world), atol=1e-12)
    flipped = posemath.make_continuous(-local[3:], previous=local[2])
    np.testing.assert_allclose(flipped[0], local[3])
    np.testing.assert_array_equal(posemath.to_blender_order(np.array([[1, 2, 3, 4.0]])), [[4, 1, 2, 3]])


def test_png_frames_decode_to_the_same_pixels(tmp_path):
    import cv2

    rng = np.random.default_rng(2)
    clip = rng.integers(0, 256, (5, 24, 32, 3), dtype=np.uint8)
    writer = frames.FrameSequenceWriter(tmp_path / "take")
    writer.put(0, clip[:3])
    writer.put(3, clip[3:])
    assert writer.finish(10.0) and writer.done and writer.error is None
    assert writer.files() == [f"frame_{i:06d}.png" for i in range(5)]
    assert not list((tmp_path / "take").glob("*.part"))
    for index, name in enumerate(writer.files()):
        decoded = cv2.imread(str(tmp_path / "take" / name), cv2.IMREAD_COLOR)[:, :, ::-1]
        np.testing.assert_array_equal(decoded, clip[index])


def test_frame_writer_reports_an_unwritable_folder(tmp_path):
    target = tmp_path / "take"
    writer = frames.FrameSequenceWriter(target)
    target.rmdir()
    (tmp_path / "take").write_text("a file where the folder was")
    writer.put(0, np.zeros((1, 4, 4, 3), np.uint8))
    writer.finish(10.0)
    assert writer.error and "frame_000000.png" in writer.error


def test_job_inputs_are_checked_with_the_paths_named(tmp_path):
    missing = tmp_path / "nope.wav"
    with pytest.raises(TalkbridgeError, match="nope.wav: audio file not found"):
        job.check_inputs(job.JobSettings(address="tcp://127.0.0.1:1", engine="lite", audio_path=str(missing)))
    audio = tmp_path / "a.wav"
    audio.write_bytes(b"RIFF")
    with pytest.raises(TalkbridgeError, match="face.png: portrait image not found"):
        job.check_inputs(job.JobSettings("tcp://127.0.0.1:1", "lite", str(audio), image_path=str(tmp_path / "face.png")))
    for render_size in (None, 256):
        with pytest.raises(TalkbridgeError, match="SadTalker starts its motion .* from a portrait"):
            job.check_inputs(job.JobSettings("tcp://127.0.0.1:1", "sadtalker", str(audio), render_size=render_size))
    job.check_inputs(job.JobSettings("tcp://127.0.0.1:1", "lite", str(audio), render_size=256))  # the mannequin needs none


def test_a_wrong_address_fails_without_blocking_the_caller(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    audio = tmp_path / "a.wav"
    audio.write_bytes(b"RIFF")
    controller = job.make_job(job.JobSettings(f"tcp://127.0.0.1:{port}", "lite", str(audio), connect_timeout_s=1.0))
    began = time.perf_counter()
    controller.start()
    longest = 0.0
    while not controller.finished and time.perf_counter() - began < 10:
        t = time.perf_counter()
        controller.updates()
        longest = max(longest, time.perf_counter() - t)
        time.sleep(0.01)
    controller.close()
    assert controller.state == job.FAILED and f"127.0.0.1:{port}" in controller.error and "no answer" in controller.error
    assert longest < 0.05 and time.perf_counter() - began < 5


def test_cancel_before_the_job_was_submitted_ends_at_once(tmp_path):
    audio = tmp_path / "a.wav"
    audio.write_bytes(b"RIFF")
    controller = job.make_job(job.JobSettings("tcp://127.0.0.1:9", "lite", str(audio), connect_timeout_s=5.0))
    controller.cancel()
    assert controller.state == job.CANCELLED and controller.finished
    controller.close()


def test_the_pose_module_and_posemath_import_without_pygltflib(tmp_path):
    """The add-on bundles talkbridge without pygltflib: ``exporters.gltf`` must not import it eagerly."""
    import subprocess

    script = (
        "import sys; sys.modules['pygltflib'] = None\n"  # any import of pygltflib now raises ImportError
        "from talkbridge.exporters.gltf import pose\n"
        "import talkbridge.exporters.gltf as gltf\n"
        "assert 'talkbridge.exporters.gltf.writer' not in sys.modules\n"
        "sys.path.insert(0, sys.argv[1])\n"
        "from talkbridge_addon import posemath\n"
        "assert posemath.pose_math is pose\n"
        "try:\n    gltf.write_head_glb\nexcept ImportError:\n    print('LAZY-OK')\n"
    )
    packages = tmp_path  # holds talkbridge_addon -> addon/ (its __init__ imports bpy, which the test extra installs)
    (packages / "talkbridge_addon").symlink_to(ROOT / "addon", target_is_directory=True)
    done = subprocess.run([sys.executable, "-c", script, str(packages)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "LAZY-OK" in done.stdout, done.stdout + done.stderr


def test_the_takes_emotion_samples_become_the_jobs_keys():
    none = job.NO_EMOTION
    assert job.emotion_keys([(0.0, none, 0.6)]) is None and job.emotion_keys([(0.0, "joy", 0.0)]) is None
    assert job.emotion_keys([(0.0, "joy", 0.6)]) == [{"time": 0.0, "joy": 0.6}]
    samples = [(t / 25, "joy", 0.5) for t in range(5)] + [(t / 25, "anger", 1.0) for t in range(5, 8)] + [(8 / 25, none, 0.7)]
    keys = job.emotion_keys(samples)
    # a run of equal samples keeps its first and last key, so interpolation holds it; NONE is a key of zeros
    assert keys == [{"time": 0.0, "joy": 0.5}, {"time": 0.16, "joy": 0.5}, {"time": 0.2, "anger": 1.0},
                    {"time": 0.28, "anger": 1.0}, {"time": 0.32}]
    from talkbridge.core.jobs.options import OPTIONS

    track = OPTIONS["emotion"].check(keys)  # what the sidecar does with them
    assert track.frames(10, 25)[2, 6] == pytest.approx(0.5) and track.frames(10, 25)[9].max() == 0.0


def test_keyframed_emotion_and_strength_are_sampled_over_the_take(tmp_path):
    """Inside Blender (bpy 4.5 as a module): keys on the panel's emotion and strength reach the job."""
    import subprocess

    script = tmp_path / "emotion_keys.py"
    script.write_text(
        "import sys, json\n"
        f"sys.path.insert(0, {str(ROOT)!r})\n"
        "import bpy\n"
        "from tests.test_addon_units import _load\n"
        "properties = _load('properties')\n"
        "operators = _load('operators')\n"
        "properties.register()\n"
        "scene = bpy.context.scene\n"
        "scene.render.fps, scene.render.fps_base = 25, 1.0\n"
        "settings = scene.talkbridge\n"
        "out = {'plain': operators.emotion_option(scene, settings, 1, 50)}\n"
        "settings.emotion = 'joy'\n"
        "out['constant'] = operators.emotion_option(scene, settings, 1, 50)\n"
        "settings.emotion_strength = 0.0\n"
        "scene.keyframe_insert('talkbridge.emotion_strength', frame=11)\n"
        "settings.emotion_strength = 1.0\n"
        "scene.keyframe_insert('talkbridge.emotion_strength', frame=31)\n"
        "out['animated'] = operators.emotion_option(scene, settings, 1, 50)\n"
        "print('RESULT ' + json.dumps(out), flush=True)\n"
        "import os; os._exit(0)  # bpy as a module can hang in its exit handlers once an add-on registered\n"
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(next(line for line in done.stdout.splitlines() if line.startswith("RESULT ")).removeprefix("RESULT "))
    from talkbridge.core.jobs.options import OPTIONS

    assert out["plain"] == {}
    assert [key["time"] for key in out["constant"]["emotion"]] == [0.0] and out["constant"]["emotion"][0]["joy"] == pytest.approx(0.6)
    joy = OPTIONS["emotion"].check(out["animated"]["emotion"]).frames(50, 25)[:, 6]
    assert joy[:10].max() == 0.0 and joy[30:] == pytest.approx(1.0)  # held before frame 11 and after frame 31
    assert 0.4 < joy[20] < 0.6 and np.all(np.diff(joy) >= -1e-6)  # halfway up the ramp at scene frame 21
