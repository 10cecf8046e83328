"""Golden cases: our port against outputs the official SadTalker code produced with recipe weights.

Every folder holding ``case.json`` under ``$TALKBRIDGE_GOLDEN_DIR`` (default
``../shared/reference/sadtalker``) is one test. The runner registry (``tests/golden_cases``) maps a
case's ``network``/``function`` to our code; a case nobody claims fails, so new kinds of cases cannot
pass unnoticed.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.golden_cases import GoldenCase, RunnerEntry, discover_cases, golden_root
from tests.golden_cases.audio_cases import RUNNERS as AUDIO_RUNNERS
from tests.golden_cases.render_cases import RUNNERS as RENDER_RUNNERS

REGISTRY: list[RunnerEntry] = [*AUDIO_RUNNERS, *RENDER_RUNNERS]


def _cases() -> list[GoldenCase]:
    root = golden_root()
    if not root.is_dir():
        raise RuntimeError(
            f"golden case root {root} does not exist: clone with ../shared beside the project "
            "or set TALKBRIDGE_GOLDEN_DIR"
        )
    cases = discover_cases(root)
    if not cases:
        raise RuntimeError(f"no case.json found under {root}")
    return cases


def _entry_for(case: GoldenCase) -> RunnerEntry | None:
    matching = [entry for entry in REGISTRY if entry.matches(case.kind)]
    return matching[0] if matching else None


def _params():
    params = []
    for case in _cases():
        entry = _entry_for(case)
        marks = []
        if entry is not None and entry.xfail_reason:
            marks.append(pytest.mark.xfail(reason=entry.xfail_reason, strict=True))
        params.append(pytest.param(case, id=str(case.folder.relative_to(golden_root())), marks=marks))
    return params


def compare(case: GoldenCase, name: str, ours: np.ndarray) -> str | None:
    """Return a description of the mismatch, or None when within the case's tolerance."""
    reference = case.expected[name]
    ours = np.asarray(ours)
    if ours.shape != reference.shape:
        return f"{name}: shape {ours.shape} != reference {reference.shape}"
    atol, rtol = case.tolerance(name)
    ours64 = ours.astype(np.float64)
    ref64 = reference.astype(np.float64)
    excess = np.abs(ours64 - ref64) - (atol + rtol * np.abs(ref64))
    if np.any(excess > 0) or not np.all(np.isfinite(ours64) == np.isfinite(ref64)):
        worst = np.unravel_index(int(np.argmax(excess)), excess.shape) if excess.size else ()
        return (
            f"{name}: {int(np.sum(excess > 0))}/{excess.size} values outside atol={atol} rtol={rtol}; "
            f"max |diff| {float(np.max(np.abs(ours64 - ref64))):.3g} at {worst}"
        )
    return None


@pytest.mark.parametrize("case", _params())
def test_golden_case(case: GoldenCase) -> None:
    entry = _entry_for(case)
    assert entry is not None, f"no runner knows golden case kind {case.kind!r} ({case.folder})"
    assert entry.run is not None, entry.xfail_reason or "runner missing"
    ours = entry.run(case)
    listed = case.meta["outputs"]
    missing = [name for name in listed if name not in ours]
    assert not missing, f"runner produced no {missing}"
    problems = [p for name in listed if (p := compare(case, name, ours[name])) is not None]
    assert not problems, "\n".join(problems)
