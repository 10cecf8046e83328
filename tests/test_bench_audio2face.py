"""bench/audio2face.py --smoke runs end to end and prints every row with sane values."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("network", ["linear", "conv"])
def test_audio2face_bench_smoke(network):
    completed = subprocess.run(
        [sys.executable, "-m", "bench.audio2face", "--smoke", "--seconds", "1", "--threads", "1",
         "--network", network, "--single-frames", "5"],
        capture_output=True, text=True, timeout=110, cwd=ROOT,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    rows = json.loads(completed.stdout.strip().splitlines()[-1].removeprefix("JSON: "))
    names = [row["row"] for row in rows]
    assert names.count("network fps") == 2 and "post-processing" in names and "engine real-time factor" in names
    assert all(row["value"] > 0 for row in rows if row["row"] != "solver fallbacks to BVLS")
