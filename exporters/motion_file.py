"""The `.motion.npz` container: a clip's motion, versioned and documented, readable without pickle.

Layout (format ``talkbridge.motion``, version 1). Every entry is a plain numpy array:

==================  ==========  ====================================================================
key                 shape       meaning
==================  ==========  ====================================================================
``format``          ()          the string ``"talkbridge.motion"``
``version``         ()          int, 1
``fps``             ()          frames per second (25 for every engine today)
``engine``          ()          engine name (``sadtalker``, ``lite``)
``engine_version``  ()          engine version string
``pose``            (T, 6)      pitch, yaw, roll (radians, SadTalker order) and 3DMM translation
``blink``           (T,)        eye closure 0..1
``expression``      (T, 64)     SadTalker 3DMM expression coefficients (absent for the lite engine)
``coeff_3dmm``      (T, 70)     ``expression`` + ``pose``, the row SadTalker's renderer reads
``arkit``           (T, 52)     ARKit weights in :data:`~talkbridge.core.motion.ARKIT_52` order
``arkit_names``     (52,)       those names, so the file stands alone
``visemes``         (T, 15)     Oculus viseme weights
``viseme_names``    (15,)       their names
``first_frame``     (73,)       the source image's 3DMM row incl. crop parameters, when known
``metadata_json``   ()          JSON object: crop info, expression source, options used, ...
==================  ==========  ====================================================================
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from talkbridge.core.errors import InputError
from talkbridge.core.motion import ARKIT_52, OCULUS_VISEMES, Motion
from talkbridge.exporters.atomic import atomic_output

FORMAT = "talkbridge.motion"
VERSION = 1


def save_motion(motion: Motion, path: str | Path, overwrite: bool = False) -> Path:
    """Write ``motion`` atomically to ``path`` (conventionally ``<name>.motion.npz``)."""
    arrays: dict[str, np.ndarray] = {
        "format": np.array(FORMAT),
        "version": np.array(VERSION),
        "fps": np.array(motion.fps),
        "engine": np.array(motion.engine),
        "engine_version": np.array(motion.engine_version),
        "pose": np.asarray(motion.pose, np.float32),
        "blink": np.asarray(motion.blink, np.float32),
        "metadata_json": np.array(json.dumps(motion.metadata, sort_keys=True)),
    }
    if motion.expression is not None:
        arrays["expression"] = np.asarray(motion.expression, np.float32)
        arrays["coeff_3dmm"] = motion.coefficients()
    if motion.arkit is not None:
        arrays["arkit"] = np.asarray(motion.arkit, np.float32)
        arrays["arkit_names"] = np.array(ARKIT_52)
    if motion.visemes is not None:
        arrays["visemes"] = np.asarray(motion.visemes, np.float32)
        arrays["viseme_names"] = np.array(OCULUS_VISEMES)
    if motion.first_frame is not None:
        arrays["first_frame"] = np.asarray(motion.first_frame, np.float32).reshape(-1)
    path = Path(path)
    with atomic_output(path, overwrite=overwrite) as temp:
        with open(temp, "wb") as handle:
            np.savez(handle, **arrays)
    return path


def load_motion(path: str | Path) -> Motion:
    """Read a motion file, rejecting other formats and versions with a clear message."""
    path = Path(path)
    if not path.is_file():
        raise InputError("motion file not found", path)
    try:
        data = np.load(path, allow_pickle=False)
        entries = {key: data[key] for key in data.files}
    except Exception as error:
        raise InputError(f"not a readable .motion.npz file: {error}", path) from error
    if str(entries.get("format", "")) != FORMAT:
        raise InputError(f"not a talkbridge motion file (format {str(entries.get('format'))!r})", path)
    version = int(entries.get("version", -1))
    if version != VERSION:
        raise InputError(f"motion file version {version} is not supported (this talkbridge reads {VERSION})", path)
    if "arkit" in entries and tuple(str(n) for n in entries["arkit_names"]) != ARKIT_52:
        raise InputError("ARKit channel names differ from the canonical 52", path)
    try:
        return Motion(
            fps=int(entries["fps"]),
            engine=str(entries["engine"]),
            engine_version=str(entries["engine_version"]),
            pose=entries["pose"],
            blink=entries["blink"],
            expression=entries.get("expression"),
            arkit=entries.get("arkit"),
            visemes=entries.get("visemes"),
            first_frame=entries.get("first_frame"),
            metadata=json.loads(str(entries["metadata_json"])),
        )
    except KeyError as error:
        raise InputError(f"motion file lacks the {error.args[0]!r} entry", path) from error


def motion_summary(motion: Motion) -> dict:
    """A small JSON-able description written beside the motion file for people and scripts."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "fps": motion.fps,
        "frames": motion.n_frames,
        "duration_s": motion.n_frames / motion.fps,
        "engine": motion.engine,
        "engine_version": motion.engine_version,
        "channels": {
            "pose": 6,
            "blink": 1,
            "expression": 0 if motion.expression is None else int(motion.expression.shape[1]),
            "arkit": 0 if motion.arkit is None else int(motion.arkit.shape[1]),
            "visemes": 0 if motion.visemes is None else int(motion.visemes.shape[1]),
        },
        "metadata": motion.metadata,
    }
