"""The "Generate Talking Head" panel in the 3D viewport's sidebar (drawing only)."""

from __future__ import annotations

import bpy

from . import engine_setup, runtime


class VIEW3D_PT_talkbridge(bpy.types.Panel):
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "talkbridge"
    bl_label = "Generate Talking Head"

    def draw(self, context):
        layout = self.layout
        settings = context.scene.talkbridge
        status = context.window_manager.talkbridge_status

        box = layout.box()
        box.label(text="Inputs", icon="FILE_IMAGE")
        box.prop(settings, "image")
        box.prop(settings, "audio_source", expand=True)
        if settings.audio_source == "FILE":
            box.prop(settings, "audio")
        elif context.scene.sequence_editor is not None:
            box.prop_search(settings, "sound_strip", context.scene.sequence_editor, "strips_all", text="Strip")
        else:
            box.label(text="No sequencer strips in this scene", icon="INFO")

        box = layout.box()
        box.label(text="Target", icon="SHAPEKEY_DATA")
        box.prop(settings, "target")
        box.prop(settings, "mouth_source")
        box.prop(settings, "animate_head")
        if settings.animate_head:
            box.prop(settings, "rig")
            if settings.rig is not None and settings.rig.type == "ARMATURE":
                box.prop_search(settings, "head_bone", settings.rig.data, "bones")
            box.prop(settings, "pose_reference")
            box.prop(settings, "head_movement")
        box.prop(settings, "name_map")
        box.prop(settings, "start_frame")

        box = layout.box()
        box.label(text="Engine", icon="SETTINGS")
        box.prop(settings, "engine")
        row = box.row()
        row.prop(settings, "pose_style")
        row.prop(settings, "seed")
        row = box.row()
        row.prop(settings, "still")
        row.prop(settings, "expression_scale")
        if settings.engine == "audio2face":
            box.prop(settings, "identity")
        row = box.row()
        row.prop(settings, "emotion")
        sub = row.row()
        sub.enabled = settings.emotion != "NONE"
        sub.prop(settings, "emotion_strength")
        row = box.row()
        row.prop(settings, "render_frames")
        sub = row.row()
        sub.enabled = settings.render_frames
        sub.prop(settings, "size", text="")
        box.prop(settings, "match_scene_fps")

        box = layout.box()
        box.label(text="Sidecar", icon="LINKED")
        box.prop(settings, "sidecar_mode", expand=True)
        if settings.sidecar_mode == "LOCAL":
            engine_setup.draw_panel(box, context)
        if settings.sidecar_mode == "REMOTE":
            box.prop(settings, "address")
            box.prop(settings, "server_key")
            box.prop(settings, "client_key")
            box.prop(settings, "signing_key")
            box.prop(settings, "connect_timeout")
            if not bpy.app.online_access:
                box.label(text="Online access is off: only local addresses", icon="ERROR")

        row = layout.row(align=True)
        row.scale_y = 1.4
        job = runtime.active_job()
        if job is not None and not job.finished:
            row.operator("talkbridge.cancel", icon="CANCEL")
            layout.progress(factor=status.progress, type="BAR", text=status.message or status.state)
        else:
            row.operator("talkbridge.generate", icon="PLAY")
            if status.message and not status.error:
                layout.label(text=status.message, icon="CHECKMARK" if status.state == "done" else "INFO")
        if status.error:
            col = layout.column(align=True)
            col.alert = True
            for index, line in enumerate(_wrap(status.error, 48)):
                col.label(text=line, icon="ERROR" if index == 0 else "BLANK1")
        if status.action:
            layout.label(text=f"Action: {status.action}", icon="ACTION")


def _wrap(text: str, width: int) -> list[str]:
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return lines + ([line] if line else [])


classes = (VIEW3D_PT_talkbridge,)


def register() -> None:
    for cls in classes:
        bpy.utils.register_class(cls)


def unregister() -> None:
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
