"""Generate and Cancel: thin operators that turn the panel's settings into a job and hand it on (the
preferences are in ``preferences.py``, Install Engine in ``engine_setup.py``)."""

from __future__ import annotations

from typing import Any

import bpy
from bpy.props import EnumProperty, FloatProperty

from talkbridge.bridge.protocol import is_local_address
from talkbridge.core.errors import TalkbridgeError
from talkbridge.core.jobs.options import OPTIONS
from talkbridge.core.motion import FPS

from . import apply, character, runtime, sequencer
from .job import FAILED, JobSettings, check_inputs, emotion_keys, make_job

STREAM_CHUNK_FRAMES = 50  # two seconds per chunk: curves show up while the job runs
LOCAL_START_TIMEOUT_S = 120.0  # a freshly started sidecar imports its engines before it answers


def addon_preferences(context):
    addon = context.preferences.addons.get(__package__)
    return addon.preferences if addon is not None else None


def _audio(scene, settings) -> tuple[str, int | None, bool]:
    """(audio path, start frame from a strip or None, whether the audio still has to go on the sequencer)."""
    if settings.audio_source == "STRIP":
        editor = scene.sequence_editor
        strip = editor.strips_all.get(settings.sound_strip) if editor and settings.sound_strip else None
        if strip is None or strip.type != "SOUND" or strip.sound is None:
            raise TalkbridgeError(f"no sound strip called {settings.sound_strip!r} on the sequencer")
        return bpy.path.abspath(strip.sound.filepath, library=strip.sound.library), int(sequencer.content_start(strip)), False
    return bpy.path.abspath(settings.audio), None, True


def guess_head_bone(rig) -> str | None:
    """The bone most likely to turn the head (see :func:`.character.find_head_bone`)."""
    return character.find_head_bone(rig)


MAX_EMOTION_SAMPLES = 2000
MAX_MOTION_FPS = int(OPTIONS["fps"].high)


