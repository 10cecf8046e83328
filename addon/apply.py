"""Writing talkbridge motion onto Blender data: plain functions and classes, no UI, no timers.

Everything takes bpy data blocks plus numpy arrays, so the add-on's operators, the headless path,
the tests and ``bench/blender_apply.py`` share one implementation.

How a take is written (Blender 4.4+ slotted actions):

* one new Action per take, tagged ``talkbridge_take``, with one slot per shape-key block (``KEY``:
  a character's head, teeth, eyes ... each get theirs, in the same action) and one for the head rig
  (``OBJECT``), a layer and a keyframe strip;
* one mouth source drives the mouth (see :mod:`.mouth`), decided once for all of a character's meshes;
  shape keys bound by VRM presets (the VRM add-on's data) follow their presets through the binds;
* every curve is a channelbag F-curve filled with ``keyframe_points.add`` + ``foreach_set`` from a
  numpy buffer; streamed chunks grow the buffers and a later flush writes the whole curve again in
  one call (``foreach_set`` cannot write a slice), which stays far cheaper than per-key Python;
* the artist's own action on the same data block is never edited: it is pushed into an NLA track
  (with a fake user) under the take, so their keys stay intact and keep playing where the take has
  no curve.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import bpy
import numpy as np

from talkbridge.core.errors import InputError, TalkbridgeError
from talkbridge.core.motion import FPS, Motion, MotionChunk
from talkbridge.exporters import mouth_source
from talkbridge.exporters.naming import MatchReport, match_targets, motion_channels

from . import joint_take, posemath

log = logging.getLogger(__name__)

TAKE_TAG = "talkbridge_take"
KEPT_TRACK_PREFIX = "[talkbridge kept] "
SHAPE_KEY_GROUP = "talkbridge shape keys"
REWRITE_GROWTH = 0.25
"""While streaming, a curve is rewritten once it has this fraction more keys than Blender shows."""


def _linear_code() -> int:
    return bpy.types.Keyframe.bl_rna.properties["interpolation"].enum_items["LINEAR"].value


def shape_key_names(key: "bpy.types.Key") -> list[str]:
    """Names of the shape keys that can be driven (everything but the reference/basis key)."""
    reference = key.reference_key
    return [block.name for block in key.key_blocks if reference is None or block.name != reference.name]


def match_shape_keys(
    key: "bpy.types.Key",
    available: set[str] | frozenset[str] | None,
    user_map: Mapping[str, tuple[str | None, float]] | None = None,
) -> MatchReport:
    """Bind a mesh's shape keys to motion channels with the exporters' rules (ARKit, visemes, VRM, exp_XX, user map)."""
    return match_targets(shape_key_names(key), available, user_map)


class CurveBuffer:
    """The numpy copy of one F-curve's keys; ``flush`` writes them all in two bulk calls.

    It remembers the curve by slot, data path and index rather than holding the F-curve: the take's
    writer looks the curve up again before each write, so an undo that reallocates the action (or
    drops the curve) cannot leave it writing through a stale pointer.
    """

    def __init__(self, slot_handle: int, data_path: str, index: int, group: str, start_frame: float, frame_step: float) -> None:
        self.slot_handle = slot_handle
        self.data_path = data_path
        self.index = index
        self.group = group
        self.start_frame = float(start_frame)
        self.frame_step = float(frame_step)
        self._co = np.zeros((0, 2), np.float32)
        self.count = 0
        self.written = 0

    @property
    def dirty(self) -> bool:
        return self.count != self.written

    def put(self, start: int, values: np.ndarray) -> None:
        """Store ``values`` for frames ``start ..``; frames must arrive in order (gaps are held at 0)."""
        values = np.asarray(values, np.float32).reshape(-1)
        end = start + len(values)
        if end > len(self._co):
            grown = np.zeros((max(end, 2 * len(self._co), 64), 2), np.float32)
            grown[: self.count] = self._co[: self.count]
            self._co = grown
        if end > self.count:
            indexes = np.arange(self.count, end, dtype=np.float64)
            self._co[self.count:end, 0] = self.start_frame + indexes * self.frame_step
        self._co[start:end, 1] = values
        self.count = max(self.count, end)
        if start < self.written:
            self.written = min(self.written, start)  # rewrite from there (never happens in order)

    def values(self) -> np.ndarray:
        return self._co[: self.count, 1]

    def flush(self, fcurve: "bpy.types.FCurve", linear: int) -> None:
        points = fcurve.keyframe_points
        have = len(points)
        if have < self.count:
            points.add(self.count - have)
        elif have > self.count:
            for _ in range(have - self.count):  # never happens in a normal take; keeps foreach_set sizes equal
                points.remove(points[len(points) - 1], fast=True)
        points.foreach_set("co", self._co[: self.count].ravel())
        points.foreach_set("interpolation", np.full(self.count, linear, np.int32))
        fcurve.update()
        self.written = self.count


def _stash_previous_action(anim: "bpy.types.AnimData") -> str | None:
    """Move the artist's active action into an NLA track so the take never edits their keys."""
    previous = anim.action
    if previous is None or previous.get(TAKE_TAG):
        return None
    previous.use_fake_user = True
    track = anim.nla_tracks.new()
    track.name = f"{KEPT_TRACK_PREFIX}{previous.name}"[:63]
    start = int(np.floor(previous.frame_range[0]))
    slot = anim.action_slot
    strip = track.strips.new(previous.name[:63], start, previous)
    if slot is not None and hasattr(strip, "action_slot"):
        try:
            strip.action_slot = slot
        except (TypeError, RuntimeError, AttributeError):
            log.debug("could not keep slot %s on the NLA strip", slot.identifier)
    return track.name


