"""Checking a motion file's entries against the motion contract before anything uses them.

A ``.motion.npz`` is an interchange format: people edit it and other tools write it, so every entry
is checked here, by name, before a :class:`~talkbridge.core.motion.Motion` is built: each channel's
shape (``(T,) + frame shape`` of :data:`~talkbridge.core.motion.CHANNELS`), dtype (real numbers),
finiteness and range (:meth:`~talkbridge.core.motion.Channel.bounds`), one frame count for all and
at least one frame, the scalars (``fps``, ``engine``, ...) and ``metadata_json`` (a JSON object).
An exporter or Live Link therefore never receives a (T, 5) pose, a NaN or an empty clip.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from talkbridge.core.errors import InputError
from talkbridge.core.motion import CHANNELS, COEFF_DIM, Channel

MAX_FPS = 1000
FIRST_FRAME_SIZE = 73


def _shape_text(shape: tuple[Any, ...]) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def _numbers(name: str, value: np.ndarray, path: Path) -> None:
    if value.dtype.kind not in "fiu":
        raise InputError(f"the {name!r} array holds {value.dtype} values, not real numbers", path)


def _finite(name: str, value: np.ndarray, path: Path) -> None:
    bad = ~np.isfinite(value)
    if bad.any():
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        raise InputError(f"the {name!r} array holds NaN or infinite values ({int(bad.sum())}, first at index {index})", path)


def check_channel(channel: Channel, value: np.ndarray, frames: int | None, path: Path) -> int:
    """Check one channel's array; returns its frame count."""
    name = channel.name
    _numbers(name, value, path)
    if value.ndim != 1 + len(channel.frame_shape) or value.shape[1:] != channel.frame_shape:
        want = _shape_text(("T",) + channel.frame_shape)
        raise InputError(f"the {name!r} array has shape {_shape_text(value.shape)}; the motion contract wants {want}", path)
    if frames is not None and value.shape[0] != frames:
        raise InputError(f"the {name!r} array has {value.shape[0]} frames, the pose has {frames}", path)
    _finite(name, value, path)
    low, high = channel.bounds()
    outside = (value < low) | (value > high)
    if outside.any():
        index = tuple(int(i) for i in np.argwhere(outside)[0])
        column = index[1:] if len(index) > 1 else ()
        limit_low, limit_high = float(np.broadcast_to(low, channel.frame_shape)[column]), float(np.broadcast_to(high, channel.frame_shape)[column])
        raise InputError(
            f"the {name!r} array holds {float(value[index]):.4g} at index {index}, outside {limit_low:.4g}..{limit_high:.4g} "
            f"({channel.doc})", path,
        )
    return int(value.shape[0])


def _scalar(entries: dict[str, np.ndarray], key: str, kinds: str, path: Path) -> Any:
    if key not in entries:
        raise InputError(f"motion file lacks the {key!r} entry", path)
    value = entries[key]
    if value.shape != () or value.dtype.kind not in kinds:
        raise InputError(f"the {key!r} entry must be a single {'text' if kinds == 'U' else 'number'}, got {value.dtype} {_shape_text(value.shape)}", path)
    return value.item()


def check_entries(entries: dict[str, np.ndarray], path: Path) -> dict[str, Any]:
    """Every entry of a motion file checked; returns fps, engine, engine_version, metadata.

    Raises :class:`InputError` naming the file, the entry and the problem.
    """
    fps = _scalar(entries, "fps", "iu", path)
    if not 1 <= fps <= MAX_FPS:
        raise InputError(f"fps {fps} is outside 1..{MAX_FPS}", path)
    engine = str(_scalar(entries, "engine", "U", path))
    engine_version = str(_scalar(entries, "engine_version", "U", path))
    text = _scalar(entries, "metadata_json", "U", path)
    try:
        metadata = json.loads(text)
    except ValueError as error:
        raise InputError(f"metadata_json is not valid JSON ({error})", path) from None
    if not isinstance(metadata, dict):
        raise InputError(f"metadata_json must be a JSON object, not {type(metadata).__name__}", path)
    frames: int | None = None
    for channel in CHANNELS:
        if channel.name in entries:
            frames = check_channel(channel, entries[channel.name], frames, path)
        elif channel.required:
            raise InputError(f"motion file lacks the {channel.name!r} entry", path)
    if not frames:
        raise InputError("the motion has 0 frames", path)
    if "coeff_3dmm" in entries:
        value = entries["coeff_3dmm"]
        _numbers("coeff_3dmm", value, path)
        if value.shape != (frames, COEFF_DIM):
            raise InputError(f"the 'coeff_3dmm' array has shape {_shape_text(value.shape)}, not ({frames}, {COEFF_DIM})", path)
        _finite("coeff_3dmm", value, path)
    if "first_frame" in entries:
        value = entries["first_frame"]
        _numbers("first_frame", value, path)
        if value.size != FIRST_FRAME_SIZE:
            raise InputError(f"the 'first_frame' array has {value.size} values, not SadTalker's {FIRST_FRAME_SIZE}", path)
        _finite("first_frame", value, path)
    return {"fps": int(fps), "engine": engine, "engine_version": engine_version, "metadata": metadata}
