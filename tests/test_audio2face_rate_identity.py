"""Two per-job options of the audio2face engine: the motion's frame rate and a v3.0 model's identity.

Game engines key faces at 30 or 60 fps, and the SDK runs any rate; a v3.0 diffusion model animates
one of several faces, and a batch of lines may use each. Both are job options, so the CLI flag, the
manifest column and the sidecar carry them the same way.
"""

from __future__ import annotations

import numpy as np
import pytest

from talkbridge.core.audio2face.engine import Audio2FaceEngine
from talkbridge.core.engine import MotionRequest
from talkbridge.core.errors import InputError
from talkbridge.core.jobs.options import JobOptions
from talkbridge.core.motion import Motion, frames_at_rate
from tests.audio2face_models import write_diffusion_folder, write_model_folder
from tests.speech import speech_like, write_wav


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("a2f_rate")
    model = write_model_folder(folder / "model")
    audio = write_wav(folder / "line.wav", speech_like(1.1, seed=6))
    return folder, model.root, audio


def run_cli(*args: str) -> int:
    from talkbridge.cli import main

    return main(["-q", *args])


def test_frames_at_rate_interpolates_in_time_and_holds_the_ends():
    values = np.array([[0.0], [1.0], [2.0], [3.0]], np.float32)  # 25 fps: t = 0, 0.04, 0.08, 0.12
    at_50 = frames_at_rate(values, 8, 25, 50)
    assert np.allclose(at_50[:, 0], [0, 0.5, 1, 1.5, 2, 2.5, 3, 3])  # the last is held past t = 0.12
    assert frames_at_rate(values, 2).tolist() == [[0.0], [1.0]]  # same rate: cut
    assert frames_at_rate(values, 6)[4:, 0].tolist() == [3.0, 3.0]  # same rate: the last held
    assert frames_at_rate(np.zeros((3, 4, 4), np.float32), 5, 25, 30).shape == (5, 4, 4)


def test_coeffs_at_30_fps_writes_a_30_fps_motion_with_the_clips_pose(inputs, tmp_path):
    from talkbridge.exporters.motion_file import load_motion

    _, model, audio = inputs
    paths = {}
    for fps in (25, 30):
        paths[fps] = tmp_path / f"line{fps}.motion.npz"
        assert run_cli("coeffs", str(audio), "--engine", "audio2face", "--checkpoints", str(model), "-o", str(paths[fps]),
                       "--fps", str(fps), "--seed", "4") == 0
    at_25, at_30 = load_motion(paths[25]), load_motion(paths[30])
    assert (at_25.fps, at_25.n_frames) == (25, 28)  # ceil(17600 * 25 / 16000)
    assert (at_30.fps, at_30.n_frames) == (30, 33)  # ceil(17600 * 30 / 16000)
    assert at_30.metadata["fps"] == 30
    # The procedural head motion is the 25 fps one, resampled in time: same clip, not a new draw.
    assert np.allclose(at_30.pose, frames_at_rate(at_25.pose, 33, 25, 30), atol=1e-6)
    assert np.allclose(at_30.blink, frames_at_rate(at_25.blink, 33, 25, 30), atol=1e-6)


def test_a_30_fps_take_exports_30_fps_curves(inputs, tmp_path):
    from talkbridge.exporters.motion_file import load_motion

    _, model, audio = inputs
    out = tmp_path / "line.motion.npz"
    assert run_cli("coeffs", str(audio), "--engine", "audio2face", "--checkpoints", str(model), "-o", str(out), "--fps", "30") == 0
    csv = tmp_path / "line.csv"
    assert run_cli("export", str(out), "-o", str(csv), "--format", "livelink") == 0
    rows = csv.read_text().splitlines()
    assert len(rows) == 1 + load_motion(out).n_frames
    assert rows[31].split(",")[0] == "00:00:01:00.000"  # frame 30 is one second in at 30 fps


def test_other_engines_refuse_another_rate(inputs, tmp_path, caplog):
    from talkbridge.core.lite.samples import write_portrait

    _, _, audio = inputs
    portrait = write_portrait(tmp_path / "portrait.png")
    out = tmp_path / "out"
    assert run_cli("generate", str(portrait), str(audio), "-o", str(out), "--engine", "lite", "--fps", "30") != 0
    assert "the lite engine makes 25 fps motion; only audio2face makes other rates" in caplog.text
    assert not out.exists() or not any(out.iterdir())


