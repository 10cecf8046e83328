"""Run a golden case through its registered runner and compare every listed output with the reference.

One implementation for both drivers: ``tests/test_golden.py`` (pytest, CPU in CI) and
``bench/golden_device.py`` (plain Python, e.g. on a lent GPU machine without pytest), so a case means
the same thing on every device.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tests.golden_cases import GoldenCase, RunnerEntry
from tests.golden_cases.audio_cases import RUNNERS as AUDIO_RUNNERS
from tests.golden_cases.render_cases import RUNNERS as RENDER_RUNNERS

REGISTRY: list[RunnerEntry] = [*AUDIO_RUNNERS, *RENDER_RUNNERS]


def entry_for(case: GoldenCase) -> RunnerEntry | None:
    """The first runner that claims the case's kind; None when nobody does (the case must fail)."""
    matching = [entry for entry in REGISTRY if entry.matches(case.kind)]
    return matching[0] if matching else None


@dataclass(frozen=True)
class OutputCheck:
    """One output against its reference.

    ``max_diff`` is the largest |ours - reference|; ``tolerance_used`` the largest
    |ours - reference| / (atol + rtol * |reference|), so 1.0 is the edge of the tolerance (inf when a
    zero-tolerance output differs at all). ``problem`` is None when the output passes.
    """

    name: str
    max_diff: float
    tolerance_used: float
    problem: str | None


def compare(case: GoldenCase, name: str, ours: np.ndarray) -> OutputCheck:
    """Check one output against the case's reference within the case's tolerance for it."""
    reference = case.expected[name]
    ours = np.asarray(ours)
    if ours.shape != reference.shape:
        return OutputCheck(name, float("nan"), float("inf"), f"{name}: shape {ours.shape} != reference {reference.shape}")
    atol, rtol = case.tolerance(name)
    ours64 = ours.astype(np.float64)
    ref64 = reference.astype(np.float64)
    allowed = atol + rtol * np.abs(ref64)
    with np.errstate(invalid="ignore"):
        diff = np.abs(ours64 - ref64)
        excess = diff - allowed
    finite_mismatch = not np.all(np.isfinite(ours64) == np.isfinite(ref64))
    max_diff = _nanmax(diff)
    with np.errstate(divide="ignore", invalid="ignore"):
        used = _nanmax(np.where(diff > 0, diff / allowed, 0.0))
    if finite_mismatch:
        used = float("inf")
    problem = None
    if np.any(excess > 0) or finite_mismatch:
        worst = np.unravel_index(int(np.argmax(np.nan_to_num(excess, nan=-np.inf))), excess.shape) if excess.size else ()
        problem = (
            f"{name}: {int(np.sum(excess > 0))}/{excess.size} values outside atol={atol} rtol={rtol}; "
            f"max |diff| {max_diff:.3g} at {worst}"
        )
        if finite_mismatch:
            problem += "; non-finite values where the reference has finite ones (or the reverse)"
    return OutputCheck(name, max_diff, used, problem)


def _nanmax(values: np.ndarray) -> float:
    """Largest value ignoring NaN (positions where both sides are NaN compare equal); 0 when empty."""
    finite_or_inf = values[~np.isnan(values)]
    return float(np.max(finite_or_inf)) if finite_or_inf.size else 0.0


def check_outputs(case: GoldenCase, ours: dict[str, np.ndarray]) -> list[OutputCheck]:
    """Every output ``case.json`` lists, in its order; one the runner did not produce fails."""
    checks = []
    for name in case.meta["outputs"]:
        if name not in ours:
            checks.append(OutputCheck(name, float("nan"), float("inf"), f"runner produced no {name!r}"))
        else:
            checks.append(compare(case, name, ours[name]))
    return checks
