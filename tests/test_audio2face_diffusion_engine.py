"""The audio2face engine on a v3.0 diffusion folder: loading, CPU refusal and force, post-processing, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from talkbridge.core.audio2face.diffusion_files import load_diffusion_folder
from talkbridge.core.audio2face.engine import FORCE_ENV, Audio2FaceEngine
from talkbridge.core.audio2face.files import BlendshapeSet
from talkbridge.core.audio2face.skin import ProjectedSkin, SkinAnimator
from talkbridge.core.audio2face.solver import BlendshapeSolver
from talkbridge.core.engine import MotionRequest
from talkbridge.core.errors import CheckpointError, InputError
from talkbridge.core.motion import ARKIT_52, TONGUE_16
from tests.audio2face_models import write_diffusion_folder
from tests.speech import speech_like

DT = float(np.float32(1 / 25))


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_diffusion_folder(tmp_path_factory.mktemp("a2f_v3"))


def test_folder_reads_every_identity_file(folder):
    loaded = load_diffusion_folder(folder, "James")
    assert list(loaded.identities) == ["James"] and loaded.network_path.name == "network.onnx"
    assert loaded.info.identities == ("Claire", "James", "Mark") and loaded.info.fps == 60
    assert loaded.info.dims == 3 * 40 + 3 * 12 + 19
    james = loaded.identities["James"]
    assert james.data.skin_basis is None and james.data.skin_mean.shape == (40, 3)
    expected = np.load(folder / "model_data_James.npz")["neutral_jaw"]
    assert np.array_equal(james.data.neutral_jaw, expected)
    assert list(load_diffusion_folder(folder).identities) == ["Claire"]


def test_cpu_is_refused_without_force(folder, monkeypatch):
    monkeypatch.delenv(FORCE_ENV, raising=False)
    with pytest.raises(InputError) as caught:
        Audio2FaceEngine(folder, device="cpu")
    assert "force_cpu_diffusion" in str(caught.value) and FORCE_ENV in str(caught.value)
    monkeypatch.setenv(FORCE_ENV, "1")
    assert Audio2FaceEngine(folder, device="cpu").diffusion is not None


def test_forced_engine_gives_finite_motion_in_every_channel(folder):
    engine = Audio2FaceEngine(folder, device="cpu", identity="Mark", force_cpu_diffusion=True)
    samples = speech_like(1.3, seed=3).astype(np.float32)
    chunks = list(engine.stream_motion(MotionRequest(audio=samples, chunk_frames=10, seed=5)))
    n = sum(len(c.arkit) for c in chunks)
    assert n == -(-samples.size * 25 // 16000)
    arkit = np.concatenate([c.arkit for c in chunks])
    tongue = np.concatenate([c.tongue for c in chunks])
    eyes = np.concatenate([c.eyes for c in chunks])
    jaw = np.concatenate([c.jaw for c in chunks])
    assert arkit.shape == (n, len(ARKIT_52)) and tongue.shape == (n, len(TONGUE_16))
    assert eyes.shape == (n, 4) and jaw.shape == (n, 4, 4)
    for values in (arkit, tongue, eyes, jaw):
        assert np.all(np.isfinite(values))
    assert np.ptp(arkit[:, ARKIT_52.index("jawOpen")]) > 0 and np.ptp(tongue) > 0
    assert np.allclose(jaw[:, 3], [0, 0, 0, 1])
    again = list(engine.stream_motion(MotionRequest(audio=samples, chunk_frames=n, seed=5)))[0]
    assert np.allclose(again.arkit, arkit, atol=1e-5)  # chunking does not change the clip


def test_skin_deltas_go_through_the_animator_then_the_solve(folder):
    """The projected right-hand side on raw vertex deltas equals solving the full SkinAnimator output."""
    loaded = load_diffusion_folder(folder, "Claire").identities["Claire"]
    solver = BlendshapeSolver(loaded.skin)
    projected = ProjectedSkin(loaded.data, loaded.config, DT, solver.rows, solver.design, solver.neutral_rows)
    deltas = np.random.default_rng(2).normal(0, 0.2, (7, 120)).astype(np.float32)
    vertices = SkinAnimator(loaded.data, loaded.config, DT).vertices(deltas).reshape(7, -1).astype(np.float64)
    expected = (vertices[:, solver.rows] - solver.neutral_rows) @ solver.design
    assert np.allclose(projected.rhs(deltas), expected, atol=1e-4)


def _drop_key(path, key):
    arrays = dict(np.load(path))
    del arrays[key]
    np.savez(path, **arrays)


def test_missing_model_data_key_names_file_and_key(tmp_path):
    root = write_diffusion_folder(tmp_path / "m")
    _drop_key(root / "model_data_Claire.npz", "neutral_tongue")
    with pytest.raises(CheckpointError) as caught:
        Audio2FaceEngine(root, device="cpu", force_cpu_diffusion=True)
    assert "model_data_Claire.npz" in str(caught.value) and "neutral_tongue" in str(caught.value)


def test_model_json_lists_must_cover_every_identity(tmp_path):
    root = write_diffusion_folder(tmp_path / "m")
    data = json.loads((root / "model.json").read_text())
    data["modelDataPaths"] = data["modelDataPaths"][:2]
    (root / "model.json").write_text(json.dumps(data))
    with pytest.raises(CheckpointError) as caught:
        load_diffusion_folder(root)
    assert "model.json" in str(caught.value) and "modelDataPaths" in str(caught.value)
    with pytest.raises(CheckpointError, match="no identity 'Nobody'"):
        load_diffusion_folder(write_diffusion_folder(tmp_path / "n"), "Nobody")


def test_job_layer_passes_identity_and_force_as_engine_options(folder, monkeypatch):
    from talkbridge.core.jobs.cache import EngineCache

    monkeypatch.delenv(FORCE_ENV, raising=False)
    cache = EngineCache(folder, engine_options={"audio2face": {"identity": "James", "force_cpu_diffusion": True}})
    engine = cache.audio2face("cpu")
    assert engine.identity == "James" and engine.folder.info.actor == "James"
    with pytest.raises(InputError, match="force_cpu_diffusion"):
        EngineCache(folder).audio2face("cpu")