def install_take(id_block: Any, action: "bpy.types.Action", slot: "bpy.types.ActionSlot") -> str | None:
    """Make ``action``/``slot`` the active animation of ``id_block``; returns the NLA track keeping the artist's action, if any."""
    anim = id_block.animation_data or id_block.animation_data_create()
    kept = _stash_previous_action(anim)
    anim.action = action
    anim.action_slot = slot
    return kept


@dataclass
class PoseTarget:
    """Where head rotation goes: a pose bone (``bone`` set) or the object itself."""

    obj: "bpy.types.Object"
    bone: str | None = None

    @property
    def owner(self) -> Any:
        return self.obj.pose.bones[self.bone] if self.bone else self.obj

    @property
    def prefix(self) -> str:
        return f'pose.bones["{bpy.utils.escape_identifier(self.bone)}"].' if self.bone else ""

    def frame_rotation(self) -> np.ndarray:
        """The rotation of the space this target's rotation lives in (x, y, z, w)."""
        if self.bone:
            return posemath.from_blender_order(self.obj.data.bones[self.bone].matrix_local.to_quaternion())
        if self.obj.parent is not None:
            parent = self.obj.parent.matrix_world @ self.obj.matrix_parent_inverse
            return posemath.from_blender_order(parent.to_quaternion())
        return np.array([0.0, 0.0, 0.0, 1.0])

    def current_location(self) -> np.ndarray:
        return np.array(tuple(self.owner.location), np.float64)

    def current_rotation(self) -> np.ndarray:
        owner = self.owner
        mode = owner.rotation_mode
        if mode == "QUATERNION":
            quaternion = owner.rotation_quaternion.normalized()
        elif mode == "AXIS_ANGLE":
            raise InputError(f"{self.describe()} uses axis-angle rotation; switch it to Quaternion or an Euler mode")
        else:
            quaternion = owner.rotation_euler.to_quaternion()
        return posemath.from_blender_order(quaternion)

    def describe(self) -> str:
        return f"bone {self.bone!r} of {self.obj.name!r}" if self.bone else f"object {self.obj.name!r}"


