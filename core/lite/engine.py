"""The lite engine: the MotionEngine that needs no neural weights.

It listens with pocketsphinx, turns phones into ARKit-52 mouth shapes and Oculus visemes, and adds
procedural blinks and head pose. The 64 3DMM expression coefficients are left out (``None``): the lite
engine has none, and zeros would look like a real, neutral face to every consumer.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from talkbridge.core.engine import MotionRequest
from talkbridge.core.errors import InputError
from talkbridge.core.lite.articulation import (
    ARKIT_INDEX,
    ArticulationConfig,
    frame_count,
    level_per_frame,
    loudness,
    mouth_curves,
)
from talkbridge.core.lite.phones import SAMPLE_RATE, PhoneSegment, phones_for_speech
from talkbridge.core.lite.procedural import (
    TRANSLATION_UNIT_M,
    BlinkConfig,
    GazeConfig,
    PoseConfig,
    blink_curve,
    brow_lift,
    gaze_curves,
    head_pose,
)
from talkbridge.core.motion import MotionChunk

log = logging.getLogger(__name__)

ENGINE_NAME = "lite"
ENGINE_VERSION = "1.0"


def _load_audio(path: Path) -> np.ndarray:
    """16 kHz mono float32 samples of an audio file (silence allowed: it animates a resting face)."""
    from talkbridge.core.audio import load_audio

    return load_audio(path, allow_silence=True)


@dataclass
class LitePlan:
    """A clip's analysis and motion, computed once; :meth:`LiteEngine.stream_motion` slices it."""

    phones: list[PhoneSegment]
    phone_source: str
    pose: np.ndarray
    blink: np.ndarray
    arkit: np.ndarray
    visemes: np.ndarray
    details: dict = field(default_factory=dict)
    emotion: np.ndarray | None = None  # (T, 10) when the job asked for one (its overlay is in ``arkit``)

    @property
    def n_frames(self) -> int:
        return int(self.pose.shape[0])

    def chunk(self, start: int, stop: int) -> MotionChunk:
        """Frames ``start .. stop - 1`` of the planned clip."""
        return MotionChunk(
            start=start,
            pose=self.pose[start:stop],
            blink=self.blink[start:stop],
            expression=None,
            arkit=self.arkit[start:stop],
            visemes=self.visemes[start:stop],
            emotion=None if self.emotion is None else self.emotion[start:stop],
        )


class LiteEngine:
    """Weight-free motion engine (registered as ``"lite"``)."""

    name = ENGINE_NAME
    version = ENGINE_VERSION

    def __init__(
        self,
        articulation: ArticulationConfig | None = None,
        blinks: BlinkConfig | None = None,
        pose: PoseConfig | None = None,
        gaze: GazeConfig | None = None,
    ) -> None:
        self.articulation = articulation or ArticulationConfig()
        self.blinks = blinks or BlinkConfig()
        self.pose = pose or PoseConfig()
        self.gaze = gaze or GazeConfig()

    def plan(self, request: MotionRequest) -> LitePlan:
        """Analyse the request's audio and build the whole clip's motion."""
        if isinstance(request.audio, np.ndarray):
            from talkbridge.core.audio.loading import check_pcm

            samples = check_pcm(request.audio, max_seconds=float("inf"))  # its length was bounded where it came in
        else:
            samples = _load_audio(Path(request.audio))
        n_frames = frame_count(samples.size)
        level = loudness(samples, self.articulation)
        if level.max() > 0.0:
            phones, source = phones_for_speech(samples, request.transcript)
        else:
            phones, source = [PhoneSegment("SIL", 0.0, samples.size / SAMPLE_RATE)], "silence"
        log.info("lite engine: %d phones by %s over %.1f s", len(phones), source, samples.size / SAMPLE_RATE)
        arkit, visemes = mouth_curves(phones, level, n_frames, self.articulation)

        level_frames = level_per_frame(level, n_frames)

        # Independent streams per part, so changing one option never reshuffles another's randomness.
        streams = np.random.SeedSequence(request.seed).spawn(3)
        blink_rng, pose_rng, gaze_rng = (np.random.default_rng(s) for s in streams)
        blink = blink_curve(n_frames, blink_rng, self.blinks)
        pose = head_pose(level_frames, pose_rng, request.pose_intensity, request.still, self.pose)
        arkit[:, ARKIT_INDEX["eyeBlinkLeft"]] = blink
        arkit[:, ARKIT_INDEX["eyeBlinkRight"]] = blink
        for name, curve in gaze_curves(n_frames, gaze_rng, self.gaze).items():
            arkit[:, ARKIT_INDEX[name]] = curve
        brows = brow_lift(level_frames, self.pose) * float(np.clip(request.expression_scale, 0.0, 2.0))
        brows = np.clip(brows, 0.0, 1.0) * (0.0 if request.still else 1.0)
        for name, share in (("browInnerUp", 1.0), ("browOuterUpLeft", 0.6), ("browOuterUpRight", 0.6)):
            arkit[:, ARKIT_INDEX[name]] = brows * share
        details = {
            "phone_source": source,
            "phones": len(phones),
            "seed": int(request.seed),
            "pose_intensity": float(request.pose_intensity),
            "still": bool(request.still),
            "translation_unit_m": TRANSLATION_UNIT_M,
        }
        return LitePlan(phones, source, pose, blink.astype(np.float32), arkit, visemes, details)

    def stream_motion(self, request: MotionRequest) -> Iterator[MotionChunk]:
        """Yield ``request.chunk_frames``-long chunks of the clip's motion, first frame first."""
        if request.chunk_frames <= 0:
            raise InputError(f"chunk_frames must be positive, got {request.chunk_frames}")
        plan = self.plan(request)
        for start in range(0, plan.n_frames, request.chunk_frames):
            yield plan.chunk(start, min(plan.n_frames, start + request.chunk_frames))