def emotion_option(scene: Any, settings: Any, start_frame: int, n_frames: int | None) -> dict[str, Any]:
    """``{"emotion": keys}`` from the panel's emotion and strength, sampled over the take's frames when
    either is keyframed (at the scene's frame rate, from the take's first frame); ``{}`` without an emotion."""
    from bpy_extras import anim_utils

    curves = {}
    animation = scene.animation_data
    if animation is not None and animation.action is not None:
        bag = anim_utils.action_get_channelbag_for_slot(animation.action, animation.action_slot)
        curves = {curve.data_path: curve for curve in (bag.fcurves if bag is not None else ())}
    emotion_curve, strength_curve = curves.get("talkbridge.emotion"), curves.get("talkbridge.emotion_strength")
    names = [item.identifier for item in settings.bl_rna.properties["emotion"].enum_items]
    if emotion_curve is None and strength_curve is None:
        samples = [(0.0, settings.emotion, settings.emotion_strength)]
    else:
        rate = scene.render.fps / (scene.render.fps_base or 1.0)  # scene frames per second of the take
        frames = max(1, int(round((n_frames or 1) * rate / FPS)))
        step = max(1, -(-frames // MAX_EMOTION_SAMPLES))
        samples = []
        for offset in range(0, frames, step):
            frame = start_frame + offset
            name = settings.emotion if emotion_curve is None else names[min(len(names) - 1, max(0, round(emotion_curve.evaluate(frame))))]
            strength = settings.emotion_strength if strength_curve is None else strength_curve.evaluate(frame)
            samples.append((offset / rate, name, strength))
    keys = emotion_keys(samples)
    return {} if keys is None else {"emotion": keys}


def motion_rate(engine: str, scene: Any, render_frames: bool) -> int:
    """The frame rate to ask the engine for.

    audio2face makes any rate, so a motion-only take comes at the scene's own whole-number rate: its
    keys land on the scene's frames and nothing is resampled. Every other engine, and a take with
    video frames, is 25 fps (the scene is then matched to it or the keys are spaced to fit).
    """
    rate = scene.render.fps / (scene.render.fps_base or 1.0)
    whole = int(round(rate))
    if engine == "audio2face" and not render_frames and abs(rate - whole) < 1e-6 and 1 <= whole <= MAX_MOTION_FPS:
        return whole
    return FPS


def audio_length_frames(path: str, fps: int = FPS) -> int | None:
    """Clip length in motion frames via Blender's audio library (any format it reads), for the progress bar."""
    try:
        import aud

        sound = aud.Sound(path)
        rate = sound.specs[0]
        return max(1, int(round(sound.length / rate * fps))) if rate else None
    except Exception:  # noqa: BLE001 - only a progress estimate
        return None


def head_movement_scale(factor: float, scene) -> float:
    """Scene units per 3DMM translation unit for the panel's Head Movement factor (1 = life size)."""
    from .posemath import pose_math

    unit = scene.unit_settings.scale_length or 1.0  # metres per scene unit
    return float(factor) * pose_math.TRANSLATION_UNIT_M / unit


def _keys(settings, address: str) -> Any:
    from talkbridge.bridge.security import load_client_keys

    def path(value: str) -> str | None:
        return bpy.path.abspath(value) if value else None

    return load_client_keys(address, path(settings.server_key), path(settings.client_key), path(settings.signing_key))


def build_job(context) -> runtime.ActiveJob:
    """Read the panel into a job (main thread); raises TalkbridgeError with what to fix."""
    scene = context.scene
    settings = scene.talkbridge
    audio_path, strip_start, audio_to_sequencer = _audio(scene, settings)
    name_map = {}
    if settings.name_map:
        from talkbridge.exporters.naming import load_name_map

        name_map = load_name_map(bpy.path.abspath(settings.name_map))
    # The Target is a character (mesh, armature, empty or any parent); an empty Target falls back to
    # the active object, which may have no shape keys when only the head is to turn.
    chosen = settings.target or context.active_object
    face = character.resolve_target(chosen, name_map, required=settings.target is not None) if chosen is not None else None
    blocks = face.blocks if face is not None else []
    rig, bone = None, None
    if settings.animate_head:
        rig = settings.rig or (face.armature if face is not None else None)
        if rig is not None and rig.type == "ARMATURE":
            bone = settings.head_bone or guess_head_bone(rig)
            if bone is None:
                raise TalkbridgeError(f"choose the head bone of {rig.name!r} (no bone is called 'head' or a known head name)")
            if bone not in rig.pose.bones:
                raise TalkbridgeError(f"the armature {rig.name!r} has no bone {bone!r}")
    if not blocks and rig is None:
        raise TalkbridgeError("choose a character (a mesh with shape keys, its armature or its parent) and/or a head to rotate")
    rate = motion_rate(settings.engine, scene, settings.render_frames)
    if settings.match_scene_fps and rate == FPS:
        sequencer.match_scene_rate(scene, FPS)

    if settings.sidecar_mode == "LOCAL":
        from .engine_setup import private_argv

        prefs = addon_preferences(context)
        sidecar = runtime.local_sidecar(prefs.sidecar_command if prefs is not None else "")
        sidecar.private_argv = private_argv()  # checked now: an env removed or remade since is noticed
        address = sidecar.start()
        timeout = max(settings.connect_timeout, LOCAL_START_TIMEOUT_S)
        keys = None
    else:
        address = settings.address.strip()
        if not is_local_address(address) and not bpy.app.online_access:
            raise TalkbridgeError(
                f"{address} is a remote address and online access is off; allow it in Preferences > System > Network"
            )
        timeout = settings.connect_timeout
        keys = _keys(settings, address)

    render = settings.render_frames
    job_settings = JobSettings(
        address=address,
        engine=settings.engine,
        audio_path=audio_path,
        image_path=bpy.path.abspath(settings.image) if settings.image else None,
        options={
            "pose_style": int(settings.pose_style),
            "still": bool(settings.still),
            "expression_scale": float(settings.expression_scale),
            "seed": int(settings.seed),
            "chunk_frames": STREAM_CHUNK_FRAMES,
            "fps": rate,
            **({"identity": settings.identity.strip()} if settings.engine == "audio2face" and settings.identity.strip() else {}),
            **emotion_option(scene, settings, strip_start if strip_start is not None else settings.start_frame,
                             audio_length_frames(audio_path)),
        },
        render_size=int(settings.size) if render else None,
        connect_timeout_s=timeout,
        expected_frames=audio_length_frames(audio_path, rate),
        keys=keys,
    )
    check_inputs(job_settings)
    number = sum(1 for action in bpy.data.actions if action.get(apply.TAKE_TAG)) + 1
    take_name = f"talkbridge take {number}"
    start_frame = strip_start if strip_start is not None else settings.start_frame
    plan = runtime.TakePlan(
        take_name=take_name,
        scene_name=scene.name,
        shape_keys_names=[block.name for block in blocks],
        rig_name=rig.name if rig is not None else None,
        bone=bone,
        start_frame=start_frame,
        frame_step=apply.frame_step_for(scene, rate),
        pose_reference=settings.pose_reference,
        head_movement=head_movement_scale(settings.head_movement, scene),
        name_map=name_map,
        mouth_source=settings.mouth_source.lower(),
        preset_binds=face.preset_binds if face is not None else {},
        frames_folder=runtime.plan_folder(take_name) if render else None,
        sequencer_audio=audio_path if audio_to_sequencer else None,
        metadata={"engine": settings.engine, "audio": audio_path, "seed": int(settings.seed)},
    )
    return runtime.ActiveJob(make_job(job_settings), plan)


class TALKBRIDGE_OT_generate(bpy.types.Operator):
    """Generate a talking-head take from the portrait and audio onto the chosen rig"""

    bl_idname = "talkbridge.generate"
    bl_label = "Generate"
    bl_options = {"REGISTER"}

    mode: EnumProperty(
        name="Mode",
        items=[
            ("AUTO", "Auto", "In the background with a timer; blocking when Blender runs headless"),
            ("BACKGROUND", "Background", "Return at once; a timer applies the take as it arrives"),
            ("BLOCKING", "Blocking", "Wait for the job to finish (scripts, headless)"),
        ],
        default="AUTO",
    )
    timeout: FloatProperty(name="Timeout", default=0.0, min=0.0, description="Blocking mode: cancel after this many seconds (0: never)")

    @classmethod
    def poll(cls, context):
        job = runtime.active_job()
        return job is None or job.finished

    def execute(self, context):
        prefs = addon_preferences(context)
        if prefs is not None:
            runtime.tick_budget_s = prefs.tick_budget_ms / 1000.0
        try:
            job = build_job(context)
            blocking = self.mode == "BLOCKING" or (self.mode == "AUTO" and bpy.app.background)
            if blocking:
                runtime.run_blocking(job, self.timeout or None)
            else:
                runtime.begin(job, use_timer=True)
        except TalkbridgeError as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        if blocking:
            level = {"ERROR"} if job.controller.state == FAILED else {"INFO"}
            self.report(level, job.summary())
            return {"CANCELLED"} if job.controller.state == FAILED else {"FINISHED"}
        self.report({"INFO"}, "talkbridge: generating; keep working, the take appears as it arrives")
        return {"FINISHED"}


class TALKBRIDGE_OT_cancel(bpy.types.Operator):
    """Stop the running talkbridge job (what has arrived is kept)"""

    bl_idname = "talkbridge.cancel"
    bl_label = "Cancel"

    @classmethod
    def poll(cls, context):
        job = runtime.active_job()
        return job is not None and not job.finished

    def execute(self, context):
        if runtime.cancel_active():
            self.report({"INFO"}, "talkbridge: cancelling")
        return {"FINISHED"}


classes = (TALKBRIDGE_OT_generate, TALKBRIDGE_OT_cancel)


def register() -> None:
    for cls in classes:
        bpy.utils.register_class(cls)


def unregister() -> None:
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
