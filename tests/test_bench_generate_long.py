"""The long-audio memory bench keeps working, and memory stays flat as the clip grows.

The bench itself (10 / 60 / 600 s) is too long for the suite; this runs its real code path end to
end (face, audio networks, slim renderer, paste-back, the one writer) on 1 s and 8 s. A pipeline
that kept frames would grow by a frame's size (~0.2 MB at 256 px) for every frame it keeps: over the
180 frames between the long run's first tenth and its end that is about 36 MB, against the bound of
25 MB here. Those two samples are taken after ``malloc_trim`` (live memory, not the allocator's
cache): measured repeatedly they agree to within a few MB, where raw RSS moved by up to 40 MB.
Peaks are sampled raw and vary by tens of MB, so they are only checked for a runaway; that a step
never holds more than one rendered batch is tested directly in test_bridge_sadtalker_video.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_generate_long_bench_reports_frames_speed_and_memory():
    completed = subprocess.run(
        [sys.executable, "-m", "bench.generate_long", "--seconds", "1", "8", "--renderer", "slim", "--threads", "2"],
        capture_output=True, text=True, timeout=580, cwd=ROOT,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    rows = json.loads(completed.stdout.strip().splitlines()[-1])
    assert [row["frames"] for row in rows] == [25, 200]
    for row in rows:
        assert row["s_per_frame"] > 0
        assert 0 < row["rss_at_tenth_mb"] <= row["peak_rss_mb"] and 0 < row["rss_at_end_mb"] <= row["peak_rss_mb"]
    short, long = rows
    assert long["rss_at_end_mb"] - long["rss_at_tenth_mb"] < 25, long  # no growth per frame
    assert long["peak_rss_mb"] < 1.5 * short["peak_rss_mb"], rows  # 8x the frames, no runaway peak
    assert "peak RSS ratio longest/shortest" in completed.stdout
