"""The motion contract every engine produces and every consumer reads.

One frame of motion is a head pose, an eye-blink level and, depending on the engine, the 64 SadTalker
3DMM expression coefficients and/or ARKit-52 and Oculus viseme weights. Engines stream it as
:class:`MotionChunk` s (so long audio never needs the whole clip in memory) and consumers concatenate
them into a :class:`Motion` when they need the clip.

Conventions (shared with SadTalker's `coeff_3dmm` layout):

* ``pose[:, 0:3]`` are the rotation angles in radians in SadTalker's order: pitch (about x),
  yaw (about y), roll (about z).
* ``pose[:, 3:6]`` is the 3DMM translation (x, y, z) in the reconstruction's units.
* ``blink`` is 0 (open) .. 1 (closed).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Mapping

import numpy as np

FPS = 25
"""Video and motion frame rate used by SadTalker and by every engine here."""

EXPRESSION_DIM = 64
POSE_DIM = 6
COEFF_DIM = EXPRESSION_DIM + POSE_DIM  # 70: the per-frame row SadTalker's audio side produces
FIRST_FRAME_DIM = 73  # 64 expression, 3 angles, 3 translation, 3 crop parameters (s, tx, ty)

POSE_NAMES = ("pitch", "yaw", "roll", "tx", "ty", "tz")

ARKIT_52 = (
    "eyeBlinkLeft", "eyeLookDownLeft", "eyeLookInLeft", "eyeLookOutLeft", "eyeLookUpLeft",
    "eyeSquintLeft", "eyeWideLeft",
    "eyeBlinkRight", "eyeLookDownRight", "eyeLookInRight", "eyeLookOutRight", "eyeLookUpRight",
    "eyeSquintRight", "eyeWideRight",
    "jawForward", "jawLeft", "jawRight", "jawOpen",
    "mouthClose", "mouthFunnel", "mouthPucker", "mouthLeft", "mouthRight",
    "mouthSmileLeft", "mouthSmileRight", "mouthFrownLeft", "mouthFrownRight",
    "mouthDimpleLeft", "mouthDimpleRight", "mouthStretchLeft", "mouthStretchRight",
    "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper",
    "mouthPressLeft", "mouthPressRight", "mouthLowerDownLeft", "mouthLowerDownRight",
    "mouthUpperUpLeft", "mouthUpperUpRight",
    "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight",
    "cheekPuff", "cheekSquintLeft", "cheekSquintRight",
    "noseSneerLeft", "noseSneerRight",
    "tongueOut",
)
"""Apple ARKit blend shape names, in the canonical order Unreal's Live Link Face CSV uses."""

OCULUS_VISEMES = (
    "viseme_sil", "viseme_PP", "viseme_FF", "viseme_TH", "viseme_DD", "viseme_kk", "viseme_CH",
    "viseme_SS", "viseme_nn", "viseme_RR", "viseme_aa", "viseme_E", "viseme_I", "viseme_O", "viseme_U",
)
"""The 15 Oculus (Meta) Lipsync visemes, as Ready Player Me heads name their morph targets."""

TONGUE_16 = (
    "tongueTipUp", "tongueTipDown", "tongueTipLeft", "tongueTipRight",
    "tongueRollUp", "tongueRollDown", "tongueRollLeft", "tongueRollRight",
    "tongueUp", "tongueDown", "tongueLeft", "tongueRight",
    "tongueIn", "tongueStretch", "tongueWide", "tongueNarrow",
)
"""Audio2Face-3D's 16 tongue blend shapes (the ``bs_tongue.npz`` pose order of its James/Mark models)."""

EMOTIONS = (
    "amazement", "anger", "cheekiness", "disgust", "fear", "grief", "joy", "outofbreath", "pain", "sadness",
)
"""Audio2Face-3D's 10 explicit emotions, in its ``network_info.json`` order; each weight is 0..1."""

EYE_NAMES = ("leftEyePitch", "leftEyeYaw", "rightEyePitch", "rightEyeYaw")
"""Eye rotations in radians: pitch about x (positive looks down, as head pitch), yaw about y."""

EXPRESSION_NAMES = tuple(f"exp_{i:02d}" for i in range(EXPRESSION_DIM))

assert len(ARKIT_52) == 52 and len(set(ARKIT_52)) == 52
assert len(OCULUS_VISEMES) == 15
assert len(TONGUE_16) == 16 and len(EMOTIONS) == 10


