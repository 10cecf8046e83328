"""The long-audio memory bench keeps working: a one-second run with the slim renderer.

The bench itself (10 / 60 / 600 s) is too long for the suite; this runs its real code path end to
end so a refactor of the pipeline cannot silently break the figures the issue notes quote.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_generate_long_bench_reports_frames_speed_and_memory():
    completed = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "generate_long.py"), "--seconds", "1", "2", "--renderer", "slim", "--threads", "1"],
        capture_output=True, text=True, timeout=280, cwd=ROOT,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    rows = json.loads(completed.stdout.strip().splitlines()[-1])
    assert [row["frames"] for row in rows] == [25, 50]
    for row in rows:
        assert row["s_per_frame"] > 0
        assert 0 < row["rss_at_tenth_mb"] <= row["peak_rss_mb"] and 0 < row["rss_at_end_mb"] <= row["peak_rss_mb"]
    assert "peak RSS ratio longest/shortest" in completed.stdout
