"""Small helpers several test modules share: reading back a video, a batch report, the CLI.

(Sidecars live in ``tests/sidecars.py``, rendered test inputs in ``tests/render_helpers.py``, speech in
``tests/speech.py``; fixtures in ``conftest.py``.)
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

CLI = Path(sys.executable).with_name("talkbridge")  # the installed console script, as a user runs it


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """``talkbridge ARGS...`` in a fresh process, output captured as text."""
    return subprocess.run([str(CLI), *args], capture_output=True, text=True, timeout=timeout)


def decoded_frames(path: Path | str) -> np.ndarray:
    """Every frame of a video as (T, H, W, 3) uint8, decoded by ffmpeg."""
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(path))
    width, height = next(reader)["size"]
    return np.stack([np.frombuffer(frame, np.uint8).reshape(height, width, 3) for frame in reader])


def batch_report(out: Path) -> dict:
    """A batch output folder's ``batch_report.json``."""
    return json.loads((Path(out) / "batch_report.json").read_text())


def statuses(out: Path) -> dict[str, str]:
    """Row name -> status from a batch output folder's report."""
    return {row["name"]: row["status"] for row in batch_report(out)["rows"]}
