"""The take's rendered frames and its audio on the Video Sequencer (bpy; called from the main thread).

Strip timing names changed in Blender 5.2: ``left_handle``/``right_handle``/``duration`` replace
``frame_final_start``/``frame_final_end``/``frame_final_duration`` and ``content_start`` replaces
``frame_start`` (the old names warn that they go in 6.0). The helpers below pick whichever the
running Blender has, by looking at the strip's RNA properties rather than at version numbers.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import bpy

from talkbridge.core.motion import FPS

log = logging.getLogger(__name__)


@dataclass
class PlacedStrips:
    video: str | None = None
    audio: str | None = None
    channel: int = 0
    warning: str | None = None


def scene_fps(scene: "bpy.types.Scene") -> float:
    return scene.render.fps / scene.render.fps_base


def match_scene_rate(scene: "bpy.types.Scene", fps: int = FPS) -> bool:
    """Set the scene to the motion's frame rate (so an image sequence plays at the right speed); True if changed."""
    if abs(scene_fps(scene) - fps) < 1e-6:
        return False
    scene.render.fps = fps
    scene.render.fps_base = 1.0
    return True


def _has(strip: "bpy.types.Strip", name: str) -> bool:
    return name in strip.bl_rna.properties


def strip_start(strip: "bpy.types.Strip") -> int:
    """The first frame the strip shows on the timeline (its left handle)."""
    return strip.left_handle if _has(strip, "left_handle") else strip.frame_final_start


def strip_end(strip: "bpy.types.Strip") -> int:
    """The first frame after the strip (its right handle)."""
    return strip.right_handle if _has(strip, "right_handle") else strip.frame_final_end


def strip_duration(strip: "bpy.types.Strip") -> int:
    """Frames from the left handle to the right handle."""
    return strip.duration if _has(strip, "duration") else strip.frame_final_duration


def set_strip_duration(strip: "bpy.types.Strip", frames: int) -> None:
    """Move the right handle so the strip shows ``frames`` frames."""
    if _has(strip, "duration"):
        strip.duration = frames
    else:
        strip.frame_final_duration = frames


def content_start(strip: "bpy.types.Strip") -> float:
    """The timeline frame where the strip's source (e.g. the sound file's first sample) begins."""
    return strip.content_start if _has(strip, "content_start") else strip.frame_start


def _free_channel(editor: "bpy.types.SequenceEditor", start: int, end: int) -> int:
    """The lowest channel with no strip overlapping frames ``start .. end`` (the artist's strips stay put)."""
    used = {
        strip.channel
        for strip in editor.strips_all
        if strip_start(strip) < end and strip_end(strip) > start
    }
    channel = 1
    while channel in used or channel + 1 in used:
        channel += 1
    return channel


def place_take(
    scene: "bpy.types.Scene",
    name: str,
    start_frame: int,
    frames_folder: str | Path | None,
    frame_files: list[str],
    audio_path: str | Path | None,
) -> PlacedStrips:
    """Add the frame sequence (one image per scene frame) and the audio as new strips; returns their names.

    Nothing existing is moved or replaced: the two strips take the lowest pair of free channels.
    """
    editor = scene.sequence_editor or scene.sequence_editor_create()
    n = len(frame_files)
    length = max(n, 1)
    channel = _free_channel(editor, start_frame, start_frame + length)
    placed = PlacedStrips(channel=channel)
    warnings = []
    if frames_folder is not None and n:
        folder = Path(frames_folder)
        try:
            video = editor.strips.new_image(
                name=f"{name} video", filepath=str(folder / frame_files[0]), channel=channel, frame_start=start_frame, fit_method="FIT"
            )
            for file_name in frame_files[1:]:
                video.elements.append(file_name)
            set_strip_duration(video, n)
            placed.video = video.name
        except RuntimeError as error:  # the curves are done: a strip problem must not fail the take
            warnings.append(f"{folder}: could not add the video strip ({error})")
    if audio_path is not None:
        try:
            sound = editor.strips.new_sound(name=f"{name} audio", filepath=str(audio_path), channel=channel + 1, frame_start=start_frame)
            placed.audio = sound.name
        except RuntimeError as error:
            warnings.append(f"{audio_path}: Blender could not load the audio for the sequencer ({error})")
    if abs(scene_fps(scene) - FPS) > 1e-6 and placed.video:
        warnings.append(
            f"the scene runs at {scene_fps(scene):g} fps but the frames are {FPS} fps: the video strip plays at the "
            "wrong speed (turn on 'Match scene frame rate')"
        )
    placed.warning = "; ".join(warnings) or None
    return placed
