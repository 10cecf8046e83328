"""The Blender side of ``tests/test_addon_engine_install.py`` (a script run in a subprocess, no tests).

A fresh user folder, nothing on PATH, only bpy and numpy importable from the test environment: the
extension zip is installed and enabled, then, in this order: Install Engine with online access off
(refused), Start Local with no engine (refused, pointing at Install Engine), a pip step that fails,
an install cancelled mid-way, the real lite install, a LOCAL take on the mannequin through the
private environment, and disabling the add-on. What it saw goes to ``results.json``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import traceback
from pathlib import Path

MODULE = "bl_ext.user_default.talkbridge"


def main(config_path: str) -> None:
    import bpy

    config = json.loads(Path(config_path).read_text())
    out = Path(config["out"])
    results: dict = {"errors": [], "python": list(sys.version_info[:2])}

    def save() -> None:
        (out / "results.json").write_text(json.dumps(results, indent=1, default=str))

    def step(name):
        def wrap(function):
            try:
                function()
            except Exception:  # noqa: BLE001 - reported to the test
                results["errors"].append([name, traceback.format_exc()])
            save()
        return wrap

    results["install"] = list(bpy.ops.extensions.package_install_files(filepath=config["zip"], repo="user_default", enable_on_install=True))
    setup = sys.modules[f"{MODULE}.engine_setup"]
    runtime = sys.modules[f"{MODULE}.runtime"]
    import talkbridge

    results["talkbridge_file"] = talkbridge.__file__
    results["engine_root"] = str(setup.engine_root())
    results["wheel"] = [str(setup.bundled_wheel()), setup.bundled_wheel().is_file()]
    results["online_before"] = bool(bpy.app.online_access)

    def fresh_scene():
        bpy.ops.wm.read_homefile(use_empty=True)
        bpy.ops.import_scene.gltf(filepath=config["head"])
        face = next(o for o in bpy.data.objects if o.type == "MESH" and o.data.shape_keys)
        rig = next(o for o in bpy.data.objects if o.type == "ARMATURE")
        settings = bpy.context.scene.talkbridge
        settings.image, settings.audio = config["image"], config["audio"]
        settings.target, settings.rig, settings.head_bone = face, rig, "head"
        settings.sidecar_mode = "LOCAL"
        settings.engine = "lite"
        settings.render_frames = True
        settings.size = "256"
        return settings

    def refused(call) -> str | None:
        try:
            call()
        except RuntimeError as error:
            return str(error)
        return None

    def draw(function, owner) -> list:
        """Labels, operators and progress bars a draw() call makes, against a recording layout."""
        calls: list = []

        class Recorder:
            def __getattr__(self, name):
                def record(*args, **kwargs):
                    calls.append([name, [a for a in args if isinstance(a, str)], {k: v for k, v in kwargs.items() if isinstance(v, (str, float))}])
                    return Recorder()
                return record

            def __setattr__(self, name, value):
                pass

        holder = owner if owner is not None else type("Holder", (), {"layout": Recorder()})()
        if owner is not None:
            holder = type("Holder", (), {"layout": Recorder(), **{k: getattr(owner, k) for k in owner.bl_rna.properties.keys() if k != "rna_type"}})()
        function(holder, bpy.context)
        return [c for c in calls if c[0] in ("label", "operator", "progress", "prop")]

    prefs = bpy.context.preferences.addons[MODULE].preferences

    @step("offline")
    def _():
        results["offline_refused"] = refused(lambda: bpy.ops.talkbridge.engine_install(mode="BLOCKING"))
        results["offline_env_made"] = setup.env_folder().exists()

    @step("no engine")
    def _():
        fresh_scene()
        results["no_engine_refused"] = refused(lambda: bpy.ops.talkbridge.generate(mode="BLOCKING", timeout=60))
        results["no_engine_panel"] = draw(bpy.types.VIEW3D_PT_talkbridge.draw, None)
        results["no_engine_prefs"] = draw(type(prefs).draw, prefs)

    bpy.context.preferences.system.use_online_access = True
    results["online_after"] = bool(bpy.app.online_access)

    @step("failing pip")
    def _():
        bad = Path(config["out"]) / "bad-env"
        task = setup.start_install(("lite",), blocking=True, timeout_s=300, env=bad,
                                   extra_requirements=(config["missing_package"],))
        snap = task.snapshot()
        results["failing"] = {"state": snap.state, "error": snap.error, "exists": bad.exists(),
                              "usable": setup.private_env(bad) is not None}

    @step("cancel")
    def _():
        bpy.ops.talkbridge.engine_install(mode="BACKGROUND")
        task = setup.current_task()
        began, seen = time.monotonic(), []
        while time.monotonic() - began < 180:  # until pip is busy in the new environment
            snap = task.snapshot()
            seen.append(snap.step)
            if snap.step.startswith("Installing talkbridge") and snap.detail:
                break
            setup._poll()  # what Blender's timer would call
            time.sleep(0.05)
        results["cancel_seen_step"] = seen[-1]
        results["running_prefs"] = draw(type(prefs).draw, prefs)
        results["running_panel"] = draw(bpy.types.VIEW3D_PT_talkbridge.draw, None)
        results["cancel_op"] = list(bpy.ops.talkbridge.engine_cancel())
        task.wait(60)
        snap = task.snapshot()
        results["cancelled"] = {"state": snap.state, "error": snap.error, "env_exists": setup.env_folder().exists(),
                                "private_argv": setup.private_argv(), "status": setup.env_status()}
        fresh_scene()
        results["after_cancel_refused"] = refused(lambda: bpy.ops.talkbridge.generate(mode="BLOCKING", timeout=60))

    @step("install")
    def _():
        began = time.monotonic()
        results["real_install"] = list(bpy.ops.talkbridge.engine_install(mode="BLOCKING", timeout=900))
        results["real_install_s"] = time.monotonic() - began
        task = setup.current_task()
        results["real_install_tail"] = task.tail[-10:]
        found = setup.private_env()
        results["env"] = None if found is None else {"path": str(found.path), "engines": list(found.engines), "argv": found.argv()}
        results["env_status"] = setup.env_status()
        if found is not None:
            probe = (
                "import importlib.util, json, sys; from importlib import metadata;"
                "print(json.dumps({'torch': importlib.util.find_spec('torch') is not None,"
                "'dists': sorted(d.metadata['Name'].lower() for d in metadata.distributions()),"
                "'python': list(sys.version_info[:2]), 'prefix': sys.prefix}))"
            )
            done = subprocess.run([found.argv()[0], "-c", probe], capture_output=True, text=True, timeout=60)
            results["env_probe"] = json.loads(done.stdout) if done.returncode == 0 else done.stderr

    @step("models")
    def _():
        task = setup.start_models("sadtalker", blocking=False, extra_args=("--catalog", config["catalog"], "--dir", config["store"]))
        began = time.monotonic()
        while task.state == "running" and time.monotonic() - began < 120:
            setup._poll()
            time.sleep(0.05)
        snap = task.snapshot()
        results["models"] = {"state": snap.state, "error": snap.error, "tail": task.tail, "step": task.steps[0].title}
        results["models_panel"] = draw(bpy.types.VIEW3D_PT_talkbridge.draw, None)

    local_process = None

    @step("local take")
    def _():
        nonlocal local_process
        fresh_scene()
        began = time.monotonic()
        results["local_generate"] = list(bpy.ops.talkbridge.generate(mode="BLOCKING", timeout=240))
        results["local_s"] = time.monotonic() - began
        status = bpy.context.window_manager.talkbridge_status
        results["local_status"] = {"state": status.state, "error": status.error, "action": status.action}
        action = bpy.data.actions.get(status.action)
        results["local_frame_range"] = list(action.frame_range) if action else None
        keys = bpy.context.scene.objects
        face = next(o for o in keys if o.type == "MESH" and o.data.shape_keys)
        bpy.context.scene.frame_set(20)
        results["local_jaw_at_20"] = face.data.shape_keys.key_blocks["jawOpen"].value
        strips = bpy.context.scene.sequence_editor.strips_all if bpy.context.scene.sequence_editor else []
        results["local_strips"] = sorted(s.type for s in strips)
        local = runtime._sidecar
        local_process = local.process
        results["local_argv"] = list(local_process.args)
        results["local_log"] = local.log_tail(2000)

    @step("disable")
    def _():
        bpy.ops.preferences.addon_disable(module=MODULE)
        results["disabled"] = MODULE not in bpy.context.preferences.addons.keys()
        if local_process is not None:
            try:
                local_process.wait(15)
            except subprocess.TimeoutExpired:
                pass
        results["sidecar_stopped"] = local_process is not None and local_process.poll() is not None
        results["engine_ops_gone"] = not hasattr(bpy.types, "TALKBRIDGE_OT_engine_install")

    @step("remove")
    def _():
        bpy.ops.preferences.addon_enable(module=MODULE)  # enabled again: register after unregister
        setup_again = sys.modules[f"{MODULE}.engine_setup"]
        results["before_remove"] = setup_again.env_status()
        results["remove"] = list(bpy.ops.talkbridge.engine_remove())
        results["after_remove"] = {"status": setup_again.env_status(), "exists": setup_again.env_folder().exists()}

    @step("exit")
    def _():
        # A sidecar left running when Blender dies (below: SIGKILL, so no exit hook runs).
        bpy.context.preferences.addons[MODULE].preferences.sidecar_command = config["engine_command"]
        local = sys.modules[f"{MODULE}.runtime"].local_sidecar(config["engine_command"])
        address = local.start()
        from talkbridge.bridge.client_connect import wait_for_server

        wait_for_server(address, timeout=60, process=local.process)
        results["exit_sidecar_pid"] = local.process.pid

    save()
    if results.get("exit_sidecar_pid"):
        # Blender crashes: no unregister, no atexit. Only the sidecar's stdin pipe, closed by the OS, is left.
        import os
        import signal

        os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
    main(sys.argv[1])
