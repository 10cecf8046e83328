"""Plain per-frame curves as JSON or CSV, for pipelines that key their own rigs from a table.

JSON: ``{"format": "talkbridge.curves", "version": 1, "fps", "frames", "engine", "metadata",
"channels": {name: [one value per frame]}}``. CSV: a header ``frame,time,<channel names>`` then one
row per frame. Column names are the motion contract's (:data:`~talkbridge.core.motion.CHANNELS`):
``pitch yaw roll tx ty tz`` (pose, radians and 3DMM units), ``blink``, ``exp_00..exp_63``, the
ARKit-52 names, ``viseme_*``, the tongue and emotion names, the eye angles and ``jaw_RC`` (the jaw
matrix, row R column C), each family present only when the motion has it.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np

from talkbridge.core.errors import InputError
from talkbridge.core.motion import CHANNEL, CHANNEL_NAMES, Motion
from talkbridge.exporters.atomic import atomic_output

FORMAT = "talkbridge.curves"
VERSION = 1
FAMILIES = CHANNEL_NAMES


def curve_table(motion: Motion, families: tuple[str, ...] = FAMILIES) -> tuple[list[str], np.ndarray]:
    """Channel names and the (T, C) values for the requested families the motion has."""
    unknown = set(families) - set(FAMILIES)
    if unknown:
        raise InputError(f"unknown curve families {sorted(unknown)}; choose from {', '.join(FAMILIES)}")
    names: list[str] = []
    columns: list[np.ndarray] = []
    for family in FAMILIES:
        values = getattr(motion, family)
        if family in families and values is not None:
            names += list(CHANNEL[family].columns)
            columns.append(np.asarray(values, np.float32).reshape(motion.n_frames, -1))
    if not names:
        raise InputError("the motion has none of the requested curve families")
    return names, np.concatenate(columns, axis=1)


def write_curves_json(motion: Motion, path: str | Path, overwrite: bool = False, families: tuple[str, ...] = FAMILIES) -> Path:
    names, values = curve_table(motion, families)
    content = {
        "format": FORMAT,
        "version": VERSION,
        "fps": motion.fps,
        "frames": motion.n_frames,
        "engine": motion.engine,
        "metadata": motion.metadata,
        "channels": {name: [round(float(v), 6) for v in values[:, i]] for i, name in enumerate(names)},
    }
    path = Path(path)
    with atomic_output(path, overwrite=overwrite) as temp:
        temp.write_text(json.dumps(content), encoding="utf-8")
    return path


def write_curves_csv(motion: Motion, path: str | Path, overwrite: bool = False, families: tuple[str, ...] = FAMILIES) -> Path:
    names, values = curve_table(motion, families)
    buffer = io.StringIO()
    buffer.write(",".join(["frame", "time"] + names) + "\n")
    for frame, row in enumerate(values):
        buffer.write(f"{frame},{frame / motion.fps:.6f},")
        buffer.write(",".join(f"{v:.6g}" for v in row))
        buffer.write("\n")
    path = Path(path)
    with atomic_output(path, overwrite=overwrite) as temp:
        temp.write_text(buffer.getvalue(), encoding="utf-8")
    return path
