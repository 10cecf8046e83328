"""Every route of a job writes the same files: `generate` here, `generate --sidecar`, the Python API.

The sidecars run in this process on loopback. Arrays must be identical and metadata identical except
the fields that name the route (``route``, ``sidecar``). The SadTalker case uses checkpoints in the
official layout with the renderer narrowed to the tiny test configuration, on both sides.
"""

from __future__ import annotations

import json
import logging
import subprocess
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
import scipy.io

from talkbridge.api import run_job
from talkbridge.bridge import protocol as p
from talkbridge.bridge.client import Client
from talkbridge.cli import main
from talkbridge.cli.sidecar_target import SidecarTarget
from talkbridge.core.errors import InputError, TalkbridgeError
from talkbridge.core.jobs import JobOptions, JobRequest
from talkbridge.exporters.job_files import OutputPlan
from tests.helpers import decoded_frames
from tests.sidecars import sidecar

pytestmark = [pytest.mark.usefixtures("one_torch_thread"), pytest.mark.timeout(300)]

ROUTE_FIELDS = ("route", "sidecar")



def audio_streams(path: Path) -> int:
    info = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True, text=True).stderr
    return info.count("Audio: aac")


def without_route(metadata: dict) -> dict:
    return {key: value for key, value in metadata.items() if key not in ROUTE_FIELDS}


def assert_same_outputs(expected_dir: Path, got_dir: Path, name: str) -> dict:
    """Same files, same arrays, same metadata but for the route; returns the got motion's metadata."""
    assert sorted(p.name for p in expected_dir.iterdir()) == sorted(p.name for p in got_dir.iterdir())
    with np.load(expected_dir / f"{name}.motion.npz") as a, np.load(got_dir / f"{name}.motion.npz") as b:
        assert sorted(a.files) == sorted(b.files)
        for key in a.files:
            if key != "metadata_json":
                assert np.array_equal(a[key], b[key]), key
        meta_a, meta_b = json.loads(str(a["metadata_json"])), json.loads(str(b["metadata_json"]))
    assert without_route(meta_a) == without_route(meta_b)
    summary_a = json.loads((expected_dir / f"{name}.motion.json").read_text())
    summary_b = json.loads((got_dir / f"{name}.motion.json").read_text())
    summary_a["metadata"], summary_b["metadata"] = without_route(summary_a["metadata"]), without_route(summary_b["metadata"])
    assert summary_a == summary_b
    if (expected_dir / f"{name}.mat").exists():
        assert np.array_equal(scipy.io.loadmat(expected_dir / f"{name}.mat")["coeff_3dmm"], scipy.io.loadmat(got_dir / f"{name}.mat")["coeff_3dmm"])
    assert np.array_equal(decoded_frames(expected_dir / f"{name}.mp4"), decoded_frames(got_dir / f"{name}.mp4"))
    assert audio_streams(got_dir / f"{name}.mp4") == 1
    return meta_b


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    from tests.render_helpers import portrait_job_inputs

    made = portrait_job_inputs(tmp_path_factory.mktemp("routes"), 1.0, seed=4, checkpoints=False, speech_name="hello.wav")
    folder, portrait, speech, marks = made.folder, made.portrait, made.speech, made.landmarks_file
    transcript = folder / "hello.txt"
    transcript.write_text("hello there, how are you today\n", encoding="utf-8")
    return portrait, speech, marks, transcript


def test_lite_routes_write_the_same_files(inputs, tmp_path):
    """Size 128 (refused by the sidecar before the job layer) works on every route."""
    portrait, speech, _, transcript = inputs
    flags = ["--engine", "lite", "--size", "128", "--seed", "3", "--pose-intensity", "0.5", "--transcript", str(transcript)]
    assert main(["-q", "generate", str(portrait), str(speech), "-o", str(tmp_path / "local"), *flags]) == 0
    with sidecar() as server:
        assert main(["-q", "generate", str(portrait), str(speech), "-o", str(tmp_path / "remote"), *flags, "--sidecar", server.address]) == 0
    options = JobOptions(engine="lite", size=128, seed=3, pose_intensity=0.5, transcript=transcript.read_text(encoding="utf-8"))
    request = JobRequest(speech, portrait, options, transcript_file=transcript)
    result = run_job(request, OutputPlan(tmp_path / "api", "hello"))
    assert result.engine == "lite" and result.coefficients is None and result.frames == 25
    assert_same_outputs(tmp_path / "local", tmp_path / "api", "hello")
    metadata = assert_same_outputs(tmp_path / "local", tmp_path / "remote", "hello")
    assert metadata["route"] == "sidecar" and metadata["sidecar"] == server.address
    assert metadata["transcript"] == str(transcript) and metadata["options"]["transcript_given"]
    assert metadata["options"]["size"] == 128 and metadata["size"] == 128
    assert decoded_frames(result.video).shape == (25, 128, 128, 3)


