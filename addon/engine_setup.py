"""Install Engine, Models..., Remove and Cancel: the add-on sets up its own engine (operators + state).

The engine cannot run inside Blender (torch, pocketsphinx ... are not in Blender's Python), so the
add-on makes a private virtual environment with Blender's Python in the extension's user folder
(``bpy.utils.extension_path_user``) and installs the talkbridge wheel its zip carries, with the
chosen engines' extras, from the package index. *Start Local* then runs that environment's
talkbridge. The work runs as a :class:`~.installer.CommandTask` (pip in child processes, output
read on a thread); a ``bpy.app.timers`` callback only redraws the preferences and the panel, which
read the task's snapshot. Nothing here blocks the UI except ``mode='BLOCKING'`` (scripts, headless).
"""

from __future__ import annotations

import logging
import shutil
import sys
import time
from pathlib import Path

import bpy
from bpy.props import EnumProperty, FloatProperty

from . import install_paths, installer

log = logging.getLogger(__name__)

POLL_INTERVAL_S = 0.25
MODEL_GROUPS = {"sadtalker": "sadtalker", "audio2face": "audio2face"}  # engine -> `talkbridge models download` group

_task: installer.CommandTask | None = None
_last: installer.CommandTask | None = None


class EngineSetupError(Exception):
    """Why Install Engine or Models... cannot start (shown to the artist as is)."""


# ---------------------------------------------------------------------------------- where things are


def engine_root() -> Path:
    """The extension's own user folder for the engine (kept across add-on updates, per Blender version)."""
    try:
        return Path(bpy.utils.extension_path_user(__package__, path="engine", create=True))
    except (ValueError, AttributeError):  # installed as a legacy add-on, not an extension
        return Path(bpy.utils.user_resource("SCRIPTS", path="talkbridge_engine", create=True))


def env_folder() -> Path:
    return engine_root() / install_paths.ENV_FOLDER


def addon_version() -> str:
    """The talkbridge version the add-on carries (its bundled wheel); the env must match it."""
    import talkbridge

    return talkbridge.__version__


def bundled_wheel() -> Path:
    """The talkbridge wheel inside the installed extension (``wheels/`` next to this file)."""
    return Path(__file__).resolve().parent / "wheels" / f"talkbridge-{addon_version()}-py3-none-any.whl"


def private_env(env: Path | None = None) -> install_paths.EngineEnv | None:
    """The complete private environment, checked now (marker, version, interpreter), or None."""
    return install_paths.find_env(env or env_folder(), addon_version())


def private_argv() -> list[str] | None:
    """How *Start Local* runs the private env's talkbridge, or None when there is no complete env."""
    found = private_env()
    return found.argv() if found is not None else None


def env_status() -> str:
    """One line for the preferences: installed with which engines, or why not."""
    found = private_env()
    if found is not None:
        return f"installed ({', '.join(found.engines)}) in {found.path}"
    return install_paths.env_problem(env_folder(), addon_version()) or "not installed"


def current_task() -> installer.CommandTask | None:
    """The running task, else the one that ended last (its outcome stays on show)."""
    return _task or _last


# ---------------------------------------------------------------------------------- starting work


def _check_can_start() -> None:
    if _task is not None and _task.state == installer.RUNNING:
        raise EngineSetupError(f"{_task.title} is already running; cancel it or wait for it to finish")
    if not bpy.app.online_access:
        raise EngineSetupError(
            "online access is off, and this downloads packages from the internet: allow it in "
            "Preferences > System > Network (Allow Online Access), then try again"
        )


def _begin(task: installer.CommandTask, blocking: bool, timeout_s: float | None) -> installer.CommandTask:
    global _task, _last
    _task, _last = task, task
    task.start()
    if blocking:
        if not task.wait(timeout_s or None):
            task.cancel()
            task.wait(60.0)
        _task = None
    elif not bpy.app.timers.is_registered(_poll):
        bpy.app.timers.register(_poll, first_interval=POLL_INTERVAL_S)
    return task


def start_install(
    engines: tuple[str, ...] = ("lite",),
    blocking: bool = False,
    timeout_s: float | None = None,
    env: Path | None = None,
    extra_requirements: tuple[str, ...] = (),
    nvidia_gpu: bool | None = None,
) -> installer.CommandTask:
    """Make (or remake) the private environment with ``engines``; raises EngineSetupError when it cannot start.

    ``env`` and ``extra_requirements`` are for scripts that want another folder or one more package;
    the operator uses the defaults.
    """
    _check_can_start()
    target = env or env_folder()
    if env is None:
        _stop_local_sidecar()  # its files are about to be replaced
    wheel = bundled_wheel()
    if not wheel.is_file():
        raise EngineSetupError(f"the extension's talkbridge wheel is missing ({wheel}); reinstall the extension zip")
    gpu = install_paths.has_nvidia_gpu() if nvidia_gpu is None else nvidia_gpu
    task = installer.install_task(target, sys.executable, wheel, addon_version(), engines, sys.platform, gpu, extra_requirements)
    log.info("Install Engine: %s into %s", ", ".join(install_paths.extras_for(engines)), target)
    return _begin(task, blocking, timeout_s)


