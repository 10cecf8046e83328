"""The `.motion.npz` container: a clip's motion, versioned and documented, readable without pickle.

Layout (format ``talkbridge.motion``, version 1). Every entry is a plain numpy array; each motion
channel of :data:`~talkbridge.core.motion.CHANNELS` is stored under its name when the motion has it,
with its column names beside it (``<channel>_names``; ``viseme_names`` for the visemes):

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
``tongue``          (T, 16)     tongue blend shape weights (:data:`~talkbridge.core.motion.TONGUE_16`)
``tongue_names``    (16,)       their names
``emotion``         (T, 10)     emotion weights 0..1 (:data:`~talkbridge.core.motion.EMOTIONS`)
``emotion_names``   (10,)       their names
``eyes``            (T, 4)      eye rotations, radians (:data:`~talkbridge.core.motion.EYE_NAMES`)
``eyes_names``      (4,)        their names
``jaw``             (T, 4, 4)   the lower teeth's rigid transform from rest, row-major
``first_frame``     (73,)       the source image's 3DMM row incl. crop parameters, when known
``metadata_json``   ()          JSON object: crop info, expression source, options used, ...
==================  ==========  ====================================================================
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np

from talkbridge.core.errors import InputError
from talkbridge.core.motion import CHANNEL, CHANNELS, Motion
from talkbridge.exporters.atomic import atomic_output
from talkbridge.exporters.motion_validation import check_entries

FORMAT = "talkbridge.motion"
VERSION = 1


def names_key(channel: str) -> str:
    """The entry that holds a channel's column names (``viseme_names`` predates the rule)."""
    return "viseme_names" if channel == "visemes" else f"{channel}_names"


def save_motion(motion: Motion, path: str | Path, overwrite: bool = False) -> Path:
    """Write ``motion`` atomically to ``path`` (conventionally ``<name>.motion.npz``)."""
    arrays: dict[str, np.ndarray] = {
        "format": np.array(FORMAT),
        "version": np.array(VERSION),
        "fps": np.array(motion.fps),
        "engine": np.array(motion.engine),
        "engine_version": np.array(motion.engine_version),
        "metadata_json": np.array(json.dumps(motion.metadata, sort_keys=True)),
    }
    for name, values in motion.arrays().items():
        arrays[name] = np.asarray(values, np.float32)
        if CHANNEL[name].shape_weights or name == "eyes":
            arrays[names_key(name)] = np.array(CHANNEL[name].columns)
    if motion.expression is not None:
        arrays["coeff_3dmm"] = motion.coefficients()
    if motion.first_frame is not None:
        arrays["first_frame"] = np.asarray(motion.first_frame, np.float32).reshape(-1)
    path = Path(path)
    # Built in memory, then written: numpy's zip writer is not closed when a write fails (a full
    # disk), and its finaliser would then seek the closed file ("Exception ignored ... seek of
    # closed file"). A clip's motion is a few MB at most.
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    with atomic_output(path, overwrite=overwrite) as temp:
        with open(temp, "wb") as handle:
            handle.write(buffer.getbuffer())
    return path


def load_motion(path: str | Path) -> Motion:
    """Read a motion file, rejecting other formats and versions, and any entry that breaks the
    motion contract (:mod:`talkbridge.exporters.motion_validation`), with a clear message."""
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
    version_entry = entries.get("version", np.array(-1))
    if version_entry.shape != () or version_entry.dtype.kind not in "iu":
        raise InputError(f"the 'version' entry must be a single integer, got {version_entry.dtype} {version_entry.shape}", path)
    version = int(version_entry)
    if version != VERSION:
        raise InputError(f"motion file version {version} is not supported (this talkbridge reads {VERSION})", path)
    checked = check_entries(entries, path)
    for channel in CHANNELS:
        key = names_key(channel.name)
        if channel.name not in entries or key not in entries:
            continue
        names = entries[key]
        if names.ndim != 1 or names.dtype.kind != "U" or tuple(str(n) for n in names) != channel.columns:
            raise InputError(f"the {channel.name} channel names ({key}) differ from talkbridge's {len(channel.columns)}", path)
    try:
        return Motion(first_frame=entries.get("first_frame"), **checked, **{channel.name: entries.get(channel.name) for channel in CHANNELS})
    except ValueError as error:  # the checks above cover the contract; this names anything they missed
        raise InputError(f"not a valid motion file: {error}", path) from error


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
        "channels": {channel.name: channel.width if getattr(motion, channel.name) is not None else 0 for channel in CHANNELS},
        "metadata": motion.metadata,
    }
