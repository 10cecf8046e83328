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
from typing import Iterable

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

assert len(ARKIT_52) == 52 and len(set(ARKIT_52)) == 52
assert len(OCULUS_VISEMES) == 15


def _rows(name: str, array: np.ndarray | None, n: int, width: int | None) -> np.ndarray | None:
    if array is None:
        return None
    array = np.ascontiguousarray(array, dtype=np.float32)
    expected = (n,) if width is None else (n, width)
    if array.shape != expected:
        raise ValueError(f"motion field {name!r} has shape {array.shape}, expected {expected}")
    return array


@dataclass(frozen=True)
class MotionChunk:
    """Consecutive frames ``start .. start + n_frames - 1`` of a clip's motion.

    Optional fields are ``None`` when the engine does not produce them (the lite engine has no 3DMM
    expression; SadTalker has no ARKit weights unless retargeted), never zero-filled stand-ins.
    """

    start: int
    pose: np.ndarray
    blink: np.ndarray
    expression: np.ndarray | None = None
    arkit: np.ndarray | None = None
    visemes: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = int(np.asarray(self.pose).shape[0])
        object.__setattr__(self, "pose", _rows("pose", self.pose, n, POSE_DIM))
        object.__setattr__(self, "blink", _rows("blink", self.blink, n, None))
        object.__setattr__(self, "expression", _rows("expression", self.expression, n, EXPRESSION_DIM))
        object.__setattr__(self, "arkit", _rows("arkit", self.arkit, n, len(ARKIT_52)))
        object.__setattr__(self, "visemes", _rows("visemes", self.visemes, n, len(OCULUS_VISEMES)))
        if self.start < 0:
            raise ValueError(f"motion chunk start must be >= 0, got {self.start}")

    @property
    def n_frames(self) -> int:
        return int(self.pose.shape[0])

    @property
    def stop(self) -> int:
        return self.start + self.n_frames

    def piece(self, offset: int, count: int) -> "MotionChunk":
        """Frames ``offset .. offset + count - 1`` of this chunk, as a chunk of their own."""

        def rows(values: np.ndarray | None) -> np.ndarray | None:
            return None if values is None else values[offset : offset + count]

        return MotionChunk(
            self.start + offset, self.pose[offset : offset + count], self.blink[offset : offset + count],
            rows(self.expression), rows(self.arkit), rows(self.visemes),
        )

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
    return MotionChunk(
        chunk.start, chunk.pose, chunk.blink, chunk.expression * np.float32(expression_scale), chunk.arkit, chunk.visemes
    )


@dataclass
class Motion:
    """A whole clip's motion plus where it came from."""

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

    @property
    def n_frames(self) -> int:
        return int(self.pose.shape[0])

    def coefficients(self) -> np.ndarray:
        """The (T, 70) SadTalker rows: 64 expression, 3 angles, 3 translation."""
        return MotionChunk(0, self.pose, self.blink, self.expression).coefficients()

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
        """Concatenate chunks, checking that they are contiguous and carry the same fields."""
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
                raise ValueError(f"motion field {name!r} is missing from some chunks")
            return np.concatenate(parts, axis=0)

        return cls(
            fps=fps,
            engine=engine,
            engine_version=engine_version,
            pose=join("pose"),
            blink=join("blink"),
            expression=join("expression"),
            arkit=join("arkit"),
            visemes=join("visemes"),
            first_frame=None if first_frame is None else np.asarray(first_frame, np.float32).reshape(-1),
            metadata=dict(metadata or {}),
        )
