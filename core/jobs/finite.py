"""Motion leaves an engine finite, or the job fails naming the channel and the frame.

A NaN in a pose or a weight survives everything downstream (the video renders a blank head, a GLB
carries NaN keys that engines reject, Live Link sends NaN to Unreal), so the job layer checks every
step of every engine once, where it leaves the engine: in this process, a sidecar worker or a Ray
actor alike (:func:`~talkbridge.core.jobs.local.open_local_job`).
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

from talkbridge.core.errors import TalkbridgeError
from talkbridge.core.jobs.steps import JobStream, Step


class NonFiniteMotion(TalkbridgeError):
    """An engine produced NaN or infinite motion (deterministic for these inputs: not retryable)."""


def check_finite_step(step: Step, engine: str) -> None:
    """Raise :class:`NonFiniteMotion` naming the first channel and frame that are not finite."""
    chunk = step.chunk
    for name, values in chunk.arrays().items():
        finite = np.isfinite(values.reshape(len(values), -1)).all(axis=1)
        if not finite.all():
            first = int(np.flatnonzero(~finite)[0])
            raise NonFiniteMotion(
                f"the {engine} engine produced NaN or infinite values in the {name!r} motion channel "
                f"(first at frame {chunk.start + first}, {int((~finite).sum())} frame(s) of this step); "
                "the inputs are likely out of range"
            )


def finite_motion(stream: JobStream) -> JobStream:
    """``stream`` (the same object) whose steps are checked by :func:`check_finite_step` as they pass."""
    inner = stream.steps
    engine = stream.info.engine

    def steps() -> Iterator[Step]:
        try:
            for step in inner:
                check_finite_step(step, engine)
                yield step
        finally:
            close = getattr(inner, "close", None)
            if close is not None:
                close()

    stream.steps = steps()
    return stream
