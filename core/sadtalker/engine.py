"""The SadTalker motion engine: the audio-to-coefficient pipeline behind the common engine interface.

It needs the source image's first-frame 3DMM row (``MotionRequest.first_frame``), produced by the
face pipeline from the portrait, or given directly (a SadTalker ``.mat``). The expression scale is
applied to the streamed motion, as the official renderer applies it to the coefficients it reads.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from talkbridge._version import __version__
from talkbridge.core.engine import MotionRequest
from talkbridge.core.errors import InputError
from talkbridge.core.motion import MotionChunk
from talkbridge.core.sadtalker.audio2coeff import Audio2Coeff, CoeffRequest
from talkbridge.core.sadtalker.audio_models import AudioCheckpoints, load_audio2coeff

log = logging.getLogger(__name__)


def pick_device(device: str | None = None) -> torch.device:
    """``None``/``"auto"``: CUDA, then Apple MPS, then CPU."""
    if device not in (None, "auto"):
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


class SadTalkerMotionEngine:
    """Streams SadTalker motion; networks are loaded once and reused across requests."""

    name = "sadtalker"
    version = __version__

    def __init__(
        self,
        checkpoint_dir: str | Path | None = None,
        *,
        size: int = 256,
        device: str | None = None,
        pipeline: Audio2Coeff | None = None,
    ) -> None:
        if pipeline is None:
            if checkpoint_dir is None:
                raise InputError("the SadTalker engine needs a checkpoint folder (see `talkbridge models path`)")
            pipeline = load_audio2coeff(AudioCheckpoints.find(checkpoint_dir, size), pick_device(device))
        self.pipeline = pipeline

    def stream_motion(self, request: MotionRequest) -> Iterator[MotionChunk]:
        if request.first_frame is None:
            raise InputError(
                "the SadTalker engine needs the portrait's first-frame 3DMM coefficients "
                "(extract them from the image, or pass a SadTalker .mat)"
            )
        job = self.pipeline.prepare(
            CoeffRequest(
                audio=request.audio,
                first_frame=request.first_frame,
                pose_style=request.pose_style,
                still=request.still,
                ref_eyeblink=request.ref_eyeblink,
                ref_pose=request.ref_pose,
                seed=request.seed,
            )
        )
        scale = np.float32(request.expression_scale)
        for chunk in job.chunks(request.chunk_frames):
            if scale != 1:
                chunk = MotionChunk(chunk.start, chunk.pose, chunk.blink, chunk.expression * scale)
            yield chunk
