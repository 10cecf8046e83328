"""Sample inputs the project makes itself: a speech clip (espeak-ng) and a portrait placeholder.

Nothing here is downloaded or committed as a recording: the demo's speech is synthesised on the
user's machine by espeak-ng, which ``scripts/dev setup`` installs.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from pathlib import Path

import numpy as np

from talkbridge.core.errors import TalkbridgeError

log = logging.getLogger(__name__)

DEMO_TEXT = (
    "Hello! This is talk bridge. Papa made me a map of the bay. "
    "Watch my lips close on every p, b and m, and open wide on ah."
)
ESPEAK_VOICE = "en-us"
ESPEAK_WORDS_PER_MINUTE = 150


class SampleError(TalkbridgeError):
    """A sample input could not be made (e.g. espeak-ng is not installed)."""


def espeak_executable() -> str:
    """Path of espeak-ng (or espeak); raises with the install command when neither is found."""
    for name in ("espeak-ng", "espeak"):
        found = shutil.which(name)
        if found:
            return found
    raise SampleError(
        "espeak-ng is needed to synthesise the sample speech; install it with "
        "`./scripts/dev setup` or `sudo apt-get install espeak-ng`"
    )


def synthesize_speech(text: str, path: str | Path, words_per_minute: int = ESPEAK_WORDS_PER_MINUTE) -> Path:
    """Speak ``text`` into a WAV file at ``path`` with espeak-ng."""
    path = Path(path)
    command = [espeak_executable(), "-v", ESPEAK_VOICE, "-s", str(words_per_minute), "-w", str(path), text]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if result.returncode != 0 or not path.is_file() or path.stat().st_size < 1000:
        raise SampleError(f"espeak-ng failed to write {path}: {result.stderr.strip() or 'no audio produced'}")
    return path


def portrait_image(size: int = 256) -> np.ndarray:
    """A simple front-facing face drawing (RGB uint8) to stand in for a portrait in demos.

    The lite engine does not use the portrait's pixels; it only needs a valid image path to pass on.
    """
    import cv2

    image = np.full((size, size, 3), (214, 226, 236), np.uint8)
    c, s = size // 2, size / 256.0
    cv2.ellipse(image, (c, int(c + 10 * s)), (int(70 * s), int(92 * s)), 0, 0, 360, (150, 178, 224), -1, cv2.LINE_AA)
    for side in (-1, 1):
        eye = (int(c + side * 28 * s), int(c - 8 * s))
        cv2.ellipse(image, eye, (int(13 * s), int(7 * s)), 0, 0, 360, (250, 250, 250), -1, cv2.LINE_AA)
        cv2.circle(image, eye, int(5 * s), (60, 45, 40), -1, cv2.LINE_AA)
    cv2.ellipse(image, (c, int(c + 48 * s)), (int(24 * s), int(8 * s)), 0, 0, 360, (70, 70, 170), -1, cv2.LINE_AA)
    return image[:, :, ::-1].copy()  # drawn in BGR, returned as RGB


def write_portrait(path: str | Path, size: int = 256) -> Path:
    """Write :func:`portrait_image` as a PNG."""
    import cv2

    path = Path(path)
    if not cv2.imwrite(str(path), portrait_image(size)[:, :, ::-1]):
        raise SampleError(f"could not write the sample portrait to {path}")
    return path
