"""`--ray local` from the command line: Ray starts in-process for the run and stops at its end; and
`talkbridge serve --ray local` answers `ping` with the cluster's devices; SIGTERM mid-batch on Ray
loses only the rows in flight. Plus the pool's sizing rules."""

from __future__ import annotations

import contextlib
import io
import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from talkbridge.cluster.pool import actor_resources, default_size
from tests.ray_harness import ROOT, run_scenario
from tests.speech import speech_like, write_wav


def test_actors_take_a_gpu_each_where_there_are_gpus_else_a_cpu_per_node():
    gpu_cluster = {"nodes": 3, "job_nodes": 2, "cpus": 64, "gpus": 8}
    cpu_cluster = {"nodes": 3, "job_nodes": 2, "cpus": 64, "gpus": 0}
    assert actor_resources(gpu_cluster) == {"num_gpus": 1, "num_cpus": 1} and default_size(gpu_cluster) == 8
    assert actor_resources(cpu_cluster) == {"num_cpus": 1} and default_size(cpu_cluster) == 2


def test_the_cli_refuses_mixed_backends(tmp_path):
    from talkbridge.cli import main

    write_wav(tmp_path / "a.wav", speech_like(0.5))
    args = ["-q", "batch", str(tmp_path / "a.wav").replace("a.wav", ""), "-o", str(tmp_path / "out")]
    assert main(args + ["--ray", "local", "--sidecar", "tcp://127.0.0.1:9"]) == 1
    assert main(args + ["--ray-actors", "2"]) == 1
    assert main(args + ["--server-key", str(tmp_path / "k.key")]) == 1
    assert not (tmp_path / "out").exists()


def scenario(payload: dict) -> dict:
    import ray

    from talkbridge.bridge.client_connect import wait_for_server
    from talkbridge.cli import main

    folder = Path(payload["folder"])
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main(["-q", "batch", str(folder / "clips"), "-o", str(folder / "out"), "--engine", "lite", "--size", "64",
                     "--ray", "local", "--exports", "curves"])
    result = {"batch_exit": code, "batch_printed": printed.getvalue(), "ray_left_running": ray.is_initialized()}
    # SIGTERM while rows run on Ray: rows in flight are cancelled, finished ones kept, Ray stopped.
    from tests.test_batch_runs import eight_rows, terminate_after_first_row

    (folder / "many").mkdir()
    manifest = eight_rows(folder / "many", 3.0)
    result["interrupted_done"] = sorted(terminate_after_first_row([str(manifest), "--engine", "lite", "--ray", "local"],
                                                                  folder / "many_out"))
    server = subprocess.Popen(
        [sys.executable, "-m", "talkbridge.cli", "serve", "--ray", "local", "--bind", "tcp://127.0.0.1:5599"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        welcome = wait_for_server("tcp://127.0.0.1:5599", timeout=120, process=server)
        result["devices"] = welcome["capabilities"]["devices"]
        result["cluster"] = welcome["capabilities"]["cluster"]
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    result["serve_exit"] = server.returncode
    return result


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_ray_local_batch_and_serve_from_the_command_line(tmp_path):
    (tmp_path / "clips").mkdir()
    for i in range(3):
        write_wav(tmp_path / "clips" / f"c{i}.wav", speech_like(0.8, seed=i))
    result = run_scenario("tests.test_cluster_local:scenario", {"folder": str(tmp_path)}, timeout=350)
    assert result["batch_exit"] == 0 and "3 rows: 3 done, 0 skipped, 0 failed" in result["batch_printed"]
    assert 1 <= len(result["interrupted_done"]) < 8  # terminate_after_first_row checked what the interrupted run left
    assert result["ray_left_running"] is False  # --ray local stops the Ray it started
    report = json.loads((tmp_path / "out/batch_report.json").read_text())
    assert report["backend"].startswith("ray local (1 actors, 1 nodes")
    assert sorted(p.name for p in (tmp_path / "out").iterdir() if p.name.startswith("c1")) == [
        "c1.batch.json", "c1.curves.csv", "c1.motion.json", "c1.motion.npz", "c1.mp4"]
    assert len(result["devices"]) == 1 and result["devices"][0].startswith("ray:0@")
    assert result["cluster"]["nodes"] == 1 and result["cluster"]["actors"] == 1
    assert result["serve_exit"] in (130, -signal.SIGINT)
    assert result["interfaces"] == ["lo"]
