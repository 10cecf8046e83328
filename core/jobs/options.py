"""One definition per job option: its type, default, limits and help, shared by every route.

The CLI builds its flags from :data:`OPTIONS`, the sidecar checks wire options with it, batch
manifests parse their cells with it and the Blender add-on reads its property limits from it, so a
value refused on one route is refused on all of them with the same message. This module imports only
the standard library and numpy: the add-on and the lite path load it without torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from talkbridge.core.emotion import EmotionTrack, emotion_to_wire, emotion_value
from talkbridge.core.errors import InputError
from talkbridge.core.sadtalker.files import SIZES as SADTALKER_SIZES

ENGINES = ("auto", "sadtalker", "lite", "audio2face")
PREPROCESS_MODES = ("crop", "extcrop", "resize", "full", "extfull")
ENHANCERS = ("gfpgan",)
PRECISIONS = ("fp32", "fp16", "bf16")
DEVICES = ("auto", "cpu", "cuda", "mps")
DEFAULT_LITE_SIZE = 512
DEFAULT_SADTALKER_SIZE = 256
MAX_SEED = 2**32 - 1  # numpy, torch and Python's random all take it
MAX_KEYFRAMES = 10_000
MAX_TRANSCRIPT_CHARS = 1_000_000


@dataclass(frozen=True)
class OptionSpec:
    """One option: how it is named, typed and bounded everywhere it appears.

    ``kind`` is one of ``int``, ``float``, ``bool``, ``choice``, ``angles`` (a list of degrees),
    ``text``, ``name`` (a short name), ``points`` (68 or 5 ``[x, y]`` pairs), ``device`` or ``emotion`` (an
    :class:`~talkbridge.core.emotion.EmotionTrack` or ``"auto"``). ``low``/``high`` bound numbers
    (``low_open`` makes the lower bound exclusive); ``choices`` lists the allowed words.
    """

    name: str
    kind: str
    default: Any
    help: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    choices: tuple[Any, ...] = ()
    engines: tuple[str, ...] = ("lite", "sadtalker")
    optional: bool = False  # None is a valid value (meaning "the engine's default" / "not given")

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def describe_range(self) -> str:
        if self.choices:
            return "one of " + ", ".join(str(c) for c in self.choices)
        if self.low is not None and self.high is not None:
            opening = "(" if self.low_open else "["
            return f"within {opening}{_number(self.low)}, {_number(self.high)}]"
        return {"bool": "true or false", "text": "text", "angles": "a list of angles in degrees"}.get(self.kind, self.kind)

    def _refuse(self, value: Any, detail: str | None = None) -> InputError:
        shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
        return InputError(f"option {self.name!r} ({self.flag}) must be {detail or self.describe_range()}, got {shown}")

    def check(self, value: Any) -> Any:
        """``value`` in its canonical type, or :class:`InputError` naming the option and its range."""
        if value is None:
            if self.optional:
                return None
            raise self._refuse(value)
        checker = _CHECKERS[self.kind]
        return checker(self, value)

    def parse(self, text: str) -> Any:
        """The value of a manifest or form cell (a string), checked."""
        text = str(text).strip()
        if text == "" or text.lower() in ("none", "null"):
            return self.check(None) if self.optional else self.default
        return self.check(_PARSERS.get(self.kind, lambda spec, t: t)(self, text))


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _check_int(spec: OptionSpec, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        if isinstance(value, (float, np.floating)) and float(value).is_integer():
            value = int(value)
        else:
            raise spec._refuse(value, "a whole number " + spec.describe_range())
    value = int(value)
    if spec.choices:
        if value not in spec.choices:
            raise spec._refuse(value)
        return value
    if (spec.low is not None and value < spec.low) or (spec.high is not None and value > spec.high):
        raise spec._refuse(value)
    return value


def _check_float(spec: OptionSpec, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise spec._refuse(value, "a number " + spec.describe_range())
    value = float(value)
    below = spec.low is not None and (value <= spec.low if spec.low_open else value < spec.low)
    if not math.isfinite(value) or below or (spec.high is not None and value > spec.high):
        raise spec._refuse(value)
    return value


def _check_bool(spec: OptionSpec, value: Any) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise spec._refuse(value)


def _check_choice(spec: OptionSpec, value: Any) -> Any:
    if not isinstance(value, str) or value not in spec.choices:
        raise spec._refuse(value)
    return value


def _check_angles(spec: OptionSpec, value: Any) -> tuple[float, ...]:
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if (
        not isinstance(value, (list, tuple))
        or not 1 <= len(value) <= MAX_KEYFRAMES
        or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and -360 <= v <= 360 for v in value)
    ):
        raise spec._refuse(value, f"a list of 1..{MAX_KEYFRAMES} angles in degrees within [-360, 360]")
    return tuple(float(v) for v in value)


def _check_text(spec: OptionSpec, value: Any) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_TRANSCRIPT_CHARS:
        raise spec._refuse(value, f"non-empty text of at most {MAX_TRANSCRIPT_CHARS} characters")
    return value


def _check_name(spec: OptionSpec, value: Any) -> str:
    """A short name (an identity): letters, digits, space, ``_``, ``-`` and ``.``, at most 64 characters."""
    if not isinstance(value, str) or not 0 < len(value.strip()) <= 64 or not all(c.isalnum() or c in " _-." for c in value):
        raise spec._refuse(value, "a name of at most 64 letters, digits, spaces, '_', '-' or '.'")
    return value.strip()


def _check_points(spec: OptionSpec, value: Any) -> np.ndarray:
    try:
        points = np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError):
        raise spec._refuse(value, "a list of [x, y] pairs (68 or 5 of them)") from None
    if points.ndim != 2 or points.shape[1] != 2 or points.shape[0] not in (68, 5) or not np.isfinite(points).all():
        raise spec._refuse(f"shape {points.shape}", "68 or 5 finite [x, y] pairs")
    return points


def _check_emotion(spec: OptionSpec, value: Any) -> EmotionTrack | str | None:
    try:
        return emotion_value(value)
    except InputError as error:
        raise InputError(f"option {spec.name!r} ({spec.flag}): {error}") from None


def _check_engine(spec: OptionSpec, value: Any) -> str:
    from talkbridge.core.engine import ENGINE_FACTORIES

    if isinstance(value, str) and (value in ENGINES or value in ENGINE_FACTORIES):
        return value
    raise spec._refuse(value, "one of " + ", ".join(dict.fromkeys((*ENGINES, *ENGINE_FACTORIES))))


def _check_device(spec: OptionSpec, value: Any) -> str:
    if isinstance(value, str):
        base, _, index = value.partition(":")
        if value in DEVICES or (base in ("cuda", "mps") and index.isdigit()):
            return value
    raise spec._refuse(value, "auto, cpu, cuda, cuda:N or mps")


_CHECKERS: dict[str, Callable[[OptionSpec, Any], Any]] = {
    "int": _check_int,
    "float": _check_float,
    "bool": _check_bool,
    "choice": _check_choice,
    "angles": _check_angles,
    "text": _check_text,
    "name": _check_name,
    "points": _check_points,
    "device": _check_device,
    "engine": _check_engine,
    "emotion": _check_emotion,
}


def _parse_number(spec: OptionSpec, text: str) -> Any:
    try:
        return int(text) if spec.kind == "int" else float(text)
    except ValueError:
        raise spec._refuse(text, "a number " + spec.describe_range()) from None


def _parse_bool(spec: OptionSpec, text: str) -> bool:
    lowered = text.lower()
    if lowered in ("1", "true", "yes", "on", "y"):
        return True
    if lowered in ("0", "false", "no", "off", "n"):
        return False
    raise spec._refuse(text)


def _parse_angles(spec: OptionSpec, text: str) -> list[float]:
    try:
        return [float(part) for part in text.replace(",", " ").split()]
    except ValueError:
        raise spec._refuse(text, "angles in degrees separated by spaces or commas") from None


_PARSERS: dict[str, Callable[[OptionSpec, str], Any]] = {
    "int": _parse_number,
    "float": _parse_number,
    "bool": _parse_bool,
    "angles": _parse_angles,
}

_ST = ("sadtalker",)
_ALL = ("lite", "sadtalker", "audio2face")
_OPTION_LIST = (
    OptionSpec("engine", "engine", "auto", "auto: SadTalker when its checkpoints are found, else lite; audio2face: NVIDIA Audio2Face-3D motion "
               "(a model folder via --checkpoints, else the store's audio2face-mark)", choices=ENGINES, engines=_ALL),
    OptionSpec("seed", "int", 0, "seed for blinks and head motion", low=0, high=MAX_SEED, engines=_ALL),
    OptionSpec("still", "bool", False, "keep the head still (no generated head motion)", engines=_ALL),
    OptionSpec("pose_intensity", "float", 1.0, "scale of the lite engine's head motion", low=0.0, high=2.0, engines=("lite", "audio2face")),
    OptionSpec(
        "size", "int", None, "face size 256 or 512 for SadTalker (default 256); video size for lite (even, default 512)",
        low=64, high=2048, optional=True, engines=_ALL,
    ),
    OptionSpec("pose_style", "int", 0, "head motion style", low=0, high=45, engines=_ST),
    OptionSpec(
        "expression_scale", "float", 1.0, "exaggerate (>1) or damp (<1) expressions", low=0.0, high=10.0, low_open=True
    ),
    OptionSpec("preprocess", "choice", "crop", "how the portrait is cropped; full/extfull paste the face back into the photo",
               choices=PREPROCESS_MODES, engines=_ST),
    OptionSpec("batch_size", "int", 1, "frames rendered together", low=1, high=64, engines=_ST),
    OptionSpec("yaw", "angles", None, "free-view yaw keyframes in degrees", optional=True, engines=_ST),
    OptionSpec("pitch", "angles", None, "free-view pitch keyframes in degrees", optional=True, engines=_ST),
    OptionSpec("roll", "angles", None, "free-view roll keyframes in degrees", optional=True, engines=_ST),
    OptionSpec("transcript", "text", None, "the spoken words, aligned for better lip timing", optional=True, engines=("lite",)),
    OptionSpec("landmarks", "points", None, "68 or 5 (x, y) face points, for faces detectors miss", optional=True, engines=_ST),
    OptionSpec("enhancer", "choice", None, "restore faces with GFPGAN", choices=ENHANCERS, optional=True, engines=_ST),
    OptionSpec("chunk_frames", "int", 250, "frames of motion per streamed step", low=1, high=10_000, engines=_ALL),
    OptionSpec("precision", "choice", "fp32", "number format of the SadTalker networks", choices=PRECISIONS, engines=_ST),
    OptionSpec("device", "device", "auto", "where the networks run", engines=("sadtalker", "audio2face")),
    OptionSpec("fps", "int", 25, "motion frame rate: audio2face makes any rate (e.g. 30 or 60 for game engines); "
               "lite and SadTalker make 25", low=1, high=120, engines=("audio2face",)),
    OptionSpec("identity", "name", None, "the face an Audio2Face-3D v3.0 diffusion model animates (Claire, James or Mark; "
               "default: the model's first)", optional=True, engines=("audio2face",)),
    OptionSpec(
        "emotion", "emotion", None,
        "emotion for the whole clip as NAME=WEIGHT pairs (amazement anger cheekiness disgust fear grief joy "
        "outofbreath pain sadness, each 0..1), e.g. joy=0.6,sadness=0.2",
        optional=True, engines=("lite", "sadtalker", "audio2face"),
    ),
)
OPTIONS: dict[str, OptionSpec] = {spec.name: spec for spec in _OPTION_LIST}
"""Every job option by its snake_case name."""

WIRE_OPTIONS = tuple(name for name in OPTIONS if name not in ("engine", "device", "enhancer", "size"))
"""Options a sidecar job carries in its ``options``; the engine and size travel as submit fields,
the device is the server's and the enhancer runs where the frames are written."""


