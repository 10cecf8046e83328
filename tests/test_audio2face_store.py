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


def _files_model_json_names(root) -> set[str]:
    """Every file a v3.0 ``model.json`` points at, over all identities."""
    data = json.loads((root / "model.json").read_text())
    names = {data["networkInfoPath"], *data["modelConfigPaths"], *data["modelDataPaths"]}
    for entry in data["blendshapePaths"]:
        names |= {entry[part][kind] for part in ("skin", "tongue") for kind in ("config", "data")}
    return names


def test_the_v3_download_is_exactly_the_folder_the_diffusion_loader_reads(tmp_path, monkeypatch, capsys):
    """A folder written under the catalog's audio2face-v3 names, where `download` puts them, loads for
    every identity, is seen as complete by `models verify`, and is adopted as audio2face-v3."""
    from talkbridge.cli import main
    from talkbridge.core.audio2face.diffusion_files import load_diffusion_folder
    from talkbridge.core.weights.catalog import A2F_V3_FILES, A2F_V3_IDENTITIES
    from tests.audio2face_models import DIFFUSION_IDENTITIES, write_diffusion_folder

    entries = select(CATALOG, ["audio2face-v3"])
    assert [e.name for e in entries] == [name for name, _ in A2F_V3_FILES]
    assert all(e.folder == "audio2face-v3" and not e.default for e in entries)
    assert all(e.urls == (f"https://huggingface.co/nvidia/Audio2Face-3D-v3.0/resolve/main/{e.name}",) for e in entries)
    monkeypatch.setenv("TALKBRIDGE_MODELS", str(tmp_path / "store"))
    store = WeightStore()
    folder = {store.path(e).parent for e in entries}
    assert folder == {tmp_path / "store" / "audio2face-v3"}  # one folder, as model.json's relative paths need
    root = write_diffusion_folder(folder.pop())
    assert sorted(p.name for p in root.iterdir()) == sorted(e.name for e in entries)  # nothing more, nothing less
    catalogued = {e.name for e in entries}
    assert _files_model_json_names(root) | {"network.onnx"} <= catalogued  # the loader reads network.onnx beside model.json
    assert A2F_V3_IDENTITIES == DIFFUSION_IDENTITIES
    for actor in A2F_V3_IDENTITIES:
        loaded = load_diffusion_folder(root, actor)
        assert list(loaded.identities) == [actor] and loaded.network_path == root / "network.onnx"
    assert all(store.status(e, deep=False).status.usable for e in entries)
    assert main(["models", "verify", "audio2face-v3"]) == 0
    assert capsys.readouterr().out.count(str(root)) == len(entries)

    (root / "bs_tongue_config_Mark.json").unlink()  # one identity's file gone: verify says so
    assert main(["models", "verify", "audio2face-v3"]) == 1
    assert "missing" in next(line for line in capsys.readouterr().out.splitlines() if "bs_tongue_config_Mark.json" in line)


def test_adopting_a_v3_folder_files_it_as_audio2face_v3(tmp_path, monkeypatch):
    from tests.audio2face_models import write_diffusion_folder

    root = write_diffusion_folder(tmp_path / "downloads" / "Audio2Face-3D-v3.0")
    monkeypatch.setenv("TALKBRIDGE_MODELS", str(tmp_path / "store"))
    reports = WeightStore().adopt(root)
    assert {r.entry.group for r in reports} == {"audio2face-v3"}
    assert len(reports) == len(select(CATALOG, ["audio2face-v3"])) and all(r.status.usable for r in reports)
    assert WeightStore().folder("audio2face-v3") == root.resolve()
