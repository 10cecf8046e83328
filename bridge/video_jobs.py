"""SadTalker jobs that stream rendered video frames, not only motion, from the sidecar.

Studios put the sidecar on a GPU box precisely so the face-vid2vid renderer runs there. A submit with
``engine="sadtalker"`` and ``render_size`` (256 or 512) runs :class:`SadTalkerVideo` on the
submitted portrait and audio; each outgoing :class:`JobOutput` pairs one motion chunk with exactly
the frames rendered for it, so a client can write video and keyframes from the same message.

The renderer looks 13 frames ahead, so frames for a chunk arrive while the next chunk's motion is
already known; :func:`pair_frames_with_chunks` holds frames back until a chunk is complete. Only one
chunk's worth of frames is ever buffered, so memory stays flat however long the audio is.
"""

from __future__ import annotations

import threading
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from talkbridge.core.engine import MotionRequest
from talkbridge.core.errors import InputError
from talkbridge.core.motion import MotionChunk

MAX_BATCH_SIZE = 64


def video_options(request: MotionRequest) -> Any:
    """The :class:`SadTalkerOptions` for a wire request, with every render-only option checked.

    Render-only options travel in ``request.options`` (the wire's free-form options): ``preprocess``
    (str), ``landmarks`` (68 or 5 ``[x, y]`` pairs in image pixels), ``batch_size`` (1..64) and the
    free-view keyframe lists ``yaw``/``pitch``/``roll`` (degrees).
    """
    from talkbridge.pipeline.sadtalker_video import PREPROCESS_MODES, SadTalkerOptions

    extra = request.options
    preprocess = extra.get("preprocess", "crop")
    if not isinstance(preprocess, str) or preprocess not in PREPROCESS_MODES:
        raise InputError(f"option 'preprocess' must be one of {', '.join(PREPROCESS_MODES)}, got {preprocess!r}")
    batch_size = extra.get("batch_size", 1)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise InputError(f"option 'batch_size' must be an integer within 1..{MAX_BATCH_SIZE}, got {batch_size!r}")
    landmarks = extra.get("landmarks")
    if landmarks is not None:
        try:
            landmarks = np.asarray(landmarks, dtype=np.float32)
        except (TypeError, ValueError):
            raise InputError("option 'landmarks' must be a list of [x, y] pairs (68 or 5 of them)") from None
        if landmarks.ndim != 2 or landmarks.shape[1] != 2 or landmarks.shape[0] not in (68, 5) or not np.isfinite(landmarks).all():
            raise InputError(f"option 'landmarks' must be 68 or 5 finite [x, y] pairs, got shape {landmarks.shape}")
    views = {name: _keyframes(extra.get(name), name) for name in ("yaw", "pitch", "roll")}
    return SadTalkerOptions(
        preprocess=preprocess,
        still=request.still,
        pose_style=request.pose_style,
        expression_scale=request.expression_scale,
        batch_size=batch_size,
        seed=request.seed,
        landmarks=landmarks,
        chunk_frames=request.chunk_frames,
        ref_eyeblink=request.ref_eyeblink,
        ref_pose=request.ref_pose,
        **views,
    )


def _keyframes(value: Any, name: str) -> list[float] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not value or len(value) > 10_000 or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v) for v in value
    ):
        raise InputError(f"option {name!r} must be a non-empty list of angles in degrees, got {value!r}")
    return [float(v) for v in value]


def pair_frames_with_chunks(
    frame_batches: Iterable[np.ndarray], chunks: Sequence[MotionChunk], cancel: threading.Event | None = None
) -> Iterator[tuple[MotionChunk, np.ndarray]]:
    """``(chunk, its frames)`` in order, as soon as every frame of a chunk has been rendered.

    ``chunks`` is a list the frame producer appends to as it consumes motion (the renderer reads a
    chunk before it renders that chunk's frames), so it is re-read after each batch.
    """
    pending: list[np.ndarray] = []
    buffered = 0  # frames in ``pending``
    next_frame = 0  # index of the first frame in ``pending``
    emitted = 0
    for batch in frame_batches:
        if cancel is not None and cancel.is_set():
            return
        pending.append(batch)
        buffered += len(batch)
        while emitted < len(chunks) and next_frame + buffered >= chunks[emitted].start + chunks[emitted].n_frames:
            chunk = chunks[emitted]
            if chunk.start != next_frame:
                raise RuntimeError(f"motion chunk starts at frame {chunk.start}, expected {next_frame}")
            frames = np.concatenate(pending) if len(pending) > 1 else pending[0]
            pending = [frames[chunk.n_frames :]] if len(frames) > chunk.n_frames else []
            buffered -= chunk.n_frames
            next_frame += chunk.n_frames
            emitted += 1
            yield chunk, frames[: chunk.n_frames]
    if buffered or emitted != len(chunks):
        raise RuntimeError(f"the renderer stopped with {buffered} unpaired frames and {len(chunks) - emitted} chunks left")

