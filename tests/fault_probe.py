"""Child process for tests/test_audio_faults.py: minor page faults of one streamed SadTalker audio job.

Run in a fresh interpreter because glibc's heap thresholds are per process and whatever ran before
(other tests' large arrays) moves them. Prints one JSON line: frames and minor faults of the
measured job (after a short warm-up job, so one-time costs such as oneDNN's kernel set-up are out).
"""

from __future__ import annotations

import json
import resource
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch


def minor_faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def main(seconds: float) -> None:
    from talkbridge.core.sadtalker.audio2coeff import Audio2Coeff, CoeffRequest
    from tests.sadtalker_weights import seeded_audio_models
    from tests.speech import speech_like, write_wav

    torch.set_num_threads(1)
    pipeline = Audio2Coeff(*seeded_audio_models(3))
    first_frame = np.random.default_rng(0).normal(0, 0.2, 73).astype(np.float32)
    with tempfile.TemporaryDirectory() as folder:
        warm = write_wav(Path(folder) / "warm.wav", speech_like(2.0, seed=1))
        clip = write_wav(Path(folder) / "clip.wav", speech_like(seconds, seed=2))
        for _ in pipeline.stream(CoeffRequest(warm, first_frame), 250):
            pass
        before = minor_faults()
        frames = sum(chunk.n_frames for chunk in pipeline.stream(CoeffRequest(clip, first_frame), 250))
        faults = minor_faults() - before
    print(json.dumps({"frames": frames, "minor_faults": faults}))


if __name__ == "__main__":
    main(float(sys.argv[1]))
