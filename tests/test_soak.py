"""bench/soak.py keeps working: a short soak with every fault kind ends clean."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_short_soak_with_every_fault_ends_clean():
    result = subprocess.run(
        [sys.executable, "-m", "bench.soak", "--clients", "3", "--jobs", "40", "--seconds", "20"],
        capture_output=True, text=True, timeout=220, cwd=ROOT,
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr[-3000:]
    jobs = re.search(r"jobs: (\d+) submitted, (\d+) done, (\d+) failed, (\d+) lost, (\d+) wrong", out)
    assert jobs is not None, out
    submitted, done, failed, lost, wrong = map(int, jobs.groups())
    assert done > 0 and failed == wrong == 0 and done + lost == submitted
    line = out.split("faults: ")[1].splitlines()[0]
    faults = {name: int(n) for name, n in (item.strip().rsplit(" ", 1) for item in line.split(","))}
    for kind in ("client_kill", "worker_kill", "malformed", "oversized"):
        assert faults.get(kind, 0) >= 1, out
    assert faults["malformed answered"] == faults["malformed"] and faults["oversized answered too_large"] == faults["oversized"]
    assert re.search(r"server RSS: start [\d.]+ MiB, end [\d.]+ MiB", out) and "server exit code on SIGTERM: 0" in out
