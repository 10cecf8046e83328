"""The SadTalker motion engine: the audio-to-coefficient pipeline behind the common engine interface.

It needs the source image's first-frame 3DMM row: ``MotionRequest.first_frame`` when given (a
SadTalker ``.mat`` row), else it is reconstructed from ``MotionRequest.image`` with the recon net
(landmarks from ``options["landmarks"]``, or the face-alignment detector). The expression scale is
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


def with_expression_scale(chunk: MotionChunk, expression_scale: float) -> MotionChunk:
    """The chunk as streamed to clients: expression multiplied by the scale the renderer applies."""
    if expression_scale == 1:
        return chunk
    return MotionChunk(chunk.start, chunk.pose, chunk.blink, chunk.expression * np.float32(expression_scale))


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
        self.checkpoint_dir = None if checkpoint_dir is None else Path(checkpoint_dir)
        self.size = size
        self._recon = None
        if pipeline is None:
            if checkpoint_dir is None:
                raise InputError("the SadTalker engine needs a checkpoint folder (see `talkbridge models path`)")
            pipeline = load_audio2coeff(AudioCheckpoints.find(checkpoint_dir, size), pick_device(device))
        self.pipeline = pipeline

    def first_frame_from_image(self, image: Path | np.ndarray, landmarks=None) -> np.ndarray:
        """The 73-value row of a portrait (path or RGB array), as the official preprocessing makes it."""
        from talkbridge.core.face.extract import extract_first_frame
        from talkbridge.core.face.landmarks import FaceAlignmentProvider

        path = None
        if not isinstance(image, np.ndarray):
            from talkbridge.core.face.image_io import read_image_rgb

            path, image = Path(image), read_image_rgb(Path(image))
        provider = None if landmarks is not None else FaceAlignmentProvider(str(self.pipeline.device))
        return extract_first_frame(image, self.recon_net(), landmarks=landmarks, provider=provider, image_path=path).row

    def recon_net(self):
        """The 3DMM reconstruction net from the checkpoint folder, loaded on first use."""
        from talkbridge.core.face.extract import load_recon_net

        if self.checkpoint_dir is None:
            raise InputError("reconstructing a face needs the engine's checkpoint folder")
        if self._recon is None:
            combined = self.checkpoint_dir / f"SadTalker_V0.0.2_{self.size}.safetensors"
            self._recon = load_recon_net(combined if combined.is_file() else self.checkpoint_dir / "epoch_20.pth", self.pipeline.device)
        return self._recon

    def reference_rows(self, source):
        """A reference as the coefficient pipeline takes it: a video is reconstructed frame by frame here."""
        from talkbridge.core.face.landmarks import FaceAlignmentProvider
        from talkbridge.core.face.video_coeffs import is_video, video_coefficients

        if not is_video(source):
            return source
        return video_coefficients(source, self.recon_net(), FaceAlignmentProvider(str(self.pipeline.device)))

    def stream_motion(self, request: MotionRequest) -> Iterator[MotionChunk]:
        first_frame = request.first_frame
        if first_frame is None:
            if request.image is None:
                raise InputError(
                    "the SadTalker engine needs a portrait image or its first-frame 3DMM coefficients (a SadTalker .mat)"
                )
            first_frame = self.first_frame_from_image(request.image, request.options.get("landmarks"))
        job = self.pipeline.prepare(
            CoeffRequest(
                audio=request.audio,
                first_frame=first_frame,
                pose_style=request.pose_style,
                still=request.still,
                ref_eyeblink=None if request.ref_eyeblink is None else self.reference_rows(request.ref_eyeblink),
                ref_pose=None if request.ref_pose is None else self.reference_rows(request.ref_pose),
                seed=request.seed,
            )
        )
        for chunk in job.chunks(request.chunk_frames):
            yield with_expression_scale(chunk, request.expression_scale)
