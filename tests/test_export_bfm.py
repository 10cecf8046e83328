"""The BFM_model_front.mat reader, the person's 3DMM head, and the 3DMM -> ARKit retarget."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.io import savemat

from talkbridge.core.errors import InputError
from talkbridge.core.motion import ARKIT_52, Motion
from talkbridge.exporters.bfm import build_head_from_coefficients, load_bfm
from talkbridge.exporters.retarget import GEOMETRIC, VISEME_FALLBACK, geometric_arkit, retarget_motion
from tests.heads import recon_coefficients, synthetic_bfm_arrays, synthetic_motion, write_synthetic_bfm


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return load_bfm(write_synthetic_bfm(tmp_path_factory.mktemp("bfm") / "BFM_model_front.mat"))


def test_head_is_the_persons_shape_in_metres_with_64_expression_targets(model):
    coefficients = recon_coefficients()
    head = build_head_from_coefficients(model, coefficients)
    arrays = synthetic_bfm_arrays()
    mean = arrays["meanshape"].reshape(-1, 3).astype(np.float64)
    expected = (mean - mean.mean(0)) + (arrays["idBase"] @ coefficients[0, :80]).reshape(-1, 3)
    np.testing.assert_allclose(head.positions, expected * 0.1, atol=1e-6)
    assert list(head.morph_targets) == [f"exp_{i:02d}" for i in range(64)]
    np.testing.assert_allclose(head.morph_targets["exp_00"], arrays["exBase"][:, 0].reshape(-1, 3) * 0.1, atol=1e-7)
    colour = (arrays["meantex"].reshape(-1, 3) + (arrays["texBase"] @ coefficients[0, 144:224]).reshape(-1, 3)) / 255
    np.testing.assert_allclose(head.colors, np.clip(colour, 0, 1), atol=1e-6)
    assert head.head_joint == "head" and head.joints[0].translation == (0.0, 0.0, 0.0)
    # Expression weights equal SadTalker coefficients: deforming by exp reproduces the 3DMM shape.
    exp = coefficients[0, 80:144]
    deformed = head.deformed({f"exp_{i:02d}": float(exp[i]) for i in range(64)})
    np.testing.assert_allclose(deformed, (expected + (arrays["exBase"] @ exp).reshape(-1, 3)) * 0.1, atol=1e-5)


def test_bad_bfm_files_are_named(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_bfm(tmp_path / "missing.mat")
    arrays = synthetic_bfm_arrays()
    del arrays["exBase"]
    savemat(str(tmp_path / "partial.mat"), arrays)
    with pytest.raises(InputError, match="missing exBase"):
        load_bfm(tmp_path / "partial.mat")
    arrays = synthetic_bfm_arrays()
    arrays["exBase"] = arrays["exBase"][:, :10]
    savemat(str(tmp_path / "short.mat"), arrays)
    with pytest.raises(InputError, match="exBase has shape"):
        load_bfm(tmp_path / "short.mat")
    (tmp_path / "text.mat").write_text("hello")
    with pytest.raises(InputError, match="text.mat"):
        load_bfm(tmp_path / "text.mat")


def test_recon_coefficients_must_be_257_wide(model):
    with pytest.raises(InputError, match="257"):
        build_head_from_coefficients(model, np.zeros((1, 70)))


@pytest.mark.parametrize(
    "component, channels",
    [
        (0, {"jawOpen"}),
        (1, {"mouthSmileLeft", "mouthSmileRight"}),
        (2, {"mouthPucker"}),
        (3, {"eyeBlinkLeft"}),
        (4, {"eyeBlinkRight"}),
        (5, {"browInnerUp", "browOuterUpLeft", "browOuterUpRight"}),
    ],
)
def test_geometric_retarget_reads_the_expression_from_landmarks(model, component, channels):
    expression = np.zeros((3, 64))
    expression[1, component] = 1.0
    expression[2, component] = 2.0
    arkit = geometric_arkit(model, expression)
    assert np.all(arkit[0] == 0), "a neutral expression must give all-zero ARKit"
    strongest = {ARKIT_52[i] for i in np.argsort(-arkit[2])[: len(channels)]}
    assert strongest == channels
    for name in channels:
        column = ARKIT_52.index(name)
        assert 0.2 < arkit[2, column] <= 1.0 and arkit[1, column] < arkit[2, column]
    others = [i for i, n in enumerate(ARKIT_52) if n not in channels and not n.startswith("mouthStretch")]
    assert arkit[2, others].max() < 0.2


def _sadtalker_motion(frames: int = 20) -> Motion:
    motion = synthetic_motion(frames, engine="sadtalker")
    motion.arkit = None
    motion.visemes = None
    return motion


def test_retarget_records_its_route(model):
    motion = _sadtalker_motion()
    geometric = retarget_motion(motion, model)
    assert geometric.metadata["expression_source"] == GEOMETRIC
    assert geometric.arkit.shape == (20, 52) and motion.arkit is None

    lite = synthetic_motion(21)  # one frame longer: engines may round differently
    fallback = retarget_motion(motion, None, lite)
    assert fallback.metadata["expression_source"] == VISEME_FALLBACK
    jaw = ARKIT_52.index("jawOpen")
    np.testing.assert_allclose(fallback.arkit[:, jaw], lite.arkit[:20, jaw])
    np.testing.assert_allclose(fallback.arkit[:, ARKIT_52.index("eyeBlinkLeft")], motion.blink)
    assert np.all(fallback.arkit[:, ARKIT_52.index("browInnerUp")] == 0)
    np.testing.assert_allclose(fallback.visemes, lite.visemes[:20])

    with pytest.raises(InputError, match="--bfm"):
        retarget_motion(motion)
    with pytest.raises(InputError, match="same audio"):
        retarget_motion(motion, None, synthetic_motion(40))
    assert retarget_motion(synthetic_motion(5)).metadata["expression_source"] == "engine"