@dataclass(frozen=True)
class Channel:
    """One per-frame motion channel of the contract: its name, the shape of one frame and its columns.

    Everything that moves motion (the wire, the motion file, curves, the name matcher, the take
    writer) walks :data:`CHANNELS` instead of listing fields, so a new engine's channel travels and
    is written everywhere once it is declared here.
    """

    name: str
    frame_shape: tuple[int, ...]
    columns: tuple[str, ...]
    doc: str
    required: bool = False
    shape_weights: bool = False  # 0..1 weights that drive blend shapes by column name
    limits: tuple[tuple[float, float], ...] = ((-1e4, 1e4),)
    """Plausible values, one (low, high) for every column or one per column: generous (edited and
    other tools' files load), but a value past them is garbage or the wrong unit (degrees)."""

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """(low, high) arrays of one frame's shape, from :attr:`limits`."""
        pairs = np.asarray(self.limits, np.float64).reshape(-1, 2)
        pairs = np.broadcast_to(pairs, (self.width, 2)) if len(pairs) == 1 else pairs
        return pairs[:, 0].reshape(self.frame_shape), pairs[:, 1].reshape(self.frame_shape)

    @property
    def width(self) -> int:
        """Values per frame (1 for a scalar channel)."""
        size = 1
        for dim in self.frame_shape:
            size *= dim
        return size


_WEIGHT_LIMITS = ((-1.0, 2.0),)  # 0..1 nominally; solvers and hand edits overshoot a little
_ANGLE_LIMITS = ((-2 * np.pi, 2 * np.pi),)  # radians: 45 degrees stored as degrees is out

CHANNELS: tuple[Channel, ...] = (
    Channel("pose", (POSE_DIM,), POSE_NAMES, "pitch, yaw, roll (radians, SadTalker order) and 3DMM translation", required=True,
            limits=_ANGLE_LIMITS * 3 + ((-1e3, 1e3),) * 3),
    Channel("blink", (), ("blink",), "eye closure 0 (open) .. 1 (closed)", required=True, limits=_WEIGHT_LIMITS),
    Channel("arkit", (len(ARKIT_52),), ARKIT_52, "ARKit-52 blend shape weights", shape_weights=True, limits=_WEIGHT_LIMITS),
    Channel("visemes", (len(OCULUS_VISEMES),), OCULUS_VISEMES, "Oculus viseme weights", shape_weights=True, limits=_WEIGHT_LIMITS),
    Channel("expression", (EXPRESSION_DIM,), EXPRESSION_NAMES, "SadTalker 3DMM expression coefficients", limits=((-100.0, 100.0),)),
    Channel("tongue", (len(TONGUE_16),), TONGUE_16, "tongue blend shape weights (Audio2Face-3D)", shape_weights=True,
            limits=_WEIGHT_LIMITS),
    Channel("emotion", (len(EMOTIONS),), EMOTIONS, "emotion weights 0..1 (Audio2Face-3D's 10)", shape_weights=True,
            limits=_WEIGHT_LIMITS),
    Channel("eyes", (len(EYE_NAMES),), EYE_NAMES, "eye rotations in radians: left pitch, yaw, right pitch, yaw", limits=_ANGLE_LIMITS),
    Channel(
        "jaw", (4, 4), tuple(f"jaw_{r}{c}" for r in range(4) for c in range(4)),
        "rigid transform of the lower teeth from rest, 4x4 row-major (p' = R p + t), head space", limits=((-1e3, 1e3),),
    ),
)
"""The motion contract, in storage and wire order. Only ``pose`` and ``blink`` are always present."""

CHANNEL = {channel.name: channel for channel in CHANNELS}
CHANNEL_NAMES = tuple(CHANNEL)
OPTIONAL_CHANNELS = tuple(channel.name for channel in CHANNELS if not channel.required)


def _rows(name: str, array: object, n: int | None) -> np.ndarray | None:
    """``array`` as contiguous float32 frames of channel ``name`` (``n`` of them, when known)."""
    if array is None:
        return None
    channel = CHANNEL[name]
    values = np.ascontiguousarray(array, dtype=np.float32)
    frames = values.shape[0] if values.ndim else -1
    expected = ((frames if n is None else n),) + channel.frame_shape
    if values.shape != expected or frames < 0:
        want = ("T",) + channel.frame_shape if n is None else expected
        raise ValueError(f"motion channel {name!r} has shape {values.shape}, expected {tuple(want)}")
    return values


