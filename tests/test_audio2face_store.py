"""Audio2Face-3D models in the weight store: catalog entries, `models adopt` and the engine's default folder."""

from __future__ import annotations

import json

import numpy as np
import pytest

from talkbridge.core.errors import InputError
from talkbridge.core.weights.catalog import A2F_REGRESSION_FILES, CATALOG, select
from talkbridge.core.weights.store import WeightStore
from tests.audio2face_models import write_model_folder


@pytest.mark.parametrize("group, repository", [
    ("audio2face-mark", "nvidia/Audio2Face-3D-v2.3-Mark"),
    ("audio2face-claire", "nvidia/Audio2Face-3D-v2.3.1-Claire"),
    ("audio2face-james", "nvidia/Audio2Face-3D-v2.3.1-James"),
])
def test_each_regression_model_is_a_store_folder_of_its_hugging_face_files(group, repository):
    entries = select(CATALOG, [group])
    assert [e.name for e in entries] == [name for name, _ in A2F_REGRESSION_FILES]
    assert all(e.folder == group and not e.default for e in entries)
    assert all(e.urls == (f"https://huggingface.co/{repository}/resolve/main/{e.name}",) for e in entries)
    assert {"model.json", "network.onnx", "bs_skin.npz", "implicit_emo_db.npz"} <= {e.name for e in entries}


def test_a_plain_download_fetches_no_audio2face_model():
    assert not any(e.group.startswith(("audio2face", "audio2emotion")) for e in select(CATALOG, None))


def test_adopting_a_folder_makes_it_the_engines_default(tmp_path, monkeypatch):
    from talkbridge.core.audio2face.engine import Audio2FaceEngine
    from talkbridge.core.engine import MotionRequest

    model = write_model_folder(tmp_path / "downloads" / "mark")
    info = json.loads((model.root / "network_info.json").read_text())
    info["id"]["actor"] = "Mark"
    (model.root / "network_info.json").write_text(json.dumps(info))
    monkeypatch.setenv("TALKBRIDGE_MODELS", str(tmp_path / "store"))
    store = WeightStore()
    reports = store.adopt(model.root)
    assert {r.entry.group for r in reports} == {"audio2face-mark"}
    assert WeightStore().folder("audio2face-mark") == model.root.resolve()
    engine = Audio2FaceEngine(device="cpu")  # no folder given: the store's Mark
    chunk = next(engine.stream_motion(MotionRequest(audio=np.zeros(3200, np.float32))))
    assert chunk.n_frames == 5 and engine.folder.root == model.root.resolve()


def test_adopting_a_model_the_catalog_does_not_know_is_refused(tmp_path, monkeypatch):
    model = write_model_folder(tmp_path / "m")  # actor "synthetic"
    monkeypatch.setenv("TALKBRIDGE_MODELS", str(tmp_path / "store"))
    with pytest.raises(InputError, match="'synthetic', which the catalog does not list"):
        WeightStore().adopt(model.root)
