"""The renderer on a GPU: one run, one table (fps, latency, VRAM, precision, concurrent jobs, official loop).

Made for a machine with no network and unknown packages: it only needs torch and numpy (no scikit-image, scipy or safetensors), prints what
the machine has first, and builds official-size networks with generated weights (the golden recipe
rule, written out below, with the generator's documented ``weight_u`` x10 adjustment so frames are
well conditioned); nothing is downloaded or read from disk. Rows:

* fps at batch 1, 8 and 32 for 256 and 512 (fixed-size passes, after a warm-up pass);
* first-frame latency: a new job (KPDetector + source work) until its first frame is out;
* peak VRAM per size (peak RSS on CPU);
* fp32 against fp16 / bf16: fps and PSNR of the uint8 frames against fp32 (gate 40 dB); on CUDA the
  fp32 rows are strict (TF32 off) and fp32 with TF32 (torch's default for cuDNN convs) gets its own;
* throughput with 1, 4 and 16 concurrent jobs, each in its own thread, sharing passes through the
  sidecar's :class:`FrameBatcher` (fair shares, 5 ms wait), and the slowest job's first-frame wait;
* the official-style fp32 loop (full generator per frame, source work redone) beside ours.

    python -m bench.gpu                 # on the GPU machine (falls back to CPU, slowly)
    python -m bench.gpu --smoke         # tiny networks on CPU, well under a minute (CI)
    python -m bench.gpu --accelerate compile   # also time torch.compile'd passes

The last line is ``JSON: [...]`` with every row, for scripts and tests.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import resource
import threading
import time
import zlib
from dataclasses import dataclass

import numpy as np
import torch

from talkbridge.core.errors import InputError
from talkbridge.core.sadtalker.precision import FRAME_PSNR_GATE_DB, resolve_precision
from talkbridge.core.sadtalker.render.batcher import BatchPolicy, FrameBatcher
from talkbridge.core.sadtalker.render.config import (
    DenseMotionConfig,
    GeneratorConfig,
    KPDetectorConfig,
    MappingConfig,
    RenderConfig,
)
from talkbridge.core.sadtalker.render.job import RenderJob
from talkbridge.core.sadtalker.render.keypoints import keypoint_transformation
from talkbridge.core.sadtalker.render.models import FaceRenderModels
from talkbridge.core.sadtalker.render.shared_pass import drive_slices, render_slices


OUT_OF_MEMORY = getattr(torch, "OutOfMemoryError", getattr(torch.cuda, "OutOfMemoryError", RuntimeError))


@dataclass
class Plan:
    """What one run measures; ``--smoke`` shrinks every axis but keeps the rows."""

    config: RenderConfig
    sizes: tuple[int, ...]
    batches: tuple[int, ...] = (1, 8, 32)
    jobs: tuple[int, ...] = (1, 4, 16)
    frames_per_job: int = 100  # 4 s of video per job
    passes: int = 2
    job_pass: int = 16  # rows per shared pass (serve --batch-frames)


def smoke_config() -> RenderConfig:
    """A structurally complete renderer small enough for CPU smoke runs."""
    return RenderConfig(
        mapping=MappingConfig(descriptor_nc=32),
        kp_detector=KPDetectorConfig(block_expansion=4, max_features=32, num_blocks=3, reshape_channel=64, reshape_depth=4),
        generator=GeneratorConfig(
            feature_channel=4, block_expansion=8, max_features=16, reshape_channel=4, reshape_depth=4, num_resblocks=1,
            spade_hidden=8, spade_middle_blocks=1,
            dense_motion=DenseMotionConfig(block_expansion=4, max_features=16, num_blocks=2, reshape_depth=4, compress=2),
        ),
    )


def generated_tensor(name: str, shape: tuple[int, ...], seed: int) -> np.ndarray:
    """Deterministic weights by the golden recipe's documented rule (depends on name, shape, seed)."""
    rng = np.random.default_rng(zlib.crc32(name.encode()) ^ seed)
    if name.endswith("num_batches_tracked"):
        return np.zeros(shape, np.int64)
    if name.endswith("running_var"):
        values = 1.0 + 0.1 * np.abs(rng.standard_normal(shape))
    elif name.endswith("running_mean"):
        values = 0.1 * rng.standard_normal(shape)
    elif len(shape) >= 2:
        values = rng.standard_normal(shape) / math.sqrt(math.prod(shape[1:]))
    elif name.endswith("weight"):
        values = 1.0 + 0.1 * rng.standard_normal(shape)
    else:
        values = 0.1 * rng.standard_normal(shape)
    return np.asarray(values, np.float32)


