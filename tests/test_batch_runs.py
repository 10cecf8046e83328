"""`talkbridge batch` in this process: outputs, the report, exit status, resume, redo, interrupts."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from talkbridge.api import run_job
from talkbridge.batch.backends import InProcessBackend
from talkbridge.batch.manifest import read_manifest
from talkbridge.batch.runner import run_batch
from talkbridge.cli import main
from talkbridge.core.jobs.options import JobOptions
from talkbridge.core.jobs.request import JobRequest
from talkbridge.exporters.job_files import OutputPlan
from talkbridge.exporters.motion_file import load_motion
from tests.helpers import statuses
from tests.speech import speech_like, write_wav

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def project(tmp_path):
    (tmp_path / "clips").mkdir()
    for i, seconds in enumerate((1.0, 1.4, 0.8)):
        write_wav(tmp_path / "clips" / f"line{i}.wav", speech_like(seconds, seed=i))
    (tmp_path / "clips" / "broken.wav").write_bytes(b"RIFF....WAVEjunk")
    manifest = tmp_path / "lines.csv"
    manifest.write_text(
        "audio,name,seed,size,exports\n"
        "clips/line0.wav,,1,64,livelink\n"
        "clips/line1.wav,second,2,64,curves\n"
        "clips/line2.wav,,3,64,\n"
        "clips/broken.wav,,0,64,\n"
        "clips/line0.wav,bad_style,0,65,\n"
    )
    return tmp_path


def report(out: Path) -> dict:
    return json.loads((out / "batch_report.json").read_text())


def mtimes(out: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.name != "batch_report.json"}


def test_rows_report_resume_and_redo(project, capsys):
    out = project / "out"
    assert main(["-q", "batch", str(project / "lines.csv"), "-o", str(out), "--engine", "lite"]) == 1
    assert statuses(out) == {"line0": "done", "second": "done", "line2": "done", "broken": "failed", "bad_style": "failed"}
    rows = {row["name"]: row for row in report(out)["rows"]}
    assert rows["line0"]["files"] == {"livelink": "line0.livelink.csv", "motion": "line0.motion.npz",
                                      "summary": "line0.motion.json", "video": "line0.mp4"}
    assert rows["second"]["files"]["curves"] == "second.curves.csv" and rows["line0"]["seconds"] > 0
    assert rows["broken"]["reason"].startswith("lines.csv:5: ") and "cannot decode audio" in rows["broken"]["reason"]
    assert rows["bad_style"]["reason"] == "lines.csv:6: option 'size' (--size) must be an even number of pixels, got 65"
    assert report(out)["counts"] == {"done": 3, "skipped": 0, "failed": 2}
    assert "failed broken: lines.csv:5" in capsys.readouterr().out
    for name in ("line0", "second", "line2"):
        assert (out / f"{name}.batch.json").is_file() and (out / f"{name}.mp4").is_file()
    assert not [p for p in out.iterdir() if "partial" in p.name or p.name.startswith("broken")]

    # A row's files are what run_job (generate) writes for the same request.
    alone = run_job(JobRequest(project / "clips/line1.wav", options=JobOptions(engine="lite", seed=2, size=64)),
                    OutputPlan(project / "alone", "second"))
    assert np.array_equal(load_motion(alone.motion).arkit, load_motion(out / "second.motion.npz").arkit)
    assert (project / "alone/second.mp4").read_bytes() == (out / "second.mp4").read_bytes()

    before = mtimes(out)
    assert main(["-q", "batch", str(project / "lines.csv"), "-o", str(out), "--engine", "lite"]) == 1
    assert statuses(out) == {"line0": "skipped", "second": "skipped", "line2": "skipped", "broken": "failed", "bad_style": "failed"}
    assert mtimes(out) == before  # nothing complete was made again

    # Changed: one row's option, another's input audio, a third's output damaged.
    text = (project / "lines.csv").read_text().replace("clips/line1.wav,second,2,", "clips/line1.wav,second,5,")
    (project / "lines.csv").write_text(text)
    write_wav(project / "clips/line2.wav", speech_like(0.8, seed=9))
    with open(out / "line0.livelink.csv", "a") as handle:
        handle.write("tampered\n")
    assert main(["-q", "batch", str(project / "lines.csv"), "-o", str(out), "--engine", "lite"]) == 1
    assert statuses(out) == {"line0": "done", "second": "done", "line2": "done", "broken": "failed", "bad_style": "failed"}
    assert json.loads((out / "second.batch.json").read_text())["inputs"]["options"]["seed"] == 5
    assert "tampered" not in (out / "line0.livelink.csv").read_text()


def test_all_good_rows_exit_zero_and_a_folder_takes_the_portrait(project):
    from tests.heads import arkit_head
    from talkbridge.exporters.gltf import write_head_glb

    (project / "clips/broken.wav").unlink()
    head = write_head_glb(arkit_head(), project / "head.glb")
    out = project / "out"
    code = main(["-q", "batch", str(project / "clips"), "-o", str(out), "--engine", "lite", "--size", "64",
                 "--exports", "glb", "--head", str(head)])
    assert code == 0 and statuses(out) == {"line0": "done", "line1": "done", "line2": "done"}
    assert (out / "line1.glb").is_file()


def test_duplicate_names_stop_the_batch_before_any_output(project):
    (project / "dup.csv").write_text("audio,name\nclips/line0.wav,a\nclips/line1.wav,a\n")
    assert main(["-q", "batch", str(project / "dup.csv"), "-o", str(project / "out")]) == 1
    assert not (project / "out").exists()


class InterruptingBackend(InProcessBackend):
    """Ctrl-C arrives while the second row runs (after its video started)."""

    def __init__(self) -> None:
        super().__init__()
        self.rows = 0

    def run_row(self, row, plan, stop):
        self.rows += 1
        if self.rows == 2:
            raise KeyboardInterrupt
        return super().run_row(row, plan, stop)


def interrupted_batch(project: Path, n_rows: int, backend) -> tuple[Path, list, dict]:
    """The first ``n_rows`` of lines.csv run into ``project/out`` until Ctrl-C: (out, rows, its report)."""
    out = project / "out"
    rows = read_manifest(project / "lines.csv")[:n_rows]
    with pytest.raises(KeyboardInterrupt):
        run_batch(rows, out, backend, progress=False)
    content = report(out)
    assert content["interrupted"] is True
    return out, rows, content


def test_ctrl_c_loses_only_the_row_in_flight(project):
    out, rows, content = interrupted_batch(project, 3, InterruptingBackend())
    assert statuses(out) == {"line0": "done", "second": "failed", "line2": "failed"}
    assert "interrupted" in content["rows"][1]["reason"]
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith("line0")) == ["batch_report.json"]
    run_batch(rows, out, InProcessBackend(), progress=False)
    assert statuses(out) == {"line0": "skipped", "second": "done", "line2": "done"}


def test_an_interrupt_just_after_a_rows_record_still_reports_it_done(project, monkeypatch):
    """The signal can land between a row's complete ledger record and its outcome: the report must
    follow the record on disk (as a rerun does), not call the row interrupted."""
    import talkbridge.batch.runner as runner

    real_write = runner.write_ledger

    def write_then_interrupt(*args, **kwargs):
        real_write(*args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "write_ledger", write_then_interrupt)
    out, rows, content = interrupted_batch(project, 2, InProcessBackend())
    assert statuses(out) == {"line0": "done", "second": "failed"}
    assert content["rows"][0]["files"]["livelink"] == "line0.livelink.csv"
    monkeypatch.setattr(runner, "write_ledger", real_write)
    run_batch(rows, out, InProcessBackend(), progress=False)
    assert statuses(out) == {"line0": "skipped", "second": "done"}


def eight_rows(folder: Path, seconds: float) -> Path:
    lines = ["audio,seed,size"]
    for i in range(8):
        write_wav(folder / f"l{i}.wav", speech_like(seconds, seed=i))
        lines.append(f"l{i}.wav,{i},64")
    (folder / "m.csv").write_text("\n".join(lines) + "\n")
    return folder / "m.csv"


def complete_rows(out: Path) -> set[str]:
    """Rows whose ledger record says complete (a row in progress has an incomplete one)."""
    names = set()
    for path in out.glob("*.batch.json"):
        with contextlib.suppress(OSError, ValueError):
            if json.loads(path.read_text()).get("complete") is True:
                names.add(path.name[: -len(".batch.json")])
    return names


def terminate_after_first_row(batch_args: list[str], out: Path) -> set[str]:
    """Run `talkbridge batch` in a child, SIGTERM it once a row is recorded; check what it left; the done rows."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen([sys.executable, "-m", "talkbridge.cli", "-q", "batch", *batch_args, "-o", str(out)], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               preexec_fn=lambda: signal.signal(signal.SIGTERM, signal.SIG_DFL))
    # The signal must land after a row is complete and before the batch is: wait for the first row
    # (a cold start on a loaded machine can take long; the guard only stops a hung batch).
    deadline = time.monotonic() + 200
    while not complete_rows(out) and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.02)
    if not complete_rows(out):
        process.kill()
        _, err = process.communicate(timeout=60)
        raise AssertionError(f"no row finished before the signal (exit {process.returncode}): {err.decode()[-2000:]}")
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 143, err.decode()[-2000:]  # SIGTERM, as for generate (130 is Ctrl-C)
    content = report(out)
    assert content["interrupted"] is True
    done = {row["name"] for row in content["rows"] if row["status"] == "done"}
    assert 1 <= len(done) < len(content["rows"])
    assert {p.name.split(".")[0] for p in out.glob("*.batch.json")} == done
    assert not [p.name for p in out.iterdir() if "partial" in p.name]
    assert not [p.name for p in out.iterdir() if p.name.split(".")[0] not in done and p.name != "batch_report.json"]
    return done


