"""The audio networks match the official layouts and load the official containers strictly and safely."""

from __future__ import annotations

import json
import pickle

import pytest
import torch

from talkbridge.core.errors import CheckpointError
from talkbridge.core.sadtalker.audio_models import AudioCheckpoints, load_expnet, load_posevae
from talkbridge.core.sadtalker.nets.expnet import ExpNet
from talkbridge.core.sadtalker.nets.posevae import PoseVAE
from tests.golden_cases import golden_root
from tests.sadtalker_weights import seeded_audio_models, write_combined_safetensors, write_pth_checkpoints


@pytest.mark.parametrize("model_cls,layout", [(ExpNet, "audio2exp"), (PoseVAE, "audio2pose")])
def test_state_dict_equals_official_layout(model_cls, layout):
    official = json.loads((golden_root() / "audio" / "keys" / f"{layout}.json").read_text())
    ours = [(k, list(v.shape)) for k, v in model_cls().state_dict().items()]
    assert ours == list(official.items())


def test_combined_layout_prefixes_match_official():
    official = json.loads((golden_root() / "audio" / "keys" / "safetensors_audio_part.json").read_text())
    ours = {f"audio2exp.{k}": list(v.shape) for k, v in ExpNet().state_dict().items()}
    ours.update({f"audio2pose.{k}": list(v.shape) for k, v in PoseVAE().state_dict().items()})
    assert ours == official


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_pth_and_safetensors_load_the_same_weights(tmp_path):
    exp_pth, pose_pth = write_pth_checkpoints(tmp_path, seed=3)
    combined = write_combined_safetensors(tmp_path, seed=3)
    expnet, posevae = seeded_audio_models(3)
    assert _same_weights(load_expnet(exp_pth), expnet)
    assert _same_weights(load_expnet(combined), expnet)
    assert _same_weights(load_posevae(pose_pth), posevae)
    assert _same_weights(load_posevae(combined), posevae)


def test_find_prefers_the_combined_file(tmp_path):
    write_pth_checkpoints(tmp_path)
    assert AudioCheckpoints.find(tmp_path).expnet.suffix == ".pth"
    combined = write_combined_safetensors(tmp_path)
    assert AudioCheckpoints.find(tmp_path).expnet == combined
    (tmp_path / "auido2exp_00300-model.pth").unlink()
    with pytest.raises(CheckpointError, match="holds neither.*auido2exp_00300-model.pth"):
        AudioCheckpoints.find(tmp_path, size=512)


def test_wrong_network_lists_missing_and_unexpected_keys(tmp_path):
    exp_pth, pose_pth = write_pth_checkpoints(tmp_path)
    with pytest.raises(CheckpointError) as info:
        load_expnet(pose_pth)
    text = str(info.value)
    assert str(pose_pth) in text and "missing keys" in text and "unexpected keys" in text
    assert "audio_encoder.0.conv_block.0.weight" in text  # a missing ExpNet key is named


def test_missing_batch_counters_are_tolerated(tmp_path):
    expnet, _ = seeded_audio_models(1)
    state = {k: v for k, v in expnet.state_dict().items() if not k.endswith("num_batches_tracked")}
    path = tmp_path / "exp.pth"
    torch.save({"model": state}, path)
    assert _same_weights(load_expnet(path), expnet)


def test_wrong_shape_is_reported(tmp_path):
    expnet, _ = seeded_audio_models(1)
    state = expnet.state_dict()
    state["mapping1.weight"] = torch.zeros(64, 10)
    path = tmp_path / "exp.pth"
    torch.save({"model": state}, path)
    with pytest.raises(CheckpointError, match=r"mapping1.weight \(64, 10\)"):
        load_expnet(path)


@pytest.mark.parametrize("kind", ["pth", "safetensors"])
def test_truncated_files_fail_naming_the_file(tmp_path, kind):
    exp_pth, _ = write_pth_checkpoints(tmp_path)
    source = exp_pth if kind == "pth" else write_combined_safetensors(tmp_path)
    broken = tmp_path / f"broken.{kind}"
    broken.write_bytes(source.read_bytes()[: source.stat().st_size // 2])
    with pytest.raises(CheckpointError) as info:
        load_expnet(broken)
    assert str(broken) in str(info.value)


def test_pickle_with_code_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = tmp_path / "evil.pth"
    with open(path, "wb") as handle:
        pickle.dump({"model": Payload()}, handle)
    with pytest.raises(CheckpointError, match="not a readable PyTorch checkpoint"):
        load_expnet(path)
    assert not marker.exists()


def test_file_without_model_entry(tmp_path):
    path = tmp_path / "exp.pth"
    torch.save({"weights": {}}, path)
    with pytest.raises(CheckpointError, match="no 'model' entry"):
        load_expnet(path)
