"""SadTalker's audio-to-coefficient step against the OFFICIAL code, side by side, per stage.

Both sides run in this process on the same recipe weights (``../shared/reference/sadtalker/recipe.py``
in the official ``SadTalker_V0.0.2_256.safetensors`` layout; seeded test weights if the recipe is
absent), the same speech-like clips and the same seeds; rounds are interleaved (the order alternates)
and each timed run first checks that no other process uses the CPU (``bench/quiet_cpu.py``): the
bench refuses to time otherwise. Both sides' (T, 70) coefficients must agree (1e-4, the golden
tolerance) or it exits 1. It prints, for every thread count and clip length, the median seconds per
stage (mel, ExpNet, PoseVAE, other) and in total, each side's minor page faults, and the ratio
official / talkbridge (above 1.0x: talkbridge is faster). bf16 is reported on its own lines, then
the lite engine's real-time factor with and without video.

    ./scripts/dev bench audio2coeff --official /path/to/SadTalker [--threads 1 2] [--seconds 10 60]
        [--rounds 3] [--allow-busy] [--skip-bf16] [--skip-lite]

``--official`` is an extracted ``OpenTalker/SadTalker`` checkout (at least its ``src/``; e.g.
``git archive HEAD src | tar -x -C DIR``); the bench fetches nothing. Its code needs, in this
interpreter, ``librosa``, ``yacs``, ``scipy``, ``tqdm``, ``safetensors`` (``pip install librosa yacs``
on top of talkbridge's engine extra; they are not talkbridge dependencies). Without ``--official``
the baseline is ``bench/reference_audio_loop.py``, the official loop re-written from the SPEC.
talkbridge's ``Audio2Coeff`` pins glibc's heap thresholds for the whole process (``core/sadtalker/heap.py``),
so the official code runs under the same allocator policy here, which can only help it (alone it
takes ~1k minor faults either way). ``--allow-busy`` times anyway on a busy CPU, for smoke runs only: it prints a warning, and its
figures are not comparable.

Stages: official "mel" is ``get_data`` (wav load, mel, the per-frame window loop, blinks);
talkbridge's is the mel rows and window gathers (its wav load is in "other"). ExpNet and PoseVAE
are each side's network step, "other" the rest (smoothing, the official ``.mat`` write, glue).
"""

from __future__ import annotations

import os

os.environ.setdefault("TQDM_DISABLE", "1")  # before anything imports tqdm: the official loops draw bars

import argparse  # noqa: E402
import logging  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections import defaultdict  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Callable  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from bench.quiet_cpu import BusyCpu, QuietCpu  # noqa: E402
from talkbridge.core.sadtalker.audio2coeff import CoeffRequest  # noqa: E402
from talkbridge.core.sadtalker.audio_models import AudioCheckpoints, load_audio2coeff  # noqa: E402
from tests.speech import speech_like, write_wav  # noqa: E402

log = logging.getLogger("bench.audio2coeff")
AGREEMENT_ATOL = 1e-4
SEED = 3
STAGE_ORDER = ("mel", "expnet", "posevae", "other")


class StageClock:
    """Wall time per stage; time in a nested stage is taken out of its parent."""

    def __init__(self) -> None:
        self.totals: dict[str, float] = defaultdict(float)
        self._stack: list[list] = []

    def wrap(self, stage: str, function: Callable) -> Callable:
        def timed(*args, **kwargs):
            start = time.perf_counter()
            self._stack.append([stage, 0.0])
            try:
                return function(*args, **kwargs)
            finally:
                name, inner = self._stack.pop()
                elapsed = time.perf_counter() - start
                self.totals[name] += elapsed - inner
                if self._stack:
                    self._stack[-1][1] += elapsed

        return timed


