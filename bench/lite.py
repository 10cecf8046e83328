"""Benchmark of the lite engine: real-time factor for 60 s of speech (target: motion RTF < 0.05 on 2 cores).

    ./scripts/dev bench lite [--seconds 60] [--render-frames 100]

Prints, for speech synthesised by espeak-ng to the requested length:
* motion RTF with free phone recognition and with transcript alignment (seconds of compute per second
  of audio; the issue's target applies to these),
* preview rendering at 512x512 in ms per frame and as an RTF (25 frames per second of audio),
* the mannequin build time.
Timings on a shared machine are noisy: run it on an idle one before quoting figures.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

MOTION_TARGET_RTF = 0.05
SENTENCES = (
    "Papa made me a map of the bay, and we sailed past the old mill at dawn.",
    "Watch my lips close on every p, b and m, and open wide on ah.",
    "The quick brown fox jumps over the lazy dog while Peter picks a peck of peppers.",
    "Some days the weather is calm and the water is as smooth as glass.",
)


def speech_of_length(seconds: float, folder: Path) -> tuple[np.ndarray, str]:
    """At least ``seconds`` of espeak-ng speech (16 kHz samples) and its transcript (kept whole, so
    the transcript matches the audio for alignment)."""
    from talkbridge.core.audio import load_audio
    from talkbridge.core.lite.samples import synthesize_speech

    text, samples = "", np.zeros(0, np.float32)
    while samples.size < seconds * 16000:
        text = " ".join([text] + list(SENTENCES)).strip()
        samples = load_audio(synthesize_speech(text, folder / "bench.wav"))
    return samples, text


def timed(function, repeats: int = 1) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="speech length (default: %(default)s)")
    parser.add_argument("--render-frames", type=int, default=100, help="frames to render for the renderer figure")
    parser.add_argument("--repeats", type=int, default=2, help="best of this many runs (default: %(default)s)")
    args = parser.parse_args(argv)

    from talkbridge.core.engine import MotionRequest, create_engine
    from talkbridge.core.lite.mannequin import build_mannequin
    from talkbridge.core.lite.preview import PreviewRenderer
    from talkbridge.core.motion import FPS

    with tempfile.TemporaryDirectory() as folder:
        samples, text = speech_of_length(args.seconds, Path(folder))
    duration = samples.size / 16000
    engine = create_engine("lite")

    def motion(transcript: str | None):
        return lambda: [c for c in engine.stream_motion(MotionRequest(audio=samples, transcript=transcript))]

    recognition = timed(motion(None), args.repeats)
    alignment = timed(motion(text), args.repeats)
    source = engine.plan(MotionRequest(audio=samples, transcript=text)).phone_source
    build = timed(build_mannequin)
    chunks = motion(None)()
    renderer = PreviewRenderer(build_mannequin(), 512)
    first = chunks[0]
    n = min(args.render_frames, first.n_frames)
    from talkbridge.core.motion import MotionChunk

    piece = MotionChunk(0, first.pose[:n], first.blink[:n], arkit=first.arkit[:n])
    render = timed(lambda: renderer.render(piece), 1) / n

    print(f"lite engine benchmark: {duration:.1f} s of espeak-ng speech, {os.cpu_count()} CPU(s) visible")
    print(f"  motion, phone recognition : {recognition:7.2f} s  RTF {recognition / duration:.4f}  "
          f"(target < {MOTION_TARGET_RTF}) {'OK' if recognition / duration < MOTION_TARGET_RTF else 'SLOW'}")
    print(f"  motion, transcript align  : {alignment:7.2f} s  RTF {alignment / duration:.4f}  "
          f"(phones by {source}) {'OK' if alignment / duration < MOTION_TARGET_RTF else 'SLOW'}")
    print(f"  mannequin build           : {build * 1000:7.1f} ms")
    print(f"  preview render 512x512    : {render * 1000:7.1f} ms/frame  RTF {render * FPS:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