@dataclass
class TakeSummary:
    """What a take wrote, for the panel and the tests.

    ``shape_keys`` lists the driven shape-key names (once each, whichever meshes have them);
    ``meshes`` maps each animated mesh to its driven keys; ``left_at_rest`` names the mesh shape keys
    (``"Mesh: key"``) that matched but stay at rest because another set drives the mouth (or the blink).
    """

    action: str
    frames: int = 0
    shape_keys: list[str] = field(default_factory=list)
    pose_target: str | None = None
    kept_tracks: list[str] = field(default_factory=list)
    report: MatchReport | None = None
    meshes: dict[str, list[str]] = field(default_factory=dict)
    reports: dict[str, MatchReport] = field(default_factory=dict)
    mouth_source: str | None = None
    left_at_rest: list[str] = field(default_factory=list)
    joint_bones: list[str] = field(default_factory=list)  # jaw/eye bones keyed from the jaw and eyes channels


PresetBinds = Mapping[str, Mapping[str, Sequence[tuple[str, float, bool]]]]
"""Shape-key block name -> {shape key: [(VRM preset channel, weight, binary), ...]}: keys driven through binds."""

Term = tuple[str, float, bool]
"""What drives a shape key, summed: (channel, scale, binary: the channel switched on above 0.5)."""


def key_owner_names(key: "bpy.types.Key") -> list[str]:
    """The mesh objects that use the shape-key block ``key`` (its mesh's name when none is linked)."""
    owners = [obj.name for obj in bpy.data.objects if obj.type == "MESH" and obj.data.shape_keys == key]
    return owners or [key.user.name]


def _as_blocks(shape_keys: "bpy.types.Key | Sequence[bpy.types.Key] | None") -> list["bpy.types.Key"]:
    if shape_keys is None:
        return []
    if isinstance(shape_keys, bpy.types.Key):
        return [shape_keys]
    blocks: list["bpy.types.Key"] = []
    for key in shape_keys:
        if all(key != other for other in blocks):
            blocks.append(key)
    return blocks