def option_name(key: str) -> str:
    """The canonical name of ``key`` written with ``-`` or ``_`` (``pose-style`` -> ``pose_style``)."""
    return str(key).strip().lower().replace("-", "_")


@dataclass(frozen=True)
class JobOptions:
    """The checked options of one job; build with :meth:`from_mapping` (or keywords, then :meth:`checked`)."""

    engine: str = "auto"
    seed: int = 0
    still: bool = False
    pose_intensity: float = 1.0
    size: int | None = None
    pose_style: int = 0
    expression_scale: float = 1.0
    preprocess: str = "crop"
    batch_size: int = 1
    yaw: tuple[float, ...] | None = None
    pitch: tuple[float, ...] | None = None
    roll: tuple[float, ...] | None = None
    transcript: str | None = None
    landmarks: np.ndarray | None = field(default=None, compare=False)
    enhancer: str | None = None
    chunk_frames: int = 250
    precision: str = "fp32"
    device: str = "auto"
    fps: int = 25
    identity: str | None = None
    emotion: EmotionTrack | str | None = None

    def checked(self) -> "JobOptions":
        """A copy with every value checked and in its canonical type."""
        return JobOptions(**{f.name: OPTIONS[f.name].check(getattr(self, f.name)) for f in fields(self)})

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], *, parse_text: bool = False) -> "JobOptions":
        """Options from ``{name: value}`` (names with ``-`` or ``_``); unknown names are refused.

        ``parse_text`` reads every value as a string cell (CSV manifests), else values are typed
        (JSON, the wire, keyword arguments).
        """
        chosen: dict[str, Any] = {}
        for key, value in values.items():
            name = option_name(key)
            spec = OPTIONS.get(name)
            if spec is None:
                raise InputError(f"unknown option {key!r}; known options: {', '.join(OPTIONS)}")
            if name in chosen:
                raise InputError(f"option {name!r} is given twice")
            chosen[name] = spec.parse(value) if parse_text and isinstance(value, str) else spec.check(value)
        return cls(**chosen)

    def resolved_size(self, engine: str) -> int:
        """The frame size the engine renders: the option, else the engine's default."""
        size = self.size if self.size is not None else (DEFAULT_SADTALKER_SIZE if engine == "sadtalker" else DEFAULT_LITE_SIZE)
        if engine == "sadtalker" and size not in SADTALKER_SIZES:
            raise InputError(f"option 'size' (--size) must be 256 or 512 with the SadTalker engine, got {size}")
        if size % 2:
            raise InputError(f"option 'size' (--size) must be an even number of pixels, got {size}")
        return size

    def to_wire(self) -> dict[str, Any]:
        """The JSON-able ``options`` of a sidecar submit: only values that differ from the defaults."""
        wire: dict[str, Any] = {}
        for name in WIRE_OPTIONS:
            value = getattr(self, name)
            if name == "landmarks":
                if value is not None:
                    wire[name] = np.asarray(value, np.float32).tolist()
                continue
            if value is None or value == OPTIONS[name].default:
                continue
            if name == "emotion":
                wire[name] = emotion_to_wire(value)
                continue
            wire[name] = list(value) if isinstance(value, tuple) else value
        return wire

    @classmethod
    def from_wire(cls, options: Mapping[str, Any], *, engine: str, size: int | None) -> "JobOptions":
        """The options of a submitted job; anything unknown or out of range is :class:`InputError`."""
        unknown = [key for key in options if key not in WIRE_OPTIONS]
        if unknown:
            raise InputError(f"unknown option {unknown[0]!r}; a job takes: {', '.join(WIRE_OPTIONS)}")
        return cls.from_mapping({**options, "engine": engine, "size": size})

    def summary(self) -> dict[str, Any]:
        """The JSON-able options a motion file records (landmarks and the transcript text left out)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            if f.name in ("landmarks", "transcript", "device"):
                continue
            value = getattr(self, f.name)
            if f.name == "emotion":
                value = emotion_to_wire(value)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        out["landmarks_given"] = self.landmarks is not None
        out["transcript_given"] = self.transcript is not None
        return out


def options_for_engine(options: JobOptions, engine: str) -> Sequence[str]:
    """Names of options set away from their default that ``engine`` does not use (for a warning)."""
    ignored = []
    for name, spec in OPTIONS.items():
        if engine not in spec.engines and name not in ("device", "precision", "enhancer"):
            value = getattr(options, name)
            if value is not None and not (isinstance(value, np.ndarray)) and value != spec.default:
                ignored.append(name)
    return ignored
