"""Seconds per rendered frame on CPU at 256, per stage and batch size, with FLOP rate and peak memory.

Builds the renderer with deterministic weights (the golden recipe with the generator's documented
``weight_u`` x10 adjustment, so the output is well conditioned), checks the production path against
the ``f2_make_animation_sn_u_x10`` golden case, then renders a sequence through :class:`FaceRenderer`
at batch sizes 1, 2 and 4 and prints seconds per frame split into MappingNet, keypoints
(transformation; the KPDetector runs once per source and is reported apart) and generator. Work that
depends on the source image only (KPDetector, appearance volume, source heatmaps) is done once.

Reference, official code on this machine class (2 threads, idle): 5.73 s per frame at batch 1, no gain
at batch 2; generator 1203 GFLOP per frame; KPDetector 0.18 s per source image; MappingNet 5.7 ms per
frame. Numbers taken while other processes use the CPU are noisy (torch threads spin and wait).

    ./scripts/dev bench render [--threads 2] [--frames 4] [--batches 1 2 4] [--compare 2] [--skip-check]
                               [--precision fp32|bf16]   (fp16 needs a GPU: see bench/gpu.py)
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import numpy as np
import torch

from talkbridge.core.sadtalker.render.animate import StageTimer, drive_frames, make_animation, prepare_source
from talkbridge.core.sadtalker.render.keypoints import keypoint_transformation
from talkbridge.core.sadtalker.render.models import FaceRenderModels
from talkbridge.core.sadtalker.render.renderer import FaceRenderer
from tests.golden_cases import GoldenCase, golden_root

OFFICIAL = {"seconds_per_frame": 5.73, "generator_gflop": 1203.0, "kp_detector_s": 0.18, "mapping_ms": 5.7}
CHECK_CASE = "f2_make_animation_sn_u_x10"


def load_case(name: str) -> GoldenCase | None:
    folder = golden_root() / "render" / "golden" / name
    if not (folder / "case.json").is_file():
        return None
    return GoldenCase(folder, json.loads((folder / "case.json").read_text()))


def build_models(case: GoldenCase | None) -> FaceRenderModels:
    """Recipe weights (with the case's generator adjustment) when the reference is present."""
    models = FaceRenderModels.untrained()
    if case is None:
        print("reference cases not found: using random weights, no correctness check")
        return models
    for net, network in ((models.mapping, "mapping"), (models.kp_detector, "kp_extractor"), (models.generator, "generator")):
        shapes = {k: tuple(v.shape) for k, v in net.state_dict().items()}
        weights = case.recipe_weights(shapes, network=network)
        net.load_state_dict({k: torch.from_numpy(np.array(v, copy=True)) for k, v in weights.items()})
    return models


def check_against_golden(models: FaceRenderModels, case: GoldenCase) -> None:
    inputs = {k: torch.from_numpy(np.array(v, copy=True)) for k, v in case.inputs.items()}
    out = make_animation(
        inputs["source_image"], inputs["source_semantics"], inputs["target_semantics"],
        models.kp_detector, models.mapping, models.generator,
    )
    diff = float(np.abs(out["predictions"].numpy() - case.expected["predictions"]).max())
    atol, _ = case.tolerance("predictions")
    verdict = "OK" if diff <= atol else "FAIL"
    print(f"golden check {case.name}: max |prediction diff| {diff:.2e} (atol {atol:g}) {verdict}")
    if diff > atol:
        raise SystemExit(1)


def count_gflop(models: FaceRenderModels, size: int) -> dict[str, float]:
    from torch.utils.flop_counter import FlopCounterMode

    image = torch.rand(1, 3, size, size)
    kp = torch.rand(1, 15, 3) - 0.5
    counts = {}
    with torch.inference_mode():
        with FlopCounterMode(display=False) as counter:
            models.generator(image, kp, kp)
        counts["generator_full"] = counter.get_total_flops() / 1e9
        source = models.generator.prepare_source(image, kp)
        with FlopCounterMode(display=False) as counter:
            models.generator.forward_cached(source, kp)
        counts["generator_cached"] = counter.get_total_flops() / 1e9
        with FlopCounterMode(display=False) as counter:
            models.kp_detector(image)
        counts["kp_detector"] = counter.get_total_flops() / 1e9
    return counts


def compare_with_uncached(models: FaceRenderModels, size: int, repeats: int) -> None:
    """Interleave the official per-frame work (full generator) with ours, so both see the same load."""
    image = torch.rand(1, 3, size, size)
    source_window = torch.rand(1, models.mapping.config.coeff_nc, 27) * 0.2
    window = torch.rand(1, models.mapping.config.coeff_nc, 27) * 0.2
    state = prepare_source(image, source_window, models.kp_detector, models.mapping, models.generator)
    official, ours = [], []
    with torch.inference_mode():
        for _ in range(repeats):
            started = time.perf_counter()
            kp_driving = keypoint_transformation(state.kp_canonical, models.mapping(window))["kp"]
            models.generator(image, kp_driving, state.kp_source)
            official.append(time.perf_counter() - started)
            started = time.perf_counter()
            drive_frames(state, window, models.mapping, models.generator)
            ours.append(time.perf_counter() - started)
    a, b = float(np.median(official)), float(np.median(ours))
    print(f"interleaved, batch 1: official-style frame {a:.3f} s, ours {b:.3f} s -> {a / b:.2f}x (median of {repeats})")


def source_inputs(case: GoldenCase | None, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    if case is not None:
        image = np.rint(case.inputs["source_image"][0].transpose(1, 2, 0) * 255).astype(np.uint8)
        first = np.concatenate([case.inputs["source_coeff"][0], np.zeros(3, np.float32)])
        coeffs = case.inputs["target_coeff_seq"]
    else:
        image = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        first = rng.normal(0, 0.2, 73).astype(np.float32)
        coeffs = rng.normal(0, 0.2, (3, 70)).astype(np.float32)
    return image, first, coeffs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--frames", type=int, default=4, help="frames rendered per batch size")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--skip-check", action="store_true", help="skip the golden correctness check")
    parser.add_argument("--compare", type=int, default=2, help="interleaved official-style vs cached frames (0: skip)")
    parser.add_argument("--precision", default="fp32", help="fp32 (default) or bf16 on CPU; the golden check is fp32 only")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, size {args.size}, precision {args.precision}")

    case = load_case(CHECK_CASE)
    models = build_models(case)
    if case is not None and not args.skip_check and args.size == 256:
        check_against_golden(models, case)
    models.with_precision(args.precision)
    flops = count_gflop(models, args.size)
    print(
        f"GFLOP per frame: generator {flops['generator_full']:.0f} uncached, {flops['generator_cached']:.0f} with "
        f"source work cached (official {OFFICIAL['generator_gflop']:.0f}); KPDetector {flops['kp_detector']:.1f} per source"
    )

    if args.compare:
        compare_with_uncached(models, args.size, args.compare)

    image, first, base = source_inputs(case, args.size)
    coeffs = np.resize(base, (max(args.frames, 1), base.shape[1])).astype(np.float32)
    rows = []
    for batch in args.batches:
        timer = StageTimer()
        started = time.perf_counter()
        renderer = FaceRenderer(models, image, first, batch_size=batch, size=args.size, timer=timer)
        source_seconds = time.perf_counter() - started
        timer = StageTimer()
        renderer.timer = timer
        renderer.render(coeffs[: min(batch, len(coeffs))])  # warm-up at this batch size
        timer = StageTimer()
        renderer.timer = timer
        started = time.perf_counter()
        renderer.render(coeffs)
        total = time.perf_counter() - started
        n = len(coeffs)
        per = {k: v / n for k, v in timer.seconds.items()}
        per_frame = total / n
        rows.append((batch, per_frame, per, source_seconds))
        print(
            f"batch {batch}: {per_frame:.3f} s/frame (official {OFFICIAL['seconds_per_frame']:.2f}, "
            f"x{OFFICIAL['seconds_per_frame'] / per_frame:.2f}) = mapping {per['mapping'] * 1000:.1f} ms "
            f"+ keypoints {per['keypoints'] * 1000:.2f} ms + generator {per['generator']:.3f} s; "
            f"{flops['generator_cached'] / per['generator']:.0f} GFLOP/s executed, "
            f"{OFFICIAL['generator_gflop'] / per_frame:.0f} official-GFLOP/s; "
            f"source setup {source_seconds:.2f} s (KPDetector + appearance volume, once per image)"
        )
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak_mb:.0f} MB")
    best = min(rows, key=lambda r: r[1])
    print(f"best: batch {best[0]} at {best[1]:.3f} s/frame, {OFFICIAL['seconds_per_frame'] / best[1]:.2f}x the official loop")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
