"""bench/batch.py keeps running: in-process, 1-node and 2-node Ray rates and Ray's overhead per row."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_batch_bench_reports_rates_ratios_and_overhead():
    done = subprocess.run([sys.executable, "-m", "bench.batch", "--rows", "2", "--seconds", "1", "--size", "64"],
                          capture_output=True, text=True, timeout=280, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    results = json.loads(lines[-1])
    for key in ("in_process", "ray1", "ray2"):
        assert results[f"{key}_rows_per_min"] == pytest.approx(2 / results[f"{key}_s"] * 60, rel=1e-3)
    assert results["ray2_vs_ray1"] == pytest.approx(results["ray2_rows_per_min"] / results["ray1_rows_per_min"], rel=1e-3)
    assert 0 < results["ray_overhead_per_row_s"] < 5
    assert any(line.startswith("ray 2 nodes / 1 node:") for line in lines)