class TakeWriter:
    """Streams one take onto a character's shape keys and a head bone/object, chunk by chunk.

    ``shape_keys`` is one shape-key block or several (every mesh of a character); all of them get
    their own slot in the one take action. ``mouth`` picks the mouth source (``auto``, ``arkit``,
    ``visemes``, ``vrm``); ``preset_binds`` drives bound shape keys through VRM presets.

    ``add_chunk`` only does numpy work (cheap, any amount per tick); ``flush`` writes dirty curves
    to Blender and can stop after a time budget, so a timer callback stays responsive.
    """

    def __init__(
        self,
        name: str,
        *,
        shape_keys: "bpy.types.Key | Sequence[bpy.types.Key] | None" = None,
        pose_target: PoseTarget | None = None,
        start_frame: float = 1.0,
        frame_step: float = 1.0,
        pose_reference: str = "first",
        name_map: Mapping[str, tuple[str | None, float]] | None = None,
        metadata: Mapping[str, Any] | None = None,
        head_movement: float = 0.0,
        mouth: str = "auto",
        preset_binds: PresetBinds | None = None,
    ) -> None:
        blocks = _as_blocks(shape_keys)
        if not blocks and pose_target is None:
            raise InputError("nothing to animate: choose a mesh with shape keys and/or a head bone or object")
        if pose_target is not None and pose_target.bone and pose_target.bone not in pose_target.obj.pose.bones:
            raise InputError(f"the armature {pose_target.obj.name!r} has no bone {pose_target.bone!r}")
        self.blocks = blocks
        self.shape_keys = blocks[0] if blocks else None
        self.mouth = mouth
        self.preset_binds = {name: dict(table) for name, table in (preset_binds or {}).items()}
        self.pose_target = pose_target
        self.start_frame = float(start_frame)
        self.frame_step = float(frame_step)
        self.pose_reference = pose_reference
        self.name_map = dict(name_map or {})
        if not 0.0 <= head_movement < 100.0:
            raise InputError(f"head movement must be between 0 and 100 scene units per 3DMM unit, got {head_movement}")
        self.head_movement = float(head_movement)  # scene units per 3DMM translation unit; 0: rotate only
        action = bpy.data.actions.new(name)
        action[TAKE_TAG] = 1
        for key, value in (metadata or {}).items():
            action[f"talkbridge_{key}"] = value
        action.use_fake_user = True  # earlier takes stay in the file when a new one replaces them
        action.use_frame_range = False
        action.layers.new("talkbridge").strips.new(type="KEYFRAME")
        self.action_name = action.name
        self._action_uid = action.session_uid
        self._linear = _linear_code()
        self.summary = TakeSummary(action.name)
        self._shape_curves: list[tuple[list[Term], CurveBuffer]] = []
        self._pose_curves: list[CurveBuffer] = []
        self._location_curves: list[CurveBuffer] = []
        self._location_current: np.ndarray | None = None
        self._first_translation: np.ndarray | None = None
        self._pose_frame: np.ndarray | None = None
        self._pose_current: np.ndarray | None = None
        self._first_angles: np.ndarray | None = None
        self._last_quaternion: np.ndarray | None = None
        self._euler_order: str | None = None
        self._last_euler: Any = None
        self._joints: joint_take.JointKeys | None = None
        self._cursor = 0
        self._started = False
        self.frames = 0

    # ------------------------------------------------------------------------------ data look-ups

    @property
    def action(self) -> "bpy.types.Action":
        """The take's action, found again by its session id (it survives renames and undo steps)."""
        action = bpy.data.actions.get(self.action_name)
        if action is None or action.session_uid != self._action_uid:
            action = next((a for a in bpy.data.actions if a.session_uid == self._action_uid), None)
        if action is None:
            raise TalkbridgeError(
                f"the take's action {self.action_name!r} was deleted or undone while the job ran; the job stopped"
            )
        self.action_name = self.summary.action = action.name
        return action

    def _channelbag(self, action: "bpy.types.Action", slot_handle: int, cache: dict) -> Any:
        if slot_handle not in cache:
            slot = next((s for s in action.slots if s.handle == slot_handle), None)
            if slot is None or not action.layers or not action.layers[0].strips:
                raise TalkbridgeError(f"the take's action {action.name!r} lost its slot or layer while the job ran")
            cache[slot_handle] = action.layers[0].strips[0].channelbag(slot, ensure=True)
        return cache[slot_handle]

    def _fcurve(self, action: "bpy.types.Action", buffer: CurveBuffer, cache: dict) -> "bpy.types.FCurve":
        bag = self._channelbag(action, buffer.slot_handle, cache)
        fcurve = bag.fcurves.find(buffer.data_path, index=buffer.index)
        if fcurve is None:
            fcurve = bag.fcurves.new(buffer.data_path, index=buffer.index)
            group = bag.groups.get(buffer.group) or bag.groups.new(buffer.group)
            fcurve.group = group
        return fcurve

    def _new_slot(self, action: "bpy.types.Action", id_type: str, name: str) -> "bpy.types.ActionSlot":
        return action.slots.new(id_type=id_type, name=name)

    def _curve(self, slot: Any, data_path: str, index: int, group: str) -> CurveBuffer:
        return CurveBuffer(slot.handle, data_path, index, group, self.start_frame, self.frame_step)

    def _block_terms(self, key: "bpy.types.Key", channels: Mapping[str, np.ndarray]) -> tuple[MatchReport, dict[str, list[Term]]]:
        """One block's shape keys and what drives each: VRM binds first, then name matching."""
        bound = self.preset_binds.get(key.name, {})
        names = shape_key_names(key)
        report = match_targets([n for n in names if n not in bound], set(channels), self.name_map)
        terms: dict[str, list[Term]] = {}
        for name in names:
            if name in bound:
                usable = [(bind[0], float(bind[1]), bool(bind[2]) if len(bind) > 2 else False)
                          for bind in bound[name] if bind[0] in channels]
                if usable:
                    terms[name] = usable
        for match in report.matches:
            terms[match.target] = [(match.channel, match.scale, False)]
        return report, terms

    def _start_shape_keys(self, action: "bpy.types.Action", channels: Mapping[str, np.ndarray]) -> None:
        plans = [(key, *self._block_terms(key, channels)) for key in self.blocks]
        driven = [term[0] for _, _, terms in plans for entry in terms.values() for term in entry]
        # One mouth set and one blink set for the whole character, by the exporters' own rule.
        chosen = mouth_source.choose_mouth_source(driven, self.mouth, channel_of=lambda channel: channel).source
        blink = mouth_source.blink_source(driven)
        self.summary.mouth_source = chosen
        for key, report, terms in plans:
            owner = key_owner_names(key)[0]
            self.summary.reports[owner] = report
            if self.summary.report is None:
                self.summary.report = report
            kept = {}
            for name, entry in terms.items():
                entry = [term for term in entry if not mouth_source.held_at_rest(term[0], chosen, blink)]
                if entry:
                    kept[name] = entry
                else:
                    self.summary.left_at_rest.append(f"{owner}: {name}")
            if not kept:
                continue
            slot = self._new_slot(action, "KEY", owner[:63])
            for name, entry in kept.items():
                path = f'key_blocks["{bpy.utils.escape_identifier(name)}"].value'
                self._shape_curves.append((entry, self._curve(slot, path, 0, SHAPE_KEY_GROUP)))
                if name not in self.summary.shape_keys:
                    self.summary.shape_keys.append(name)
            self.summary.meshes[owner] = list(kept)
            track = install_take(key, action, slot)
            if track:
                self.summary.kept_tracks.append(track)
        if not self.summary.meshes:
            owners = [name for key in self.blocks for name in key_owner_names(key)]
            keys = sorted({name for key in self.blocks for name in shape_key_names(key)})
            raise InputError(
                f"none of the shape keys of {', '.join(repr(name) for name in owners)} match a talkbridge channel "
                f"(keys: {', '.join(keys[:10])}{' ...' if len(keys) > 10 else ''}); rename them "
                "(ARKit, visemes, VRM, exp_XX) or give a name map"
            )

    def _start(self, channels: Mapping[str, np.ndarray], present: set[str]) -> None:
        self._started = True
        action = self.action
        if self.blocks:
            self._start_shape_keys(action, channels)
        if self.pose_target is not None:
            target = self.pose_target
            self._pose_frame = target.frame_rotation()
            self._pose_current = target.current_rotation()
            owner = target.owner
            slot = self._new_slot(action, "OBJECT", target.obj.name)
            group = target.bone or "Object Transforms"
            if owner.rotation_mode == "QUATERNION":
                self._pose_curves = [self._curve(slot, f"{target.prefix}rotation_quaternion", i, group) for i in range(4)]
            else:
                self._euler_order = owner.rotation_mode
                self._pose_curves = [self._curve(slot, f"{target.prefix}rotation_euler", i, group) for i in range(3)]
            if self.head_movement > 0:
                self._location_current = target.current_location()
                self._location_curves = [self._curve(slot, f"{target.prefix}location", i, group) for i in range(3)]
            if target.bone and target.obj.type == "ARMATURE":
                self._joints = joint_take.JointKeys(target.obj, joint_take.find_joint_bones(target.obj), skip=target.bone)
                self.summary.joint_bones = self._joints.start(present, lambda path, i, group: self._curve(slot, path, i, group))
            kept = install_take(target.obj, action, slot)
            if kept:
                self.summary.kept_tracks.append(kept)
            self.summary.pose_target = target.describe()

    # ------------------------------------------------------------------------------ streaming

    def add_chunk(self, chunk: MotionChunk) -> None:
        """Take one chunk of motion (any channels of the motion contract; ``pose`` drives the head)."""
        start, pose, n = chunk.start, chunk.pose, chunk.n_frames
        motion = Motion(fps=FPS, engine="", engine_version="", **chunk.arrays())
        channels = motion_channels(motion)
        if not self._started:
            self._start(channels, {name for name in ("eyes", "jaw") if getattr(motion, name) is not None})
        for terms, buffer in self._shape_curves:
            total = np.zeros(n, np.float32)
            for channel, scale, binary in terms:
                values = channels.get(channel)
                if values is None:
                    raise InputError(f"a chunk of the motion lacks the {channel!r} channel the first chunk had")
                if binary:
                    values = (values > 0.5).astype(np.float32)
                total += values * np.float32(scale)
            buffer.put(start, total)
        if self._pose_curves:
            self._put_pose(start, pose)
        if self._joints is not None:
            self._joints.put(start, motion.eyes, motion.jaw)
        self.frames = max(self.frames, start + n)
        self.summary.frames = self.frames

    def _put_pose(self, start: int, pose: np.ndarray) -> None:
        if self._first_angles is None:
            self._first_angles = np.asarray(pose[0, :3], np.float64)
        world = posemath.head_rotations(pose, self.pose_reference, self._first_angles)
        local = posemath.local_rotations(world, self._pose_frame, self._pose_current)
        local = posemath.make_continuous(local, self._last_quaternion)
        self._last_quaternion = local[-1].copy()
        if self._euler_order is None:
            columns = posemath.to_blender_order(local)
        else:
            columns = self._to_euler(local)
        for index, buffer in enumerate(self._pose_curves):
            buffer.put(start, columns[:, index])
        if self._location_curves:
            if self._first_translation is None:
                self._first_translation = np.asarray(pose[0, 3:6], np.float64)
            offsets = posemath.head_offsets(pose, self._first_translation, self.head_movement)
            locations = posemath.local_offsets(offsets, self._pose_frame, self._location_current)
            for index, buffer in enumerate(self._location_curves):
                buffer.put(start, locations[:, index])

    def _to_euler(self, quaternions: np.ndarray) -> np.ndarray:
        out, self._last_euler = joint_take.quaternions_to_euler(quaternions, self._euler_order, self._last_euler)
        return out

    def _buffers(self) -> list[CurveBuffer]:
        joints = self._joints.buffers() if self._joints is not None else []
        return [buffer for _, buffer in self._shape_curves] + self._pose_curves + self._location_curves + joints

    @property
    def dirty(self) -> bool:
        return any(buffer.dirty for buffer in self._buffers())

    def flush(self, budget_s: float | None = None, final: bool = True) -> bool:
        """Write changed curves to Blender; True when nothing is left to write.

        ``budget_s`` stops after that much time (the rest waits for the next call). While streaming
        (``final=False``) a curve is rewritten only once it has grown by :data:`REWRITE_GROWTH` of
        what Blender already has: ``foreach_set`` must rewrite the whole curve, so rewriting on every
        chunk would cost quadratic time on long clips, while geometric steps keep the total within a
        few one-shot writes and still show the take growing.
        """
        began = time.perf_counter()
        buffers = self._buffers()
        if not buffers:
            return True
        order = buffers[self._cursor:] + buffers[: self._cursor]  # round robin: every curve advances
        action = None
        bags: dict = {}
        wrote = False
        for offset, buffer in enumerate(order):
            if not buffer.dirty or not (final or buffer.count - buffer.written >= REWRITE_GROWTH * buffer.written):
                continue
            if wrote and budget_s is not None and time.perf_counter() - began > budget_s:
                self._cursor = (self._cursor + offset) % len(buffers)  # at least one curve per call
                return False
            if action is None:
                action = self.action
            buffer.flush(self._fcurve(action, buffer, bags), self._linear)
            wrote = True
        self._cursor = 0
        return not self.dirty

    def write_all(self, chunk: MotionChunk) -> TakeSummary:
        """A whole clip in one go (the headless/bench path): add it as one chunk and flush."""
        self.add_chunk(chunk)
        self.flush()
        return self.summary


def frame_step_for(scene: "bpy.types.Scene", motion_fps: int = FPS) -> float:
    """Scene frames per motion frame, so keys land at the right time whatever the scene's rate."""
    scene_fps = scene.render.fps / scene.render.fps_base
    return float(scene_fps) / float(motion_fps)