def run_talkbridge(pipeline, wav: Path, first_frame: np.ndarray, seed: int) -> tuple[float, dict[str, float], np.ndarray]:
    """The production streaming job (chunks of 250 frames), timed per stage."""
    clock = StageClock()
    start = time.perf_counter()
    job = pipeline.prepare(CoeffRequest(wav, first_frame, seed=seed))
    job.windows = clock.wrap("mel", job.windows)
    job.pose.windows = job.windows
    job.expression_fn = clock.wrap("expnet", job.expression_fn)
    job.pose.ensure = clock.wrap("posevae", job.pose.ensure)
    coefficients = np.concatenate([chunk.coefficients() for chunk in job.chunks(250)])
    total = time.perf_counter() - start
    stages = dict(clock.totals)
    stages["other"] = total - sum(stages.values())
    return total, stages, coefficients


def write_weights(folder: Path) -> tuple[Path, str]:
    """The combined safetensors file both sides load, and which weights it holds."""
    try:
        from tests.official_checkpoints import write_official_checkpoint_dir

        write_official_checkpoint_dir(folder, seed=1, render=False)
        kind = "recipe weights (../shared/reference/sadtalker/recipe.py)"
    except (FileNotFoundError, ImportError, OSError) as error:
        from tests.sadtalker_weights import write_combined_safetensors

        log.warning("recipe weights unavailable (%s): using seeded test weights", error)
        write_combined_safetensors(folder, seed=1)
        kind = "seeded test weights"
    return next(folder.glob("SadTalker_V0.0.2_*.safetensors")), kind


def measured(quiet: QuietCpu, run: Callable[[], tuple]) -> dict:
    quiet.wait()
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    total, stages, coefficients = run()
    return {
        "total": total,
        "stages": stages,
        "faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults,
        "coefficients": coefficients,
    }


def median_of(runs: list[dict], key: str) -> float:
    return statistics.median(run["stages"].get(key, 0.0) if key in STAGE_ORDER else run[key] for run in runs)


def report(label: str, baseline: list[dict], ours: list[dict], baseline_name: str) -> list[str]:
    lines = [f"  {'stage':<8} {baseline_name:>10} {'talkbridge':>11}  {baseline_name}/talkbridge"]
    for key in (*STAGE_ORDER, "total"):
        theirs, mine = median_of(baseline, key), median_of(ours, key)
        ratio = theirs / mine if mine > 0 else float("inf")
        lines.append(f"  {key:<8} {theirs:>9.3f}s {mine:>10.3f}s  {ratio:6.2f}x")
    lines.append(f"  minor page faults per run: {baseline_name} {median_of(baseline, 'faults'):.0f}, talkbridge {median_of(ours, 'faults'):.0f}")
    return [label, *lines]


def interleaved(sides: dict[str, Callable[[], tuple]], rounds: int, quiet: QuietCpu) -> dict[str, list[dict]]:
    """One warm-up each, then ``rounds`` rounds whose side order alternates."""
    for run in sides.values():
        run()
    results: dict[str, list[dict]] = {name: [] for name in sides}
    names = list(sides)
    for index in range(rounds):
        for name in names if index % 2 == 0 else names[::-1]:
            results[name].append(measured(quiet, sides[name]))
    return results


