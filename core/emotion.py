"""Emotion tracks: which of Audio2Face-3D's 10 emotions a take shows, and how strongly, over time.

A track is a list of keys, each a time in seconds and a weight 0..1 per emotion (names from
:data:`~talkbridge.core.motion.EMOTIONS`; an emotion a key leaves out is 0 there). Between keys the
weights are interpolated linearly; before the first key and after the last they are held, as the
Audio2Face-3D SDK's emotion accumulator does. A constant emotion (``--emotion joy=0.6``) is a track
of one key.

Every engine takes the same track (job option ``emotion``): Audio2Face-3D feeds it to its network,
the other engines blend it into their ARKit curves, and every motion file carries it as the
``emotion`` channel. Written forms:

* text: ``joy=0.6,sadness=0.2`` (the CLI's ``--emotion`` and a batch manifest's ``emotion`` cell);
* keys: ``[{"time": 0.0, "joy": 0.6}, {"time": 2.5, "anger": 1.0}]`` (JSON, the wire, the add-on);
* a file (``--emotion-track``): that JSON (a list, or ``{"keys": [...]}``), or CSV with a header
  ``time,<emotion names...>`` and one row per key.

Only the standard library and numpy are imported: the add-on and the lite path load this module.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from talkbridge.core.errors import InputError
from talkbridge.core.motion import EMOTIONS

MAX_KEYS = 10_000
MAX_TRACK_FILE_BYTES = 4 * 2**20
AUTO = "auto"
"""The ``emotion`` option's word for "let Audio2Emotion decide" (Audio2Face-3D only)."""


