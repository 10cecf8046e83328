"""bench/gpu.py --smoke (tiny networks on CPU) prints every row of the GPU table, with sane values."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.timeout(240)
def test_gpu_bench_smoke_prints_the_whole_table():
    completed = subprocess.run(
        [sys.executable, "-m", "bench.gpu", "--smoke", "--threads", "2"],
        capture_output=True, text=True, timeout=220, cwd=ROOT,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert "CUDA available:" in completed.stdout  # the machine is described before anything runs
    rows = json.loads(completed.stdout.strip().splitlines()[-1].removeprefix("JSON: "))
    by = lambda name: [r for r in rows if r["row"] == name]  # noqa: E731
    assert sorted((r["size"], r["batch"]) for r in by("fps")) == [(s, b) for s in (64, 128) for b in (1, 8, 32)]
    assert all(r["value"] > 0 for r in by("fps") + by("official-style loop") + by("first-frame latency"))
    assert [r["size"] for r in by("peak memory")] == [64, 128] and all(r["value"] > 0 for r in by("peak memory"))
    assert sorted(r["jobs"] for r in by("concurrent jobs")) == [1, 4, 16]
    assert [r["provider"] for r in by("audio2face fps")] == ["cuda"]  # a figure with onnxruntime-gpu, else why not
    precisions = {r["precision"]: r["value"] for r in by("precision fps")}
    assert set(precisions) == {"fp32", "bf16"}  # fp16 is refused on CPU, and the run says so
    assert "skipping fp16" in completed.stdout
    (bf16,) = by("precision psnr")
    assert 25 < bf16["value"] < 80
