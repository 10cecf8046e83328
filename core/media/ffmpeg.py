"""Which ffmpeg binary talkbridge runs: ``$TALKBRIDGE_FFMPEG``, else the one imageio-ffmpeg bundles
(which itself honours ``$IMAGEIO_FFMPEG_EXE``), so a fresh install needs no system ffmpeg."""

from __future__ import annotations

import os
from pathlib import Path

from talkbridge.core.errors import TalkbridgeError

FFMPEG_ENV = "TALKBRIDGE_FFMPEG"


class FfmpegMissing(TalkbridgeError):
    """No ffmpeg binary could be found (the message says how to get one)."""


def ffmpeg_executable() -> str:
    """The ffmpeg to run: ``$TALKBRIDGE_FFMPEG`` or imageio-ffmpeg's bundled binary."""
    configured = os.environ.get(FFMPEG_ENV)
    if configured:
        if not Path(configured).is_file():
            raise FfmpegMissing(f"${FFMPEG_ENV} points to {configured}, which does not exist")
        return configured
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except Exception as error:  # the package raises RuntimeError when its binary is missing
        raise FfmpegMissing(f"no ffmpeg found ({error}); install imageio-ffmpeg or set ${FFMPEG_ENV} to an ffmpeg binary") from error
