"""The job's emotion as per-frame weights, and the emotion channel added to engines that lack one.

Engines without an emotion input (lite, SadTalker) still carry the job's emotion in their motion, so
every motion file, take and export has the same ``emotion`` channel whichever engine made it; how
it shapes their ARKit curves is :mod:`talkbridge.core.emotion_overlay`'s job.
"""

from __future__ import annotations

import dataclasses
from typing import Iterator

import numpy as np

from talkbridge.core.emotion import AUTO, EmotionTrack, emotion_frames
from talkbridge.core.errors import InputError
from talkbridge.core.jobs.steps import JobStream, Step
from talkbridge.core.motion import FPS


def job_emotion(value: EmotionTrack | str | None, n_frames: int, engine: str = "lite") -> np.ndarray | None:
    """(n_frames, 10) weights of the job's emotion option, or None when it has none."""
    if value == AUTO:
        raise InputError(f"--emotion auto takes the emotion from NVIDIA's Audio2Emotion, whose licence allows it only "
                         f"together with Audio2Face (--engine audio2face); give the {engine} engine NAME=WEIGHT "
                         f"pairs or an --emotion-track")
    return emotion_frames(value, n_frames, FPS)


def with_emotion_channel(stream: JobStream, emotion: np.ndarray) -> JobStream:
    """``stream`` with each step's chunk carrying its frames of ``emotion`` (frames and other channels as they were)."""

    def steps() -> Iterator[Step]:
        for step in stream.steps:
            chunk = step.chunk
            yield Step(dataclasses.replace(chunk, emotion=emotion[chunk.start : chunk.start + chunk.n_frames]), step.frames)

    return JobStream(stream.info, steps(), stream.cancel)
