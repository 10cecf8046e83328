"""Jaw and eye joints: which joint of a rig each is, and the rotations the motion's channels give them.

Audio2Face-3D moves the lower teeth rigidly (the motion's ``jaw``, a 4x4 transform from rest) and
turns the eyeballs (``eyes``, pitch and yaw in radians). Heads carry those as joints more often than
as shapes, under each rig family's own names; one table here serves the glTF exporter and the
Blender take writer, so a name added once is found by both.

Rotations are returned in the glTF head frame (+Y up, the face looking down +Z, +X the head's own
left), the frame :mod:`talkbridge.exporters.gltf.pose` uses for the head: each writer turns them
into its joint's local frame exactly as it does the head's rotation. Nothing here needs pygltflib
or bpy.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from talkbridge.exporters.gltf import pose as pose_math

JAW_JOINT_NAMES = (
    "jaw", "Jaw", "CC_Base_JawRoot", "FACIAL_C_Jaw", "mixamorig:Jaw", "J_Bip_C_Jaw", "DEF-jaw", "jaw_master",
    "teeth_lower", "LowerTeeth", "Bip01 Jaw",
)
"""The lower jaw by rig family: generic/Blender/UE (``jaw``), Character Creator (``CC_Base_JawRoot``),
MetaHuman's facial rig (``FACIAL_C_Jaw``), Mixamo-style (``mixamorig:Jaw``), VRoid (rarely present),
Rigify, and rigs that name the lower teeth themselves."""

EYE_JOINT_NAMES = {
    "left": ("LeftEye", "eye_L", "eye.L", "Eye_L", "CC_Base_L_Eye", "J_Adj_L_FaceEye", "FACIAL_L_Eye",
             "mixamorig:LeftEye", "DEF-eye.L", "eyeLeft"),
    "right": ("RightEye", "eye_R", "eye.R", "Eye_R", "CC_Base_R_Eye", "J_Adj_R_FaceEye", "FACIAL_R_Eye",
              "mixamorig:RightEye", "DEF-eye.R", "eyeRight"),
}
"""The subject's own left and right eyeball by rig family: humanoid/Mixamo (``LeftEye``), Blender and
Rigify (``eye_L``, ``eye.L``, ``DEF-eye.L``), Character Creator (``CC_Base_L_Eye``), VRoid
(``J_Adj_L_FaceEye``), MetaHuman (``FACIAL_L_Eye``)."""

ROLES = ("jaw", "leftEye", "rightEye")
_ROLE_NAMES = {"jaw": JAW_JOINT_NAMES, "leftEye": EYE_JOINT_NAMES["left"], "rightEye": EYE_JOINT_NAMES["right"]}


def find_rig_joints(names: Sequence[str]) -> dict[str, int]:
    """Role (``jaw``, ``leftEye``, ``rightEye``) -> index into ``names``, for the roles the rig has.

    Exact spellings first, in table order, then the same names ignoring case. No looser guess: a
    wrong bone turning with the eyes is worse than an eye that stays still (and is reported).
    """
    found: dict[str, int] = {}
    exact = {name: index for index, name in reversed(list(enumerate(names)))}
    folded = {name.lower(): index for index, name in reversed(list(enumerate(names)))}
    for role in ROLES:
        table = _ROLE_NAMES[role]
        hit = next((exact[n] for n in table if n in exact), None)
        if hit is None:
            hit = next((folded[n.lower()] for n in table if n.lower() in folded), None)
        if hit is not None and hit not in found.values():
            found[role] = hit
    return found


def eye_rotations(eyes: np.ndarray) -> dict[str, np.ndarray]:
    """``leftEye``/``rightEye`` -> (T, 4) quaternions (x, y, z, w) in the head frame.

    Pitch turns about x and yaw about y with the head pose's signs (pitch > 0 looks down, yaw > 0
    towards the subject's left), composed yaw after pitch as the head's ``Ry @ Rx``.
    """
    eyes = np.asarray(eyes, np.float64).reshape(-1, 4)
    out = {}
    for role, columns in (("leftEye", (0, 1)), ("rightEye", (2, 3))):
        angles = np.zeros((len(eyes), 3))
        angles[:, 0] = eyes[:, columns[0]]
        angles[:, 1] = eyes[:, columns[1]]
        out[role] = pose_math.sadtalker_to_quaternions(angles)
    return out


def jaw_rotations(jaw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(T, 4) quaternions of the jaw transform's rotation (head frame) and (T, 3) its translation.

    The translation is in the engine model's units about the model's origin, which a user's head
    does not share; writers apply it only when asked, scaled (see ``docs/exporters.md``).
    """
    jaw = np.asarray(jaw, np.float64).reshape(-1, 4, 4)
    rotations = np.array([pose_math.matrix_to_quaternion(matrix[:3, :3]) for matrix in jaw]).reshape(-1, 4)
    return pose_math.make_continuous(rotations), jaw[:, :3, 3].copy()


def joint_rotations(eyes: np.ndarray | None, jaw: np.ndarray | None) -> dict[str, np.ndarray]:
    """Role -> (T, 4) head-frame rotations, for the channels the motion has (None is absent)."""
    out: dict[str, np.ndarray] = {}
    if eyes is not None:
        out.update(eye_rotations(eyes))
    if jaw is not None:
        out["jaw"] = jaw_rotations(jaw)[0]
    return out
