"""The add-on's preferences: the engine set-up (Install Engine, Models..., Remove), the local sidecar
command and the timer's work budget."""

from __future__ import annotations

import bpy

from . import engine_setup, runtime


class TalkbridgePreferences(bpy.types.AddonPreferences):
    bl_idname = __package__

    sidecar_command: bpy.props.StringProperty(
        name="talkbridge Command",
        default="",
        description=(
            "Empty: the engine Install Engine made, else `talkbridge` on PATH. Or the `talkbridge` executable "
            "(or any command line) of another install with the engines"
        ),
    )
    install_sadtalker: bpy.props.BoolProperty(
        name="SadTalker", default=False,
        description=(
            "Also install SadTalker: torch (CPU build about 190 MB to download, 750 MB on disk; CUDA builds several GB) "
            "and its stack; its weights come with Models..."
        ),
    )
    install_audio2face: bpy.props.BoolProperty(
        name="Audio2Face", default=False, description="Also install Audio2Face-3D's runtime (ONNX Runtime)",
    )
    tick_budget_ms: bpy.props.FloatProperty(
        name="Work per Tick (ms)", default=8.0, min=1.0, max=100.0,
        description="How long each timer tick may spend applying curves; lower keeps the viewport smoother",
        update=lambda self, _context: setattr(runtime, "tick_budget_s", self.tick_budget_ms / 1000.0),
    )

    def draw(self, context):
        engine_setup.draw_preferences(self, self.layout)
        self.layout.prop(self, "sidecar_command")
        self.layout.prop(self, "tick_budget_ms")


classes = (TalkbridgePreferences,)


def register() -> None:
    for cls in classes:
        bpy.utils.register_class(cls)


def unregister() -> None:
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
