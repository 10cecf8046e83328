"""Loading the official checkpoint containers: pickled dicts (.pth/.pth.tar) and the combined safetensors.

Files are written here in the official layouts with recipe weights (or cheap fills for the 700 MB
combined file), so loading is checked end to end without downloads: the loaded networks reproduce
the golden outputs, and broken files fail with the file and the problem named.
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest
import torch

from talkbridge.core.errors import CheckpointError
from talkbridge.core.face.extract import load_recon_net
from talkbridge.core.face.recon_net import ReconNet
from talkbridge.core.sadtalker.render.config import MappingConfig
from talkbridge.core.sadtalker.render.generator import OcclusionAwareSPADEGenerator
from talkbridge.core.sadtalker.render.he_estimator import HEEstimator
from talkbridge.core.sadtalker.render.kp_detector import KPDetector
from talkbridge.core.sadtalker.render.mapping import MappingNet
from talkbridge.core.sadtalker.render.models import (
    FACEVID2VID_FILE,
    MAPPING_FILES,
    FaceRenderModels,
    combined_safetensors_name,
    load_combined,
    load_facevid2vid,
    load_mapping,
)
from tests.render_helpers import golden_case, recipe_state, reference_keys

OFFICIAL_COMBINED_BYTES = 725_066_984


def _write_mapping(folder, channels: int) -> None:
    state = recipe_state(MappingNet(MappingConfig(coeff_nc=channels)))
    torch.save({"mapping": state, "epoch": 229}, folder / MAPPING_FILES[channels])


@pytest.fixture(scope="module")
def mapping_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mapping")
    _write_mapping(folder, 70)
    _write_mapping(folder, 73)
    return folder


@pytest.mark.parametrize("channels,case", [(70, "a_mapping"), (73, "a2_mapping_still")])
def test_mapping_file_reproduces_golden(mapping_dir, channels, case):
    net = load_mapping(mapping_dir / MAPPING_FILES[channels], still=channels == 73)
    golden = golden_case(case)
    with torch.inference_mode():
        out = net(torch.from_numpy(golden.expected.get("window", golden.inputs.get("window"))))
    for name in ("yaw", "pitch", "roll", "t", "exp"):
        atol, rtol = golden.tolerance(name)
        np.testing.assert_allclose(out[name].numpy(), golden.expected[name], atol=atol, rtol=rtol)


def test_mapping_width_mismatch_names_the_right_file(mapping_dir):
    with pytest.raises(CheckpointError, match="73-channel.*need 70") as error:
        load_mapping(mapping_dir / MAPPING_FILES[73], still=False)
    assert MAPPING_FILES[73] in str(error.value)


def test_truncated_pickle_is_reported_with_its_path(mapping_dir, tmp_path):
    data = (mapping_dir / MAPPING_FILES[70]).read_bytes()
    broken = tmp_path / MAPPING_FILES[70]
    broken.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="not a readable PyTorch checkpoint") as error:
        load_mapping(broken)
    assert str(broken) in str(error.value)


def test_wrong_entry_and_missing_keys_are_named(tmp_path):
    path = tmp_path / "epoch_20.pth"
    torch.save({"model": {}}, path)
    with pytest.raises(CheckpointError, match="no 'net_recon' entry"):
        load_recon_net(path)
    state = recipe_state(MappingNet())
    state.pop("fc_exp.bias")
    state["extra.weight"] = torch.zeros(1)
    torch.save({"mapping": state}, path)
    with pytest.raises(CheckpointError) as error:
        load_mapping(path)
    assert "fc_exp.bias" in str(error.value) and "extra.weight" in str(error.value)


def test_pickle_holding_code_is_refused(tmp_path):
    path = tmp_path / MAPPING_FILES[70]
    torch.save({"mapping": {"first.0.weight": torch.zeros(1)}, "hook": zlib.crc32}, path)
    with pytest.raises(CheckpointError, match="not a readable PyTorch checkpoint"):
        load_mapping(path)


def test_recon_pth_reproduces_golden(tmp_path):
    path = tmp_path / "epoch_20.pth"
    torch.save({"net_recon": recipe_state(ReconNet()), "epoch": 20}, path)
    net = load_recon_net(path)
    golden = golden_case("g_net_recon")
    with torch.inference_mode():
        out = net(torch.from_numpy(golden.inputs["image"])).numpy()
    np.testing.assert_allclose(out, golden.expected["coeff_257"], atol=2e-4, rtol=1e-4)


def _fill(name: str, shape: list[int]) -> torch.Tensor:
    """A cheap tensor whose constant value identifies its key (so prefix mix-ups show)."""
    if name.endswith("num_batches_tracked"):
        return torch.full(shape, zlib.crc32(name.encode()) % 1000, dtype=torch.int64)
    return torch.full(shape, (zlib.crc32(name.encode()) % 10007) / 10007.0, dtype=torch.float32)


@pytest.mark.slow
def test_combined_safetensors_full_layout(tmp_path):
    """All 1305 entries: the file size equals the official one, and each sub-network loads its own keys."""
    from safetensors.torch import save_file

    layout = reference_keys("SadTalker_V0.0.2_safetensors_layout")
    path = tmp_path / combined_safetensors_name(256)
    save_file({name: _fill(name, shape) for name, shape in layout.items()}, str(path))
    assert path.stat().st_size == OFFICIAL_COMBINED_BYTES
    kp, generator = load_combined(path)
    recon = load_recon_net(path)
    for prefix, net in (("kp_extractor", kp), ("generator", generator), ("face_3drecon", recon)):
        for key, value in net.state_dict().items():
            expected = _fill(f"{prefix}.{key}", list(value.shape))
            assert torch.equal(value, expected), f"{prefix}.{key} loaded the wrong tensor"

    truncated = tmp_path / "truncated.safetensors"
    with open(path, "rb") as source:
        truncated.write_bytes(source.read(OFFICIAL_COMBINED_BYTES // 3))
    with pytest.raises(CheckpointError, match="safetensors") as error:
        load_combined(truncated)
    assert str(truncated) in str(error.value)


@pytest.mark.slow
def test_facevid2vid_pickle_and_checkpoint_dir(tmp_path, mapping_dir):
    """The .pth.tar training checkpoint (with extra entries) loads all three networks strictly."""
    nets = {"kp_detector": KPDetector(), "generator": OcclusionAwareSPADEGenerator(), "he_estimator": HEEstimator()}
    payload = {name: net.state_dict() for name, net in nets.items()}
    payload.update(epoch=189, discriminator={"w": torch.zeros(2)}, optimizer_generator={"lr": torch.tensor(1e-4)})
    for name in MAPPING_FILES.values():
        (tmp_path / name).write_bytes((mapping_dir / name).read_bytes())
    torch.save(payload, tmp_path / FACEVID2VID_FILE)
    kp, generator, he = load_facevid2vid(tmp_path / FACEVID2VID_FILE)
    for name, loaded in (("kp_detector", kp), ("generator", generator), ("he_estimator", he)):
        for key, value in loaded.state_dict().items():
            assert torch.equal(value, payload[name][key]), f"{name}.{key}"
    models = FaceRenderModels.from_checkpoint_dir(tmp_path, size=256, preprocess="full")
    assert models.still_mapping and models.mapping.config.coeff_nc == 73
    assert torch.equal(models.generator.decoder.fc.weight, payload["generator"]["decoder.fc.weight"])
    models = FaceRenderModels.from_checkpoint_dir(tmp_path, size=256, preprocess="crop")
    assert not models.still_mapping


def test_checkpoint_dir_without_render_weights_says_what_is_missing(tmp_path, mapping_dir):
    for name in MAPPING_FILES.values():
        (tmp_path / name).write_bytes((mapping_dir / name).read_bytes())
    with pytest.raises(CheckpointError, match=f"{combined_safetensors_name(256)}.*{FACEVID2VID_FILE}"):
        FaceRenderModels.from_checkpoint_dir(tmp_path)