def lite_rtf(seconds: list[int], folder: Path, quiet: QuietCpu) -> list[str]:
    """The lite engine end to end through ``run_job`` (motion files; then also the mp4)."""
    from talkbridge.api import run_job
    from talkbridge.core.jobs.options import JobOptions
    from talkbridge.core.jobs.request import JobRequest
    from talkbridge.exporters.job_files import OutputPlan

    lines = ["lite engine (run_job, motion + files; 'video' adds the 512 px mannequin mp4):"]
    for length in seconds:
        wav = write_wav(folder / f"lite_{length}.wav", speech_like(length, seed=length))
        for video in (False, True):
            request = JobRequest(wav, options=JobOptions(engine="lite", seed=0))
            plan = OutputPlan(folder / "lite", f"lite_{length}_{int(video)}", overwrite=True, video=video)
            quiet.wait()
            start = time.perf_counter()
            run_job(request, plan)
            wall = time.perf_counter() - start
            lines.append(f"  {length:>3} s {'with' if video else 'without'} video: {wall:7.2f} s  RTF {wall / length:.4f}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--official", type=Path, help="an extracted OpenTalker/SadTalker checkout")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--seconds", type=int, nargs="+", default=[10, 60])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--allow-busy", action="store_true", help="time on a busy CPU (smoke runs; figures not comparable)")
    parser.add_argument("--skip-bf16", action="store_true")
    parser.add_argument("--skip-lite", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    quiet = QuietCpu(allow_busy=args.allow_busy, settle_s=0.0 if args.allow_busy else 20.0)
    if args.allow_busy:
        log.warning("--allow-busy: a smoke run; if other processes use the CPU these figures are NOT comparable")
    first_frame = np.random.default_rng(0).normal(0, 0.2, 73).astype(np.float32)
    first_frame[64:67] = [0.05, -0.1, 0.02]
    lines: list[str] = []  # everything printed, in order
    try:
        with tempfile.TemporaryDirectory() as scratch:
            folder = Path(scratch)
            checkpoint, weights = write_weights(folder)
            fp32 = load_audio2coeff(AudioCheckpoints.find(folder))
            bf16 = None if args.skip_bf16 else load_audio2coeff(AudioCheckpoints.find(folder), precision="bf16")
            if args.official is not None:
                from bench.official_sadtalker import OfficialAudio2Coeff

                official = OfficialAudio2Coeff(args.official, checkpoint, folder)
                baseline_name, baseline = "official", official.run
            else:
                from bench.reference_audio_loop import run_reference

                baseline_name = "reference"
                baseline = lambda wav, ff, seed: run_reference(fp32.expnet, fp32.posevae, wav, ff, seed)  # noqa: E731
            cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
            lines.append(f"audio2coeff side by side: {baseline_name} vs talkbridge, {weights}, torch {torch.__version__}, CPU {cpu}")
            print(lines[-1], flush=True)
            for threads in args.threads:
                torch.set_num_threads(threads)
                for length in args.seconds:
                    wav = write_wav(folder / f"speech_{length}.wav", speech_like(length, seed=length))
                    sides = {
                        baseline_name: lambda: baseline(wav, first_frame, SEED),
                        "talkbridge": lambda: run_talkbridge(fp32, wav, first_frame, SEED),
                    }
                    if bf16 is not None:
                        sides["bf16"] = lambda: run_talkbridge(bf16, wav, first_frame, SEED)
                    results = interleaved(sides, args.rounds, quiet)
                    ours, theirs = results["talkbridge"], results[baseline_name]
                    difference = float(np.abs(ours[0]["coefficients"] - theirs[0]["coefficients"]).max())
                    frames = len(ours[0]["coefficients"])
                    label = f"\n{length} s ({frames} frames), {threads} thread(s), median of {args.rounds}; max |difference| {difference:.2e}"
                    block = report(label, theirs, ours, baseline_name)
                    if bf16 is not None:
                        runs = results["bf16"]
                        bf16_total = median_of(runs, "total")
                        drift = float(np.abs(runs[0]["coefficients"] - ours[0]["coefficients"]).max())
                        block.append(
                            f"  bf16 talkbridge: total {bf16_total:.3f}s, {baseline_name}(fp32)/bf16 "
                            f"{median_of(theirs, 'total') / bf16_total:.2f}x, max |bf16 - fp32| {drift:.2e}"
                        )
                    print("\n".join(block), flush=True)
                    lines += block
                    if difference > AGREEMENT_ATOL:
                        log.error("the two sides disagree by %.2e (> %.0e): not comparing different work", difference, AGREEMENT_ATOL)
                        return 1
            if not args.skip_lite:
                torch.set_num_threads(max(args.threads))
                block = lite_rtf(args.seconds, folder, quiet)
                print("\n".join(block), flush=True)
    except BusyCpu as busy:
        log.error("refusing to time: %s", busy)
        return 2
    if quiet.busy_runs:
        log.warning("%d timed runs were on a busy CPU: these figures are NOT comparable", quiet.busy_runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
