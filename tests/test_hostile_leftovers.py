"""Leftovers after SIGKILL: reruns remove their stale partial files; `serve` and Ray actors sweep the
folders of their dead predecessors (only those whose owner process is gone)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time

import cv2
import numpy as np
import pytest

from talkbridge.exporters.atomic import atomic_output
from tests.speech import speech_like, write_wav
from tests.test_generate_interrupts import _generate_until_encoding


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_writer_removes_the_stale_partials_of_its_own_target_only(tmp_path):
    stale = [tmp_path / ".clip.ab12cd34.partial.mp4", tmp_path / ".clip.zz_99xyz.partial.mp4"]
    kept = [
        tmp_path / ".clip.motion.ab12cd34.partial.npz",  # another target's partial
        tmp_path / ".clip.b.ab12cd34.partial.mp4",  # the partial of clip.b.mp4
        tmp_path / ".other.ab12cd34.partial.mp4",
        tmp_path / "clip.ab12cd34.partial.mp4",  # not hidden: not ours
    ]
    for path in stale + kept:
        path.write_bytes(b"half a file")
    with atomic_output(tmp_path / "clip.mp4") as temp:
        temp.write_bytes(b"whole")
    assert not any(path.exists() for path in stale)
    assert all(path.exists() for path in kept)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("leftovers")
    portrait = folder / "portrait.png"
    cv2.imwrite(str(portrait), np.full((64, 64, 3), 128, np.uint8))
    return portrait, write_wav(folder / "talk.wav", speech_like(6.0, seed=5))


def test_a_rerun_after_sigkill_leaves_no_partial_files(inputs, tmp_path):
    from talkbridge.cli import main

    out = tmp_path / "out"
    process = _generate_until_encoding(inputs, out)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=60)
    assert [p.name for p in out.iterdir() if ".partial" in p.name], "SIGKILL left no partial files to clean"
    portrait, speech = inputs
    assert main(["generate", str(portrait), str(speech), "-o", str(out), "--engine", "lite", "--size", "64"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["talk.motion.json", "talk.motion.npz", "talk.mp4"]


@pytest.fixture
def temp_root(monkeypatch):
    """A temp folder of its own, with a short path: worker sockets live there (ipc paths max 107 bytes)."""
    import shutil
    from pathlib import Path

    root = Path(tempfile.mkdtemp(prefix="tb-", dir="/tmp"))
    monkeypatch.setenv("TMPDIR", str(root))
    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    yield root
    shutil.rmtree(root, ignore_errors=True)


def test_serve_sweeps_the_worker_folders_of_a_sigkilled_server(temp_root):
    from talkbridge.bridge.server import Server, ServerConfig
    from talkbridge.bridge.synthetic import SyntheticRunner

    dead, alive = _dead_pid(), os.getpid()
    stale, live = temp_root / f"talkbridge-worker-{dead}-ab12cd34", temp_root / f"talkbridge-worker-{alive}-ef56gh78"
    for folder in (stale, live):
        folder.mkdir()
        (folder / "worker.sock").write_bytes(b"")
    server = Server(SyntheticRunner(), ServerConfig(bind="tcp://127.0.0.1:*")).start()
    server.stop()
    assert not stale.exists() and live.exists()


def test_worker_folders_carry_the_server_pid(temp_root):
    from talkbridge.bridge.workers import ProcessRunner, WorkerSpec

    runner = ProcessRunner(WorkerSpec("talkbridge.bridge.synthetic:SyntheticRunner", {}), ("cpu",)).start()
    try:
        names = [p.name for p in temp_root.iterdir() if p.name.startswith("talkbridge-worker-")]
    finally:
        runner.close()
    assert names and all(name.startswith(f"talkbridge-worker-{os.getpid()}-") for name in names)


def test_a_ray_actor_sweeps_dead_actors_job_folders_and_names_its_own(temp_root, tmp_path):
    from talkbridge.cluster.actors import RowActor, pack_request
    from talkbridge.core.jobs import JobOptions, JobRequest

    dead = _dead_pid()
    stale = temp_root / f"talkbridge-ray-job-{dead}-ab12cd34"
    stale.mkdir()
    (stale / "audio.wav").write_bytes(b"someone's speech")
    live = temp_root / f"talkbridge-ray-job-{os.getpid()}-keep1234"
    live.mkdir()
    actor = RowActor()
    assert not stale.exists() and live.exists()
    audio = write_wav(tmp_path / "a.wav", speech_like(0.3))
    stream = actor.run(*pack_request(JobRequest(audio, options=JobOptions(engine="lite"))), render=False)
    next(stream)  # the job's folder exists while it runs
    mine = [p.name for p in temp_root.iterdir() if p.name.startswith(f"talkbridge-ray-job-{os.getpid()}-") and p != live]
    stream.close()
    assert len(mine) == 1