def start_models(
    engine: str, blocking: bool = False, timeout_s: float | None = None, extra_args: tuple[str, ...] = ()
) -> installer.CommandTask:
    """Download the weights ``engine`` needs with the private env's ``talkbridge models download``.

    Any env will do (the download needs only the base package), so weights can come before the
    engine's own install. ``extra_args`` go to the command (``--dir``, ``--catalog`` for a mirror).
    """
    _check_can_start()
    if engine not in MODEL_GROUPS:
        raise EngineSetupError(f"the {engine} engine needs no weights")
    found = private_env()
    if found is None:
        raise EngineSetupError("install the engine first (Install Engine)")
    argv = (*found.argv(), "models", "download", MODEL_GROUPS[engine], "--progress-lines", *extra_args)
    step = install_paths.Step(f"Downloading the {engine} weights", argv)
    return _begin(installer.CommandTask("Models", [step], line_hook=installer.models_line_progress), blocking, timeout_s)


def cancel() -> bool:
    if _task is None or _task.state != installer.RUNNING:
        return False
    _task.cancel()
    return True


def remove() -> None:
    """Delete the private environment (the local sidecar running from it is stopped first)."""
    if _task is not None and _task.state == installer.RUNNING:
        raise EngineSetupError(f"{_task.title} is running; cancel it first")
    _stop_local_sidecar()
    installer.remove_env(env_folder())


def _stop_local_sidecar() -> None:
    from . import runtime

    runtime.shutdown_local_sidecar()


def _poll() -> float | None:
    """Timer: redraw whatever shows the task; unregisters itself when the task ends."""
    global _task
    _redraw()
    task = _task
    if task is None or task.state != installer.RUNNING:
        if task is not None:
            log.info("%s: %s", task.title, task.state)
        _task = None
        return None
    return POLL_INTERVAL_S


def _redraw() -> None:
    wm = bpy.context.window_manager if bpy.context else None
    for window in getattr(wm, "windows", []):
        for area in window.screen.areas:
            if area.type in ("PREFERENCES", "VIEW_3D"):
                area.tag_redraw()


def shutdown() -> None:
    """Add-on disable / Blender exit: stop a running install or download (nothing half-made is kept)."""
    global _task, _last
    task = _task
    if task is not None and task.state == installer.RUNNING:
        task.cancel()
        task.wait(30.0)
    _task = _last = None
    if bpy.app.timers.is_registered(_poll):
        bpy.app.timers.unregister(_poll)


# ---------------------------------------------------------------------------------- drawing


def draw_task(layout, compact: bool = False) -> bool:
    """The running (or last) task's progress, step and outcome; True when something was drawn."""
    task = current_task()
    if task is None:
        return False
    snap = task.snapshot()
    if snap.state == installer.RUNNING:
        text = f"{snap.title}: {snap.step} ({int(snap.step_index) + 1}/{snap.steps})"
        layout.progress(factor=snap.progress, type="BAR", text=text)
        if snap.detail and not compact:
            layout.label(text=snap.detail[:90], icon="CONSOLE")
        layout.operator("talkbridge.engine_cancel", icon="CANCEL")
    elif snap.state == installer.DONE:
        layout.label(text=f"{snap.title}: done in {snap.elapsed_s:.0f} s", icon="CHECKMARK")
    else:
        col = layout.column(align=True)
        col.alert = True
        for index, line in enumerate(snap.error.splitlines()[: 2 if compact else 6]):
            col.label(text=line[:110], icon="ERROR" if index == 0 else "BLANK1")
    return True


def draw_panel(layout, context) -> None:
    """The panel's Start Local hint: a running install's progress, or where to get an engine."""
    if draw_task(layout, compact=True):
        return
    prefs = _preferences(context)
    if (prefs is None or not prefs.sidecar_command.strip()) and private_argv() is None and shutil.which("talkbridge") is None:
        layout.label(text="No engine yet: Preferences > Add-ons > talkbridge > Install Engine", icon="INFO")


def draw_preferences(prefs, layout) -> None:
    """The Engine box of the add-on preferences (called from the preferences' draw)."""
    box = layout.box()
    box.label(text="Engine", icon="SETTINGS")
    box.label(text=env_status())
    row = box.row()
    row.prop(prefs, "install_sadtalker")
    row.prop(prefs, "install_audio2face")
    running = _task is not None and _task.state == installer.RUNNING
    row = box.row(align=True)
    row.enabled = not running
    row.operator("talkbridge.engine_install", icon="IMPORT")
    row.operator("talkbridge.engine_models", text="Models...", icon="FILE_BLEND")
    row.operator("talkbridge.engine_remove", icon="TRASH")
    if not bpy.app.online_access:
        box.label(text="Online access is off: Install Engine and Models... need it", icon="ERROR")
    draw_task(box)