@pytest.mark.timeout(300)
def test_sigterm_mid_batch_keeps_finished_rows_and_leaves_no_partial_files(tmp_path):
    manifest, out = eight_rows(tmp_path, 2.0), tmp_path / "out"
    done = terminate_after_first_row([str(manifest), "--engine", "lite"], out)
    assert main(["-q", "batch", str(manifest), "-o", str(out), "--engine", "lite"]) == 0
    assert {row["name"] for row in report(out)["rows"] if row["status"] == "skipped"} == done


def test_a_row_that_failed_part_way_is_replaced_on_the_rerun(project):
    from talkbridge.exporters.gltf import write_head_glb
    from tests.heads import arkit_head

    (project / "head.glb").write_bytes(b"glTF but broken")
    (project / "one.csv").write_text("audio,seed,size,exports,head\nclips/line0.wav,1,64,glb,head.glb\n")
    out = project / "out"
    args = ["-q", "batch", str(project / "one.csv"), "-o", str(out), "--engine", "lite"]
    assert main(args) == 1
    left = sorted(p.name for p in out.iterdir())
    assert left == ["batch_report.json", "line0.batch.json", "line0.motion.json", "line0.motion.npz", "line0.mp4"]
    assert json.loads((out / "line0.batch.json").read_text())["complete"] is False  # ours, not finished
    write_head_glb(arkit_head(), project / "head.glb", overwrite=True)
    assert main(args) == 0 and statuses(out) == {"line0": "done"} and (out / "line0.glb").is_file()
    (out / "stranger.mp4").write_bytes(b"someone else's")
    (project / "two.csv").write_text("audio,name,size\nclips/line1.wav,stranger,64\n")
    assert main(["-q", "batch", str(project / "two.csv"), "-o", str(out), "--engine", "lite"]) == 1
    assert "already exists; pass --overwrite" in report(out)["rows"][0]["reason"]
    assert (out / "stranger.mp4").read_bytes() == b"someone else's" and not (out / "stranger.batch.json").exists()
