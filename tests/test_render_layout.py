"""Our networks' state dicts equal the official layouts key for key, in order, with the same shapes."""

from __future__ import annotations

import pytest
import torch

from talkbridge.core.face.recon_net import ReconNet
from talkbridge.core.sadtalker.render.config import MappingConfig
from talkbridge.core.sadtalker.render.generator import OcclusionAwareSPADEGenerator
from talkbridge.core.sadtalker.render.he_estimator import HEEstimator
from talkbridge.core.sadtalker.render.kp_detector import KPDetector
from talkbridge.core.sadtalker.render.mapping import MappingNet
from tests.render_helpers import reference_keys

NETWORKS = {
    "mapping": lambda: MappingNet(MappingConfig(coeff_nc=70)),
    "mapping_still": lambda: MappingNet(MappingConfig(coeff_nc=73)),
    "kp_extractor": KPDetector,
    "he_estimator": HEEstimator,
    "generator": OcclusionAwareSPADEGenerator,
    "net_recon": ReconNet,
}

# Parameter counts from the SPEC (buffers such as running statistics and u/v excluded).
PARAMETERS = {
    "mapping": 10_195_190,
    "mapping_still": 10_216_694,
    "he_estimator": 30_254_838,
    "generator": 100_988_176,
    "net_recon": 24_034_625,
}


def _layout(module: torch.nn.Module) -> list[tuple[str, list[int]]]:
    return [(k, list(v.shape)) for k, v in module.state_dict().items()]


@pytest.fixture(scope="module")
def built() -> dict[str, torch.nn.Module]:
    return {name: make() for name, make in NETWORKS.items()}


@pytest.mark.parametrize("name", list(NETWORKS))
def test_state_dict_equals_reference_in_order(built, name):
    assert _layout(built[name]) == list(reference_keys(name).items())


@pytest.mark.parametrize("name", list(PARAMETERS))
def test_parameter_count_matches_spec(built, name):
    assert sum(p.numel() for p in built[name].parameters()) == PARAMETERS[name]


def test_batch_norm_counters_are_int64_scalars(built):
    counters = [v for k, v in built["generator"].state_dict().items() if k.endswith("num_batches_tracked")]
    assert counters and all(v.dtype == torch.int64 and v.shape == () for v in counters)


@pytest.mark.parametrize("prefix,name", [("kp_extractor", "kp_extractor"), ("generator", "generator"), ("face_3drecon", "net_recon")])
def test_combined_safetensors_layout_matches_our_networks(built, prefix, name):
    combined = reference_keys("SadTalker_V0.0.2_safetensors_layout")
    ours = [(f"{prefix}.{k}", shape) for k, shape in _layout(built[name])]
    theirs = [(k, v) for k, v in combined.items() if k.startswith(prefix + ".")]
    assert ours == theirs