def checked_channels(values: Mapping[str, object], what: str = "motion") -> dict[str, np.ndarray]:
    """Every channel of ``values`` (name -> array or None) checked against the contract.

    Unknown names, missing required channels and shapes that disagree with the contract or with
    the pose's frame count raise :class:`ValueError` naming the channel.
    """
    unknown = sorted(set(values) - set(CHANNEL))
    if unknown:
        raise ValueError(f"{what} has an unknown channel {unknown[0]!r}; known: {', '.join(CHANNEL_NAMES)}")
    for channel in CHANNELS:
        if channel.required and values.get(channel.name) is None:
            raise ValueError(f"{what} lacks the required channel {channel.name!r}")
    pose = _rows("pose", values["pose"], None)
    assert pose is not None
    checked = {"pose": pose}
    for name in CHANNEL_NAMES[1:]:
        array = _rows(name, values.get(name), pose.shape[0])
        if array is not None:
            checked[name] = array
    return checked


@dataclass(frozen=True)
class MotionChunk:
    """Consecutive frames ``start .. start + n_frames - 1`` of a clip's motion.

    Optional channels are ``None`` when the engine does not produce them (the lite engine has no 3DMM
    expression; SadTalker has no ARKit weights unless retargeted), never zero-filled stand-ins.
    """

    start: int
    pose: np.ndarray
    blink: np.ndarray
    expression: np.ndarray | None = None
    arkit: np.ndarray | None = None
    visemes: np.ndarray | None = None
    tongue: np.ndarray | None = None
    emotion: np.ndarray | None = None
    eyes: np.ndarray | None = None
    jaw: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.start < 0:
            raise ValueError(f"motion chunk start must be >= 0, got {self.start}")
        checked = checked_channels({name: getattr(self, name) for name in CHANNEL_NAMES}, "a motion chunk")
        for name in CHANNEL_NAMES:
            object.__setattr__(self, name, checked.get(name))

    @classmethod
    def from_arrays(cls, start: int, arrays: Mapping[str, object]) -> "MotionChunk":
        """The chunk whose channels are ``arrays`` (name -> frames): the one decoder of named arrays."""
        unknown = sorted(set(arrays) - set(CHANNEL))
        if unknown:
            raise ValueError(f"a motion chunk has an unknown channel {unknown[0]!r}; known: {', '.join(CHANNEL_NAMES)}")
        return cls(int(start), **{name: arrays.get(name) for name in CHANNEL_NAMES})

    def arrays(self) -> dict[str, np.ndarray]:
        """The channels this chunk has, by name, in contract order: the one encoder to named arrays."""
        return {name: getattr(self, name) for name in CHANNEL_NAMES if getattr(self, name) is not None}

    def replace(self, **channels: np.ndarray | None) -> "MotionChunk":
        """The same frames with some channels replaced (``None`` removes an optional channel)."""
        return MotionChunk.from_arrays(self.start, {**self.arrays(), **channels})

    @property
    def n_frames(self) -> int:
        return int(self.pose.shape[0])

    @property
    def stop(self) -> int:
        return self.start + self.n_frames

    def piece(self, offset: int, count: int) -> "MotionChunk":
        """Frames ``offset .. offset + count - 1`` of this chunk, as a chunk of their own."""
        rows = {name: values[offset : offset + count] for name, values in self.arrays().items()}
        return MotionChunk.from_arrays(self.start + offset, rows)

    def coefficients(self) -> np.ndarray:
        """The (n, 70) SadTalker rows: 64 expression, 3 angles, 3 translation."""
        if self.expression is None:
            raise ValueError("this motion has no 3DMM expression coefficients (lite engine?)")
        return np.concatenate([self.expression, self.pose], axis=1)


def scale_expression(chunk: MotionChunk, expression_scale: float) -> MotionChunk:
    """The chunk as it is shown: 3DMM expression multiplied by the scale the renderer applies.

    Engines and the wire carry the official coefficients plus the scale; this is the one place the
    scale is applied to motion (motion files, Blender takes), as SadTalker's renderer applies it to
    the coefficients it reads. Motion without 3DMM expression (the lite engine) is returned as is.
    """
    if expression_scale == 1 or chunk.expression is None:
        return chunk
    return chunk.replace(expression=chunk.expression * np.float32(expression_scale))


