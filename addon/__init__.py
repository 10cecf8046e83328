"""talkbridge for Blender: the "Generate Talking Head" panel.

Pick a portrait, an audio file and a rig, press Generate: a sidecar (``talkbridge serve``) makes the
motion and streams it back; a timer writes it into a new Action per take (shape keys by name, the
head bone's rotation) and puts the rendered frames plus the audio on the Video Sequencer.

Layout: ``apply``/``posemath``/``sequencer`` write Blender data from numpy arrays (no UI), ``job``
and ``frames`` and ``sidecar`` are plain Python with threads (no bpy), ``runtime`` is the timer and
headless loop, and ``properties``/``operators``/``panel`` are the thin UI.
"""

from __future__ import annotations

import bpy
from bpy.app.handlers import persistent

from . import operators, panel, properties, runtime


@persistent
def _on_load_pre(*_args) -> None:
    """Closing or replacing the file mid-job cancels the job before its data blocks disappear."""
    runtime.abandon_active("cancelled: the file was closed")


def register() -> None:
    properties.register()
    operators.register()
    panel.register()
    if _on_load_pre not in bpy.app.handlers.load_pre:
        bpy.app.handlers.load_pre.append(_on_load_pre)


def unregister() -> None:
    runtime.shutdown()
    if _on_load_pre in bpy.app.handlers.load_pre:
        bpy.app.handlers.load_pre.remove(_on_load_pre)
    panel.unregister()
    operators.unregister()
    properties.unregister()
