"""Golden cases: our port against outputs the official SadTalker code produced with recipe weights.

Every folder holding ``case.json`` under ``$TALKBRIDGE_GOLDEN_DIR`` (default
``../shared/reference/sadtalker``) is one test. The runner registry (``tests/golden_cases/check.py``) maps a
case's ``network``/``function`` to our code; a case nobody claims fails, so new kinds of cases cannot
pass unnoticed.
"""

from __future__ import annotations

import pytest

from tests.golden_cases import GoldenCase, discover_cases, golden_root
from tests.golden_cases.check import check_outputs, entry_for


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


def _params():
    params = []
    for case in _cases():
        entry = entry_for(case)
        marks = []
        if entry is not None and entry.xfail_reason:
            marks.append(pytest.mark.xfail(reason=entry.xfail_reason, strict=True))
        params.append(pytest.param(case, id=str(case.folder.relative_to(golden_root())), marks=marks))
    return params


@pytest.mark.parametrize("case", _params())
def test_golden_case(case: GoldenCase) -> None:
    entry = entry_for(case)
    assert entry is not None, f"no runner knows golden case kind {case.kind!r} ({case.folder})"
    assert entry.run is not None, entry.xfail_reason or "runner missing"
    problems = [check.problem for check in check_outputs(case, entry.run(case)) if check.problem]
    assert not problems, "\n".join(problems)
