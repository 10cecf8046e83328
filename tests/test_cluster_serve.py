"""`talkbridge serve --ray`: the ZeroMQ gateway runs jobs on a 2-node Ray cluster, clients unchanged.

One cluster start-up (in a loopback-only namespace, tests/ray_harness.py) covers: `ping` and the
welcome report the cluster's devices; `generate --sidecar`'s route (run_job with a sidecar target)
writes the in-process files; the ordinary client streams chunks with credit; a cancel frees the
actor for the next job; bad input comes back as the usual bad_input error.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest

from tests.ray_harness import local_cluster, run_scenario
from tests.speech import speech_like, write_wav

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def scenario(payload: dict) -> dict:
    from talkbridge.api import run_job
    from talkbridge.bridge import protocol as p
    from talkbridge.bridge.client import Client
    from talkbridge.bridge.server import Server, ServerConfig
    from talkbridge.bridge.workers import WorkerSpec
    from talkbridge.cli import main
    from talkbridge.cli.sidecar_target import SidecarTarget
    from talkbridge.cluster.runner import RayRunner
    from talkbridge.core.jobs import JobOptions, JobRequest
    from talkbridge.exporters.job_files import OutputPlan

    folder = Path(payload["folder"])
    request = JobRequest(folder / "hello.wav", options=JobOptions(engine="lite", seed=4, size=64))
    run_job(request, OutputPlan(folder / "local", "hello"))
    result: dict = {}
    with local_cluster(nodes=2, cpus=2) as cluster:
        runner = RayRunner(cluster.address, WorkerSpec("talkbridge.bridge.jobs:EngineRunner"))
        try:
            with Server(runner, ServerConfig(bind="tcp://127.0.0.1:*", devices=runner.devices)) as server:
                printed = io.StringIO()
                with contextlib.redirect_stdout(printed):
                    result["ping_exit"] = main(["ping", server.address])
                result["ping"] = printed.getvalue()
                with Client(server.address) as client:
                    result["capabilities"] = client.connect()["capabilities"]
                    streamed = client.submit("lite", audio=folder / "hello.wav", render_size=64, options={"seed": 4}).result()
                    result["streamed"] = {"final": streamed.final.type, "chunks": len(streamed.chunks),
                                          "frames": int(streamed.array("frames").shape[0]),
                                          "frame_shape": list(streamed.array("frames").shape[1:])}
                    long_job = client.submit("lite", audio=folder / "long.wav", render_size=64)
                    for event in long_job:
                        if event.type == p.CHUNK:
                            long_job.cancel()
                            break
                    result["cancelled"] = [event.type for event in long_job][-1]
                    bad = client.submit("lite", audio=folder / "broken.wav").result().final
                    result["bad"] = {"type": bad.type, "code": bad.code, "message": bad.body.get("message", "")}
                    after = [client.submit("lite", audio=folder / "hello.wav").result().final.type for _ in range(2)]
                    result["after_cancel"] = after
                run_job(request, OutputPlan(folder / "remote", "hello"), sidecar=SidecarTarget(server.address))
        finally:
            runner.close()
    return result


@pytest.fixture(scope="module")
def outcome(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cluster_serve")
    write_wav(folder / "hello.wav", speech_like(2.0, seed=4))
    write_wav(folder / "long.wav", speech_like(30.0, seed=5))
    (folder / "broken.wav").write_bytes(b"RIFF....WAVEjunk")
    return folder, run_scenario("tests.test_cluster_serve:scenario", {"folder": str(folder)}, timeout=500)


def test_ping_reports_the_cluster_devices(outcome):
    _, result = outcome
    assert result["interfaces"] == ["lo"] and result["ping_exit"] == 0
    capabilities = result["capabilities"]
    devices = capabilities["devices"]
    assert len(devices) == 2 and all(d.startswith(("ray:0@", "ray:1@")) and d.endswith("/cpu") for d in devices)
    assert len({d.split("@")[1] for d in devices}) == 2  # one actor on each node
    assert capabilities["cluster"] == {"nodes": 3, "job_nodes": 2, "cpus": 4, "gpus": 0, "actors": 2}
    assert f"devices: {', '.join(devices)}" in result["ping"]
    assert "lite" in capabilities["render_engines"]


def test_the_ordinary_client_streams_a_job_from_the_cluster(outcome):
    folder, result = outcome
    assert result["streamed"] == {"final": "done", "chunks": result["streamed"]["chunks"], "frames": 50, "frame_shape": [64, 64, 3]}
    assert result["streamed"]["chunks"] >= 2


def test_generate_sidecar_route_through_the_cluster_writes_the_local_files(outcome):
    from tests.test_job_routes import assert_same_outputs

    folder, _ = outcome
    metadata = assert_same_outputs(folder / "local", folder / "remote", "hello")
    assert metadata["route"] == "sidecar"
    assert json.loads((folder / "remote/hello.motion.json").read_text())["frames"] == 50


def test_cancel_frees_the_actor_and_bad_input_is_bad_input(outcome):
    _, result = outcome
    assert result["cancelled"] == "cancelled"
    assert result["after_cancel"] == ["done", "done"]
    assert result["bad"]["type"] == "error" and result["bad"]["code"] == "bad_input"
    assert "cannot decode audio" in result["bad"]["message"]
