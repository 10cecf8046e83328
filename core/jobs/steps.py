"""What a running job streams: steps of motion with their frames, after one header of job facts.

Every route (the lite or SadTalker engine in this process, a job on a sidecar, a Ray actor) is a
:class:`JobStream`, so the one output writer and every client consume the same thing. A step's chunk
always holds the *official* coefficients; the expression scale travels beside them in
:class:`JobInfo` and is applied once, by :func:`talkbridge.core.motion.scale_expression`, where
motion is presented (the motion file, the Blender take).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import numpy as np

from talkbridge.core.motion import FPS, MotionChunk


@dataclass(frozen=True)
class Step:
    """One chunk of motion and, when the job renders video, exactly the frames made from it."""

    chunk: MotionChunk
    frames: np.ndarray | None = None  # (n, H, W, 3) uint8, n == chunk.n_frames

    def __post_init__(self) -> None:
        if self.frames is not None:
            frames = self.frames
            if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[0] != self.chunk.n_frames or frames.shape[3] != 3:
                raise ValueError(
                    f"a step's frames must be ({self.chunk.n_frames}, H, W, 3) uint8, got {frames.shape} {frames.dtype}"
                )


@dataclass
class JobInfo:
    """Facts about a job known once it has started, the same whichever route runs it.

    ``metadata`` holds what the engine learnt (the lite engine's phone source, SadTalker's crop) and
    the options it ran with; the writer adds the caller's facts (input paths, route) beside it.
    """

    engine: str
    engine_version: str
    n_frames: int
    expression_scale: float = 1.0
    fps: int = FPS
    first_frame: np.ndarray | None = None  # SadTalker's 73-value row of the portrait
    frame_size: tuple[int, int] | None = None  # (width, height) of rendered frames, when rendering
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_wire(self) -> dict[str, Any]:
        """JSON-able form (what a sidecar sends in its ``done`` message)."""
        return {
            "engine": self.engine,
            "engine_version": self.engine_version,
            "n_frames": int(self.n_frames),
            "expression_scale": float(self.expression_scale),
            "fps": int(self.fps),
            "first_frame": None if self.first_frame is None else np.asarray(self.first_frame, np.float32).tolist(),
            "frame_size": None if self.frame_size is None else list(self.frame_size),
            "metadata": self.metadata,
        }

    @classmethod
    def from_wire(cls, body: dict[str, Any]) -> "JobInfo":
        first = body.get("first_frame")
        size = body.get("frame_size")
        return cls(
            engine=str(body.get("engine", "")),
            engine_version=str(body.get("engine_version", "")),
            n_frames=int(body.get("n_frames", 0)),
            expression_scale=float(body.get("expression_scale", 1.0)),
            fps=int(body.get("fps", FPS)),
            first_frame=None if first is None else np.asarray(first, np.float32),
            frame_size=None if size is None else (int(size[0]), int(size[1])),
            metadata=dict(body.get("metadata") or {}),
        )


def _nothing() -> None:
    return None


@dataclass
class JobStream:
    """A started job: its :class:`JobInfo` and its steps in frame order.

    ``info`` may be refined while the steps run (a sidecar sends its facts with the last message);
    read it after the steps are exhausted for the final word. ``cancel`` stops the work early
    (remote jobs are cancelled on the server) and is safe to call at any time, more than once.
    """

    info: JobInfo
    steps: Iterator[Step]
    cancel: Callable[[], None] = _nothing

    def close(self) -> None:
        """Stop the job for good: cancel it and close its steps, so threads and sockets end now."""
        self.cancel()
        close = getattr(self.steps, "close", None)
        if close is not None:
            close()
