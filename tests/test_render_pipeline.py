"""Behaviour of the renderer around the networks: windows, pose paths, caching, streaming, batching.

Uses a structurally complete but tiny configuration at 64x64 so the whole loop runs in milliseconds;
numerical fidelity at full size is the golden cases' job.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from talkbridge.core.sadtalker.render.animate import make_animation
from talkbridge.core.sadtalker.render.blocks import SpectralNormConv2d, coordinate_grid
from talkbridge.core.sadtalker.render.keypoints import bins_to_degrees, keypoint_transformation
from talkbridge.core.sadtalker.render.models import FaceRenderModels
from talkbridge.core.sadtalker.render.renderer import FaceRenderer
from talkbridge.core.sadtalker.render.windows import (
    camera_pose_sequence,
    driving_coefficients,
    prepare_facerender_batch,
    semantic_window,
)
from tests.render_helpers import tiny_render_config

SIZE = 64


@pytest.fixture(scope="module")
def tiny_models() -> FaceRenderModels:
    torch.manual_seed(0)
    models = FaceRenderModels.untrained(tiny_render_config())
    # Well-conditioned spectral norm: u, v as trained checkpoints hold them (unit top singular vectors).
    for module in models.generator.modules():
        if isinstance(module, SpectralNormConv2d):
            matrix = module.weight_orig.detach().reshape(module.weight_orig.shape[0], -1)
            u, _, vh = torch.linalg.svd(matrix, full_matrices=False)
            module.weight_u.copy_(u[:, 0])
            module.weight_v.copy_(vh[0])
    return models


@pytest.fixture(scope="module")
def source() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    return rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8), rng.normal(0, 0.3, 73).astype(np.float32)


def _coeffs(count: int, seed: int = 5) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 0.3, (count, 70)).astype(np.float32)


def test_semantic_window_clamps_at_both_ends():
    coeffs = np.arange(5 * 2, dtype=np.float32).reshape(5, 2)
    window = semantic_window(coeffs, 1, radius=3)
    assert window.shape == (2, 7)
    np.testing.assert_array_equal(window[0], coeffs[[0, 0, 0, 1, 2, 3, 4], 0])
    np.testing.assert_array_equal(semantic_window(coeffs, 4, radius=3)[1], coeffs[[1, 2, 3, 4, 4, 4, 4], 1])


def test_still_and_full_modes_take_pose_and_crop_from_the_source():
    first = np.arange(73, dtype=np.float32)
    coeffs = _coeffs(4)
    full_still = driving_coefficients(first, coeffs, full=True, still=True, expression_scale=2.0)
    assert full_still.shape == (4, 73)
    np.testing.assert_allclose(full_still[:, :64], coeffs[:, :64] * 2.0)
    np.testing.assert_array_equal(full_still[:, 64:], np.repeat(first[None, 64:], 4, axis=0))
    moving = driving_coefficients(first, coeffs, full=False, still=False)
    np.testing.assert_array_equal(moving, coeffs)


def test_camera_pose_path_and_errors():
    path = camera_pose_sequence([0, 20], frame_num=5, batch_size=1)[0]
    np.testing.assert_allclose(path, [0, 5, 10, 15, 15])  # the last value is approached, never reached
    np.testing.assert_allclose(camera_pose_sequence([7], 3, 2), [[7, 7], [7, 7]])
    with pytest.raises(ValueError, match="repeats"):
        camera_pose_sequence([5, 5, 10], 4, 1)


def test_batch_layout_is_contiguous_runs_padded_with_the_last_frame(source):
    image, first = source
    batch = prepare_facerender_batch(image, first, _coeffs(5), batch_size=2, size=SIZE, radius=2)
    assert batch.target_semantics.shape == (2, 3, 70, 5)
    flat = batch.target_semantics.reshape(6, 70, 5)
    np.testing.assert_array_equal(flat[5], flat[4])  # padding repeats the last window
    np.testing.assert_array_equal(flat[3][:, 2], _coeffs(5)[3])  # element 1, step 0 is frame 3


def test_degrees_and_rotation_are_consistent():
    logits = torch.full((1, 66), -1e4)
    logits[0, 33] = 0.0  # all mass on bin 33 -> 3 * 33 - 99 = 0 degrees
    assert float(bins_to_degrees(logits)) == pytest.approx(0.0, abs=1e-4)
    kp = torch.randn(2, 15, 3)
    he = {"yaw": logits.repeat(2, 1), "pitch": logits.repeat(2, 1), "roll": logits.repeat(2, 1),
          "t": torch.tensor([[5.0, 0.5, 7.0]] * 2), "exp": torch.zeros(2, 45)}
    out = keypoint_transformation(kp, he)
    # Zero rotation; only the y translation is applied.
    torch.testing.assert_close(out["kp"], kp + torch.tensor([0.0, 0.5, 0.0]), atol=1e-4, rtol=0)
    yaw90 = keypoint_transformation(kp, he, yaw_in=torch.tensor([90.0, 90.0]))
    rot = yaw90["rot_mat"][0]
    assert torch.allclose(rot @ rot.T, torch.eye(3), atol=1e-5)
    assert float(rot[0, 2]) == pytest.approx(np.sin(90 / 180 * 3.14), abs=1e-6)


def test_spectral_norm_uses_stored_vectors_without_power_iteration():
    conv = SpectralNormConv2d(3, 4, kernel=3, padding=1)
    conv.weight_u.copy_(torch.tensor([1.0, 0, 0, 0]))
    conv.weight_v.zero_()
    conv.weight_v[0] = -2.0
    sigma = -2.0 * float(conv.weight_orig.detach().reshape(4, -1)[0, 0])
    torch.testing.assert_close(conv.normalised_weight(), conv.weight_orig / sigma)
    assert torch.equal(conv.weight_u, torch.tensor([1.0, 0, 0, 0]))  # buffers are never updated


def test_coordinate_grid_spans_minus_one_to_one_in_xyz_order():
    grid = coordinate_grid((2, 3, 5))
    assert grid.shape == (2, 3, 5, 3)
    assert torch.equal(grid[0, 0, :, 0], torch.linspace(-1, 1, 5))
    assert torch.equal(grid[:, 0, 0, 2], torch.tensor([-1.0, 1.0]))


def test_cached_source_work_matches_the_uncached_generator(tiny_models):
    generator = tiny_models.generator
    image = torch.rand(1, 3, SIZE, SIZE)
    kp_source, kp_driving = torch.rand(1, 15, 3) - 0.5, torch.rand(3, 15, 3) - 0.5
    with torch.inference_mode():
        direct = generator(image.expand(3, -1, -1, -1), kp_driving, kp_source.expand(3, -1, -1))["prediction"]
        cached = generator.forward_cached(generator.prepare_source(image, kp_source), kp_driving)["prediction"]
    torch.testing.assert_close(cached, direct, atol=1e-5, rtol=1e-5)


def test_stream_equals_whole_sequence_and_batching_does_not_change_frames(tiny_models, source):
    image, first = source
    coeffs = _coeffs(20)
    whole = FaceRenderer(tiny_models, image, first, size=SIZE).render(coeffs)
    assert whole.shape == (20, SIZE, SIZE, 3) and whole.dtype == np.uint8
    streamed_renderer = FaceRenderer(tiny_models, image, first, size=SIZE, batch_size=4)
    pieces = list(streamed_renderer.stream([coeffs[:8], coeffs[8:14], coeffs[14:19], coeffs[19:]]))
    # A frame comes out once the 13 frames after it have arrived; the rest when the stream ends.
    assert [len(p) for p in pieces] == [1, 5, 1, 13]
    streamed = np.concatenate([p for p in pieces if len(p)])
    assert np.abs(streamed.astype(int) - whole.astype(int)).max() <= 1


def test_renderer_matches_the_official_style_loop(tiny_models, source):
    image, first = source
    coeffs = _coeffs(5)
    batch = prepare_facerender_batch(image, first, coeffs, batch_size=2, size=SIZE)
    out = make_animation(
        torch.from_numpy(batch.source_image), torch.from_numpy(batch.source_semantics),
        torch.from_numpy(batch.target_semantics), tiny_models.kp_detector, tiny_models.mapping, tiny_models.generator,
    )
    frames = out["predictions"].reshape(-1, 3, SIZE, SIZE)[batch.frame_order()]
    official_u8 = np.clip(np.rint(frames.permute(0, 2, 3, 1).numpy() * 255), 0, 255).astype(np.uint8)
    ours = FaceRenderer(tiny_models, image, first, size=SIZE, batch_size=3).render(coeffs)
    assert np.abs(ours.astype(int) - official_u8.astype(int)).max() <= 1


def test_still_mode_and_free_view_change_the_pose(tiny_models, source):
    image, first = source
    coeffs = _coeffs(3)
    renderer = FaceRenderer(tiny_models, image, first, size=SIZE)
    moving = renderer.render(coeffs)
    turned = renderer.render(coeffs, yaw=[30])
    assert not np.array_equal(moving, turned)
    still = FaceRenderer(tiny_models, image, first, size=SIZE, still=True).render(coeffs)
    pose_only = coeffs.copy()
    pose_only[:, 64:] += 1.0  # a still renderer ignores the driving pose entirely
    np.testing.assert_array_equal(FaceRenderer(tiny_models, image, first, size=SIZE, still=True).render(pose_only), still)


def test_bad_coefficients_are_rejected(tiny_models, source):
    image, first = source
    renderer = FaceRenderer(tiny_models, image, first, size=SIZE)
    with pytest.raises(ValueError, match=r"\(T, >=70\)"):
        renderer.render(np.zeros((4, 12), np.float32))
