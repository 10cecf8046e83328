"""`--engine audio2face` through every route: generate, a sidecar and Ray give the in-process arrays."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from talkbridge.core.audio2face.engine import Audio2FaceEngine
from talkbridge.core.emotion import parse_emotion_text
from talkbridge.core.engine import MotionRequest
from talkbridge.core.motion import ARKIT_52, Motion
from tests.audio2face_models import write_model_folder
from tests.speech import speech_like, write_wav

CHANNELS = ("pose", "blink", "arkit", "tongue", "emotion", "eyes", "jaw")
EMOTION = "joy=0.5,grief=0.25"
SEED = 3


def route_inputs(folder: Path, write_model) -> tuple[Path, Path, Path]:
    """(folder, model folder, folder/clips/line.wav): the model ``write_model(path)`` writes and one clip."""
    model = write_model(folder / "model")
    (folder / "clips").mkdir()
    audio = write_wav(folder / "clips" / "line.wav", speech_like(1.3, seed=4))
    return folder, model, audio


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    return route_inputs(tmp_path_factory.mktemp("a2f_routes"), lambda path: write_model_folder(path).root)


@pytest.fixture(scope="module")
def expected(inputs):
    _, model, audio = inputs
    engine = Audio2FaceEngine(model, device="cpu")
    request = MotionRequest(audio=audio, seed=SEED, chunk_frames=9, options={"emotion": parse_emotion_text(EMOTION)})
    return Motion.from_chunks(list(engine.stream_motion(request)), engine=engine.name, engine_version=engine.version)


def assert_same_motion(got, expected, atol: float = 1e-5):
    """``atol=0``: bit for bit (the diffusion model runs once per clip, with the same seeded noise)."""
    assert got.n_frames == expected.n_frames == 33  # ceil(1.3 s * 25)
    for name in CHANNELS:
        # Batches of another size may round a matmul's last bit differently: equal to float32 noise.
        assert np.allclose(getattr(got, name), getattr(expected, name), atol=atol, rtol=0), name
    assert got.expression is None and got.visemes is None


def test_generate_writes_the_engines_motion_and_a_mannequin_video(inputs, expected, tmp_path):
    from talkbridge.cli import main
    from talkbridge.core.lite.samples import write_portrait
    from talkbridge.exporters.motion_file import load_motion

    folder, model, audio = inputs
    portrait = write_portrait(tmp_path / "portrait.png")
    code = main(["-q", "generate", str(portrait), str(audio), "-o", str(tmp_path / "out"), "--engine", "audio2face",
                 "--checkpoints", str(model), "--size", "64", "--emotion", EMOTION, "--seed", str(SEED)])
    assert code == 0
    motion = load_motion(tmp_path / "out" / "line.motion.npz")
    assert motion.engine == "audio2face"
    assert_same_motion(motion, expected)
    assert motion.metadata["pose_source"] == "lite-procedural" and motion.metadata["video_source"] == "lite mannequin"
    assert (tmp_path / "out" / "line.mp4").is_file()


def test_generate_without_a_model_says_how_to_get_one(inputs, tmp_path, monkeypatch, caplog):
    from talkbridge.cli import main
    from talkbridge.core.lite.samples import write_portrait

    monkeypatch.setenv("TALKBRIDGE_MODELS", str(tmp_path / "empty_store"))
    _, _, audio = inputs
    portrait = write_portrait(tmp_path / "portrait.png")
    code = main(["-q", "generate", str(portrait), str(audio), "-o", str(tmp_path / "out"), "--engine", "audio2face"])
    assert code != 0
    assert "talkbridge models download audio2face-mark" in caplog.text
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_the_sidecar_streams_the_same_arrays(inputs, expected):
    from talkbridge.bridge import protocol as p
    from talkbridge.bridge.client import Client
    from tests.sidecars import sidecar

    _, model, audio = inputs
    with sidecar(engine_kwargs={"audio2face": {"model_dir": str(model)}}) as server:
        client = Client(server.address)
        try:
            client.connect()
            options = {"seed": SEED, "chunk_frames": 9, "emotion": parse_emotion_text(EMOTION).to_keys()}
            result = client.submit("audio2face", audio=audio, options=options).result()
        finally:
            client.close()
    assert result.final.type == p.DONE, result.final
    got = result.motion()
    assert got.engine == "audio2face"
    assert_same_motion(got, expected)


def batch_args(folder: Path, model: str, out: str) -> list[str]:
    return ["-q", "batch", str(folder / "clips"), "-o", str(folder / out), "--engine", "audio2face", "--checkpoints", model,
            "--size", "64", "--emotion", EMOTION, "--seed", str(SEED)]


def test_a_batch_in_this_process_writes_the_same_arrays(inputs, expected):
    from talkbridge.cli import main
    from talkbridge.exporters.motion_file import load_motion

    folder, model, _ = inputs
    assert main(batch_args(folder, str(model), "batch_out")) == 0
    assert_same_motion(load_motion(folder / "batch_out" / "line.motion.npz"), expected)
    assert main(batch_args(folder, str(model), "batch_out")) == 0  # a second run skips the finished row


def ray_scenario(payload: dict) -> dict:
    from talkbridge.cli import main

    folder = Path(payload["folder"])
    code = main(batch_args(folder, payload["model"], "ray_out") + ["--ray", "local"])
    return {"exit": code}


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_a_ray_batch_writes_the_same_arrays(inputs, expected):
    from talkbridge.exporters.motion_file import load_motion
    from tests.ray_harness import run_scenario

    folder, model, _ = inputs
    result = run_scenario("tests.test_audio2face_routes:ray_scenario", {"folder": str(folder), "model": str(model)}, timeout=350)
    assert result["exit"] == 0
    report = json.loads((folder / "ray_out" / "batch_report.json").read_text())
    assert report["backend"].startswith("ray local")
    assert_same_motion(load_motion(folder / "ray_out" / "line.motion.npz"), expected)


def test_the_addons_engine_menu_offers_every_engine():
    """The panel's Engine menu lists every engine a job can name (auto is the CLI's word only)."""
    import ast

    from talkbridge.core.jobs.options import ENGINES

    tree = ast.parse((Path(__file__).resolve().parents[1] / "addon" / "properties.py").read_text())
    menus = [node for node in ast.walk(tree) if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", "") == "engine"]
    assert len(menus) == 1
    items = next(k.value for k in menus[0].annotation.keywords if k.arg == "items")
    names = [ast.literal_eval(item)[0] for item in items.elts]
    assert sorted(names) == sorted(engine for engine in ENGINES if engine != "auto")


def test_an_audio2face_job_never_imports_torch(inputs, tmp_path):
    """Like lite, the engine is onnxruntime + numpy/scipy: a job from a file must not load torch."""
    import subprocess
    import sys

    _, model, audio = inputs
    script = (
        "import sys\n"
        "from talkbridge.core.jobs.cache import EngineCache\n"
        "from talkbridge.core.jobs.local import open_local_job\n"
        "from talkbridge.core.jobs.options import JobOptions\n"
        "from talkbridge.core.jobs.request import JobRequest\n"
        f"stream = open_local_job(JobRequest(audio={str(audio)!r}, options=JobOptions(engine='audio2face', emotion='joy=0.5').checked()),"
        f" EngineCache({str(model)!r}), render=True)\n"
        "frames = sum(step.chunk.n_frames for step in stream.steps)\n"
        "assert frames == 33, frames\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0, done.stderr[-3000:]


def test_a_manifests_engine_and_emotion_columns_reach_the_engine(inputs, tmp_path):
    from talkbridge.cli import main
    from talkbridge.exporters.motion_file import load_motion

    _, model, audio = inputs
    manifest = tmp_path / "rows.csv"
    manifest.write_text(f'audio,engine,emotion,name\n{audio},audio2face,"joy=0.5,grief=0.25",cheer\n{audio},audio2face,anger=1,cross\n')
    assert main(["-q", "batch", str(manifest), "-o", str(tmp_path / "out"), "--checkpoints", str(model)]) == 0
    cheer, cross = (load_motion(tmp_path / "out" / f"{name}.motion.npz") for name in ("cheer", "cross"))
    assert cheer.engine == cross.engine == "audio2face"
    assert np.allclose(cheer.emotion[:, [6, 5]], [0.5, 0.25]) and np.allclose(cross.emotion[:, 1], 1.0)
    assert not np.allclose(cheer.arkit, cross.arkit)  # the network heard two different emotions


def test_coeffs_writes_only_the_motion_files_with_the_engines_arrays(inputs, expected, tmp_path):
    from talkbridge.cli import main
    from talkbridge.exporters.motion_file import load_motion

    _, model, audio = inputs
    out = tmp_path / "take.motion.npz"
    code = main(["-q", "coeffs", str(audio), "--engine", "audio2face", "--checkpoints", str(model), "-o", str(out),
                 "--emotion", EMOTION, "--seed", str(SEED)])
    assert code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["take.motion.json", "take.motion.npz"]  # no .mat, no video
    motion = load_motion(out)
    assert motion.engine == "audio2face"
    assert_same_motion(motion, expected)
    assert main(["-q", "coeffs", str(audio), "--engine", "audio2face", "--checkpoints", str(model), "-o", str(out)]) == 1
    assert np.array_equal(load_motion(out).arkit, motion.arkit)  # an existing file is kept


def test_coeffs_refuses_sadtalker_inputs_with_audio2face_and_a_sadtalker_run_without_them(inputs, tmp_path, caplog):
    from talkbridge.cli import main

    _, model, audio = inputs
    out = tmp_path / "x.motion.npz"
    assert main(["-q", "coeffs", str(audio), "--engine", "audio2face", "--checkpoints", str(model), "-o", str(out),
                 "--first-frame", str(tmp_path / "p.mat")]) == 1
    assert "drop --first-frame" in caplog.text
    assert main(["-q", "coeffs", str(audio), "-o", str(tmp_path / "y.mat")]) == 1
    assert "needs --first-frame" in caplog.text
    assert not any(tmp_path.iterdir())


def test_pose_and_blinks_come_from_sadtalkers_posevae_when_its_weights_are_present(inputs, tmp_path):
    from talkbridge.core.audio import load_audio
    from talkbridge.core.jobs.cache import EngineCache
    from talkbridge.core.jobs.local import open_local_job
    from talkbridge.core.jobs.options import JobOptions
    from talkbridge.core.jobs.request import JobRequest
    from talkbridge.core.sadtalker.audio2coeff import CoeffRequest
    from tests.official_checkpoints import write_official_checkpoint_dir

    _, model, audio = inputs
    options = JobOptions(engine="audio2face", seed=SEED, pose_style=5).checked()

    def run(cache):
        stream = open_local_job(JobRequest(audio=audio, options=options), cache, render=False)
        chunks = [step.chunk for step in stream.steps]
        return stream.info.metadata, Motion.from_chunks(chunks, engine="audio2face", engine_version="")

    checkpoints = write_official_checkpoint_dir(tmp_path / "sadtalker", render=False)
    cache = EngineCache(checkpoints, engine_options={"audio2face": {"model_dir": str(model)}})
    facts, motion = run(cache)
    assert (facts["pose_source"], facts["blink_source"], facts["pose_style"]) == ("sadtalker-posevae", "sadtalker-blink-schedule", 5)
    # The same draws as SadTalker's own audio side from a neutral (front-facing) first frame.
    rows = list(cache.sadtalker("cpu").audio().stream(CoeffRequest(load_audio(audio), np.zeros(70, np.float32), pose_style=5, seed=SEED)))
    pose, blink = np.concatenate([r.pose for r in rows]), np.concatenate([r.blink for r in rows])
    n = motion.n_frames
    assert abs(len(pose) - n) <= 1 and np.ptp(pose[:, 1]) > 0
    np.testing.assert_allclose(motion.pose, pose[:n] if len(pose) >= n else np.concatenate([pose, pose[-1:]]), atol=1e-6)
    np.testing.assert_allclose(motion.blink[: len(blink)], blink[:n], atol=1e-6)
    eyes = motion.arkit[:, [ARKIT_52.index("eyeBlinkLeft"), ARKIT_52.index("eyeBlinkRight")]]
    assert np.all(eyes >= motion.blink[:, None] - 1e-6)  # the schedule's blinks close the eyes
    procedural_facts, procedural = run(EngineCache(model))  # no SadTalker weights: lite's procedural pose
    assert procedural_facts["pose_source"] == "lite-procedural"
    assert not np.allclose(procedural.pose, motion.pose)


# The v3.0 diffusion model through the same routes. It is refused on a CPU unless forced, so each
# route runs it with --force-cpu-diffusion (the flag must reach the engine's constructor) and, where
# cheap, shows the refusal without it. The noise is drawn from the job's seed, so every route gives
# the in-process arrays exactly. The environment variable is cleared: only the flag may force.
# `generate` animates the model's first identity (Claire); the other routes ask for Mark by name
# (--identity, the wire option, a batch default), whose files give other arrays.

@pytest.fixture()
def no_force_env(monkeypatch):
    from talkbridge.core.audio2face.engine import FORCE_ENV

    monkeypatch.delenv(FORCE_ENV, raising=False)


@pytest.fixture(scope="module")
def diffusion_inputs(tmp_path_factory):
    from tests.audio2face_models import write_diffusion_folder

    return route_inputs(tmp_path_factory.mktemp("a2f_v3_routes"), write_diffusion_folder)


IDENTITY = "Mark"  # not the model's default face


@pytest.fixture(scope="module")
def diffusion_expected(diffusion_inputs):
    """The in-process motion of the default face (key None, Claire) and of IDENTITY."""
    from talkbridge.core.jobs.options import OPTIONS

    _, model, audio = diffusion_inputs
    engine = Audio2FaceEngine(model, device="cpu", force_cpu_diffusion=True)

    def motion(identity):
        request = MotionRequest(audio=audio, seed=SEED, chunk_frames=OPTIONS["chunk_frames"].default,
                                options={"emotion": parse_emotion_text(EMOTION), "identity": identity})
        return Motion.from_chunks(list(engine.stream_motion(request)), engine=engine.name, engine_version=engine.version)

    expected = {None: motion(None), IDENTITY: motion(IDENTITY)}
    assert not np.allclose(expected[None].arkit, expected[IDENTITY].arkit)  # the identity changes the motion
    return expected


def v3_batch_args(folder: Path, model: str, out: str) -> list[str]:
    return batch_args(folder, model, out) + ["--identity", IDENTITY]


def assert_refused_naming_the_flag(text: str) -> None:
    assert "--force-cpu-diffusion" in text and "TALKBRIDGE_A2F_FORCE_CPU_DIFFUSION" in text, text[-2000:]


def test_diffusion_generate_runs_with_force_cpu_diffusion_and_is_refused_without(
        diffusion_inputs, diffusion_expected, tmp_path, no_force_env, caplog):
    from talkbridge.cli import main
    from talkbridge.core.lite.samples import write_portrait
    from talkbridge.exporters.motion_file import load_motion

    _, model, audio = diffusion_inputs
    portrait = write_portrait(tmp_path / "portrait.png")
    args = ["-q", "generate", str(portrait), str(audio), "--engine", "audio2face", "--checkpoints", str(model),
            "--size", "64", "--emotion", EMOTION, "--seed", str(SEED)]
    assert main([*args, "-o", str(tmp_path / "refused")]) == 1
    assert_refused_naming_the_flag(caplog.text)
    assert not (tmp_path / "refused").exists() or not any((tmp_path / "refused").iterdir())
    assert main([*args, "-o", str(tmp_path / "out"), "--force-cpu-diffusion"]) == 0
    motion = load_motion(tmp_path / "out" / "line.motion.npz")
    assert motion.metadata["identity"] == "Claire" and motion.metadata["diffusion_fps"] == 60
    assert_same_motion(motion, diffusion_expected[None], atol=0)
    assert (tmp_path / "out" / "line.mp4").is_file()


def test_diffusion_coeffs_runs_with_force_cpu_diffusion_and_is_refused_without(
        diffusion_inputs, diffusion_expected, tmp_path, no_force_env, caplog):
    from talkbridge.cli import main
    from talkbridge.exporters.motion_file import load_motion

    _, model, audio = diffusion_inputs
    out = tmp_path / "take.motion.npz"
    args = ["-q", "coeffs", str(audio), "--engine", "audio2face", "--checkpoints", str(model), "-o", str(out),
            "--emotion", EMOTION, "--seed", str(SEED), "--identity", IDENTITY]
    assert main(args) == 1
    assert_refused_naming_the_flag(caplog.text)
    assert not out.exists()
    assert main([*args, "--force-cpu-diffusion"]) == 0
    motion = load_motion(out)
    assert motion.metadata["identity"] == IDENTITY
    assert_same_motion(motion, diffusion_expected[IDENTITY], atol=0)


def test_diffusion_batch_in_this_process_takes_the_flag(diffusion_inputs, diffusion_expected, no_force_env):
    from talkbridge.cli import main
    from talkbridge.exporters.motion_file import load_motion

    folder, model, _ = diffusion_inputs
    assert main(v3_batch_args(folder, str(model), "v3_refused")) == 1
    report = json.loads((folder / "v3_refused" / "batch_report.json").read_text())
    assert [row["status"] for row in report["rows"]] == ["failed"]
    assert_refused_naming_the_flag(report["rows"][0]["reason"])
    assert main(v3_batch_args(folder, str(model), "v3_batch") + ["--force-cpu-diffusion"]) == 0
    assert_same_motion(load_motion(folder / "v3_batch" / "line.motion.npz"), diffusion_expected[IDENTITY], atol=0)


def test_the_flag_is_refused_where_a_sidecar_builds_the_engines(diffusion_inputs, tmp_path, caplog):
    """A sidecar's engines come from its own `serve` flags: a client's flag would be silently lost."""
    from talkbridge.cli import main
    from talkbridge.core.lite.samples import write_portrait

    folder, model, audio = diffusion_inputs
    portrait = write_portrait(tmp_path / "portrait.png")
    assert main(["-q", "generate", str(portrait), str(audio), "-o", str(tmp_path / "out"), "--engine", "audio2face",
                 "--sidecar", "tcp://127.0.0.1:9", "--force-cpu-diffusion"]) == 1
    assert "talkbridge serve --force-cpu-diffusion" in caplog.text
    caplog.clear()
    assert main(v3_batch_args(folder, str(model), "v3_remote") + ["--sidecar", "tcp://127.0.0.1:9", "--force-cpu-diffusion"]) == 1
    assert "talkbridge serve --force-cpu-diffusion" in caplog.text


def test_serve_hands_the_flag_to_its_workers_and_the_sidecar_streams_the_same_arrays(
        diffusion_inputs, diffusion_expected, tmp_path, monkeypatch, no_force_env):
    from talkbridge.bridge import protocol as p
    from talkbridge.bridge.client import Client
    from talkbridge.bridge.jobs import EngineRunner
    from talkbridge.cli import main
    from talkbridge.core.errors import InputError
    from tests.sidecars import record_serve, sidecar

    _, model, audio = diffusion_inputs
    config = tmp_path / "engines.json"
    config.write_text(json.dumps({"audio2face": {"model_dir": str(model), "force_cpu_diffusion": False}}))
    built = record_serve(monkeypatch)

    def served(*flags: str) -> dict:
        assert main(["serve", "--bind", "tcp://127.0.0.1:0", "--engine-config", str(config), *flags]) == 0
        runner, _ = built[-1]
        runner.close()
        return runner.spec.kwargs

    with pytest.raises(InputError) as caught:  # the config's own False stands without the flag
        EngineRunner(**served()).cache.audio2face("cpu")
    assert_refused_naming_the_flag(str(caught.value))
    spec = served("--force-cpu-diffusion")  # the flag wins over the config file
    assert spec["engine_kwargs"]["audio2face"] == {"model_dir": str(model), "force_cpu_diffusion": True}
    monkeypatch.undo()  # a real server and worker process now, built from the spec serve made
    with sidecar(**spec) as server:
        client = Client(server.address)
        try:
            client.connect()
            options = {"seed": SEED, "emotion": parse_emotion_text(EMOTION).to_keys(), "identity": IDENTITY}
            result = client.submit("audio2face", audio=audio, options=options).result()
        finally:
            client.close()
    assert result.final.type == p.DONE, result.final
    assert_same_motion(result.motion(), diffusion_expected[IDENTITY], atol=0)


def ray_diffusion_scenario(payload: dict) -> dict:
    import os

    from talkbridge.cli import main
    from talkbridge.core.audio2face.engine import FORCE_ENV

    os.environ.pop(FORCE_ENV, None)  # the actors must be forced by the flag they were built with
    folder = Path(payload["folder"])
    code = main(v3_batch_args(folder, payload["model"], "v3_ray_out") + ["--ray", "local", "--force-cpu-diffusion"])
    return {"exit": code}


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_a_ray_batch_forces_the_diffusion_model_and_writes_the_same_arrays(diffusion_inputs, diffusion_expected):
    from talkbridge.exporters.motion_file import load_motion
    from tests.ray_harness import run_scenario

    folder, model, _ = diffusion_inputs
    payload = {"folder": str(folder), "model": str(model)}
    result = run_scenario("tests.test_audio2face_routes:ray_diffusion_scenario", payload, timeout=350)
    assert result["exit"] == 0
    report = json.loads((folder / "v3_ray_out" / "batch_report.json").read_text())
    assert report["backend"].startswith("ray local")
    assert_same_motion(load_motion(folder / "v3_ray_out" / "line.motion.npz"), diffusion_expected[IDENTITY], atol=0)


def test_a_preloaded_engine_is_the_one_its_jobs_run(inputs, expected, tmp_path):
    """`serve --preload audio2face` builds, at start, the very engine the jobs then use: not a second
    copy of the networks under another key, loaded again at the first job."""
    import threading

    from talkbridge.bridge import protocol as p
    from talkbridge.bridge.client_events import Event, JobResult
    from talkbridge.bridge.jobs import EngineRunner, JobSpec

    _, model, audio = inputs
    runner = EngineRunner({"audio2face": {"model_dir": str(model)}})
    preloaded = runner.engine("audio2face", "cpu")
    used = []
    real_plan = preloaded.plan
    preloaded.plan = lambda request: (used.append(request), real_plan(request))[1]
    options = {"seed": SEED, "chunk_frames": 9, "emotion": parse_emotion_text(EMOTION).to_keys()}
    job = JobSpec("j", "audio2face", options=options, audio_file=np.frombuffer(audio.read_bytes(), np.uint8), audio_name=audio.name)
    events = [Event(m.type, m.job_id, dict(m.body), dict(m.buffers)) for m in runner.run(job, "cpu", threading.Event())]
    assert len(used) == 1, "the job built and ran another engine than the preloaded one"
    done = Event(p.DONE, "j", {})  # the worker around a runner adds the terminal message
    assert_same_motion(JobResult([*events, done]).motion(), expected)
