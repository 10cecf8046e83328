"""`talkbridge batch --sidecar A B`: rows spread over sidecars by free devices, same files as in-process."""

from __future__ import annotations

import json

import numpy as np
import pytest

from talkbridge.batch.backends import SidecarBackend, sidecar_slots
from talkbridge.cli import main
from talkbridge.cli.sidecar_target import SidecarTarget
from talkbridge.exporters.motion_file import load_motion
from tests.sidecars import sidecar
from tests.speech import speech_like, write_wav

pytestmark = [pytest.mark.timeout(300)]


def test_rows_spread_over_two_sidecars_and_match_an_in_process_batch(tmp_path):
    lines = ["audio,name,seed,size,exports"]
    for i in range(5):
        write_wav(tmp_path / f"l{i}.wav", speech_like(1.0 + 0.2 * i, seed=i))
        lines.append(f"l{i}.wav,,{i},64,livelink")
    lines.append("l0.wav,odd,0,65,")  # odd size: refused by the sidecar route like locally
    (tmp_path / "m.csv").write_text("\n".join(lines) + "\n")
    with sidecar() as one, sidecar(devices=("cpu:0", "cpu:1"), jobs_per_device=2) as two:
        assert sidecar_slots(SidecarTarget(one.address)) == 1 and sidecar_slots(SidecarTarget(two.address)) == 4  # 2 devices x 2 jobs
        code = main(["-q", "batch", str(tmp_path / "m.csv"), "-o", str(tmp_path / "remote"), "--engine", "lite",
                     "--sidecar", one.address, two.address])
    assert code == 1
    assert main(["-q", "batch", str(tmp_path / "m.csv"), "-o", str(tmp_path / "local"), "--engine", "lite"]) == 1
    report = json.loads((tmp_path / "remote/batch_report.json").read_text())
    assert report["backend"] == f"sidecar {one.address} {two.address}"
    assert [row["status"] for row in report["rows"]] == ["done"] * 5 + ["failed"]
    used = {json.loads((tmp_path / f"remote/l{i}.batch.json").read_text())["sidecar"] for i in range(5)}
    assert used == {one.address, two.address}
    for i in range(5):
        here, there = load_motion(tmp_path / f"local/l{i}.motion.npz"), load_motion(tmp_path / f"remote/l{i}.motion.npz")
        for field in ("pose", "blink", "arkit", "visemes"):
            assert np.array_equal(getattr(here, field), getattr(there, field)), (i, field)
        assert (tmp_path / f"local/l{i}.livelink.csv").read_bytes() == (tmp_path / f"remote/l{i}.livelink.csv").read_bytes()
        assert (tmp_path / f"local/l{i}.mp4").read_bytes() == (tmp_path / f"remote/l{i}.mp4").read_bytes()


def test_an_unreachable_sidecar_is_a_clear_error(tmp_path):
    from talkbridge.core.errors import InputError

    with pytest.raises(InputError, match="cannot reach the sidecar at tcp://127.0.0.1:9"):
        SidecarBackend([SidecarTarget("tcp://127.0.0.1:9")])


def test_sigterm_cancels_rows_in_flight_on_the_sidecars(tmp_path):
    from tests.test_batch_runs import eight_rows, terminate_after_first_row

    manifest, out = eight_rows(tmp_path, 4.0), tmp_path / "out"
    with sidecar(devices=("cpu:0", "cpu:1")) as server:
        args = [str(manifest), "--engine", "lite", "--sidecar", server.address]
        done = terminate_after_first_row(args, out)
        assert main(["-q", "batch", *args, "-o", str(out)]) == 0  # the sidecar is fine: the cancelled jobs ended
        skipped = {row["name"] for row in json.loads((out / "batch_report.json").read_text())["rows"] if row["status"] == "skipped"}
        assert skipped == done
