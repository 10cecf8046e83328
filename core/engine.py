"""What an engine is, as the CLI, the sidecar and the exporters see it.

An engine turns a :class:`MotionRequest` into a stream of :class:`~talkbridge.core.motion.MotionChunk`.
Engines register themselves by name in :data:`ENGINE_FACTORIES` (lazily, so listing engines never
imports torch); :func:`create_engine` builds one.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Protocol, runtime_checkable

import numpy as np

from talkbridge.core.errors import InputError
from talkbridge.core.motion import MotionChunk

DEFAULT_CHUNK_FRAMES = 250  # 10 s at 25 fps: small enough to stream, big enough to batch well


@dataclass
class MotionRequest:
    """Everything an engine may use to make motion for one clip.

    ``audio`` is a path to any file the audio front-end reads, or already-loaded 16 kHz mono float32
    samples (the sidecar receives audio bytes, not paths). Engines ignore fields they have no use for.
    """

    audio: Path | np.ndarray
    image: Path | None = None
    first_frame: np.ndarray | None = None
    pose_style: int = 0
    still: bool = False
    expression_scale: float = 1.0
    seed: int = 0
    chunk_frames: int = DEFAULT_CHUNK_FRAMES
    transcript: str | None = None
    ref_eyeblink: Path | np.ndarray | None = None  # SadTalker: a reference video, its .mat, or its rows
    ref_pose: Path | np.ndarray | None = None
    pose_intensity: float = 1.0
    options: dict = field(default_factory=dict)


@runtime_checkable
class MotionEngine(Protocol):
    """An engine that streams motion chunks for a request."""

    name: str
    version: str

    def stream_motion(self, request: MotionRequest) -> Iterator[MotionChunk]:
        """Yield contiguous chunks covering the whole clip, first frame first."""
        ...


# name -> "module:callable" building the engine; resolved only when the engine is asked for.
ENGINE_FACTORIES: dict[str, str] = {
    "sadtalker": "talkbridge.core.sadtalker.engine:SadTalkerMotionEngine",
    "lite": "talkbridge.core.lite.engine:LiteEngine",
    "audio2face": "talkbridge.core.audio2face.engine:Audio2FaceEngine",
}


@dataclass(frozen=True)
class EngineFacts:
    """What the job layer, the writer and a sidecar need to know of an engine before it runs.

    Declared beside the factory, so knowing them never imports the engine (or torch).
    """

    renders: bool = False  # makes video frames (its own, or the lite mannequin's)
    sizes: tuple[int, ...] | None = None  # frame sizes it renders; None: any even size the `size` option allows
    coefficients: bool = False  # its motion holds SadTalker's official 3DMM rows (written as `.mat`)
    arkit: bool = False  # its motion has ARKit curves (else exports derive them)

    def describe_sizes(self, low: int, high: int) -> object:
        """The JSON a sidecar announces for this engine's frame sizes (``welcome.capabilities.render_sizes``)."""
        if self.sizes is not None:
            return list(self.sizes)
        return {"even": True, "min": low, "max": high}


ENGINE_FACTS: dict[str, EngineFacts] = {
    "sadtalker": EngineFacts(renders=True, sizes=(256, 512), coefficients=True),
    "lite": EngineFacts(renders=True, arkit=True),
    "audio2face": EngineFacts(renders=True, arkit=True),  # its video is the lite mannequin driven by its curves
}
"""Facts of the registered engines; a plug-in engine without an entry makes motion only."""


def engine_facts(name: str) -> EngineFacts:
    """The facts of engine ``name`` (a plug-in with none declared: motion only, no extras)."""
    return ENGINE_FACTS.get(name, EngineFacts())


def create_engine(name: str, **kwargs) -> MotionEngine:
    """Build the engine registered as ``name``; keyword arguments go to its constructor."""
    try:
        target = ENGINE_FACTORIES[name]
    except KeyError:
        known = ", ".join(sorted(ENGINE_FACTORIES))
        raise InputError(f"unknown engine {name!r}; choose one of: {known}") from None
    module_name, _, attribute = target.partition(":")
    factory: Callable[..., MotionEngine] = getattr(importlib.import_module(module_name), attribute)
    return factory(**kwargs)
