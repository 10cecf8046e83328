"""Flat memory for long clips: SadTalker `generate` at 10 s, 60 s and 600 s of audio.

Runs the real streaming pipeline (face extraction, audio->coefficients, MappingNet + face-vid2vid,
paste-back, H.264 encoding) with recipe weights in an official checkpoint layout, and prints seconds
per frame and peak resident memory per clip length. Memory must not grow with the clip: frames are
rendered and encoded chunk by chunk.

On CPU the official renderer takes about 5 s per frame, so its 600 s run (15,000 frames) belongs on a
GPU (`--device cuda`); `--max-seconds` caps a CPU run. `--renderer slim` swaps in a structurally
complete face-vid2vid with narrow layers (recipe weights for its own layout) and keeps everything
else official: frame size, face extraction, audio networks, paste-back and encoding. The networks'
memory is fixed whatever the clip length, so the slim run is how a CPU shows that nothing in the
pipeline grows per frame, in minutes instead of a day. Besides the peak, each run prints the resident
memory after its first tenth of frames and at its end: a leak shows as growth between the two.

    ./scripts/dev bench generate_long [--seconds 10 60 600] [--renderer official|slim] [--device auto]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

import torch
from tqdm import tqdm

from talkbridge.core.jobs import JobOptions, JobRequest
from talkbridge.core.jobs.cache import EngineCache
from talkbridge.core.jobs.local import open_local_job
from talkbridge.exporters.job_files import OutputPlan, write_job
from talkbridge.core.sadtalker.render.models import FaceRenderModels
from tests.official_checkpoints import write_official_checkpoint_dir
from tests.render_helpers import tiny_recipe_models, tiny_render_config, write_landmarked_portrait
from tests.speech import speech_like, write_wav


def live_rss_mb() -> float:
    """Resident memory after handing freed heap pages back to the OS (glibc ``malloc_trim``), so two
    samples compare what is held, not what the allocator happens to keep cached."""
    import ctypes

    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
    return rss_mb()


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class PeakSampler:
    """Samples resident memory every 50 ms; ``peak`` is the largest value seen since start."""

    def __init__(self) -> None:
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, rss_mb())

    def __enter__(self) -> "PeakSampler":
        self.peak = rss_mb()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def slim_render_models(device: torch.device) -> FaceRenderModels:
    """The face-vid2vid structure with narrow layers, 4 keypoints and a shallow feature volume, filled
    with recipe weights for that layout. Frames keep their official size."""
    config = tiny_render_config()
    keypoints = 4
    config = replace(
        config,
        mapping=replace(config.mapping, num_kp=keypoints),
        kp_detector=replace(config.kp_detector, num_kp=keypoints),
        generator=replace(config.generator, num_kp=keypoints),
    )
    return tiny_recipe_models(config=config).to(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, nargs="+", default=[10, 60, 600])
    parser.add_argument("--max-seconds", type=float, default=None, help="skip clips longer than this (CPU runs)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--size", type=int, default=256, choices=(256, 512))
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--renderer", choices=("official", "slim"), default="official")
    parser.add_argument("--overlap", choices=("auto", "on", "off", "both"), default="auto",
                        help="render one batch ahead of paste-back and encoding (auto: on for GPUs); both: time the first clip each way")
    parser.add_argument("--preprocess", choices=("crop", "full"), default="crop", help="full: frames are seamlessly cloned into the photo")
    parser.add_argument("--paste-workers", type=int, default=None, help="threads pasting frames back (default: 1 on CPU, most cores beside a GPU)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        checkpoints = write_official_checkpoint_dir(tmp / "checkpoints", size=args.size)
        portrait = tmp / "portrait.png"
        _, landmarks = write_landmarked_portrait(portrait)
        cache = EngineCache(checkpoints)
        models = cache.sadtalker(args.device)
        if args.renderer == "slim":
            models.provide_renderer(args.size, args.preprocess, slim_render_models(models.device))
        print(
            f"device {models.device}, size {args.size}, batch {args.batch_size}, renderer {args.renderer}, {args.preprocess}, "
            f"paste workers {args.paste_workers or 'auto'}, "
            f"RSS after loading {rss_mb():.0f} MB"
        )
        results = []
        for seconds in args.seconds:
            if args.max_seconds is not None and seconds > args.max_seconds:
                print(f"{seconds:6.1f} s: skipped (--max-seconds {args.max_seconds})")
                continue
            wav = write_wav(tmp / f"speech_{int(seconds)}.wav", speech_like(seconds, seed=1))
            options = JobOptions(engine="sadtalker", size=args.size, landmarks=landmarks, batch_size=args.batch_size, device=args.device, preprocess=args.preprocess)
            with PeakSampler() as memory:
                start = time.perf_counter()
                # The whole streaming job: face, audio networks, renderer, paste-back, the one writer (H.264 + motion files).
                overlap = {"on": True, "off": False}.get(args.overlap)
                stream = open_local_job(JobRequest(wav, portrait, options.checked()), cache, overlap=overlap, paste_workers=args.paste_workers)
                counted = {"frames": 0, "early_rss": None}
                with tqdm(total=stream.info.n_frames, unit="frame", desc=f"{seconds:g} s", leave=False) as bar:

                    def progress(n: int) -> None:
                        counted["frames"] += n
                        bar.update(n)
                        if counted["early_rss"] is None and counted["frames"] >= stream.info.n_frames / 10:
                            counted["early_rss"] = live_rss_mb()

                    write_job(stream, OutputPlan(tmp, f"out_{int(seconds)}", overwrite=True), audio=wav, request_metadata={}, progress=progress)
                frames, early_rss = counted["frames"], counted["early_rss"]
                end_rss = live_rss_mb()
                elapsed = time.perf_counter() - start
            row = {
                "seconds": seconds, "frames": frames, "s_per_frame": elapsed / frames,
                "peak_rss_mb": memory.peak, "rss_at_tenth_mb": early_rss, "rss_at_end_mb": end_rss,
            }
            results.append(row)
            print(
                f"{seconds:6.1f} s: {frames:6d} frames  {elapsed / frames:.3f} s/frame  peak RSS {memory.peak:.0f} MB  "
                f"RSS at 1/10 {early_rss:.0f} MB -> end {end_rss:.0f} MB ({end_rss - early_rss:+.0f} MB)"
            )
        if args.overlap == "both" and results:
            # Both ways after the warm-up above, in turn first, so neither pays the first run's costs.
            first = results[0]["seconds"]
            wav = tmp / f"speech_{int(first)}.wav"
            options = JobOptions(engine="sadtalker", size=args.size, landmarks=landmarks, batch_size=args.batch_size, device=args.device, preprocess=args.preprocess)
            timed = {}
            for label, overlap in (("in turn", False), ("overlapped", True)):
                start = time.perf_counter()
                stream = open_local_job(JobRequest(wav, portrait, options.checked()), cache, overlap=overlap, paste_workers=args.paste_workers)
                write_job(stream, OutputPlan(tmp, "again", overwrite=True), audio=wav, request_metadata={})
                timed[label] = (time.perf_counter() - start) / results[0]["frames"]
            print(f"overlap: {timed['overlapped']:.3f} s/frame overlapped, {timed['in turn']:.3f} s/frame in turn "
                  f"(in turn / overlapped: {timed['in turn'] / timed['overlapped']:.2f})")
        if len(results) > 1:
            growth = results[-1]["peak_rss_mb"] / results[0]["peak_rss_mb"]
            print(f"peak RSS ratio longest/shortest: {growth:.2f} (flat memory: ~1.0)")
        print(json.dumps(results))


if __name__ == "__main__":
    main()
