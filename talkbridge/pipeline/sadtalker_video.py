"""SadTalker end to end: portrait + speech -> streamed video frames and the motion that drove them.

Composition of the wrappers, one direction only:

    portrait --landmarks/crop/align--> recon net --> first-frame row (73) --+
    speech ---------------------------------------------------------------> Audio2Coeff (streamed)
                                                   coefficients --> FaceRenderer --> paste-back --> frames

Networks are loaded once per :class:`SadTalkerVideo` and reused for every job. Frames come out as the
coefficients arrive (the renderer needs 13 frames of look-ahead), so memory stays flat however long
the audio is.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from talkbridge.core.errors import InputError
from talkbridge.core.face.image_io import read_image_rgb
from talkbridge.core.motion import MotionChunk

log = logging.getLogger(__name__)

PREPROCESS_MODES = ("crop", "extcrop", "resize", "full", "extfull")


@dataclass
class SadTalkerOptions:
    """Every official SadTalker inference option, under descriptive names."""

    preprocess: str = "crop"
    still: bool = False
    pose_style: int = 0
    expression_scale: float = 1.0
    ref_eyeblink: Path | np.ndarray | None = None  # a reference video, or its coefficient rows (.mat)
    ref_pose: Path | np.ndarray | None = None
    yaw: Sequence[float] | None = None  # free-view keyframes in degrees
    pitch: Sequence[float] | None = None
    roll: Sequence[float] | None = None
    batch_size: int = 1
    seed: int = 0
    landmarks: Path | np.ndarray | None = None  # user landmarks (stylised faces, no detector weights)
    chunk_frames: int = 100


@dataclass
class SadTalkerRun:
    """One job in progress: iterate :meth:`frames`; the motion chunks fill as frames are made.

    ``motion_chunks`` hold the official coefficients (expression not yet multiplied by the
    expression scale, which the renderer applies).
    """

    first: object  # core.face.extract.FirstFrame
    n_frames: int
    frame_size: tuple[int, int]  # (width, height) of output frames
    _frames: Iterator[np.ndarray]
    motion_chunks: list[MotionChunk] = field(default_factory=list)

    def frames(self) -> Iterator[np.ndarray]:
        """(n, H, W, 3) uint8 batches of finished frames, in order."""
        return self._frames


class SadTalkerVideo:
    """Loaded SadTalker networks for one checkpoint folder, size, preprocess family and device."""

    def __init__(self, checkpoint_dir: str | Path, size: int = 256, preprocess: str = "crop", device: str | None = None) -> None:
        from talkbridge.core.face.extract import load_recon_net
        from talkbridge.core.sadtalker.audio_models import AudioCheckpoints, load_audio2coeff
        from talkbridge.core.sadtalker.engine import pick_device
        from talkbridge.core.sadtalker.render.models import FaceRenderModels

        if preprocess not in PREPROCESS_MODES:
            raise InputError(f"unknown preprocess mode {preprocess!r}; choose one of {', '.join(PREPROCESS_MODES)}")
        folder = Path(checkpoint_dir)
        self.device = pick_device(device)
        self.size = size
        self.preprocess = preprocess
        self.audio = load_audio2coeff(AudioCheckpoints.find(folder, size), self.device)
        self.render_models = FaceRenderModels.from_checkpoint_dir(folder, size, preprocess, self.device)
        recon_file = folder / f"SadTalker_V0.0.2_{size}.safetensors"
        if not recon_file.is_file():
            recon_file = folder / "epoch_20.pth"
        self.recon = load_recon_net(recon_file, self.device)
        log.info("SadTalker %d px (%s) loaded from %s on %s", size, preprocess, folder, self.device)

    def serves(self, preprocess: str) -> bool:
        """Whether ``preprocess`` runs on the loaded MappingNet (70 channels for crop modes, 73 for full)."""
        from talkbridge.core.sadtalker.render.windows import uses_full_mapping

        return uses_full_mapping(preprocess) == uses_full_mapping(self.preprocess)

    def start(self, image: Path, audio, options: SadTalkerOptions, image_rgb: np.ndarray | None = None) -> SadTalkerRun:
        """Validate inputs and set up the streamed job (the face is found and reconstructed here).

        ``image_rgb`` is the already decoded portrait, when the caller has read ``image`` itself.
        """
        from talkbridge.core.face.extract import extract_first_frame
        from talkbridge.core.face.landmarks import FaceAlignmentProvider
        from talkbridge.core.face.paste import finish_frame, output_size
        from talkbridge.core.face.preprocess import is_full
        from talkbridge.core.face.video_coeffs import is_video, video_coefficients
        from talkbridge.core.sadtalker.audio2coeff import CoeffRequest
        from talkbridge.core.sadtalker.render.renderer import FaceRenderer, free_view_poses

        if options.preprocess not in PREPROCESS_MODES:
            raise InputError(f"unknown preprocess mode {options.preprocess!r}; choose one of {', '.join(PREPROCESS_MODES)}")
        if not self.serves(options.preprocess):
            raise InputError(
                f"these networks were loaded for preprocess {self.preprocess!r}, whose MappingNet does not "
                f"serve {options.preprocess!r} (crop/extcrop/resize share one, full/extfull the other)"
            )
        if not 0 < options.expression_scale <= 10:
            raise InputError(f"expression scale must be in (0, 10], got {options.expression_scale}")
        original = image_rgb if image_rgb is not None else read_image_rgb(image)
        provider = None if options.landmarks is not None else FaceAlignmentProvider(str(self.device))
        first = extract_first_frame(
            original, self.recon, landmarks=options.landmarks, provider=provider,
            mode=options.preprocess, size=self.size, image_path=image,
        )
        references, extracted = {}, {}  # the same video for both roles is read once
        for name in ("ref_eyeblink", "ref_pose"):
            source = getattr(options, name)
            if is_video(source):
                key = Path(source).resolve()
                if key not in extracted:
                    detector = provider or FaceAlignmentProvider(str(self.device))
                    extracted[key] = video_coefficients(source, self.recon, detector)
                source = extracted[key]
            references[name] = source
        job = self.audio.prepare(
            CoeffRequest(
                audio=audio, first_frame=first.row, pose_style=options.pose_style, still=options.still,
                ref_eyeblink=references["ref_eyeblink"], ref_pose=references["ref_pose"], seed=options.seed,
            )
        )
        renderer = FaceRenderer(
            self.render_models, first.source_image, first.row, still=options.still,
            expression_scale=options.expression_scale, batch_size=options.batch_size, size=self.size,
        )
        if is_full(first.crop.mode):
            frame_size = (original.shape[1], original.shape[0])
        else:
            frame_size = output_size(first.crop, self.size)
        poses = free_view_poses(job.n_frames, options.yaw, options.pitch, options.roll)
        run = SadTalkerRun(first, job.n_frames, frame_size, iter(()))

        def coefficient_chunks() -> Iterator[np.ndarray]:
            for chunk in job.chunks(options.chunk_frames):
                run.motion_chunks.append(chunk)  # official (unscaled) coefficients; the renderer scales
                yield chunk.coefficients()

        def frames() -> Iterator[np.ndarray]:
            for batch in renderer.stream(coefficient_chunks(), poses):
                if len(batch):
                    yield np.stack([finish_frame(frame, original, first.crop, self.size) for frame in batch])

        run._frames = frames()
        return run
