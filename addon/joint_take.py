"""Jaw and eye bones in a take: Audio2Face-3D's ``jaw`` and ``eyes`` channels keyed on the rig's bones.

The bones are found by name with the glTF exporter's table (:mod:`talkbridge.exporters.rig_joints`),
on the armature whose head bone the take turns. The channels' rotations are in the glTF head frame;
they are carried into Blender's rig frame as the head's are, then restated in each bone's rest frame
(``B^-1 R B current``), so a bone's roll or the rig's Z-up orientation never changes their meaning,
and the head's own turn carries the jaw and eyes as its children.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import numpy as np

import bpy

from talkbridge.exporters import rig_joints

from . import posemath

CHANNEL_OF_ROLE = {"jaw": "jaw", "leftEye": "eyes", "rightEye": "eyes"}


def find_joint_bones(rig: "bpy.types.Object") -> dict[str, str]:
    """Role (``jaw``, ``leftEye``, ``rightEye``) -> bone name, for the roles the armature has."""
    names = [bone.name for bone in rig.data.bones]
    return {role: names[index] for role, index in rig_joints.find_rig_joints(names).items()}


def quaternions_to_euler(quaternions: np.ndarray, order: str, previous: Any = None) -> tuple[np.ndarray, Any]:
    """(T, 4) (x, y, z, w) -> (T, 3) Euler angles in ``order``, each the one nearest the previous
    (so a streamed curve never jumps by 2 pi); returns the last Euler to continue from."""
    from mathutils import Quaternion

    out = np.empty((len(quaternions), 3), np.float64)
    for row, (x, y, z, w) in enumerate(quaternions):
        previous = Quaternion((w, x, y, z)).to_euler(order, *(() if previous is None else (previous,)))
        out[row] = tuple(previous)
    return out, previous


class JointKeys:
    """The curves of the jaw/eye bones one take keys, and their state across streamed chunks."""

    def __init__(self, rig: "bpy.types.Object", bones: Mapping[str, str], skip: str | None = None) -> None:
        self.rig = rig
        self.bones = {role: name for role, name in bones.items() if name != skip}
        self.curves: dict[str, list[Any]] = {}
        self._frame: dict[str, np.ndarray] = {}
        self._current: dict[str, np.ndarray] = {}
        self._euler: dict[str, str] = {}
        self._last: dict[str, Any] = {}

    def start(self, present: set[str], make_curve: Callable[[str, int, str], Any]) -> list[str]:
        """Create curves for the bones whose channel is ``present``; returns the bones keyed."""
        keyed = []
        for role, name in self.bones.items():
            if CHANNEL_OF_ROLE[role] not in present:
                continue
            pose_bone = self.rig.pose.bones[name]
            prefix = f'pose.bones["{bpy.utils.escape_identifier(name)}"].'
            self._frame[role] = posemath.from_blender_order(self.rig.data.bones[name].matrix_local.to_quaternion())
            mode = pose_bone.rotation_mode
            if mode == "QUATERNION":
                self._current[role] = posemath.from_blender_order(pose_bone.rotation_quaternion.normalized())
                self.curves[role] = [make_curve(f"{prefix}rotation_quaternion", i, name) for i in range(4)]
            elif mode == "AXIS_ANGLE":
                continue  # the head target reports axis-angle as an error; a side bone is left as it is
            else:
                self._euler[role] = mode
                self._current[role] = posemath.from_blender_order(pose_bone.rotation_euler.to_quaternion())
                self.curves[role] = [make_curve(f"{prefix}rotation_euler", i, name) for i in range(3)]
            keyed.append(name)
        return keyed

    def put(self, start: int, eyes: np.ndarray | None, jaw: np.ndarray | None) -> None:
        """Key one chunk's frames from its ``eyes`` (T, 4) and ``jaw`` (T, 4, 4) channels."""
        turns = rig_joints.joint_rotations(eyes, jaw)
        for role, buffers in self.curves.items():
            if role not in turns:
                continue
            rig_turn = posemath.gltf_to_rig(turns[role])
            local = posemath.local_rotations(rig_turn, self._frame[role], self._current[role])
            local = posemath.make_continuous(local, self._last.get(role))
            self._last[role] = local[-1].copy()
            columns = posemath.to_blender_order(local) if role not in self._euler else self._to_euler(role, local)
            for index, buffer in enumerate(buffers):
                buffer.put(start, columns[:, index])

    def _to_euler(self, role: str, quaternions: np.ndarray) -> np.ndarray:
        out, self._last[role + ":euler"] = quaternions_to_euler(quaternions, self._euler[role], self._last.get(role + ":euler"))
        return out

    def buffers(self) -> list[Any]:
        return [buffer for buffers in self.curves.values() for buffer in buffers]