@pytest.mark.slow
def test_sadtalker_routes_write_the_same_files(inputs, tmp_path):
    from talkbridge.core.jobs.cache import EngineCache
    from talkbridge.exporters.coeff_mat import write_coeff_mat
    from talkbridge.exporters.motion_file import load_motion
    from tests.official_checkpoints import write_official_checkpoint_dir
    from tests.render_helpers import tiny_recipe_models

    portrait, speech, marks, _ = inputs
    folder = write_official_checkpoint_dir(tmp_path / "checkpoints", render=False)
    tiny = tiny_recipe_models(seed=5)
    reference = write_coeff_mat(tmp_path / "nod.mat", np.random.default_rng(8).normal(0, 0.2, (15, 70)))
    from talkbridge.core.face.landmarks import load_landmark_file

    options = JobOptions.from_mapping({
        "engine": "sadtalker", "seed": 1, "pose_style": 3, "expression_scale": 0.5, "batch_size": 2,
        "landmarks": load_landmark_file(marks), "device": "cpu",
    })
    request = JobRequest(speech, portrait, options, ref_pose=reference, landmarks_file=marks)
    local_cache = EngineCache(folder)
    local_cache.sadtalker("cpu").provide_renderer(256, "crop", tiny)
    local = run_job(request, OutputPlan(tmp_path / "local", "hello"), cache=local_cache)
    with sidecar("tests.sidecars:tiny_sadtalker_runner", checkpoint_dir=str(folder), seed=5) as server:
        remote = run_job(request, OutputPlan(tmp_path / "remote", "hello"), sidecar=SidecarTarget(server.address))
        flags = ["--engine", "sadtalker", "--seed", "1", "--pose-style", "3", "--expression-scale", "0.5", "--batch-size", "2",
                 "--landmarks", str(marks), "--ref-pose", str(reference), "--device", "cpu", "--sidecar", server.address]
        assert main(["-q", "generate", str(portrait), str(speech), "-o", str(tmp_path / "cli"), *flags]) == 0
    assert local.engine == remote.engine == "sadtalker" and local.frames == remote.frames == 25
    assert_same_outputs(tmp_path / "local", tmp_path / "remote", "hello")
    cli_metadata = assert_same_outputs(tmp_path / "local", tmp_path / "cli", "hello")
    assert cli_metadata["route"] == "sidecar"

    official = scipy.io.loadmat(local.coefficients)["coeff_3dmm"]
    motion = load_motion(local.motion)
    assert official.shape == (25, 70)
    assert np.allclose(motion.expression, official[:, :64] * 0.5, atol=1e-6)  # the scale, applied once
    assert np.array_equal(motion.pose, official[:, 64:])
    assert motion.metadata["expression_scale_applied"] == 0.5 and motion.metadata["options"]["pose_style"] == 3
    assert motion.metadata["crop"]["mode"] == "crop" and motion.first_frame.shape == (73,)