def build_models(config: RenderConfig, device: torch.device, precision: str = "fp32", seed: int = 1) -> FaceRenderModels:
    models = FaceRenderModels.untrained(config)
    for net, boost in ((models.mapping, False), (models.kp_detector, False), (models.generator, True)):
        state = {}
        for name, tensor in net.state_dict().items():
            values = generated_tensor(name, tuple(tensor.shape), seed)
            if boost and name.endswith("weight_u"):
                values = values * np.float32(10.0)  # the golden sn_u_x10 adjustment: well-conditioned output
            state[name] = torch.from_numpy(values)
        net.load_state_dict(state)
    return models.to(device).with_precision(precision, allow_cpu_fp16=True)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def portrait(seed: int, size: int, frames: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    # A smooth image (blurred noise) rather than white noise: closer to a face crop's spectrum.
    coarse = rng.integers(0, 256, (size // 8 + 1, size // 8 + 1, 3)).astype(np.float32)
    image = np.kron(coarse, np.ones((8, 8, 1), np.float32))[:size, :size]
    first = rng.normal(0, 0.3, 73).astype(np.float32)
    return image.astype(np.uint8), first, rng.normal(0, 0.3, (frames, 70)).astype(np.float32)


def new_job(models: FaceRenderModels, seed: int, size: int, frames: int) -> RenderJob:
    image, first, coeffs = portrait(seed, size, frames)
    job = RenderJob(models, image, first, size=size)
    job.feed(coeffs)
    job.close()
    return job


class Table:
    def __init__(self) -> None:
        self.rows: list[dict] = []

    def add(self, row: str, value, unit: str = "", **labels) -> None:
        entry = {"row": row, **labels, "value": value, "unit": unit}
        self.rows.append(entry)
        label = " ".join(f"{k}={v}" for k, v in labels.items())
        shown = f"{value:.3f}" if isinstance(value, float) else str(value)
        print(f"| {row:<22} | {label:<40} | {shown:>12} {unit}", flush=True)


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def fps_at(models: FaceRenderModels, size: int, batch: int, passes: int, device: torch.device) -> float:
    """Frames per second of fixed-size passes of one job, after one warm-up pass."""
    job = new_job(models, 7, size, batch * (passes + 1))
    drive_slices(models, [job.take(batch)], pad_to=batch)
    sync(device)
    started = time.perf_counter()
    for _ in range(passes):
        drive_slices(models, [job.take(batch)], pad_to=batch)
    sync(device)
    return batch * passes / (time.perf_counter() - started)


def first_frame_latency(models: FaceRenderModels, size: int, device: torch.device) -> float:
    """A new portrait's job: source work, then its first frame as uint8 (the shapes are warm)."""
    new_job(models, 3, size, 14).take(1)  # warm-up of the same shapes
    sync(device)
    started = time.perf_counter()
    job = new_job(models, 5, size, 14)
    render_slices(models, [job.take(1)])
    sync(device)
    return time.perf_counter() - started


def frames_for(models: FaceRenderModels, size: int, count: int) -> np.ndarray:
    job = new_job(models, 11, size, count)
    return render_slices(models, [job.take(count)], pad_to=count)[0]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * math.log10(255.0**2 / mse)


def concurrent_throughput(models: FaceRenderModels, size: int, jobs: int, frames: int, pass_size: int, device) -> tuple[float, float]:
    """``jobs`` jobs of ``frames`` frames each, every job in its own thread asking the sidecar's
    :class:`FrameBatcher` for 8 ready frames at a time (as a streaming job does). Returns the total
    frames/s and the slowest job's wait for its first frames (s)."""
    active = [new_job(models, 100 + j, size, frames) for j in range(jobs)]
    batcher = FrameBatcher(models, BatchPolicy(max_frames=pass_size, max_wait_ms=5.0))
    first_wait = [0.0] * jobs
    go = threading.Barrier(jobs + 1)

    def serve(index: int) -> None:
        job = active[index]
        with batcher.join() as seat:
            go.wait()
            started = time.perf_counter()
            while job.ready:
                for _ in seat.frames(job.take(25)):  # each pass's share, as soon as it is out
                    first_wait[index] = first_wait[index] or time.perf_counter() - started

    threads = [threading.Thread(target=serve, args=(j,)) for j in range(jobs)]
    for thread in threads:
        thread.start()
    sync(device)
    go.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    sync(device)
    return jobs * frames / (time.perf_counter() - started), max(first_wait)


@torch.inference_mode()
def official_loop_fps(models: FaceRenderModels, size: int, frames: int, device: torch.device) -> float:
    """The official per-frame work at batch 1: full generator (source work redone every frame)."""
    image, first, coeffs = portrait(9, size, frames + 1)
    job = RenderJob(models, image, first, size=size)
    source = torch.from_numpy(image.transpose(2, 0, 1)[None].astype(np.float32) / 255).to(device)
    windows = [torch.from_numpy(w).to(device) for w in job.frame_slice(job.driving_rows(coeffs), range(frames + 1)).windows]
    kp_canonical, kp_source = job.source.kp_canonical, job.source.kp_source

    def frame(window: torch.Tensor) -> None:
        he = models.mapping(window[None])
        kp_driving = keypoint_transformation(kp_canonical, he)["kp"]
        models.generator(source, kp_driving, kp_source)

    frame(windows[0])
    sync(device)
    started = time.perf_counter()
    for window in windows[1:]:
        frame(window)
    sync(device)
    return frames / (time.perf_counter() - started)


def set_tf32(enabled: bool) -> None:
    torch.backends.cudnn.allow_tf32 = enabled
    torch.backends.cuda.matmul.allow_tf32 = enabled


def describe_machine(device: torch.device) -> None:
    print(f"python {platform.python_version()}, torch {torch.__version__}, numpy {np.__version__}")
    print(f"CUDA available: {torch.cuda.is_available()} (torch built for CUDA {torch.version.cuda})")
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        print(
            f"device: {props.name}, {props.total_memory / 2**30:.0f} GiB, compute {props.major}.{props.minor}; "
            f"cuDNN {torch.backends.cudnn.version()}; bf16 {torch.cuda.is_bf16_supported()}; "
            f"TF32 convs {torch.backends.cudnn.allow_tf32}, matmul {torch.backends.cuda.matmul.allow_tf32}"
        )
    else:
        capability = getattr(torch.backends.cpu, "get_cpu_capability", lambda: "unknown")()
        print(f"device: CPU, {torch.get_num_threads()} threads, capability {capability}")


def half_precisions(device: torch.device) -> list[str]:
    names = []
    for name in ("fp16", "bf16"):
        try:
            resolve_precision(name, device)
            names.append(name)
        except InputError as error:
            print(f"skipping {name}: {error}")
    return names


def audio2face_rows(table: Table, frames: int) -> None:
    """The audio2face network on onnxruntime's CUDA provider: NVIDIA's Training Framework architecture at
    Mark's sizes (bench/a2f_nvidia_network.py, random weights; the cost is the shapes', not the values').

    Without onnxruntime-gpu and a GPU the row says so instead of a figure.
    """
    import tempfile
    from pathlib import Path

    try:
        import onnxruntime
    except ImportError:
        table.add("audio2face fps", "n/a", "(onnxruntime not installed)", provider="cuda")
        return
    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        table.add("audio2face fps", "n/a", "(no CUDA provider: install onnxruntime-gpu)", provider="cuda")
        return
    from bench.a2f_nvidia_network import write_nvidia_network
    from talkbridge.core.audio2face.files import NetworkInfo
    from talkbridge.core.audio2face.network import A2FNetwork

    with tempfile.TemporaryDirectory(prefix="a2f-gpu-") as folder:
        path = Path(folder) / "network.onnx"
        write_nvidia_network(path, 8320, 26, 301, skin=272, tongue=10)
        info = NetworkInfo("bench", tuple("abcdefghij"), (0.0,) * 10, 16, 272, 10, 61520, 5602, 15, 4, 8320, 4160, 16000)
        network = A2FNetwork(path, info, "cuda", batch=64)
        windows = np.random.default_rng(0).normal(0, 0.1, (frames, 8320)).astype(np.float32)
        emotions = np.zeros((frames, 1, 26), np.float32)
        network.run(windows[:64], emotions[:64])  # warm-up: kernels and memory
        started = time.perf_counter()
        network.run(windows, emotions)
        table.add("audio2face fps", frames / (time.perf_counter() - started), "frames/s (network, 64 per call)", provider="cuda")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny networks on CPU, well under a minute")
    parser.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--accelerate", default="off", choices=("off", "compile", "cudagraphs"))
    args = parser.parse_args()
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() and not args.smoke else "cpu"))
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.smoke:
        plan = Plan(smoke_config(), sizes=(64, 128), frames_per_job=2, passes=1)
    else:
        plan = Plan(RenderConfig.official(), sizes=(256, 512))
    describe_machine(device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        # fp32 rows are strict fp32 (torch lets cuDNN use TF32 by default); TF32 gets its own rows.
        tf32_default = torch.backends.cudnn.allow_tf32
        set_tf32(False)
    table = Table()
    print(f"| {'row':<22} | {'labels':<40} | {'value':>12} unit")
    base = {size: None for size in plan.sizes}
    models = build_models(plan.config, device)
    for size in plan.sizes:
        reset_peak(device)
        for batch in plan.batches:
            try:
                table.add("fps", fps_at(models, size, batch, plan.passes, device), "frames/s", size=size, batch=batch, precision="fp32")
            except OUT_OF_MEMORY:
                table.add("fps", "OOM", "", size=size, batch=batch, precision="fp32")
                reset_peak(device)
        table.add("peak memory", peak_memory_mb(device), "MiB VRAM" if device.type == "cuda" else "MiB RSS", size=size)
        table.add("first-frame latency", first_frame_latency(models, size, device), "s", size=size, precision="fp32")
        table.add("official-style loop", official_loop_fps(models, size, max(2, plan.passes), device), "frames/s", size=size, batch=1, precision="fp32")
        base[size] = frames_for(models, size, 8)

    compare_size, compare_batch = plan.sizes[0], 8
    reference_fps = fps_at(models, compare_size, compare_batch, plan.passes, device)
    table.add("precision fps", reference_fps, "frames/s", size=compare_size, batch=compare_batch, precision="fp32")
    if device.type == "cuda":
        set_tf32(True)
        speed = fps_at(models, compare_size, compare_batch, plan.passes, device)
        quality = psnr(frames_for(models, compare_size, 8), base[compare_size])
        set_tf32(False)
        table.add("precision fps", speed, f"frames/s (x{speed / reference_fps:.2f} fp32; torch default {tf32_default})",
                  size=compare_size, batch=compare_batch, precision="fp32+tf32")
        table.add("precision psnr", quality, "dB vs strict fp32", size=compare_size, precision="fp32+tf32")
    for name in half_precisions(device):
        half = build_models(plan.config, device, name)
        speed = fps_at(half, compare_size, compare_batch, plan.passes, device)
        quality = psnr(frames_for(half, compare_size, 8), base[compare_size])
        table.add("precision fps", speed, f"frames/s (x{speed / reference_fps:.2f} fp32)", size=compare_size, batch=compare_batch, precision=name)
        gate = "pass" if quality >= FRAME_PSNR_GATE_DB else "below gate"
        table.add("precision psnr", quality, f"dB vs fp32 ({gate} {FRAME_PSNR_GATE_DB:g})", size=compare_size, precision=name)
        table.add("first-frame latency", first_frame_latency(half, compare_size, device), "s", size=compare_size, precision=name)
        del half

    solo_fps = None
    for jobs in plan.jobs:
        fps, wait = concurrent_throughput(models, compare_size, jobs, plan.frames_per_job, plan.job_pass, device)
        solo_fps = solo_fps or fps
        table.add("concurrent jobs", fps, f"frames/s total (x{fps / solo_fps:.2f} one job)", size=compare_size, jobs=jobs, pass_size=plan.job_pass)
        table.add("concurrent first frames", wait, "s, slowest job", size=compare_size, jobs=jobs, pass_size=plan.job_pass)

    audio2face_rows(table, frames=8 if args.smoke else 250)

    if args.accelerate != "off":
        from talkbridge.core.sadtalker.render.accelerate import accelerate

        try:
            accelerate(models, args.accelerate)
            started = time.perf_counter()
            fps_at(models, compare_size, compare_batch, 1, device)  # compiles
            table.add("compile time", time.perf_counter() - started, "s", size=compare_size, accelerate=args.accelerate)
            table.add("fps", fps_at(models, compare_size, compare_batch, plan.passes, device), "frames/s",
                      size=compare_size, batch=compare_batch, precision="fp32", accelerate=args.accelerate)
        except (InputError, RuntimeError) as error:  # the compiler is optional; report and go on
            print(f"accelerate {args.accelerate} unavailable: {error}")
    print("JSON: " + json.dumps(table.rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
