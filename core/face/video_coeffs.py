"""Per-frame 3DMM coefficients of a reference video, as the official tool extracts them.

SadTalker's ``--ref_eyeblink`` and ``--ref_pose`` take videos: every frame is cropped around the face
found in it and run through the recon net, giving one 73-value row per frame. The rows then drive
the eyes/expression or add their head motion (see :mod:`talkbridge.core.sadtalker.audio2coeff`).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from talkbridge.core.errors import InputError
from talkbridge.core.face.extract import extract_first_frame
from talkbridge.core.face.landmarks import LandmarkProvider, NoFaceError
from talkbridge.core.face.recon_net import ReconNet

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v")


def is_video(path: object) -> bool:
    return isinstance(path, (str, Path)) and Path(path).suffix.lower() in VIDEO_SUFFIXES


def video_coefficients(
    path: str | Path,
    recon: ReconNet,
    provider: LandmarkProvider,
    mode: str = "crop",
    size: int = 256,
    max_frames: int | None = None,
) -> np.ndarray:
    """(N, 73) float32 rows, one per video frame (frames where no face is found reuse the last row)."""
    import cv2

    path = Path(path)
    if not path.is_file():
        raise InputError("reference video not found", path)
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise InputError("cannot open the reference video (use mp4/mov/avi/mkv/webm)", path)
    rows: list[np.ndarray] = []
    try:
        while max_frames is None or len(rows) < max_frames:
            ok, frame = capture.read()
            if not ok:
                break
            rgb = np.ascontiguousarray(frame[:, :, ::-1])
            try:
                rows.append(extract_first_frame(rgb, recon, provider=provider, mode=mode, size=size).row)
            except NoFaceError:
                if not rows:
                    raise InputError(f"no face found in frame {len(rows)} of the reference video", path) from None
                log.debug("no face in frame %d of %s; repeating the previous row", len(rows), path)
                rows.append(rows[-1])
    finally:
        capture.release()
    if not rows:
        raise InputError("the reference video holds no readable frames", path)
    return np.stack(rows).astype(np.float32)