@pytest.mark.parametrize(
    "flag, value, name",
    [("--seed", "-1", "seed"), ("--pose-intensity", "1e300", "pose_intensity"), ("--expression-scale", "0", "expression_scale"),
     ("--batch-size", "65", "batch_size"), ("--size", "4096", "size")],
)
def test_options_are_checked_alike_on_every_route(inputs, tmp_path, caplog, flag, value, name):
    """One definition: the CLI (here and with --sidecar) and the server's wire check give the same words."""
    portrait, speech, _, _ = inputs
    caplog.set_level(logging.ERROR)
    spec_value = float(value) if "." in value or "e" in value else int(value)
    with pytest.raises(InputError) as direct:
        JobOptions.from_mapping({name: spec_value})
    message = str(direct.value)
    assert f"'{name}'" in message
    with sidecar() as server:
        for extra in ([], ["--sidecar", server.address]):
            caplog.clear()
            code = main(["generate", str(portrait), str(speech), "-o", str(tmp_path / "out"), "--engine", "lite", flag, value, *extra])
            assert code == 1 and message in caplog.text
        client = Client(server.address)
        try:
            client.connect()
            wire = {"size": None} if name == "size" else {name: spec_value}
            refused = client.submit("lite", audio=speech, options=wire if name != "size" else {}, render_size=spec_value if name == "size" else None).result()
        finally:
            client.close()
    assert refused.final.type == p.ERROR and refused.final.code == p.E_BAD_INPUT, refused.final.body
    assert message in refused.final.body["message"]
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_a_failed_remote_job_keeps_the_previous_outputs(inputs, tmp_path):
    portrait, speech, _, _ = inputs
    out = tmp_path / "out"
    out.mkdir()
    old = out / "hello.mp4"
    old.write_bytes(b"an earlier good take")
    request = JobRequest(speech, portrait, JobOptions(engine="lite", size=64))
    with sidecar("tests.sidecars:FailingRunner") as server:
        with pytest.raises(TalkbridgeError, match="did not finish the job: .*GPU fell off the bus"):
            run_job(request, OutputPlan(out, "hello", overwrite=True), sidecar=SidecarTarget(server.address))
    assert old.read_bytes() == b"an earlier good take"
    assert sorted(p.name for p in out.iterdir()) == ["hello.mp4"]


def test_the_wire_carries_checked_options_only_where_they_differ(inputs, tmp_path):
    portrait, speech, _, transcript = inputs
    record = tmp_path / "options.jsonl"
    with sidecar("tests.sidecars:RecordingRunner", record=str(record)) as server:
        flags = ["--engine", "lite", "--size", "64", "--seed", "6", "--transcript", str(transcript), "--sidecar", server.address]
        assert main(["-q", "generate", str(portrait), str(speech), "-o", str(tmp_path / "out"), *flags]) == 0
    assert [json.loads(line) for line in record.read_text().splitlines()] == [{"transcript": "hello there, how are you today\n", "seed": 6}]


def test_an_engine_the_sidecar_cannot_render_is_refused_before_any_work(inputs, tmp_path):
    portrait, speech, _, _ = inputs
    with sidecar(engine_kwargs={"sadtalker": {"checkpoint_dir": str(tmp_path / "none")}}) as server:
        target = SidecarTarget(server.address)
        with pytest.raises(InputError, match="does not render 'sadtalker' video .*--checkpoints"):
            run_job(JobRequest(speech, portrait, JobOptions(engine="sadtalker")), OutputPlan(tmp_path / "out", "hello"), sidecar=target)
    with pytest.raises(InputError, match="must be 256 or 512 with the SadTalker engine, got 320"):
        JobOptions(engine="sadtalker", size=320).resolved_size("sadtalker")
    assert not any((tmp_path / "out").iterdir())


def test_references_must_be_files_and_stray_keys_are_explained(inputs, tmp_path):
    from tests.official_checkpoints import write_official_checkpoint_dir

    portrait, speech, _, _ = inputs
    folder = write_official_checkpoint_dir(tmp_path / "ckpt", render=False)
    with sidecar(engine_kwargs={"sadtalker": {"checkpoint_dir": str(folder)}}) as server:
        for reference, message in ((np.zeros((5, 70), np.float32), "--ref-pose: with --sidecar a reference must be a file"),
                                   (tmp_path / "gone.mp4", "gone.mp4: --ref-pose: reference file not found")):
            with pytest.raises(InputError, match=message):
                run_job(JobRequest(speech, portrait, JobOptions(engine="sadtalker"), ref_pose=reference),
                        OutputPlan(tmp_path / "out", "hello"), sidecar=SidecarTarget(server.address))
    assert main(["generate", str(portrait), str(speech), "-o", str(tmp_path / "cli"), "--signing-key", "k.key"]) == 1
