"""`talkbridge generate --sidecar ADDRESS`: outputs written here, networks run by a `talkbridge serve`.

The servers run in this process on loopback. The lite job must give the same files as a local run;
the SadTalker job runs real checkpoints in the official layout with the renderer narrowed to the tiny
test configuration (as in test_bridge_sadtalker_video.py), and is compared with the same pipeline run
in-process.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import imageio_ffmpeg
import numpy as np
import pytest
import scipy.io
import torch

from talkbridge.bridge.jobs import EngineRunner, JobOutput
from talkbridge.bridge.server import Server, ServerConfig
from talkbridge.bridge.synthetic import SyntheticRunner
from talkbridge.cli.commands.generate import GenerateOptions, generate
from talkbridge.cli.sidecar_target import SidecarTarget
from talkbridge.core.errors import InputError, TalkbridgeError
from talkbridge.exporters.motion_file import load_motion
from talkbridge.exporters.video import VideoWriter
from tests.speech import speech_like, write_wav

pytestmark = [pytest.mark.timeout(300)]


def decoded_frames(path: Path) -> np.ndarray:
    reader = imageio_ffmpeg.read_frames(str(path))
    width, height = next(reader)["size"]
    return np.stack([np.frombuffer(frame, np.uint8).reshape(height, width, 3) for frame in reader])


def audio_streams(path: Path) -> int:
    info = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True, text=True).stderr
    return info.count("Audio: aac")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    from tests.render_helpers import landmarks_y_down

    folder = tmp_path_factory.mktemp("remote")
    image, landmarks = landmarks_y_down()
    portrait = folder / "portrait.png"
    cv2.imwrite(str(portrait), np.ascontiguousarray(image[:, :, ::-1]))
    speech = write_wav(folder / "hello.wav", speech_like(2.0, seed=4))
    return portrait, speech, landmarks


@pytest.fixture(autouse=True)
def one_torch_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def test_lite_through_the_sidecar_writes_what_a_local_run_writes(inputs, tmp_path):
    portrait, speech, _ = inputs
    options = dict(engine="lite", size=256, seed=3, progress=False)
    local = generate(portrait, speech, tmp_path / "local", GenerateOptions(**options))
    with Server(EngineRunner(), ServerConfig(bind="tcp://127.0.0.1:*")) as server:
        remote = generate(portrait, speech, tmp_path / "remote", GenerateOptions(**options, sidecar=SidecarTarget(server.address)))
    assert remote.engine == "lite" and remote.coefficients is None and remote.frames == local.frames == 50
    here, there = load_motion(local.motion), load_motion(remote.motion)
    for name in ("pose", "blink", "arkit", "visemes"):
        assert np.array_equal(getattr(here, name), getattr(there, name)), name
    assert there.metadata["sidecar"] == server.address and there.engine == "lite"
    assert np.array_equal(decoded_frames(local.video), decoded_frames(remote.video))
    assert audio_streams(remote.video) == 1
    assert remote.summary.is_file()


@pytest.mark.slow
def test_sadtalker_through_the_sidecar_matches_the_pipeline(inputs, tmp_path):
    from talkbridge.pipeline.sadtalker_video import SadTalkerOptions, SadTalkerVideo
    from tests.official_checkpoints import write_official_checkpoint_dir
    from tests.render_helpers import tiny_recipe_models

    portrait, speech, landmarks = inputs
    folder = write_official_checkpoint_dir(tmp_path / "checkpoints")
    tiny = tiny_recipe_models(seed=5)
    from talkbridge.exporters.coeff_mat import write_coeff_mat

    reference = write_coeff_mat(tmp_path / "nod.mat", np.random.default_rng(8).normal(0, 0.2, (30, 70)))
    st = SadTalkerOptions(landmarks=landmarks, seed=1, pose_style=3, expression_scale=0.5, batch_size=2, ref_pose=reference)
    runner = EngineRunner({"sadtalker": {"checkpoint_dir": str(folder)}})
    runner.sadtalker_video(256, "crop", "cpu").render_models = tiny
    with Server(runner, ServerConfig(bind="tcp://127.0.0.1:*", devices=("cpu",))) as server:
        result = generate(
            portrait, speech, tmp_path / "out",
            GenerateOptions(engine="auto", progress=False, sadtalker=st, sidecar=SidecarTarget(server.address)),
        )
    assert result.engine == "sadtalker" and result.frames == 50

    video = SadTalkerVideo(folder, 256, "crop", "cpu")
    video.render_models = tiny
    run = video.start(portrait, speech, st)
    expected = np.concatenate(list(run.frames()))
    reference = tmp_path / "reference.mp4"  # the same frames through the same encoder, here
    with VideoWriter(reference, 25, run.frame_size, speech) as writer:
        writer.write(expected)
    got = decoded_frames(result.video)
    assert got.shape == expected.shape  # frame size: the face box's aspect ratio, as locally
    assert np.array_equal(got, decoded_frames(reference))
    assert audio_streams(result.video) == 1
    official = np.concatenate([np.concatenate([c.expression, c.pose], axis=1) for c in run.motion_chunks])
    mat = scipy.io.loadmat(result.coefficients)["coeff_3dmm"]
    assert mat.shape == (50, 70) and np.allclose(mat, official, atol=1e-6)
    motion = load_motion(result.motion)
    assert np.allclose(motion.expression, official[:, :64] * 0.5, atol=1e-6)
    assert motion.metadata["options"]["pose_style"] == 3 and "landmarks" not in motion.metadata["options"]


class FailingRunner(SyntheticRunner):
    """Streams a few good chunks with frames, then fails like a crashed engine."""

    def run(self, job, device, cancel):
        for i, output in enumerate(super().run(job, device, cancel)):
            if i == 2:
                raise RuntimeError("GPU fell off the bus")
            frames = np.full((output.chunk.n_frames, 64, 64, 3), 100, np.uint8)
            yield JobOutput(output.chunk, frames, output.info)


def test_a_failed_remote_job_keeps_the_previous_outputs(inputs, tmp_path):
    portrait, speech, _ = inputs
    out = tmp_path / "out"
    out.mkdir()
    old = out / "hello.mp4"
    old.write_bytes(b"an earlier good take")
    runner = FailingRunner()
    engine = runner.capabilities()["engines"][0]
    with Server(runner, ServerConfig(bind="tcp://127.0.0.1:*")) as server:
        with pytest.raises(TalkbridgeError, match="did not finish the job: .*GPU fell off the bus"):
            generate(
                portrait, speech, out,
                GenerateOptions(engine=engine, size=256, progress=False, overwrite=True,
                                sidecar=SidecarTarget(server.address)),
            )
    assert old.read_bytes() == b"an earlier good take"
    assert sorted(p.name for p in out.iterdir()) == ["hello.mp4"]


class RecordingRunner(SyntheticRunner):
    """Remembers the options each job arrived with."""

    def run(self, job, device, cancel):
        self.options = dict(job.options)
        yield from super().run(job, device, cancel)


def test_the_transcript_read_here_travels_with_the_job(inputs, tmp_path):
    portrait, speech, _ = inputs
    transcript = tmp_path / "hello.txt"
    transcript.write_text("hello there, how are you today\n", encoding="utf-8")
    runner = RecordingRunner()
    engine = runner.capabilities()["engines"][0]
    with Server(runner, ServerConfig(bind="tcp://127.0.0.1:*")) as server:
        generate(portrait, speech, tmp_path / "out", GenerateOptions(
            engine=engine, size=256, seed=6, progress=False, transcript=transcript, sidecar=SidecarTarget(server.address),
        ))
    assert runner.options["transcript"] == "hello there, how are you today\n" and runner.options["seed"] == 6


def test_an_engine_the_sidecar_cannot_render_is_refused_before_any_work(inputs, tmp_path):
    portrait, speech, _ = inputs
    with Server(EngineRunner(), ServerConfig(bind="tcp://127.0.0.1:*")) as server:
        with pytest.raises(InputError, match="does not render 'sadtalker' video .*--checkpoints"):
            generate(portrait, speech, tmp_path / "out", GenerateOptions(engine="sadtalker", progress=False, sidecar=SidecarTarget(server.address)))
        with pytest.raises(InputError, match="renders 256, 512 px, not --size 320"):
            generate(portrait, speech, tmp_path / "out", GenerateOptions(engine="lite", size=320, progress=False, sidecar=SidecarTarget(server.address)))
    assert not any((tmp_path / "out").iterdir())


def test_references_must_be_files_and_stray_keys_are_explained(inputs, tmp_path):
    from talkbridge.pipeline.sadtalker_video import SadTalkerOptions

    portrait, speech, _ = inputs
    runner = EngineRunner({"sadtalker": {"checkpoint_dir": str(tmp_path)}})
    with Server(runner, ServerConfig(bind="tcp://127.0.0.1:*")) as server:
        for reference, message in ((np.zeros((5, 70), np.float32), "--ref-pose: with --sidecar a reference must be a file"),
                                   (tmp_path / "gone.mp4", "gone.mp4: --ref-pose: reference file not found")):
            with pytest.raises(InputError, match=message):
                generate(
                    portrait, speech, tmp_path / "out",
                    GenerateOptions(engine="sadtalker", progress=False, sadtalker=SadTalkerOptions(ref_pose=reference),
                                    sidecar=SidecarTarget(server.address)),
                )
    cli = subprocess.run(
        [sys.executable, "-m", "talkbridge", "generate", str(portrait), str(speech), "-o", str(tmp_path / "cli"), "--signing-key", "k.key"],
        capture_output=True, text=True, timeout=120,
    )
    assert cli.returncode != 0 and "only apply with --sidecar" in cli.stderr
