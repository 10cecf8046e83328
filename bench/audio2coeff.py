"""Real-time factor of SadTalker's audio-to-coefficient step on CPU, per stage.

Runs the production pipeline (streaming job, batch-norm folded encoders) on speech-like audio of
10 s and 60 s with deterministic weights, 2 intra-op threads, median of 3 runs after a warm-up, and
compares with the official code measured on this machine class (2 threads, idle): 0.62 s for 10 s and
3.39 s for 60 s. Run it on an idle machine: competing processes make torch's threads spin.

    ./scripts/dev bench audio2coeff [--threads 2] [--repeats 3] [--seconds 10 60]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from talkbridge.core.sadtalker.audio2coeff import CoeffRequest
from talkbridge.core.sadtalker.audio_models import AudioCheckpoints, load_audio2coeff
from tests.sadtalker_weights import write_combined_safetensors
from tests.speech import speech_like, write_wav

OFFICIAL_SECONDS = {10: 0.62, 60: 3.39}


class StageClock:
    """Accumulates wall time per stage; nested stages are subtracted from their parent."""

    def __init__(self) -> None:
        self.totals: dict[str, float] = defaultdict(float)
        self._stack: list[list] = []

    def wrap(self, stage: str, fn):
        def timed(*args, **kwargs):
            start = time.perf_counter()
            self._stack.append([stage, 0.0])
            try:
                return fn(*args, **kwargs)
            finally:
                name, inner = self._stack.pop()
                elapsed = time.perf_counter() - start
                self.totals[name] += elapsed - inner
                if self._stack:
                    self._stack[-1][1] += elapsed

        return timed


def run_once(pipeline, wav: Path, first_frame: np.ndarray) -> tuple[float, dict[str, float], int]:
    clock = StageClock()
    start = time.perf_counter()
    job = pipeline.prepare(CoeffRequest(wav, first_frame, seed=0))
    job.windows = clock.wrap("mel", job.windows)
    job.pose.windows = job.windows
    job.expression_fn = clock.wrap("expnet", job.expression_fn)
    job.pose.ensure = clock.wrap("posevae", job.pose.ensure)
    frames = sum(chunk.n_frames for chunk in job.chunks(250))
    total = time.perf_counter() - start
    clock.totals["other (load wav, smoothing, glue)"] = total - sum(clock.totals.values())
    return total, dict(clock.totals), frames


def official_style_seconds(pipeline, wav: Path, first_frame: np.ndarray) -> float:
    """The official loop's work on the same machine and moment: unfused networks, ExpNet in slices
    of 10 frames, PoseVAE re-encoding the overlapping remainder chunk. Used as the fair baseline."""
    from talkbridge.core.audio import load_audio
    from talkbridge.core.audio.mel import MelWindows

    start = time.perf_counter()
    mel = MelWindows(load_audio(wav))
    n = mel.n_frames
    windows = torch.from_numpy(mel.windows(0, n))
    ref = torch.from_numpy(np.repeat(first_frame[None, :64], n, 0))
    blink = torch.zeros(n, 1)
    expnet, posevae = pipeline.expnet, pipeline.posevae
    with torch.inference_mode():
        for lo in range(0, n, 10):
            expnet(windows[lo : lo + 10].unsqueeze(1), ref[lo : lo + 10], blink[lo : lo + 10])
        moving = windows[1:]
        full, rest = divmod(n - 1, 32)
        starts = [32 * c for c in range(full)] + ([max(0, n - 1 - 32)] if rest else [])
        pose = torch.from_numpy(first_frame[None, 64:70].copy())
        for first in starts:
            emb = posevae.audio_encoder(moving[first : first + 32][None, :, None])
            posevae.decode(torch.randn(1, 64), torch.tensor([0]), pose, emb)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seconds", type=int, nargs="+", default=[10, 60])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    first_frame = np.random.default_rng(0).normal(0, 0.2, 73).astype(np.float32)
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        write_combined_safetensors(folder)
        start = time.perf_counter()
        pipeline = load_audio2coeff(AudioCheckpoints.find(folder))
        print(f"model loading (audio part of the combined safetensors): {time.perf_counter() - start:.3f} s")
        for seconds in args.seconds:
            wav = write_wav(folder / f"speech_{seconds}.wav", speech_like(seconds, seed=seconds))
            run_once(pipeline, wav, first_frame)  # warm-up
            runs = [run_once(pipeline, wav, first_frame) for _ in range(args.repeats)]
            totals = [r[0] for r in runs]
            median = statistics.median(totals)
            chosen = runs[totals.index(median)]
            frames = chosen[2]
            print(f"\n{seconds} s of audio ({frames} frames), {args.threads} threads, median of {args.repeats}:")
            print(f"  total            {median:.3f} s   RTF {median / seconds:.4f}   {1000 * median / frames:.3f} ms/frame")
            for stage, value in chosen[1].items():
                print(f"  {stage:<16} {value:.3f} s   {1000 * value / frames:.3f} ms/frame")
            baseline = statistics.median(official_style_seconds(pipeline, wav, first_frame) for _ in range(args.repeats))
            print(f"  official-style loop, same machine and moment: {baseline:.3f} s   -> speed-up x{baseline / median:.2f}")
            official = OFFICIAL_SECONDS.get(seconds)
            if official:
                print(f"  official code (recorded, idle machine) {official:.3f} s   -> speed-up x{official / median:.2f}")


if __name__ == "__main__":
    main()
