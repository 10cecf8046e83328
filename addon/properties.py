"""The panel's settings (saved with the scene) and the job status (window manager, never saved)."""

from __future__ import annotations

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty, PointerProperty, StringProperty

from talkbridge.core.jobs.options import OPTIONS
from talkbridge.core.motion import EMOTIONS

BLENDER_INT_MAX = 2**31 - 1  # IntProperty is a signed 32-bit integer


def _limits(name: str, **ui: float) -> dict:
    """Property bounds from the job layer's one definition of the option, so the panel cannot send
    a value the sidecar refuses (an open lower bound becomes the smallest step above it)."""
    spec = OPTIONS[name]
    low = float(spec.low) + (0.01 if spec.low_open else 0.0)
    high = min(float(spec.high), BLENDER_INT_MAX) if spec.kind == "int" else float(spec.high)
    bounds = {"min": int(low), "max": int(high)} if spec.kind == "int" else {"min": low, "max": high}
    return {**bounds, "default": spec.default, "description": spec.help.capitalize(), **ui}


def _is_character(_self, obj) -> bool:
    """A mesh, an armature, an empty or any object that parents or deforms meshes."""
    return obj.type in {"MESH", "ARMATURE", "EMPTY"} or bool(obj.children)


class TalkbridgeSettings(bpy.types.PropertyGroup):
    image: StringProperty(name="Portrait", subtype="FILE_PATH", description="Portrait image of the speaker")
    audio_source: EnumProperty(
        name="Audio",
        items=[("FILE", "File", "An audio file"), ("STRIP", "Sound Strip", "A sound strip already on the sequencer")],
        default="FILE",
    )
    audio: StringProperty(name="Audio File", subtype="FILE_PATH", description="Speech recording (wav, flac, mp3 ...)")
    sound_strip: StringProperty(name="Sound Strip", description="Sequencer sound strip to animate to")
    target: PointerProperty(
        name="Character", type=bpy.types.Object, poll=_is_character,
        description="The character: a mesh, its armature, or an empty/parent above it. Every mesh it deforms "
        "or parents gets the take (empty: the active object)",
    )
    mouth_source: EnumProperty(
        name="Mouth",
        items=[
            ("AUTO", "Auto", "ARKit when its mouth shapes are complete, else visemes, else VRM vowels"),
            ("ARKIT", "ARKit", "ARKit mouth and jaw shapes drive the mouth"),
            ("VISEMES", "Visemes", "Oculus visemes (viseme_*) drive the mouth"),
            ("VRM", "VRM", "VRM vowels (aa ih ou ee oh) drive the mouth"),
        ],
        default="AUTO",
        description="Which one mouth set drives the mouth when the character has several (the others stay at rest)",
    )
    animate_head: BoolProperty(name="Head Pose", default=True, description="Also rotate the head")
    rig: PointerProperty(name="Head", type=bpy.types.Object, description="Armature (with a head bone) or object to rotate (empty: the character's armature)")
    head_bone: StringProperty(name="Bone", description="Bone that turns the head (empty: found by name)")
    engine: EnumProperty(
        name="Engine",
        items=[
            ("lite", "Lite", "Weight-free engine: visemes and ARKit curves, quick"),
            ("sadtalker", "SadTalker", "SadTalker motion (needs its weights on the sidecar)"),
            ("audio2face", "Audio2Face-3D", "NVIDIA Audio2Face-3D: trained ARKit, tongue, jaw and eye motion (needs its model on the sidecar)"),
        ],
        default="lite",
    )
    pose_style: IntProperty(name="Pose Style", **_limits("pose_style"))
    still: BoolProperty(name="Still", default=False, description="Keep the head still")
    expression_scale: FloatProperty(name="Expression Scale", **_limits("expression_scale", soft_max=3.0))
    emotion: EnumProperty(
        name="Emotion",
        items=[("NONE", "None", "No emotion")] + [(name, name.title(), f"Audio2Face-3D's {name!r}") for name in EMOTIONS],
        default="NONE",
        description="Emotion of the take (keyframe it to change it over time): Audio2Face-3D hears it, "
                    "lite and SadTalker blend it into their ARKit curves",
    )
    emotion_strength: FloatProperty(
        name="Strength", min=0.0, max=1.0, default=0.6, description="How strong the emotion is (keyframable)",
    )
    identity: StringProperty(
        name="Identity", default="",
        description="The face an Audio2Face-3D v3.0 model animates (Claire, James or Mark); empty: the model's first",
    )
    size: EnumProperty(name="Size", items=[("256", "256", ""), ("512", "512", "")], default="256")
    seed: IntProperty(name="Seed", **_limits("seed"))
    render_frames: BoolProperty(name="Rendered Video", default=True, description="Ask for rendered frames and put them on the sequencer (SadTalker renders the portrait; lite, the mannequin)")
    name_map: StringProperty(name="Name Map", subtype="FILE_PATH", description="Optional JSON: shape key name -> channel (or null)")
    pose_reference: EnumProperty(
        name="Pose",
        items=[("first", "From Rest", "Start at the rig's current pose"), ("absolute", "Absolute", "Use the portrait's head angles as they are")],
        default="first",
    )
    head_movement: FloatProperty(
        name="Head Movement",
        min=0.0, max=3.0, default=0.0,
        description="Also move the head as the speaker does: 1 is life size, 0 only turns it",
    )
    start_frame: IntProperty(name="Start Frame", default=1)
    match_scene_fps: BoolProperty(name="Match Scene Frame Rate", default=True, description="Set the scene to 25 fps, the motion's rate")
    sidecar_mode: EnumProperty(
        name="Sidecar",
        items=[("LOCAL", "Start Local", "Run `talkbridge serve` on this machine"), ("REMOTE", "Connect", "Connect to a running sidecar")],
        default="LOCAL",
    )
    address: StringProperty(name="Address", default="tcp://127.0.0.1:5555")
    server_key: StringProperty(name="Server Key", subtype="FILE_PATH", description="The server's CURVE public key (.key)")
    client_key: StringProperty(name="Client Key", subtype="FILE_PATH", description="This client's CURVE key pair (.key_secret)")
    signing_key: StringProperty(name="Signing Key", subtype="FILE_PATH", description="Shared HMAC key file, if the sidecar uses one")
    connect_timeout: FloatProperty(name="Timeout", default=10.0, min=0.5, max=600.0, unit="TIME_ABSOLUTE")


class TalkbridgeStatus(bpy.types.PropertyGroup):
    running: BoolProperty(default=False)
    state: StringProperty(default="")
    progress: FloatProperty(default=0.0, min=0.0, max=1.0, subtype="FACTOR")
    message: StringProperty(default="")
    error: StringProperty(default="")
    action: StringProperty(default="")


classes = (TalkbridgeSettings, TalkbridgeStatus)


def register() -> None:
    for cls in classes:
        bpy.utils.register_class(cls)
    bpy.types.Scene.talkbridge = PointerProperty(type=TalkbridgeSettings)
    bpy.types.WindowManager.talkbridge_status = PointerProperty(type=TalkbridgeStatus)


def unregister() -> None:
    del bpy.types.WindowManager.talkbridge_status
    del bpy.types.Scene.talkbridge
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
