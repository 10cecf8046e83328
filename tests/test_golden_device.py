"""bench/golden_device.py runs the golden cases without pytest, on the device it is given.

It shares tests/golden_cases (registry, runners, comparison) with tests/test_golden.py; these tests
check its report and exit status on CPU (pass, fail, unknown kind, bad device), the comparison
figures it prints, and that a CUDA golden run turns TF32 off.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.golden_cases import DEVICE_ENV, GoldenCase, golden_device, golden_root
from tests.golden_cases.check import compare

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ("-m", "bench.golden_device")  # run as a module of the checkout, importing the installed package
FAST_CASES = ["blink_random", "a_mapping", "d_keypoint_transformation", "mel_chunks"]


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *SCRIPT, "--threads", "1", *args],
        capture_output=True, text=True, timeout=240, cwd=ROOT,
    )


def _case_lines(stdout: str) -> dict[str, str]:
    """Case path -> its result line."""
    lines = {}
    for line in stdout.splitlines():
        match = re.match(r"^(PASS|FAIL|XFAIL|XPASS)\s+(\S+)", line)
        if match:
            lines[match.group(2)] = line
    return lines


def _tolerance_used(line: str) -> float:
    return float(re.search(r"tol used\s+(\S+)", line).group(1))


@pytest.mark.timeout(300)
def test_real_cases_pass_on_cpu_with_figures():
    completed = _run("--device", "cpu", "--root", str(golden_root()), "--cases", *FAST_CASES)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    lines = _case_lines(completed.stdout)
    assert sorted(lines) == sorted(
        ["audio/golden/blink_random", "render/golden/a_mapping", "render/golden/d_keypoint_transformation", "audio/golden/mel_chunks"]
    )
    assert all(line.startswith("PASS") for line in lines.values())
    assert all(0 <= _tolerance_used(line) <= 1 for line in lines.values())
    # A float network matches bit for bit on one CPU kind and not on another (AMX, AVX-512 and AVX2
    # kernels sum in different orders), so the figures are checked against each other, not against 0.
    for line in lines.values():
        difference = float(re.search(r"max\|diff\|\s+(\S+)", line).group(1))
        assert (difference == 0) == (_tolerance_used(line) == 0), line
    assert "golden on cpu: 4 cases: 4 pass" in completed.stdout


@pytest.mark.timeout(300)
def test_failures_are_reported_and_exit_one(tmp_path: Path):
    source = golden_root()
    shutil.copy(source / "recipe.py", tmp_path / "recipe.py")
    broken = tmp_path / "render" / "golden" / "a_mapping"
    shutil.copytree(source / "render" / "golden" / "a_mapping", broken)
    with np.load(broken / "outputs.npz", allow_pickle=False) as data:
        outputs = {k: data[k] for k in data.files}
    outputs["yaw"] = outputs["yaw"].copy()
    outputs["yaw"].flat[0] += 0.5  # far outside atol 1e-4
    np.savez(broken / "outputs.npz", **outputs)
    shutil.copytree(source / "render" / "golden" / "d_keypoint_transformation", tmp_path / "render" / "golden" / "kp_ok")
    unknown = tmp_path / "render" / "golden" / "unknown"
    unknown.mkdir()
    (unknown / "case.json").write_text(json.dumps({"network": "no_such_network", "outputs": ["x"], "atol": 0, "rtol": 0}))

    completed = _run("--device", "cpu", "--root", str(tmp_path))
    assert completed.returncode == 1, completed.stdout[-3000:] + completed.stderr[-3000:]
    lines = _case_lines(completed.stdout)
    assert lines["render/golden/kp_ok"].startswith("PASS")
    assert lines["render/golden/a_mapping"].startswith("FAIL")
    assert _tolerance_used(lines["render/golden/a_mapping"]) > 1000  # 0.5 against ~1e-4
    assert "yaw: 1/" in completed.stdout and "values outside atol=0.0001" in completed.stdout
    assert lines["render/golden/unknown"].startswith("FAIL")
    assert "no runner knows golden case kind 'no_such_network'" in completed.stdout
    assert "3 cases: 1 pass, 2 fail" in completed.stdout
    assert completed.stdout.rstrip().endswith("failed: render/golden/a_mapping render/golden/unknown")


def test_bad_device_or_empty_selection_exits_two(tmp_path: Path):
    completed = _run("--device", "nonsense", "--root", str(golden_root()), "--cases", "blink_random")
    assert completed.returncode == 2
    assert "'nonsense' is not a torch device" in completed.stderr
    completed = _run("--root", str(golden_root()), "--cases", "no-case-has-this-name")
    assert completed.returncode == 2
    assert "no golden cases under" in completed.stderr and "no-case-has-this-name" in completed.stderr


def test_golden_device_defaults_to_cpu_and_refuses_missing_cuda(monkeypatch):
    monkeypatch.delenv(DEVICE_ENV, raising=False)
    assert golden_device() == torch.device("cpu")
    monkeypatch.setenv(DEVICE_ENV, "cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match=f"{DEVICE_ENV}='cuda' but torch .* sees no CUDA device"):
        golden_device()


def test_golden_device_on_cuda_turns_tf32_off(monkeypatch):
    # Only the flags are touched here (no CUDA work), so this holds on a CPU-only machine too. The
    # flags live behind torch's module proxies, which monkeypatch cannot restore: done by hand.
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setenv(DEVICE_ENV, "cuda:0")
    try:
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = True
        assert golden_device() == torch.device("cuda", 0)
        assert torch.backends.cudnn.allow_tf32 is False
        assert torch.backends.cuda.matmul.allow_tf32 is False
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def _case(tmp_path: Path, reference: np.ndarray, atol: float, rtol: float) -> GoldenCase:
    case = GoldenCase(tmp_path, {"outputs": ["y"], "atol": atol, "rtol": rtol})
    case.__dict__["expected"] = {"y": reference}  # the cached_property's slot: no outputs.npz needed
    return case


def test_compare_figures(tmp_path: Path):
    reference = np.array([1.0, 2.0, np.nan, -4.0], np.float32)
    near = reference + np.array([1e-3, -2e-3, 0, 0], np.float32)
    check = compare(_case(tmp_path, reference, atol=1e-2, rtol=0.0), "y", near)
    assert check.problem is None  # NaN where the reference has NaN is equal
    assert check.max_diff == pytest.approx(2e-3, rel=1e-3)
    assert check.tolerance_used == pytest.approx(0.2, rel=1e-3)
    exact = compare(_case(tmp_path, reference, atol=0.0, rtol=0.0), "y", near)
    assert exact.tolerance_used == float("inf") and "2/4 values outside atol=0.0" in exact.problem
    not_finite = compare(_case(tmp_path, reference, atol=1.0, rtol=0.0), "y", np.array([1, 2, 3, np.inf], np.float32))
    assert not_finite.problem and "non-finite" in not_finite.problem
    shape = compare(_case(tmp_path, reference, atol=1.0, rtol=0.0), "y", reference[:3])
    assert shape.problem == "y: shape (3,) != reference (4,)"
