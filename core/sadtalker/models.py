"""The one owner of SadTalker's networks: each loads once per device and serves every kind of job.

A sidecar that answers motion-only jobs and video jobs, a batch worker and a Ray actor all hold one
:class:`SadTalkerModels` per device and ask it for what a job needs: the audio networks
(ExpNet + PoseVAE), the face reconstruction net, the renderer (MappingNet + face-vid2vid) for a size
and preprocess family, and the landmark detector. Nothing else in talkbridge opens checkpoint files
for a job; which file holds what is :mod:`talkbridge.core.sadtalker.files`' business.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from talkbridge.core.errors import InputError
from talkbridge.core.once import BuiltOnce
from talkbridge.core.sadtalker import files

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


class SadTalkerModels:
    """SadTalker's networks from one checkpoint folder on one device, each loaded on first use."""

    def __init__(
        self,
        checkpoint_dir: str | Path,
        device: str | None = None,
        precision: str = "fp32",
        batch_frames: int = 0,
        batch_wait_ms: float = 5.0,
    ) -> None:
        """``batch_frames`` > 0 renders the frames of concurrent jobs in shared passes of that many
        rows, waiting at most ``batch_wait_ms`` for a fuller pass (:meth:`batcher`); 0 renders each
        job on its own."""
        self.checkpoint_dir = Path(checkpoint_dir)
        self.batch_frames = int(batch_frames)
        self.batch_wait_ms = float(batch_wait_ms)
        if not files.has_sadtalker_weights(self.checkpoint_dir):
            files.AudioCheckpoints.find(self.checkpoint_dir)  # raises the precise CheckpointError
        from talkbridge.core.sadtalker.precision import resolve_precision

        self.device = pick_device(device)
        self.precision = resolve_precision(precision, self.device).name  # e.g. fp16 on a CPU fails here
        if self.device.type == "cuda" and self.precision == "fp32":
            # cuDNN may otherwise run fp32 convolutions as TF32 (fp16's mantissa): fp32 must stay faithful.
            torch.backends.cudnn.allow_tf32 = False
            torch.backends.cuda.matmul.allow_tf32 = False
        self._loaded = BuiltOnce()

    def audio(self, size: int = 256) -> Any:
        """The audio-to-coefficient pipeline (:class:`~talkbridge.core.sadtalker.audio2coeff.Audio2Coeff`)."""
        from talkbridge.core.sadtalker.audio_models import load_audio2coeff

        found = files.AudioCheckpoints.find(self.checkpoint_dir, size)
        # Both sizes' combined files hold the same audio networks: key by the files actually read.
        return self._loaded.get(("audio", found.expnet, found.posevae), lambda: load_audio2coeff(found, self.device, self.precision))

    def recon(self, size: int = 256) -> Any:
        """The 3DMM reconstruction net that turns a portrait into its first-frame row."""
        from talkbridge.core.face.extract import load_recon_net

        path = files.recon_file(self.checkpoint_dir, size)
        return self._loaded.get(("recon", path), lambda: load_recon_net(path, self.device))

    def renderer(self, size: int, preprocess: str) -> Any:
        """MappingNet + face-vid2vid for ``size`` and ``preprocess``'s MappingNet family."""
        from talkbridge.core.sadtalker.render.models import FaceRenderModels
        from talkbridge.core.sadtalker.render.windows import uses_full_mapping

        if size not in files.SIZES:
            raise InputError(f"SadTalker renders {' or '.join(map(str, files.SIZES))} px faces, not {size}")
        key = ("render", size, uses_full_mapping(preprocess))

        def load() -> Any:
            log.info("loading the SadTalker %d px renderer (%s family) from %s on %s", size, preprocess, self.checkpoint_dir, self.device)
            return FaceRenderModels.from_checkpoint_dir(self.checkpoint_dir, size, preprocess, self.device, precision=self.precision)

        return self._loaded.get(key, load)

    def batcher(self, size: int, preprocess: str) -> Any:
        """The :class:`~talkbridge.core.sadtalker.render.batcher.FrameBatcher` every job rendering
        ``size`` and ``preprocess``'s family on this device shares; None when batching is off."""
        if self.batch_frames <= 0:
            return None
        from talkbridge.core.sadtalker.render.batcher import BatchPolicy, FrameBatcher
        from talkbridge.core.sadtalker.render.windows import uses_full_mapping

        policy = BatchPolicy(self.batch_frames, self.batch_wait_ms)
        key = ("batcher", size, uses_full_mapping(preprocess))
        return self._loaded.get(key, lambda: FrameBatcher(self.renderer(size, preprocess), policy))

    def provide_renderer(self, size: int, preprocess: str, render_models: Any) -> None:
        """Use ``render_models`` for ``size`` and ``preprocess``'s family instead of loading them.

        For benchmarks and tests that run a narrowed face-vid2vid with the official file layout.
        """
        from talkbridge.core.sadtalker.render.windows import uses_full_mapping

        self._loaded.put(("render", size, uses_full_mapping(preprocess)), render_models.to(self.device).with_precision(self.precision))

    def landmarks(self) -> Any:
        """The face-alignment landmark detector (its weights come from the model store)."""
        from talkbridge.core.face.landmarks import FaceAlignmentProvider

        return self._loaded.get(("landmarks",), lambda: FaceAlignmentProvider(str(self.device)))

    def reference_rows(self, source: Path | np.ndarray | None, size: int = 256, cache: dict | None = None) -> Any:
        """A reference as the coefficient pipeline takes it; a video is reconstructed frame by frame.

        ``cache`` (a dict owned by one job) lets the same video serve both reference roles after one read.
        """
        from talkbridge.core.face.video_coeffs import is_video, video_coefficients

        if not is_video(source):
            return source
        key = Path(source).resolve()
        if cache is not None and key in cache:
            return cache[key]
        rows = video_coefficients(source, self.recon(size), self.landmarks())
        if cache is not None:
            cache[key] = rows
        return rows