def test_the_sidecar_carries_the_rate(inputs):
    from talkbridge.bridge import protocol as p
    from talkbridge.bridge.client import Client
    from tests.sidecars import sidecar

    _, model, audio = inputs
    with sidecar(engine_kwargs={"audio2face": {"model_dir": str(model)}}) as server:
        client = Client(server.address)
        try:
            client.connect()
            result = client.submit("audio2face", audio=audio, options={"fps": 60, "seed": 4}).result()
        finally:
            client.close()
    assert result.final.type == p.DONE, result.final
    got = result.motion()
    engine = Audio2FaceEngine(model, device="cpu")
    chunks = list(engine.stream_motion(MotionRequest(audio=audio, seed=4, options={"fps": 60})))
    expected = Motion.from_chunks(chunks, engine="audio2face", engine_version=engine.version, fps=60)
    assert got.fps == 60 and got.n_frames == expected.n_frames == 66
    assert np.allclose(got.arkit, expected.arkit, atol=1e-5) and np.allclose(got.jaw, expected.jaw, atol=1e-5)


def test_options_carry_rate_and_identity_on_the_wire_and_in_manifests():
    options = JobOptions.from_mapping({"engine": "audio2face", "fps": 30, "identity": "James"})
    wire = options.to_wire()
    assert wire["fps"] == 30 and wire["identity"] == "James"
    assert JobOptions.from_wire(wire, engine="audio2face", size=None) == options
    cells = JobOptions.from_mapping({"fps": "60", "identity": " Mark "}, parse_text=True)
    assert (cells.fps, cells.identity) == (60, "Mark")
    for bad in ({"fps": 0}, {"fps": 500}, {"identity": "../x"}, {"identity": ""}):
        with pytest.raises(InputError, match="fps|identity"):
            JobOptions.from_mapping(bad)


def test_a_regression_model_refuses_another_identity_by_name(inputs):
    _, model, audio = inputs
    engine = Audio2FaceEngine(model, device="cpu")
    actor = engine.folder.info.actor
    assert next(engine.stream_motion(MotionRequest(audio=audio, options={"identity": actor.upper()}))).n_frames > 0
    with pytest.raises(InputError, match=f"animates only '{actor}'.*v3.0 diffusion") as error:
        next(engine.stream_motion(MotionRequest(audio=audio, options={"identity": "Claire"})))
    assert "model.json" in str(error.value)


@pytest.fixture(scope="module")
def diffusion(tmp_path_factory):
    return write_diffusion_folder(tmp_path_factory.mktemp("a2f_v3") / "v3")


def test_a_job_picks_the_diffusion_identity(diffusion, inputs):
    _, _, audio = inputs
    shared = Audio2FaceEngine(diffusion, device="cpu", force_cpu_diffusion=True)
    assert shared.identity == "Claire"  # the folder's first
    james_only = Audio2FaceEngine(diffusion, device="cpu", identity="James", force_cpu_diffusion=True)

    def clip(engine, **options):
        return Motion.from_chunks(list(engine.stream_motion(MotionRequest(audio=audio, seed=2, options=options))),
                                  engine="audio2face", engine_version="3.0")

    james, claire = clip(shared, identity="james"), clip(shared)
    assert np.array_equal(james.arkit, clip(james_only).arkit)  # the same face either way
    assert not np.allclose(james.arkit, claire.arkit)  # another face's neutral and blendshapes
    assert shared.plan(MotionRequest(audio=audio, options={"identity": "James"})).details["identity"] == "James"
    with pytest.raises(InputError, match="has: Claire, James, Mark"):
        shared.plan(MotionRequest(audio=audio, options={"identity": "Nobody"}))


def test_generate_with_identity_and_rate(diffusion, inputs, tmp_path, monkeypatch):
    from talkbridge.exporters.motion_file import load_motion

    monkeypatch.setenv("TALKBRIDGE_A2F_FORCE_CPU_DIFFUSION", "1")
    _, _, audio = inputs
    out = tmp_path / "v3.motion.npz"
    assert run_cli("coeffs", str(audio), "--engine", "audio2face", "--checkpoints", str(diffusion), "-o", str(out),
                   "--identity", "Mark", "--fps", "30") == 0
    motion = load_motion(out)
    assert motion.metadata["identity"] == "Mark" and motion.fps == 30 and motion.n_frames == 33
