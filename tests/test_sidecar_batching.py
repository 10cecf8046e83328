"""Cross-job batching in the sidecar: concurrent SadTalker jobs on one device share render passes, and
every job's motion is exactly that of the same job run alone, and its frames are within last-bit
rounding of them (``assert_frames_match``).

Checkpoints in the official layout (recipe weights) with the renderer narrowed to the tiny test
networks, one torch thread in the worker (where a fixed-size pass makes a row independent of its
neighbours), three jobs that differ in seed, expression scale and free-view yaw.
"""

from __future__ import annotations

import json
import logging
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from talkbridge.bridge import protocol as p
from talkbridge.bridge.client import Client
from talkbridge.bridge.jobs import sharing_defaults
from tests.render_helpers import assert_frames_match
from tests.sidecars import sidecar

pytestmark = pytest.mark.timeout(600)

JOBS = [
    {"seed": 1, "expression_scale": 1.0},
    {"seed": 2, "expression_scale": 1.5, "yaw": [-10, 10]},
    {"seed": 3, "expression_scale": 0.5, "still": True},
]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    from tests.render_helpers import portrait_job_inputs

    made = portrait_job_inputs(tmp_path_factory.mktemp("batching"), 0.4, seed=7, render=False)
    return made.checkpoints, made.portrait.read_bytes(), made.speech.read_bytes(), made.landmarks.tolist()


def _submit(client: Client, inputs, options: dict):
    _, portrait, speech, landmarks = inputs
    return client.submit("sadtalker", audio=speech, image=portrait, options={**options, "landmarks": landmarks}, render_size=256)


@pytest.mark.slow
def test_concurrent_jobs_share_passes_and_match_their_solo_runs(inputs, tmp_path):
    checkpoints = inputs[0]
    record = tmp_path / "passes.jsonl"
    settings = {"batch_frames": 4, "batch_wait_ms": 50}
    with sidecar(
        "tests.sidecars:tiny_sadtalker_runner", jobs_per_device=3, checkpoint_dir=str(checkpoints), seed=4,
        sadtalker_settings=settings, pass_record=str(record),
    ) as server:
        client = Client(server.address)
        try:
            client.connect()
            handles = [_submit(client, inputs, options) for options in JOBS]  # all three in flight at once
            # Each stream is read as it comes, as a real client does: reading them one after another
            # leaves the later jobs' chunks untaken, and a slow machine then trips the stall guard.
            with ThreadPoolExecutor(max_workers=len(handles)) as readers:
                together = list(readers.map(lambda handle: handle.result(), handles))
            shared_passes = [json.loads(line) for line in record.read_text().splitlines()]
            alone = [_submit(client, inputs, options).result() for options in JOBS]  # one at a time
        finally:
            client.close()
    for options, mixed, solo in zip(JOBS, together, alone):
        assert mixed.final.type == p.DONE and solo.final.type == p.DONE, (mixed.final.body, solo.final.body)
        frames = mixed.array("frames")
        assert frames.shape[0] == 10 and frames.dtype == np.uint8
        assert_frames_match(frames, solo.array("frames"), str(options))
        for name in ("expression", "pose"):
            assert np.array_equal(mixed.array(name), solo.array(name)), name
    distinct = [np.array_equal(together[0].array("frames"), result.array("frames")) for result in together[1:]]
    assert not any(distinct), "the jobs should differ, or the comparison proves nothing"
    assert any(len(entry["frames"]) > 1 for entry in shared_passes), "no pass held frames of two jobs"
    assert all(sum(entry["frames"].values()) + entry["padding"] == 4 for entry in shared_passes)
    assert sum(sum(entry["frames"].values()) for entry in shared_passes) == 30


def test_sharing_defaults_batch_on_gpus_and_stay_solo_on_cpus():
    assert sharing_defaults(("cpu",), None, None) == (1, 0)
    assert sharing_defaults(("cuda:0", "cuda:1"), None, None) == (4, 8)
    assert sharing_defaults(("cpu", "cuda:0"), None, None) == (1, 0)  # a CPU in the list: one job per device
    assert sharing_defaults(("cpu",), 3, None) == (3, 8)  # jobs that share a device share passes
    assert sharing_defaults(("cuda",), 2, 0) == (2, 0)  # ... unless batching is turned off


def test_serve_passes_the_batching_settings_to_the_workers(monkeypatch, caplog, tmp_path):
    from talkbridge.cli import main
    from tests.sidecars import record_serve

    built = record_serve(monkeypatch)

    def served(*flags: str) -> tuple[int, dict]:
        assert main(["serve", "--bind", "tcp://127.0.0.1:0", *flags]) == 0
        runner, config = built[-1]
        runner.close()
        return config.jobs_per_device, runner.spec.kwargs["engine_kwargs"]["sadtalker"]

    jobs, settings = served("--devices", "cuda:0")
    assert jobs == 4 and settings["batch_frames"] == 8 and settings["batch_wait_ms"] == 5.0
    jobs, settings = served()
    assert jobs == 1 and settings["batch_frames"] == 0
    jobs, settings = served("--jobs-per-device", "2", "--batch-frames", "16", "--batch-wait-ms", "2.5")
    assert jobs == 2 and settings["batch_frames"] == 16 and settings["batch_wait_ms"] == 2.5
    config = tmp_path / "engines.json"
    config.write_text(json.dumps({"sadtalker": {"batch_frames": 12}}))
    assert served("--devices", "cuda", "--engine-config", str(config))[1]["batch_frames"] == 12  # the file's choice stays
    assert served("--devices", "cuda", "--engine-config", str(config), "--batch-frames", "4")[1]["batch_frames"] == 4  # a flag wins
    with caplog.at_level(logging.ERROR):
        assert main(["serve", "--batch-frames", "-3"]) == 1
    assert "option 'batch_frames' (--batch-frames) must be within [0, 256], got -3" in caplog.text