def frames_at_rate(values: np.ndarray, n_frames: int, from_fps: float = FPS, to_fps: float = FPS) -> np.ndarray:
    """``values`` (rows made at ``from_fps``) as ``n_frames`` rows at ``to_fps``.

    At the same rate the rows are cut, or the last one held: two engines that count frames of the
    same samples may differ by a frame at the end. At another rate each frame is interpolated
    linearly between its neighbours in time and held past either end, so head pose and blinks made
    at 25 fps follow a clip made at 30 or 60.
    """
    values = np.asarray(values)
    if len(values) == 0:
        raise ValueError("no frames to resample")
    if from_fps == to_fps:
        if len(values) >= n_frames:
            return values[:n_frames]
        return np.concatenate([values, np.repeat(values[-1:], n_frames - len(values), axis=0)])
    source = np.arange(len(values), dtype=np.float64) / float(from_fps)
    wanted = np.arange(int(n_frames), dtype=np.float64) / float(to_fps)
    flat = values.reshape(len(values), -1).astype(np.float64)
    out = np.stack([np.interp(wanted, source, flat[:, column]) for column in range(flat.shape[1])], axis=1)
    return out.reshape((int(n_frames),) + values.shape[1:]).astype(values.dtype)


@dataclass
class Motion:
    """A whole clip's motion plus where it came from; channels follow :data:`CHANNELS`."""

    fps: int
    engine: str
    engine_version: str
    pose: np.ndarray
    blink: np.ndarray
    expression: np.ndarray | None = None
    arkit: np.ndarray | None = None
    visemes: np.ndarray | None = None
    first_frame: np.ndarray | None = None
    metadata: dict = field(default_factory=dict)
    tongue: np.ndarray | None = None
    emotion: np.ndarray | None = None
    eyes: np.ndarray | None = None
    jaw: np.ndarray | None = None

    def __post_init__(self) -> None:
        checked = checked_channels({name: getattr(self, name) for name in CHANNEL_NAMES}, "the motion")
        for name in CHANNEL_NAMES:
            setattr(self, name, checked.get(name))

    @property
    def n_frames(self) -> int:
        return int(self.pose.shape[0])

    def arrays(self) -> dict[str, np.ndarray]:
        """The channels this clip has, by name, in contract order."""
        return {name: getattr(self, name) for name in CHANNEL_NAMES if getattr(self, name) is not None}

    def as_chunk(self) -> MotionChunk:
        """The whole clip as one chunk starting at frame 0."""
        return MotionChunk.from_arrays(0, self.arrays())

    def coefficients(self) -> np.ndarray:
        """The (T, 70) SadTalker rows: 64 expression, 3 angles, 3 translation."""
        return self.as_chunk().coefficients()

    @classmethod
    def from_chunks(
        cls,
        chunks: Iterable[MotionChunk],
        *,
        engine: str,
        engine_version: str,
        fps: int = FPS,
        first_frame: np.ndarray | None = None,
        metadata: dict | None = None,
    ) -> "Motion":
        """Concatenate chunks, checking that they are contiguous and carry the same channels."""
        chunks = list(chunks)
        if not chunks:
            raise ValueError("no motion chunks to assemble")
        expected_start = chunks[0].start
        if expected_start != 0:
            raise ValueError(f"the first motion chunk starts at frame {expected_start}, not 0")
        for chunk in chunks:
            if chunk.start != expected_start:
                raise ValueError(f"motion chunk starts at frame {chunk.start}, expected {expected_start}")
            expected_start = chunk.stop

        def join(name: str) -> np.ndarray | None:
            parts = [getattr(c, name) for c in chunks]
            present = [p is not None for p in parts]
            if not any(present):
                return None
            if not all(present):
                raise ValueError(f"motion channel {name!r} is missing from some chunks")
            return np.concatenate(parts, axis=0)

        return cls(
            fps=fps,
            engine=engine,
            engine_version=engine_version,
            first_frame=None if first_frame is None else np.asarray(first_frame, np.float32).reshape(-1),
            metadata=dict(metadata or {}),
            **{name: join(name) for name in CHANNEL_NAMES},
        )
