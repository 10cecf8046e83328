"""Benchmark: a 10-minute clip (15,000 frames x 52 ARKit channels + pose) exported onto a head as GLB.

Prints seconds per export (best of --repeats), the ratio to the 2 s target, microseconds per frame,
the export's peak Python memory (tracemalloc) and the process's peak RSS. Run:
``./scripts/dev bench export`` (add ``--frames``/``--head`` to vary it).
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

from talkbridge.core.motion import ARKIT_52, OCULUS_VISEMES, Motion
from talkbridge.exporters.gltf import add_animation, write_head_glb

TARGET_SECONDS = 2.0


def long_motion(frames: int, seed: int = 0) -> Motion:
    """A deterministic clip with smooth, distinct curves on every channel."""
    rng = np.random.default_rng(seed)
    t = np.arange(frames)[:, None] / 25.0
    phases = rng.uniform(0, 2 * np.pi, (1, len(ARKIT_52)))
    rates = rng.uniform(0.1, 2.0, (1, len(ARKIT_52)))
    arkit = (0.5 + 0.5 * np.sin(2 * np.pi * rates * t + phases)).astype(np.float32)
    pose = np.zeros((frames, 6), np.float32)
    pose[:, :3] = 0.2 * np.sin(2 * np.pi * np.array([0.11, 0.07, 0.05]) * t)
    visemes = np.clip(rng.normal(0.2, 0.2, (frames, len(OCULUS_VISEMES))), 0, 1).astype(np.float32)
    return Motion(fps=25, engine="bench", engine_version="0", pose=pose, blink=arkit[:, 0], arkit=arkit, visemes=visemes)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=15_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--head", type=Path, help="a .glb/.gltf head (default: the lite engine's mannequin)")
    args = parser.parse_args(argv)

    motion = long_motion(args.frames)
    with tempfile.TemporaryDirectory(prefix="talkbridge-bench-") as folder:
        head = args.head
        if head is None:
            from talkbridge.core.lite.mannequin import build_mannequin

            head = write_head_glb(build_mannequin(), Path(folder) / "mannequin.glb")
        times = []
        for repeat in range(args.repeats):
            out = Path(folder) / f"out{repeat}.glb"
            if repeat == 0:
                tracemalloc.start()
            start = time.perf_counter()
            result = add_animation(head, motion, out)
            times.append(time.perf_counter() - start)
            if repeat == 0:
                _, peak = tracemalloc.get_traced_memory()
                tracemalloc.stop()
        size = out.stat().st_size
    best = min(times)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"head: {head.name if args.head else 'mannequin'}; {len(result.report.matches)} targets matched")
    print(f"frames: {args.frames} ({args.frames / 25 / 60:.1f} min at 25 fps), 52 ARKit channels + pose")
    print(f"export seconds: best {best:.3f}, all {', '.join(f'{t:.3f}' for t in times)}"
          " (first run includes tracemalloc overhead)")
    print(f"ratio to {TARGET_SECONDS:.0f} s target: {best / TARGET_SECONDS:.2f} ({'PASS' if best < TARGET_SECONDS else 'FAIL'})")
    print(f"per frame: {best / args.frames * 1e6:.1f} us")
    print(f"output: {size / 1e6:.1f} MB; peak Python memory during export: {peak / 1e6:.1f} MB; peak RSS: {rss_mb:.0f} MB")
    return 0 if best < TARGET_SECONDS else 1


if __name__ == "__main__":
    sys.exit(main())
