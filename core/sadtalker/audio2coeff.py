"""Audio + first-frame coefficients -> per-frame SadTalker motion (64 expression + 6 pose), streamed.

This reproduces the official ``get_data`` + ``Audio2Coeff.generate`` step:

* expression: ExpNet per frame from the frame's mel window, the reference expression (the source
  image's, or a reference video's tiled over the clip) and the blink signal;
* pose: PoseVAE decodes 32-frame chunks of frames 1..T-1 (frame 0 is the source pose); a last,
  overlapping chunk covers the remainder; poses are offsets added to the first-frame pose, then
  Savitzky-Golay smoothed (window 13, order 2), then a reference video's relative motion is added.

Unlike the official code it streams: :meth:`CoeffJob.chunks` yields contiguous
:class:`~talkbridge.core.motion.MotionChunk` s while computing only the mel windows and pose chunks
that chunk needs (plus 6 frames of smoothing look-ahead), so the first chunk of an hour-long clip is
out in well under a second. The random parts (blink gaps, one CVAE latent per pose chunk) can be
injected, and otherwise come from ``seed`` exactly as an official run seeded with ``random.seed`` /
``torch.manual_seed`` draws them.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
from scipy.signal import savgol_filter

from talkbridge.core.audio.loading import AudioClip, load_clip
from talkbridge.core.audio.mel import MelWindows
from talkbridge.core.errors import InputError
from talkbridge.core.motion import EXPRESSION_DIM, POSE_DIM, MotionChunk
from talkbridge.core.sadtalker.blink import random_blinks
from talkbridge.core.sadtalker.coeff_files import first_frame_row, reference_rows
from talkbridge.core.sadtalker.config import PoseVAEConfig
from talkbridge.core.sadtalker.heap import retain_freed_heap
from talkbridge.core.sadtalker.nets.expnet import ExpNet
from talkbridge.core.sadtalker.nets.fusion import folded_encoder
from talkbridge.core.sadtalker.nets.posevae import PoseVAE
from talkbridge.core.sadtalker.precision import DEFAULT_PRECISION, cast_module, module_dtype, resolve_precision

log = logging.getLogger(__name__)

POSE_SMOOTH_WINDOW = 13
POSE_SMOOTH_ORDER = 2
SMOOTH_RADIUS = POSE_SMOOTH_WINDOW // 2
DEFAULT_EXPNET_BATCH = 32  # best of 8..64 on 2 cores: big enough to amortise calls, small enough for L2

WindowSource = Callable[[int, int], np.ndarray]  # (first, stop) -> (n, 80, 16) float32 mel windows


@dataclass
class CoeffRequest:
    """Inputs of the audio-to-coefficient step.

    ``first_frame`` is the source image's coefficient row (or a ``.mat`` holding it).
    ``ref_eyeblink`` / ``ref_pose`` are reference videos' coefficient rows (or ``.mat`` files): the
    first replaces the reference expression and disables the random blinks, the second adds its
    relative head motion. ``still`` keeps the head at the first-frame pose. ``blink`` ((T,) or
    (T, 1)) and ``latents`` ((chunks, 64)) inject the random draws; otherwise ``seed`` makes them.
    """

    audio: str | Path | np.ndarray | AudioClip
    first_frame: str | Path | np.ndarray
    pose_style: int = 0
    still: bool = False
    ref_eyeblink: str | Path | np.ndarray | None = None
    ref_pose: str | Path | np.ndarray | None = None
    use_blink: bool = True
    seed: int = 0
    blink: np.ndarray | None = None
    latents: np.ndarray | None = None


def check_pose_style(pose_style: int, num_styles: int = PoseVAEConfig().num_styles) -> int:
    """The style id as an int, or an InputError naming the valid range."""
    if not 0 <= int(pose_style) < num_styles:
        raise InputError(f"pose style {pose_style} is out of range: choose 0..{num_styles - 1}")
    return int(pose_style)


def pose_chunk_count(n_frames: int, seq_len: int = 32) -> int:
    """CVAE latents a clip of ``n_frames`` consumes: one per full chunk, one for a remainder."""
    moving = max(n_frames - 1, 0)
    return moving // seq_len + (1 if moving % seq_len else 0)


def predict_expression(
    model: ExpNet,
    windows: np.ndarray,
    ref_expression: np.ndarray,
    blink: np.ndarray,
    device: torch.device | str = "cpu",
    batch: int = DEFAULT_EXPNET_BATCH,
    encoder: torch.nn.Module | None = None,
) -> np.ndarray:
    """ExpNet over (n, 80, 16) windows with per-frame (n, 64) reference and (n, 1) blink -> (n, 64).

    ``encoder`` may replace ``model.audio_encoder`` with an equivalent (e.g. batch-norm folded) copy;
    it runs in its own dtype (see ``core.sadtalker.precision``), the linear head in float32.
    """
    encoder = model.audio_encoder if encoder is None else encoder
    dtype = module_dtype(encoder)
    outputs = []
    with torch.inference_mode():
        for lo in range(0, len(windows), batch):
            hi = lo + batch
            mel = torch.from_numpy(np.ascontiguousarray(windows[lo:hi])).to(device).unsqueeze(1)
            ref = torch.from_numpy(np.ascontiguousarray(ref_expression[lo:hi], np.float32)).to(device)
            eye = torch.from_numpy(np.ascontiguousarray(blink[lo:hi], np.float32)).to(device)
            audio = encoder(mel.to(dtype)).flatten(1).float()
            outputs.append(model.mapping1(torch.cat([audio, ref, eye], dim=1)).float().cpu().numpy())
    return np.concatenate(outputs, axis=0) if outputs else np.zeros((0, EXPRESSION_DIM), np.float32)


class PoseSequence:
    """Raw (unsmoothed) PoseVAE poses of a clip, decoded chunk by chunk on demand.

    ``raw`` holds first-frame pose + predicted offset; rows ``[0, ready)`` are valid. The remainder
    chunk re-uses the audio embeddings already computed for the frames it overlaps.
    """

    def __init__(
        self,
        model: PoseVAE,
        windows: WindowSource,
        n_frames: int,
        first_pose: np.ndarray,
        style: int,
        next_latent: Callable[[], torch.Tensor],
        device: torch.device | str = "cpu",
        trace: list | None = None,
        encoder: torch.nn.Module | None = None,
    ) -> None:
        self.model, self.windows, self.n_frames = model, windows, n_frames
        self.encoder = model.audio_encoder.audio_encoder if encoder is None else encoder
        self.seq_len = model.config.seq_len
        self.device = device
        self.first_pose = torch.as_tensor(np.asarray(first_pose, np.float32).reshape(1, POSE_DIM), device=device)
        self.style = torch.tensor([style], dtype=torch.long, device=device)
        self.next_latent = next_latent
        self.raw = np.zeros((n_frames, POSE_DIM), np.float32)
        if n_frames:
            self.raw[0] = np.asarray(first_pose, np.float32).reshape(-1)
        self.ready = min(n_frames, 1)
        moving = max(n_frames - 1, 0)
        self.full_chunks, self.remainder = divmod(moving, self.seq_len)
        self.decoded_chunks = 0
        self._embedding_cache: tuple[int, torch.Tensor] | None = None  # (first frame, (n, 512))
        self.trace = trace

    def _embed(self, first: int, stop: int) -> torch.Tensor:
        """(stop-first, 512) audio embeddings, re-using the cached tail of the previous chunk."""
        pieces, cursor = [], first
        if self._embedding_cache is not None:
            cached_first, cached = self._embedding_cache
            if cached_first <= first < cached_first + len(cached):
                reuse = cached[first - cached_first : min(stop, cached_first + len(cached)) - cached_first]
                pieces.append(reuse)
                cursor = first + len(reuse)
        if cursor < stop:
            mel = torch.from_numpy(self.windows(cursor, stop)).to(self.device, module_dtype(self.encoder))
            pieces.append(self.encoder(mel.unsqueeze(1)).flatten(1).float())
        embedding = torch.cat(pieces, dim=0)
        self._embedding_cache = (first, embedding)
        return embedding

    def _decode(self, embedding: torch.Tensor) -> torch.Tensor:
        z = self.next_latent().to(self.device).reshape(1, -1)
        motion = self.model.decode(z, self.style, self.first_pose, embedding.unsqueeze(0))[0]
        return motion

    def ensure(self, stop: int) -> None:
        """Decode chunks until raw poses of frames ``[0, stop)`` are valid."""
        stop = min(stop, self.n_frames)
        with torch.inference_mode():
            while self.ready < stop:
                seq = self.seq_len
                if self.decoded_chunks < self.full_chunks:
                    first = 1 + seq * self.decoded_chunks
                    embedding = self._embed(first, first + seq)
                    motion = self._decode(embedding)
                    rows, keep_first = motion, first
                else:
                    first = max(1, self.n_frames - seq)
                    embedding = self._embed(first, self.n_frames)
                    real = embedding
                    if len(embedding) < seq:  # clip shorter than one chunk: repeat the first embedding
                        embedding = torch.cat([embedding[:1].expand(seq - len(embedding), -1), embedding], dim=0)
                    motion = self._decode(embedding)
                    rows, keep_first = motion[seq - self.remainder :], self.n_frames - self.remainder
                    embedding = real
                if self.trace is not None:
                    self.trace.append((embedding.float().cpu().numpy(), motion.float().cpu().numpy()))
                self.raw[keep_first : keep_first + len(rows)] = (rows + self.first_pose).float().cpu().numpy()
                self.ready = keep_first + len(rows)
                self.decoded_chunks += 1

    def smoothed(self, first: int, stop: int) -> np.ndarray:
        """Savitzky-Golay smoothed poses of frames ``[first, stop)``, equal to smoothing the whole clip."""
        n = self.n_frames
        window = POSE_SMOOTH_WINDOW if n >= POSE_SMOOTH_WINDOW else int((n - 1) / 2) * 2 + 1
        if window <= POSE_SMOOTH_ORDER:  # 1 or 2 frames: nothing to fit (the official code crashes here)
            self.ensure(stop)
            return self.raw[first:stop].copy()
        radius = window // 2
        seg_stop = min(n, max(stop + radius, window))
        seg_first = max(0, min(first - radius, seg_stop - window))
        self.ensure(seg_stop)
        segment = savgol_filter(self.raw[seg_first:seg_stop], window, POSE_SMOOTH_ORDER, axis=0)
        return np.asarray(segment[first - seg_first : stop - seg_first], np.float32)


@dataclass
class CoeffJob:
    """One prepared clip: validated inputs, the blink signal and lazily computed features."""

    n_frames: int
    blink: np.ndarray  # (T, 1) float32, zeros when disabled or replaced by a reference video
    first_frame: np.ndarray  # (>=70,) float32
    ref_expression_rows: np.ndarray  # (N, 64): tiled over the clip (N = 1 without a reference video)
    ref_pose_rows: np.ndarray | None  # (N, 6) reference video pose, tiled, or None
    still: bool
    windows: WindowSource
    expression_fn: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
    pose: PoseSequence
    audio: AudioClip | None = None
    trace: list = field(default_factory=list)

    def ref_expression(self, first: int, stop: int) -> np.ndarray:
        return self.ref_expression_rows[np.arange(first, stop) % len(self.ref_expression_rows)]

    def expression(self, first: int, stop: int) -> np.ndarray:
        return self.expression_fn(self.windows(first, stop), self.ref_expression(first, stop), self.blink[first:stop])

    def final_pose(self, first: int, stop: int) -> np.ndarray:
        if self.still:
            return np.repeat(self.first_frame[None, EXPRESSION_DIM : EXPRESSION_DIM + POSE_DIM], stop - first, axis=0)
        pose = self.pose.smoothed(first, stop)
        if self.ref_pose_rows is not None:
            rows = self.ref_pose_rows
            pose = pose + (rows[np.arange(first, stop) % len(rows)] - rows[0])
        return pose.astype(np.float32)

    def chunks(self, chunk_frames: int = 250) -> Iterator[MotionChunk]:
        """Contiguous motion chunks of at most ``chunk_frames`` frames, first frame first."""
        if chunk_frames < 1:
            raise ValueError("chunk_frames must be >= 1")
        for first in range(0, self.n_frames, chunk_frames):
            stop = min(self.n_frames, first + chunk_frames)
            expression = self.expression(first, stop)
            pose = self.final_pose(first, stop)
            yield MotionChunk(first, pose=pose, blink=self.blink[first:stop, 0], expression=expression)


class Audio2Coeff:
    """ExpNet + PoseVAE on one device: prepares :class:`CoeffJob` s and streams their motion.

    ``precision`` (``fp32`` | ``fp16`` | ``bf16``, see :mod:`talkbridge.core.sadtalker.precision`) is
    the dtype of the two (batch-norm folded) audio encoders, nearly all of the audio FLOPs; the ExpNet
    head and the PoseVAE decoder stay float32, and the checkpoint modules themselves are not cast.
    """

    def __init__(
        self,
        expnet: ExpNet,
        posevae: PoseVAE,
        device: str | torch.device = "cpu",
        expnet_batch: int = DEFAULT_EXPNET_BATCH,
        precision: str = DEFAULT_PRECISION,
        *,
        allow_cpu_fp16: bool = False,
    ) -> None:
        retain_freed_heap()  # else glibc re-faults every encoder pass's activations (see core.sadtalker.heap)
        self.device = torch.device(device)
        self.precision = resolve_precision(precision, self.device, allow_cpu_fp16=allow_cpu_fp16).name
        self.expnet = expnet.to(self.device).eval()
        self.posevae = posevae.to(self.device).eval()
        self.expnet_batch = expnet_batch
        self.num_styles = posevae.config.num_styles
        self.expnet_encoder = cast_module(folded_encoder(self.expnet.audio_encoder), self.precision)
        self.posevae_encoder = cast_module(folded_encoder(self.posevae.audio_encoder.audio_encoder), self.precision)

    def check_style(self, pose_style: int) -> int:
        return check_pose_style(pose_style, self.num_styles)

    def expression(self, windows: np.ndarray, ref_expression: np.ndarray, blink: np.ndarray) -> np.ndarray:
        return predict_expression(
            self.expnet, windows, ref_expression, blink, self.device, self.expnet_batch, self.expnet_encoder
        )

    def prepare_windows(
        self,
        windows: WindowSource,
        n_frames: int,
        first_frame: np.ndarray,
        *,
        pose_style: int = 0,
        still: bool = False,
        blink: np.ndarray | None = None,
        ref_expression_rows: np.ndarray | None = None,
        ref_pose_rows: np.ndarray | None = None,
        latents: np.ndarray | None = None,
        seed: int = 0,
        audio: AudioClip | None = None,
    ) -> CoeffJob:
        """Prepare a job from any mel-window source (used directly with precomputed windows)."""
        style = self.check_style(pose_style)
        first_frame = np.asarray(first_frame, np.float32).reshape(-1)
        blink = np.zeros((n_frames, 1), np.float32) if blink is None else np.asarray(blink, np.float32).reshape(n_frames, 1)
        if ref_expression_rows is None:
            ref_expression_rows = first_frame[None, :EXPRESSION_DIM]
        needed = pose_chunk_count(n_frames, self.posevae.config.seq_len)
        if latents is not None:
            latents = np.asarray(latents, np.float32).reshape(-1, self.posevae.config.latent)
            if len(latents) != needed:
                raise InputError(f"{len(latents)} pose latents given, but a {n_frames}-frame clip needs {needed}")
            queue = iter(torch.from_numpy(latents.copy()))
            next_latent = lambda: next(queue)  # noqa: E731
        else:
            generator = torch.Generator().manual_seed(int(seed))
            next_latent = lambda: torch.randn(1, self.posevae.config.latent, generator=generator)  # noqa: E731
        trace: list = []
        pose = PoseSequence(
            self.posevae, windows, n_frames, first_frame[EXPRESSION_DIM : EXPRESSION_DIM + POSE_DIM],
            style, next_latent, self.device, trace, self.posevae_encoder,
        )
        return CoeffJob(
            n_frames=n_frames,
            blink=blink,
            first_frame=first_frame,
            ref_expression_rows=np.asarray(ref_expression_rows, np.float32),
            ref_pose_rows=None if ref_pose_rows is None else np.asarray(ref_pose_rows, np.float32),
            still=still,
            windows=windows,
            expression_fn=self.expression,
            pose=pose,
            audio=audio,
            trace=trace,
        )

    def prepare(self, request: CoeffRequest) -> CoeffJob:
        """Validate a request (naming the bad input on failure) and set up its lazy computation."""
        self.check_style(request.pose_style)
        first_frame = first_frame_row(request.first_frame)
        clip = load_clip(request.audio)
        mel = MelWindows(clip.samples)
        if mel.n_frames < 1:
            raise InputError(
                f"audio is {clip.duration * 1000:.0f} ms long, shorter than one 25 fps video frame (40 ms)",
                clip.source,
            )
        n = mel.n_frames
        if request.blink is not None:
            blink = np.asarray(request.blink, np.float32).reshape(-1)
            if blink.size != n:
                raise InputError(f"injected blink has {blink.size} values for a {n}-frame clip")
        else:
            blink = random_blinks(n, random.Random(request.seed)).astype(np.float32)
        ref_expression_rows = None
        if request.ref_eyeblink is not None:
            ref_expression_rows = reference_rows(request.ref_eyeblink, EXPRESSION_DIM)[:, :EXPRESSION_DIM]
            blink = np.zeros_like(blink)
        if not request.use_blink:
            blink = np.zeros_like(blink)
        ref_pose_rows = None
        if request.ref_pose is not None:
            ref_pose_rows = reference_rows(request.ref_pose, EXPRESSION_DIM + POSE_DIM)[:, EXPRESSION_DIM : EXPRESSION_DIM + POSE_DIM]
        log.debug("audio %s: %d frames, style %d", clip.name, n, request.pose_style)
        return self.prepare_windows(
            mel.windows, n, first_frame,
            pose_style=request.pose_style, still=request.still, blink=blink,
            ref_expression_rows=ref_expression_rows, ref_pose_rows=ref_pose_rows,
            latents=request.latents, seed=request.seed, audio=clip,
        )

    def stream(self, request: CoeffRequest, chunk_frames: int = 250) -> Iterator[MotionChunk]:
        """Motion chunks for ``request``; validation errors surface before the first chunk."""
        return self.prepare(request).chunks(chunk_frames)

    def generate(self, request: CoeffRequest) -> np.ndarray:
        """The whole (T, 70) coefficient array (the official ``coeff_3dmm`` output)."""
        return np.concatenate([chunk.coefficients() for chunk in self.stream(request, chunk_frames=1000)], axis=0)
