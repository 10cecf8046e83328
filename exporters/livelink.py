"""Unreal Live Link Face CSV: the file the Live Link Face iOS app records, so Unreal's importers take it.

Columns, in order: ``Timecode``, ``BlendShapeCount`` (always 61), the 52 ARKit blend shapes with the
app's capitalised names (``EyeBlinkLeft`` ... ``TongueOut``, in :data:`ARKIT_52` order), then
``HeadYaw, HeadPitch, HeadRoll, LeftEyeYaw, LeftEyePitch, LeftEyeRoll, RightEyeYaw, RightEyePitch,
RightEyeRoll``. One row per frame; the timecode is ``HH:MM:SS:FF.mmm`` (frame within the second,
then the sub-frame fraction), starting at ``start_seconds``.

Head angles are radians in talkbridge's convention (see :mod:`talkbridge.exporters.gltf.pose`),
optionally relative to the first frame; eye angles are derived from the ARKit look channels
(``EYE_LOOK_RADIANS`` at full deflection) and are zero when the motion has none.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from talkbridge.core.errors import InputError
from talkbridge.core.motion import ARKIT_52, Motion
from talkbridge.exporters.atomic import atomic_output
from talkbridge.exporters.naming import motion_channels

BLENDSHAPE_COLUMNS = tuple(name[0].upper() + name[1:] for name in ARKIT_52)
POSE_COLUMNS = (
    "HeadYaw", "HeadPitch", "HeadRoll",
    "LeftEyeYaw", "LeftEyePitch", "LeftEyeRoll",
    "RightEyeYaw", "RightEyePitch", "RightEyeRoll",
)
HEADER = ("Timecode", "BlendShapeCount") + BLENDSHAPE_COLUMNS + POSE_COLUMNS
BLENDSHAPE_COUNT = len(BLENDSHAPE_COLUMNS) + len(POSE_COLUMNS)  # 61, as the app writes
EYE_LOOK_RADIANS = 0.35
"""Eye rotation (about 20 degrees) an ARKit look channel of 1.0 stands for."""


def timecode(frame: int, fps: int, start_seconds: float = 0.0) -> str:
    """``HH:MM:SS:FF.mmm`` for ``frame`` at ``fps``."""
    total = start_seconds * fps + frame
    whole = int(np.floor(total + 1e-9))
    fraction = total - whole
    seconds, frames = divmod(whole, fps)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours % 24:02d}:{minutes:02d}:{secs:02d}:{frames:02d}.{int(round(fraction * 1000)) % 1000:03d}"


def livelink_table(motion: Motion, relative_pose: bool = True) -> np.ndarray:
    """(T, 61) float values in column order: 52 blend shapes, head and eye angles."""
    channels = motion_channels(motion)
    n = motion.n_frames
    table = np.zeros((n, BLENDSHAPE_COUNT), np.float64)
    for column, name in enumerate(ARKIT_52):
        if name in channels:
            table[:, column] = channels[name]
    angles = np.asarray(motion.pose[:, 0:3], np.float64)
    if relative_pose:
        angles = angles - angles[:1]
    base = len(ARKIT_52)
    table[:, base + 0] = angles[:, 1]  # yaw
    table[:, base + 1] = angles[:, 0]  # pitch
    table[:, base + 2] = angles[:, 2]  # roll
    if motion.arkit is not None:

        def look(side: str, direction: str) -> np.ndarray:
            return channels[f"eyeLook{direction}{side}"].astype(np.float64)

        # Towards the subject's left is +yaw (the pose convention): the left eye looks "out", the right eye "in".
        table[:, base + 3] = EYE_LOOK_RADIANS * (look("Left", "Out") - look("Left", "In"))
        table[:, base + 4] = EYE_LOOK_RADIANS * (look("Left", "Down") - look("Left", "Up"))
        table[:, base + 6] = EYE_LOOK_RADIANS * (look("Right", "In") - look("Right", "Out"))
        table[:, base + 7] = EYE_LOOK_RADIANS * (look("Right", "Down") - look("Right", "Up"))
    return table


def write_livelink_csv(
    motion: Motion,
    path: str | Path,
    overwrite: bool = False,
    relative_pose: bool = True,
    start_seconds: float = 0.0,
) -> Path:
    """Write ``motion`` as a Live Link Face CSV (atomically)."""
    if motion.fps <= 0:
        raise InputError(f"the motion's frame rate {motion.fps} is not positive")
    table = livelink_table(motion, relative_pose)
    buffer = io.StringIO()
    buffer.write(",".join(HEADER) + "\n")
    for frame, row in enumerate(table):
        buffer.write(timecode(frame, motion.fps, start_seconds) + f",{BLENDSHAPE_COUNT},")
        buffer.write(",".join(f"{value:.6g}" for value in row))
        buffer.write("\n")
    path = Path(path)
    with atomic_output(path, overwrite=overwrite) as temp:
        temp.write_text(buffer.getvalue(), encoding="utf-8")
    return path
