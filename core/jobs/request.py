"""A job request: the inputs (files or samples) and the checked options of one clip.

The same request runs in this process, on a sidecar or on a Ray actor; only the source that streams
its steps differs. Paths stay paths here: a route that moves the job elsewhere sends the files' bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from talkbridge.core.errors import InputError
from talkbridge.core.jobs.options import JobOptions


@dataclass(frozen=True)
class JobRequest:
    """One clip to make.

    ``audio`` is a speech file or 16 kHz mono float32 samples. ``image`` is the portrait (SadTalker
    draws it; the lite engine's video shows its mannequin). ``first_frame`` is a SadTalker first-frame
    row (or a ``.mat`` holding one) used instead of reconstructing the portrait, for motion-only jobs.
    ``ref_eyeblink``/``ref_pose`` are reference videos or their coefficient ``.mat`` files.
    ``transcript_file`` and ``landmarks_file`` record where ``options.transcript`` /
    ``options.landmarks`` were read from, for the motion file's metadata and batch fingerprints.
    """

    audio: Path | np.ndarray
    image: Path | None = None
    options: JobOptions = field(default_factory=JobOptions)
    first_frame: Path | np.ndarray | None = None
    ref_eyeblink: Path | np.ndarray | None = None
    ref_pose: Path | np.ndarray | None = None
    transcript_file: Path | None = None
    landmarks_file: Path | None = None

    def input_files(self) -> dict[str, Path]:
        """Every input that is a file, by role (what a remote route uploads and batch hashes)."""
        files = {}
        for role in ("audio", "image", "first_frame", "ref_eyeblink", "ref_pose", "transcript_file", "landmarks_file"):
            value = getattr(self, role)
            if isinstance(value, (str, Path)):
                files[role] = Path(value)
        return files

    def describe(self) -> dict[str, Any]:
        """The request as a motion file records it: input paths and options, JSON-able."""
        files = {role: str(path) for role, path in self.input_files().items()}
        return {
            "audio": files.get("audio"),
            "image": files.get("image"),
            "transcript": files.get("transcript_file"),
            "references": {role: files[role] for role in ("ref_eyeblink", "ref_pose") if role in files},
            "options": self.options.summary(),
        }


def read_transcript(path: Path | None) -> str | None:
    """The text of a transcript file, checked (exists, UTF-8, not empty)."""
    if path is None:
        return None
    path = Path(path)
    if not path.is_file():
        raise InputError("transcript file not found", path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise InputError(f"transcript is not UTF-8 text ({error})", path) from error
    if not text.strip():
        raise InputError("transcript file is empty", path)
    return text