# ---------------------------------------------------------------------------------- operators

_MODE = EnumProperty(
    name="Mode",
    items=[
        ("AUTO", "Auto", "In the background; blocking when Blender runs headless"),
        ("BACKGROUND", "Background", "Return at once; the preferences show the progress"),
        ("BLOCKING", "Blocking", "Wait until it is done (scripts, headless)"),
    ],
    default="AUTO",
)


def _blocking(mode: str) -> bool:
    return mode == "BLOCKING" or (mode == "AUTO" and bpy.app.background)


def _preferences(context):
    addon = context.preferences.addons.get(__package__)
    return addon.preferences if addon is not None else None


def _report_outcome(operator, task: installer.CommandTask) -> set[str]:
    snap = task.snapshot()
    if snap.state == installer.DONE:
        operator.report({"INFO"}, f"talkbridge: {snap.title} done in {snap.elapsed_s:.0f} s")
        return {"FINISHED"}
    operator.report({"ERROR"}, f"talkbridge: {snap.error}")
    return {"CANCELLED"}


class TALKBRIDGE_OT_engine_install(bpy.types.Operator):
    """Make a private Python environment with talkbridge and the chosen engines (downloads from the package index)"""

    bl_idname = "talkbridge.engine_install"
    bl_label = "Install Engine"

    mode: _MODE
    timeout: FloatProperty(name="Timeout", default=0.0, min=0.0, description="Blocking mode: cancel after this many seconds (0: never)")

    def execute(self, context):
        prefs = _preferences(context)
        engines = ["lite"]
        if prefs is not None and prefs.install_sadtalker:
            engines.append("sadtalker")
        if prefs is not None and prefs.install_audio2face:
            engines.append("audio2face")
        blocking = _blocking(self.mode)
        try:
            task = start_install(tuple(engines), blocking, self.timeout)
        except (EngineSetupError, OSError) as error:
            self.report({"ERROR"}, f"talkbridge: {error}")
            return {"CANCELLED"}
        if blocking:
            return _report_outcome(self, task)
        self.report({"INFO"}, "talkbridge: installing the engine; the add-on preferences show the progress")
        return {"FINISHED"}


class TALKBRIDGE_OT_engine_models(bpy.types.Operator):
    """Download the weights of an engine into talkbridge's model store (talkbridge models download)"""

    bl_idname = "talkbridge.engine_models"
    bl_label = "Models"

    engine: EnumProperty(
        name="Engine",
        items=[("sadtalker", "SadTalker", "SadTalker's checkpoints"), ("audio2face", "Audio2Face", "Audio2Face-3D's networks")],
        default="sadtalker",
    )
    mode: _MODE
    timeout: FloatProperty(name="Timeout", default=0.0, min=0.0)

    def invoke(self, context, event):
        return context.window_manager.invoke_props_dialog(self)

    def execute(self, context):
        blocking = _blocking(self.mode)
        try:
            task = start_models(self.engine, blocking, self.timeout)
        except EngineSetupError as error:
            self.report({"ERROR"}, f"talkbridge: {error}")
            return {"CANCELLED"}
        return _report_outcome(self, task) if blocking else {"FINISHED"}


class TALKBRIDGE_OT_engine_cancel(bpy.types.Operator):
    """Stop the running install or download (what it made so far is deleted, never used)"""

    bl_idname = "talkbridge.engine_cancel"
    bl_label = "Cancel"

    def execute(self, context):
        if cancel():
            self.report({"INFO"}, "talkbridge: cancelling")
        return {"FINISHED"}


class TALKBRIDGE_OT_engine_remove(bpy.types.Operator):
    """Delete the private engine environment (downloaded weights are kept)"""

    bl_idname = "talkbridge.engine_remove"
    bl_label = "Remove"

    def invoke(self, context, event):
        return context.window_manager.invoke_confirm(self, event)

    def execute(self, context):
        began = time.monotonic()
        try:
            remove()
        except (EngineSetupError, OSError) as error:
            self.report({"ERROR"}, f"talkbridge: {error}")
            return {"CANCELLED"}
        self.report({"INFO"}, f"talkbridge: engine removed ({time.monotonic() - began:.1f} s)")
        return {"FINISHED"}


classes = (TALKBRIDGE_OT_engine_install, TALKBRIDGE_OT_engine_models, TALKBRIDGE_OT_engine_cancel, TALKBRIDGE_OT_engine_remove)


def register() -> None:
    for cls in classes:
        bpy.utils.register_class(cls)


def unregister() -> None:
    shutdown()
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
