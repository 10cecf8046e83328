"""talkbridge for Blender: the "Generate Talking Head" panel.

Pick a portrait, an audio file and a rig, press Generate: a sidecar (``talkbridge serve``) makes the
motion and streams it back; a timer writes it into a new Action per take (shape keys by name, the
head bone's rotation) and puts the rendered frames plus the audio on the Video Sequencer.

Layout: ``apply``/``posemath``/``sequencer`` write Blender data from numpy arrays (no UI), ``job``
and ``frames`` and ``sidecar`` are plain Python with threads (no bpy), ``runtime`` is the timer and
headless loop, and ``properties``/``operators``/``panel`` are the thin UI. The engine set-up
(Install Engine, Models...) is ``engine_setup`` (operators, timer) over ``installer`` and
``install_paths`` (no bpy); ``preferences`` draws it.
"""

from __future__ import annotations

import atexit

import bpy
from bpy.app.handlers import persistent

from . import engine_setup, operators, panel, preferences, properties, runtime


@persistent
def _on_load_pre(*_args) -> None:
    """Closing or replacing the file mid-job cancels the job before its data blocks disappear."""
    runtime.abandon_active("cancelled: the file was closed")


def _at_exit() -> None:
    """Blender quits: stop the local sidecar and any install (the sidecar's stdin pipe closing is the backstop)."""
    try:
        engine_setup.shutdown()
    except Exception:  # noqa: BLE001 - Blender is tearing down; the sidecar must still be stopped
        pass
    runtime.shutdown_local_sidecar()


def register() -> None:
    properties.register()
    preferences.register()
    operators.register()
    engine_setup.register()
    panel.register()
    if _on_load_pre not in bpy.app.handlers.load_pre:
        bpy.app.handlers.load_pre.append(_on_load_pre)
    atexit.register(_at_exit)


def unregister() -> None:
    atexit.unregister(_at_exit)
    runtime.shutdown()
    if _on_load_pre in bpy.app.handlers.load_pre:
        bpy.app.handlers.load_pre.remove(_on_load_pre)
    panel.unregister()
    engine_setup.unregister()
    operators.unregister()
    preferences.unregister()
    properties.unregister()
