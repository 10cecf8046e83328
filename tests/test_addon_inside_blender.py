"""The Blender side of ``tests/test_addon_blender.py``: run in a subprocess, not collected as tests.

It installs the built extension zip into a temporary user folder, enables it and runs the add-on's
operators and timer callback through several scenarios, writing what it saw to ``results.json`` and
``arrays.npz`` for the test to check. Only bpy and numpy are importable here (see the test's
isolated site folder), so talkbridge and pyzmq come from the zip's wheels.
"""

from __future__ import annotations

import json
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

MODULE = "bl_ext.user_default.talkbridge"


def main(config_path: str) -> None:
    import bpy

    config = json.loads(Path(config_path).read_text())
    out = Path(config["out"])
    results: dict = {"errors": []}
    arrays: dict[str, np.ndarray] = {}

    def save() -> None:
        (out / "results.json").write_text(json.dumps(results, indent=1, default=str))
        np.savez(out / "arrays.npz", **arrays)

    # Every deprecation warning from here on is recorded (Blender's API ones say "expected to be removed").
    results["warnings"] = []
    warnings.simplefilter("always", DeprecationWarning)
    warnings.simplefilter("always", PendingDeprecationWarning)

    def record_warning(message, category, filename, lineno, file=None, line=None):
        results["warnings"].append([category.__name__, str(message), f"{filename}:{lineno}"])

    warnings.showwarning = record_warning

    results["bpy_version"] = list(bpy.app.version)
    results["python"] = list(sys.version_info[:2])
    # The zip built for the other Blender range must be refused (and leave nothing behind).
    try:
        refused = list(bpy.ops.extensions.package_install_files(filepath=config["other_zip"], repo="user_default", enable_on_install=True))
    except RuntimeError as error:
        refused = ["RuntimeError", str(error)]
    extensions = Path(bpy.utils.user_resource("EXTENSIONS", path="user_default"))
    results["other_zip"] = {
        "result": refused, "enabled": MODULE in bpy.context.preferences.addons.keys(),
        "installed": (extensions / "talkbridge").exists(),
    }
    installed = bpy.ops.extensions.package_install_files(filepath=config["zip"], repo="user_default", enable_on_install=True)
    results["install"] = list(installed)
    results["addons"] = list(bpy.context.preferences.addons.keys())
    panel_class = getattr(bpy.types, "VIEW3D_PT_talkbridge", None)
    results["panel_registered"] = None if panel_class is None else [panel_class.bl_label, panel_class.bl_space_type, panel_class.bl_region_type]
    results["operators_registered"] = [hasattr(bpy.types, name) for name in ("TALKBRIDGE_OT_generate", "TALKBRIDGE_OT_cancel")]
    import talkbridge
    import zmq

    results["talkbridge_file"] = talkbridge.__file__
    results["zmq_file"] = zmq.__file__
    results["pygltflib_loaded"] = "pygltflib" in sys.modules or "torch" in sys.modules
    runtime = sys.modules[f"{MODULE}.runtime"]

    def fresh_scene():
        bpy.ops.wm.read_homefile(use_empty=True)
        bpy.ops.import_scene.gltf(filepath=config["head"])
        face = next(o for o in bpy.data.objects if o.type == "MESH" and o.data.shape_keys)
        rig = next(o for o in bpy.data.objects if o.type == "ARMATURE")
        settings = bpy.context.scene.talkbridge
        settings.image = config["image"]
        settings.audio = config["audio"]
        settings.target = face
        settings.rig = rig
        settings.head_bone = "head"
        settings.sidecar_mode = "REMOTE"
        settings.address = config["address"]
        settings.server_key = config["keys"]["server_public"]
        settings.client_key = config["keys"]["client_secret"]
        settings.signing_key = config["keys"]["signing"]
        settings.render_frames = True
        settings.size = "256"
        settings.start_frame = 1
        return face, rig, settings

    def snapshot(action) -> list:
        rows = []
        for layer in action.layers:
            for strip in layer.strips:
                for bag in strip.channelbags:
                    for fc in bag.fcurves:
                        co = [tuple(k.co) for k in fc.keyframe_points]
                        rows.append([fc.data_path, fc.array_index, co, [k.interpolation for k in fc.keyframe_points]])
        return rows

    def pump(until, limit_s: float) -> dict:
        """Call the timer callback like Blender's event loop would; measure each tick."""
        longest, began = 0.0, time.monotonic()
        while time.monotonic() - began < limit_s:
            t = time.perf_counter()
            again = runtime.timer_tick()
            longest = max(longest, time.perf_counter() - t)
            if until() or again is None:
                break
            time.sleep(0.01)
        return {"longest_tick_s": longest, "elapsed_s": time.monotonic() - began}

    def draw_panel() -> dict:
        """Run the panel's draw() against a recording layout (headless Blender cannot draw UI)."""
        calls: list = []

        class Recorder:
            def __getattr__(self, name):
                def record(*args, **kwargs):
                    calls.append([name, [a if isinstance(a, (str, int, float)) else type(a).__name__ for a in args],
                                  {k: v for k, v in kwargs.items() if isinstance(v, (str, int, float, bool))}])
                    return Recorder()
                return record

            def __setattr__(self, name, value):
                calls.append(["set", [name], {}])

        panel_class = getattr(bpy.types, "VIEW3D_PT_talkbridge")
        holder = type("Holder", (), {"layout": Recorder()})()
        panel_class.draw(holder, bpy.context)
        settings = bpy.context.scene.talkbridge
        props = [c[1][1] for c in calls if c[0] in ("prop", "prop_search") and c[1] and c[1][0] == "TalkbridgeSettings"]
        return {
            "calls": calls,
            "unknown_props": [p for p in props if p not in settings.bl_rna.properties],
            "operators": [c[1][0] for c in calls if c[0] == "operator"],
            "progress": [c for c in calls if c[0] == "progress"],
            "labels": [c[2].get("text", "") for c in calls if c[0] == "label"],
            "category": panel_class.bl_category, "label": panel_class.bl_label, "region": panel_class.bl_region_type,
        }

    # ---------------------------------------------------------------- 1. generate (blocking, headless)
    try:
        face, rig, settings = fresh_scene()
        key = face.data.shape_keys
        bpy.context.scene.render.fps = 24  # the add-on must bring the scene to the motion's 25 fps
        block = key.key_blocks["jawOpen"]
        for frame, value in ((1, 0.3), (40, 0.9)):
            block.value = value
            block.keyframe_insert("value", frame=frame)
        neck = rig.pose.bones["neck"]
        neck.rotation_mode = "QUATERNION"
        for frame, angle in ((1, 0.0), (100, 0.2)):
            neck.rotation_quaternion = (np.cos(angle / 2), np.sin(angle / 2), 0.0, 0.0)
            neck.keyframe_insert("rotation_quaternion", frame=frame)
        user_face_action, user_rig_action = key.animation_data.action, rig.animation_data.action
        results["user_before"] = {"face": snapshot(user_face_action), "rig": snapshot(user_rig_action)}
        user_names = (user_face_action.name, user_rig_action.name)

        began = time.monotonic()
        results["generate"] = list(bpy.ops.talkbridge.generate(mode="BLOCKING", timeout=120))
        results["generate_s"] = time.monotonic() - began
        status = bpy.context.window_manager.talkbridge_status
        results["status"] = {"state": status.state, "error": status.error, "message": status.message, "action": status.action}
        results["panel_done"] = draw_panel()
        scene = bpy.context.scene
        results["scene_fps"] = scene.render.fps / scene.render.fps_base
        results["scene_frame_end"] = scene.frame_end
        take = bpy.data.actions[status.action]
        results["take"] = {
            "tag": int(take.get("talkbridge_take", 0)),
            "slots": sorted((s.target_id_type, s.name_display) for s in take.slots),
            "frame_range": list(take.frame_range),
            "face_active": key.animation_data.action.name,
            "rig_active": rig.animation_data.action.name,
            "face_slot": key.animation_data.action_slot.name_display,
            "rig_slot": rig.animation_data.action_slot.name_display,
        }
        rows = snapshot(take)
        shape_rows = [r for r in rows if r[0].startswith("key_blocks")]
        results["take"]["shape_paths"] = [r[0] for r in shape_rows]
        results["take"]["rig_paths"] = [[r[0], r[1]] for r in rows if not r[0].startswith("key_blocks")]
        results["take"]["interpolations"] = sorted({i for r in rows for i in r[3]})
        arrays["shape_keys"] = np.array([[c[1] for c in r[2]] for r in shape_rows], np.float64)
        arrays["shape_frames"] = np.array([[c[0] for c in r[2]] for r in shape_rows], np.float64)
        results["shape_names"] = [r[0].split('"')[1] for r in shape_rows]
        sample = [1, 13, 37, 60, 100]
        evaluated, head_pose, neck_pose = [], [], []
        for frame in sample:
            scene.frame_set(frame)
            evaluated.append([key.key_blocks[n].value for n in results["shape_names"]])
            head_pose.append(np.array(rig.pose.bones["head"].matrix))
            neck_pose.append(np.array(rig.pose.bones["neck"].matrix))
        arrays["sample_frames"] = np.array(sample)
        arrays["evaluated"] = np.array(evaluated)
        arrays["head_pose"] = np.array(head_pose)
        arrays["neck_pose"] = np.array(neck_pose)
        arrays["head_rest"] = np.array(rig.data.bones["head"].matrix_local)
        arrays["neck_rest"] = np.array(rig.data.bones["neck"].matrix_local)
        strips = []
        for strip in scene.sequence_editor.strips_all:
            new_names = "left_handle" in strip.bl_rna.properties  # Blender 5.2 renamed the handle properties
            strips.append({
                "name": strip.name, "type": strip.type, "channel": strip.channel,
                "start": strip.left_handle if new_names else strip.frame_final_start,
                "duration": strip.duration if new_names else strip.frame_final_duration,
                "elements": len(strip.elements) if strip.type == "IMAGE" else None,
                "path": bpy.path.abspath(strip.directory) if strip.type == "IMAGE" else bpy.path.abspath(strip.sound.filepath),
            })
        results["strips"] = strips
        results["user_after"] = {
            "face": snapshot(bpy.data.actions[user_names[0]]),
            "rig": snapshot(bpy.data.actions[user_names[1]]),
            "face_tracks": [[t.name, [s.action.name for s in t.strips]] for t in key.animation_data.nla_tracks],
            "rig_tracks": [[t.name, [s.action.name for s in t.strips]] for t in rig.animation_data.nla_tracks],
            "fake_users": [bpy.data.actions[n].use_fake_user for n in user_names],
        }
    except Exception as error:  # noqa: BLE001 - reported to the test
        import traceback

        results["errors"].append(["generate", traceback.format_exc()])
    save()

    # ---------------------------------------------------------------- 1b. local sidecar, audio from a sound strip
    try:
        face, rig, settings = fresh_scene()
        bpy.context.preferences.addons[MODULE].preferences.sidecar_command = config["sidecar_command"]
        settings.sidecar_mode = "LOCAL"
        editor = bpy.context.scene.sequence_editor_create()
        line = editor.strips.new_sound("line", config["audio"], 3, 11)
        settings.audio_source = "STRIP"
        settings.sound_strip = line.name
        settings.render_frames = False
        settings.head_bone = ""  # the add-on finds the bone called "head"
        settings.head_movement = 1.0  # life size: location keys too
        results["local_generate"] = list(bpy.ops.talkbridge.generate(mode="BLOCKING", timeout=120))
        status = bpy.context.window_manager.talkbridge_status
        results["local_status"] = {"state": status.state, "error": status.error, "action": status.action}
        results["local_frame_range"] = list(bpy.data.actions[status.action].frame_range)
        results["local_rig_paths"] = sorted({r[0] for r in snapshot(bpy.data.actions[status.action]) if not r[0].startswith("key_blocks")})
        results["local_strips"] = sorted(s.name for s in editor.strips_all)
        local = runtime._sidecar
        results["local_address"] = local.address
        local_process = local.process
    except Exception:  # noqa: BLE001
        import traceback

        local_process = None
        results["errors"].append(["local", traceback.format_exc()])
    save()

    # ---------------------------------------------------------------- 2. cancel mid-job (timer path)
    try:
        face, rig, settings = fresh_scene()
        settings.audio = config["long_audio"]
        bpy.ops.talkbridge.generate(mode="BACKGROUND")
        job = runtime.active_job()
        results["cancel_first"] = pump(lambda: job.writer is not None and job.writer.frames > 0, 60)
        results["cancel_frames_before"] = job.writer.frames if job.writer else 0
        results["panel_running"] = draw_panel()
        results["cancel_op"] = list(bpy.ops.talkbridge.cancel())
        results["cancel_after"] = pump(lambda: job.finished, 30)
        status = bpy.context.window_manager.talkbridge_status
        results["cancel_status"] = {"state": status.state, "message": status.message, "error": status.error}
        results["cancel_frames"] = job.writer.frames if job.writer else 0
        results["cancel_action_keys"] = len(snapshot(bpy.data.actions[status.action])[0][2]) if status.action else 0
        results["cancel_expected_frames"] = job.controller.expected_frames
        results["cancel_generate_poll"] = bpy.ops.talkbridge.generate.poll()
    except Exception:  # noqa: BLE001
        import traceback

        results["errors"].append(["cancel", traceback.format_exc()])
    save()

    # ---------------------------------------------------------------- 3. the file is closed mid-job
    try:
        face, rig, settings = fresh_scene()
        settings.audio = config["long_audio"]
        bpy.ops.talkbridge.generate(mode="BACKGROUND")
        job = runtime.active_job()
        pump(lambda: job.writer is not None and job.writer.frames > 0, 60)
        bpy.ops.wm.read_homefile(use_empty=True)
        results["close"] = {"state": job.controller.state, "finished": job.finished, "active": runtime.active_job() is not None,
                            "timer": bpy.app.timers.is_registered(runtime.timer_tick)}
    except Exception:  # noqa: BLE001
        import traceback

        results["errors"].append(["close", traceback.format_exc()])
    save()

    # ---------------------------------------------------------------- 3b. a client key the sidecar does not allow
    try:
        face, rig, settings = fresh_scene()
        settings.client_key = config["keys"]["stranger_secret"]  # a key pair the sidecar does not allow
        settings.connect_timeout = 3.0
        bpy.ops.talkbridge.generate(mode="BACKGROUND")
        job = runtime.active_job()
        results["stranger"] = pump(lambda: job.finished, 20)
        status = bpy.context.window_manager.talkbridge_status
        results["stranger_status"] = {"state": status.state, "error": status.error}
    except Exception:  # noqa: BLE001
        import traceback

        results["errors"].append(["stranger", traceback.format_exc()])
    save()

    # ---------------------------------------------------------------- 4. the sidecar dies mid-job
    try:
        face, rig, settings = fresh_scene()
        settings.audio = config["long_audio"]
        bpy.ops.talkbridge.generate(mode="BACKGROUND")
        job = runtime.active_job()
        pump(lambda: job.writer is not None and job.writer.frames > 0, 60)
        os.kill(config["sidecar_pid"], 9)
        results["dead"] = pump(lambda: job.finished, 20)
        status = bpy.context.window_manager.talkbridge_status
        results["dead_status"] = {"state": status.state, "error": status.error, "running": status.running}
        results["panel_failed"] = draw_panel()
        results["dead_frames_kept"] = job.writer.frames if job.writer else 0
    except Exception:  # noqa: BLE001
        import traceback

        results["errors"].append(["dead", traceback.format_exc()])
    save()

    # ---------------------------------------------------------------- 5. a wrong address
    try:
        face, rig, settings = fresh_scene()
        settings.address = config["wrong_address"]
        settings.connect_timeout = 1.5
        bpy.ops.talkbridge.generate(mode="BACKGROUND")
        job = runtime.active_job()
        results["wrong"] = pump(lambda: job.finished, 20)
        status = bpy.context.window_manager.talkbridge_status
        results["wrong_status"] = {"state": status.state, "error": status.error}
        settings.address = "tcp://203.0.113.5:5555"  # remote, while online access is off (bpy's default)
        try:
            bpy.ops.talkbridge.generate(mode="BACKGROUND")
            results["remote_refused"] = None
        except RuntimeError as error:
            results["remote_refused"] = str(error)
    except Exception:  # noqa: BLE001
        import traceback

        results["errors"].append(["wrong", traceback.format_exc()])
    save()

    # ---------------------------------------------------------------- 6. disable the add-on
    try:
        load_pre_before = len(bpy.app.handlers.load_pre)
        bpy.ops.preferences.addon_disable(module=MODULE)
        results["disabled"] = MODULE not in bpy.context.preferences.addons.keys() and not hasattr(bpy.types.Scene, "talkbridge")
        results["local_sidecar_stopped"] = local_process is not None and local_process.poll() is not None
        results["after_disable"] = {
            "panel": hasattr(bpy.types, "VIEW3D_PT_talkbridge"),
            "operators": [hasattr(bpy.types, name) for name in ("TALKBRIDGE_OT_generate", "TALKBRIDGE_OT_cancel")],
            "status": hasattr(bpy.types.WindowManager, "talkbridge_status"),
            "timer": bpy.app.timers.is_registered(runtime.timer_tick),
            "load_pre_removed": load_pre_before - len(bpy.app.handlers.load_pre),
            "load_pre_left": [getattr(h, "__module__", "") for h in bpy.app.handlers.load_pre if "talkbridge" in getattr(h, "__module__", "")],
        }
    except Exception:  # noqa: BLE001
        import traceback

        results["errors"].append(["disable", traceback.format_exc()])
    save()


if __name__ == "__main__":
    main(sys.argv[1])