@dataclass(frozen=True)
class EmotionTrack:
    """Keys of emotion weights: ``times`` ascending seconds, ``weights`` one 10-tuple per key."""

    times: tuple[float, ...]
    weights: tuple[tuple[float, ...], ...]

    def __post_init__(self) -> None:
        if not 1 <= len(self.times) <= MAX_KEYS or len(self.times) != len(self.weights):
            raise InputError(f"an emotion track needs 1..{MAX_KEYS} keys, each with a time and weights")
        for time, row in zip(self.times, self.weights):
            if not (isinstance(time, float) and math.isfinite(time) and time >= 0):
                raise InputError(f"emotion key time {time!r} must be a finite number of seconds >= 0")
            if len(row) != len(EMOTIONS) or not all(isinstance(w, float) and 0.0 <= w <= 1.0 for w in row):
                raise InputError(f"emotion weights at {time:g} s must be {len(EMOTIONS)} numbers within [0, 1]")
        if any(b <= a for a, b in zip(self.times, self.times[1:])):
            raise InputError("emotion key times must increase from key to key (two keys share a time, or they are out of order)")

    @classmethod
    def constant(cls, weights: Mapping[str, float]) -> "EmotionTrack":
        """The same emotion for the whole clip."""
        return cls((0.0,), (_row(weights, "the emotion"),))

    @classmethod
    def from_keys(cls, keys: Iterable[Mapping[str, Any]]) -> "EmotionTrack":
        """A track from ``[{"time": s, "<emotion>": w, ...}, ...]`` (keys in any order)."""
        parsed: list[tuple[float, tuple[float, ...]]] = []
        for index, key in enumerate(keys):
            if len(parsed) >= MAX_KEYS:
                raise InputError(f"an emotion track has at most {MAX_KEYS} keys")
            if not isinstance(key, Mapping):
                raise InputError(f"emotion key {index} must be an object with a 'time' and emotion weights")
            time = _number(key.get("time"), f"emotion key {index}'s 'time'")
            weights = {name: value for name, value in key.items() if name != "time"}
            parsed.append((time, _row(weights, f"emotion key {index}")))
        if not parsed:
            raise InputError("an emotion track needs at least one key")
        parsed.sort(key=lambda item: item[0])
        return cls(tuple(t for t, _ in parsed), tuple(w for _, w in parsed))

    def to_keys(self) -> list[dict[str, float]]:
        """The JSON-able keys (emotions at 0 left out), as :meth:`from_keys` reads them."""
        return [
            {"time": time, **{name: weight for name, weight in zip(EMOTIONS, row) if weight}}
            for time, row in zip(self.times, self.weights)
        ]

    def frames(self, n_frames: int, fps: float) -> np.ndarray:
        """(n_frames, 10) float32 weights at frame times ``k / fps``, interpolated between keys."""
        times = np.arange(int(n_frames), dtype=np.float64) / float(fps)
        keys = np.asarray(self.times, np.float64)
        table = np.asarray(self.weights, np.float64)
        out = np.empty((len(times), len(EMOTIONS)), np.float32)
        for column in range(len(EMOTIONS)):
            out[:, column] = np.interp(times, keys, table[:, column])  # held outside the keys
        return out

    @property
    def is_neutral(self) -> bool:
        """True when every key is all zeros (no emotion at all)."""
        return not any(any(row) for row in self.weights)


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise InputError(f"{what} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise InputError(f"{what} must be finite, got {value!r}")
    return value


def _row(weights: Mapping[str, Any], what: str) -> tuple[float, ...]:
    row = dict.fromkeys(EMOTIONS, 0.0)
    for name, value in weights.items():
        key = str(name).strip().lower().replace("_", "").replace("-", "").replace(" ", "")
        if key not in row:
            raise InputError(f"{what}: unknown emotion {name!r}; choose from {', '.join(EMOTIONS)}")
        weight = _number(value, f"{what}: {name}")
        if not 0.0 <= weight <= 1.0:
            raise InputError(f"{what}: {name} must be within [0, 1], got {weight:g}")
        row[key] = weight
    return tuple(row.values())


def parse_emotion_text(text: str) -> EmotionTrack:
    """``joy=0.6,sadness=0.2`` (commas or spaces between pairs) as a constant track."""
    weights: dict[str, float] = {}
    for part in str(text).replace(",", " ").split():
        name, sep, value = part.partition("=")
        if not sep:
            raise InputError(f"emotion {part!r} needs a weight: write NAME=WEIGHT, e.g. joy=0.6")
        try:
            number = float(value)
        except ValueError:
            raise InputError(f"emotion {name!r} has weight {value!r}, which is not a number") from None
        if name.strip().lower() in weights:
            raise InputError(f"emotion {name!r} is given twice")
        weights[name.strip().lower()] = number
    if not weights:
        raise InputError("the emotion is empty: write NAME=WEIGHT pairs, e.g. joy=0.6,sadness=0.2")
    return EmotionTrack.constant(weights)


def load_emotion_track(path: str | Path) -> EmotionTrack:
    """A track file: JSON keys (a list or ``{"keys": [...]}``) or a CSV with a ``time`` column."""
    path = Path(path)
    if not path.is_file():
        raise InputError("emotion track file not found", path)
    if path.stat().st_size > MAX_TRACK_FILE_BYTES:
        raise InputError(f"emotion track file is larger than {MAX_TRACK_FILE_BYTES // 2**20} MB", path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise InputError("emotion track file is not UTF-8 text", path) from None
    try:
        if path.suffix.lower() == ".json" or text.lstrip().startswith(("[", "{")):
            return _track_from_json(text)
        return _track_from_csv(text)
    except InputError as error:
        raise InputError(str(error), path) from None


def _track_from_json(text: str) -> EmotionTrack:
    try:
        content = json.loads(text)
    except json.JSONDecodeError as error:
        raise InputError(f"not valid JSON: {error}") from None
    if isinstance(content, Mapping):
        content = content.get("keys")
    if not isinstance(content, list):
        raise InputError('an emotion track in JSON is a list of keys, or {"keys": [...]}')
    return EmotionTrack.from_keys(content)


def _track_from_csv(text: str) -> EmotionTrack:
    rows = list(csv.reader(io.StringIO(text)))
    rows = [row for row in rows if any(cell.strip() for cell in row)]
    if not rows:
        raise InputError("the emotion track CSV is empty")
    header = [cell.strip() for cell in rows[0]]
    if "time" not in header:
        raise InputError("the emotion track CSV needs a header row with a 'time' column and emotion names")
    keys: list[dict[str, float]] = []
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise InputError(f"line {line} has {len(row)} cells, the header has {len(header)}")
        try:
            keys.append({name: float(cell) for name, cell in zip(header, row)})
        except ValueError:
            raise InputError(f"line {line} has a cell that is not a number") from None
    return EmotionTrack.from_keys(keys)


def emotion_value(value: Any) -> EmotionTrack | str | None:
    """The canonical value of the ``emotion`` option: a track, :data:`AUTO`, or None.

    Takes a track, the text form, ``"auto"`` or JSON keys (what the wire and the add-on send).
    """
    if value is None or isinstance(value, EmotionTrack):
        return value
    if isinstance(value, str):
        stripped = value.strip()
        if stripped.lower() == AUTO:
            return AUTO
        if stripped.startswith("["):
            return _track_from_json(stripped)
        return parse_emotion_text(stripped)
    if isinstance(value, (list, tuple)):
        return EmotionTrack.from_keys(value)
    raise InputError(f"an emotion is NAME=WEIGHT text, 'auto' or a list of keys, got {type(value).__name__}")


def emotion_to_wire(value: EmotionTrack | str | None) -> Any:
    """The JSON-able form of an ``emotion`` option value (keys, ``"auto"`` or None)."""
    return value.to_keys() if isinstance(value, EmotionTrack) else value


def emotion_frames(value: EmotionTrack | str | None, n_frames: int, fps: float) -> np.ndarray | None:
    """The per-frame (n_frames, 10) weights of an explicit track, or None (no emotion / ``auto``)."""
    return value.frames(n_frames, fps) if isinstance(value, EmotionTrack) else None
