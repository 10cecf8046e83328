"""The golden cases on any device, without pytest: `tests/test_golden.py`'s check for a lent GPU machine.

Every case under the golden root runs through the same runner registry and comparison as the pytest
suite (``tests/golden_cases/check.py``), with its networks on ``--device`` (fp32; TF32 off on CUDA).
One line per case: PASS/FAIL/XFAIL/XPASS, the largest |ours - reference| over its outputs, the largest
share of its tolerance used (1.0 is the edge), the seconds taken and the output nearest its edge; a
failing case lists its problems below. Exit status 1 when any case fails, 2 for a bad invocation
(no cases, a device torch cannot use).

    python -m bench.golden_device --device cuda [--root DIR] [--cases audio2exp kp_detector]
    ./scripts/dev bench golden_device --device cpu --cases mel_chunks    # here, to check it
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from tests.golden_cases import DEVICE_ENV, GoldenCase, discover_cases, golden_device, golden_root
from tests.golden_cases.check import OutputCheck, check_outputs, entry_for


@dataclass
class CaseResult:
    case: str
    status: str  # PASS, FAIL, XFAIL (an expected failure failed), XPASS (it passed: strict, so a failure)
    checks: list[OutputCheck]
    problems: list[str]
    seconds: float

    @property
    def failed(self) -> bool:
        return self.status in ("FAIL", "XPASS")


def run_case(case: GoldenCase, label: str) -> CaseResult:
    """Run one case; a runner that raises is a failure with its traceback's last line, not a crash."""
    started = time.perf_counter()
    entry = entry_for(case)
    checks: list[OutputCheck] = []
    if entry is None:
        problems = [f"no runner knows golden case kind {case.kind!r}"]
    elif entry.run is None:
        problems = [entry.xfail_reason or "runner missing"]
    else:
        try:
            checks = check_outputs(case, entry.run(case))
            problems = [check.problem for check in checks if check.problem]
        except Exception as error:  # noqa: BLE001 - report and go on to the next case
            problems = [f"runner raised {type(error).__name__}: {error}", *_where(error)]
    failed = bool(problems)
    if entry is not None and entry.xfail_reason:
        status = "XFAIL" if failed else "XPASS"
    else:
        status = "FAIL" if failed else "PASS"
    return CaseResult(label, status, checks, problems, time.perf_counter() - started)


def _where(error: Exception) -> list[str]:
    frames = traceback.extract_tb(error.__traceback__)
    return [f"at {frames[-1].filename}:{frames[-1].lineno}"] if frames else []


def format_line(result: CaseResult) -> str:
    measured = [c for c in result.checks if c.max_diff == c.max_diff]  # skip NaN: missing or mis-shaped
    if measured:
        worst = max(measured, key=lambda c: c.tolerance_used)
        max_diff = max(c.max_diff for c in measured)
        figures = f"max|diff| {max_diff:9.3g}  tol used {worst.tolerance_used:8.3g}", f"  (worst: {worst.name})"
    else:
        figures = f"{'no outputs compared':38s}", ""
    return f"{result.status:5s} {result.case:45s} {figures[0]} {result.seconds:6.1f} s{figures[1]}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", help="torch device for the networks: cpu, cuda, cuda:1 ...")
    parser.add_argument("--root", type=Path, default=None, help="golden case root (default $TALKBRIDGE_GOLDEN_DIR or ../shared/reference/sadtalker)")
    parser.add_argument("--cases", nargs="+", default=None, metavar="TEXT", help="only cases whose path contains one of these")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's own)")
    args = parser.parse_args(argv)

    root = (args.root or golden_root()).resolve()
    if not root.is_dir():
        print(f"golden case root {root} does not exist (pass --root or set TALKBRIDGE_GOLDEN_DIR)", file=sys.stderr)
        return 2
    cases = discover_cases(root)
    labels = [str(case.folder.relative_to(root)) for case in cases]
    if args.cases:
        chosen = [(c, label) for c, label in zip(cases, labels) if any(text in label for text in args.cases)]
    else:
        chosen = list(zip(cases, labels))
    if not chosen:
        print(f"no golden cases under {root}" + (f" matching {args.cases}" if args.cases else ""), file=sys.stderr)
        return 2

    os.environ[DEVICE_ENV] = args.device
    try:
        device = golden_device()
    except (ValueError, RuntimeError) as error:
        print(f"--device {args.device}: {error}", file=sys.stderr)
        return 2
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else device.type
    print(f"golden cases on {device} ({name}), torch {torch.__version__}, root {root}", flush=True)

    started = time.perf_counter()
    results = []
    for case, label in chosen:
        result = run_case(case, label)
        results.append(result)
        print(format_line(result), flush=True)
        for problem in result.problems:
            print(f"      {problem}", flush=True)
    failed = [r for r in results if r.failed]
    counts = {status: sum(r.status == status for r in results) for status in ("PASS", "FAIL", "XFAIL", "XPASS")}
    summary = ", ".join(f"{n} {status.lower()}" for status, n in counts.items() if n)
    print(f"golden on {device}: {len(results)} cases: {summary} in {time.perf_counter() - started:.1f} s", flush=True)
    if failed:
        print("failed: " + " ".join(r.case for r in failed), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
