"""Preprocess modes, crop parameters, paste-back and first-frame extraction on a real portrait crop."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from talkbridge.core.face.extract import extract_first_frame
from talkbridge.core.face.landmarks import NoFaceError, StaticLandmarks
from talkbridge.core.face.paste import finish_frame, output_size, paste_frame
from talkbridge.core.face.preprocess import MODES, crop_geometry, landmarks_in_source, preprocess_image
from talkbridge.core.face.recon_net import ReconNet
from talkbridge.core.face.template import landmarks_68_to_5
from tests.render_helpers import golden_case, landmarks_y_down, recipe_state

OFFSET = (140, 90)  # where the 256x256 astronaut crop sits on a larger canvas


@pytest.fixture(scope="module")
def portrait() -> tuple[np.ndarray, np.ndarray]:
    """A 600x480 canvas with the face well inside it, and its 68 landmarks (pixels, y down)."""
    face, lm = landmarks_y_down()
    canvas = np.zeros((480, 600, 3), np.uint8)
    canvas[:] = (40, 90, 160)
    canvas[OFFSET[1] : OFFSET[1] + 256, OFFSET[0] : OFFSET[0] + 256] = face
    return canvas, lm + np.array(OFFSET, np.float32)


def _inside(inner, outer) -> bool:
    return inner[0] >= outer[0] and inner[1] >= outer[1] and inner[2] <= outer[2] and inner[3] <= outer[3]


def test_mode_boxes_nest_and_follow_the_face(portrait):
    image, lm = portrait
    size = (image.shape[1], image.shape[0])
    infos = {mode: crop_geometry(lm, size, mode) for mode in MODES}
    assert infos["resize"].box == (0, 0, 600, 480) and infos["resize"].size == (600, 480)
    crop, ext = infos["crop"], infos["extcrop"]
    assert crop.box == crop.face_box and ext.box == ext.bordered_box == crop.bordered_box
    assert _inside(crop.face_box, crop.bordered_box) and _inside(crop.bordered_box, (0, 0, 600, 480))
    assert infos["full"].paste_box == crop.face_box and infos["extfull"].paste_box == crop.bordered_box
    # The face (eyes to mouth) lies inside the face box, which is roughly square.
    x1, y1, x2, y2 = crop.face_box
    assert x1 < lm[36, 0] and lm[45, 0] < x2 and y1 < lm[19, 1] and lm[57, 1] < y2
    assert 0.8 < (x2 - x1) / (y2 - y1) < 1.25
    # Moving the face moves every box by the same amount.
    moved = crop_geometry(lm + [17, 9], size, "extcrop")
    assert np.array_equal(np.subtract(moved.box, ext.box), [17, 9, 17, 9])


def test_five_points_give_nearly_the_same_crop(portrait):
    image, lm = portrait
    size = (image.shape[1], image.shape[0])
    from_68 = crop_geometry(lm, size, "crop").box
    from_5 = crop_geometry(landmarks_68_to_5(lm), size, "crop").box
    assert np.abs(np.subtract(from_68, from_5)).max() <= 8


def test_huge_faces_are_shrunk_like_the_official_code():
    _, lm = landmarks_y_down()
    small = crop_geometry(lm + 300, (900, 900), "crop")
    big = crop_geometry((lm + 300) * 10, (9000, 9000), "crop")
    assert big.shrink > 1
    np.testing.assert_allclose(np.array(big.box) / 10, small.box, atol=4)


def test_degenerate_landmarks_are_rejected():
    with pytest.raises(ValueError, match="empty face box"):
        crop_geometry(np.zeros((68, 2), np.float32), (100, 100), "crop")
    with pytest.raises(ValueError, match="unknown preprocess mode"):
        crop_geometry(np.zeros((68, 2), np.float32), (100, 100), "zoom")


def test_source_cut_and_landmarks_carry_over(portrait):
    image, lm = portrait
    source, info = preprocess_image(image, lm, "crop", 256)
    assert source.shape == (256, 256, 3) and source.dtype == np.uint8
    moved = landmarks_in_source(lm, info, 256)
    x, y = np.rint(moved[30]).astype(int)  # nose tip: same colour in the source as in the original
    ox, oy = np.rint(lm[30]).astype(int)
    assert np.abs(source[y, x].astype(int) - image[oy, ox].astype(int)).max() < 40


@pytest.mark.parametrize("mode", ["full", "extfull"])
def test_paste_back_restores_the_photo_outside_and_blends_inside(portrait, mode):
    image, lm = portrait
    source, info = preprocess_image(image, lm, mode, 256)
    pasted = paste_frame(source, image, info)
    assert pasted.shape == image.shape
    x1, y1, x2, y2 = info.paste_box
    outside = np.ones(image.shape[:2], bool)
    outside[y1:y2, x1:x2] = False
    assert np.array_equal(pasted[outside], image[outside])
    inner = (slice(y1 + 10, y2 - 10), slice(x1 + 10, x2 - 10))
    assert np.abs(pasted[inner].astype(int) - image[inner].astype(int)).mean() < 6
    # What the renderer drew shows up inside the box (Poisson blending keeps gradients, not levels).
    marked = source.copy()
    marked[118:138, 118:138] = 255
    cx, cy = (x1 + x2) // 2, (y1 + y2) // 2
    spot = (slice(cy - 3, cy + 3), slice(cx - 3, cx + 3))
    assert paste_frame(marked, image, info)[spot].mean() - pasted[spot].mean() > 30


def test_crop_modes_finish_with_the_face_aspect_ratio(portrait):
    image, lm = portrait
    source, info = preprocess_image(image, lm, "crop", 256)
    w, h = info.size
    assert output_size(info, 256) == (256, int(256 * h / w))
    assert finish_frame(source, image, info).shape == (int(256 * h / w), 256, 3)
    full_source, full_info = preprocess_image(image, lm, "full", 256)
    assert finish_frame(full_source, image, full_info).shape == image.shape


@pytest.fixture(scope="module")
def recipe_recon() -> ReconNet:
    net = ReconNet()
    net.load_state_dict(recipe_state(net))
    return net.eval()


def test_extract_first_frame_reproduces_the_official_row(recipe_recon):
    """Resize mode on the golden 256 crop is exactly the official align + recon path."""
    image, lm = landmarks_y_down()
    first = extract_first_frame(image, recipe_recon, landmarks=lm, mode="resize", size=256)
    golden = golden_case("g_net_recon")
    np.testing.assert_allclose(first.row, golden.expected["coeff_3dmm_73"][0], atol=2e-4, rtol=1e-4)
    np.testing.assert_allclose(first.trans_params, golden_case("h_align_img").expected["trans_params"], rtol=1e-5)
    assert first.row.dtype == np.float32 and first.coeffs.shape == (257,)


def test_extract_first_frame_in_crop_mode_with_a_detector(portrait, recipe_recon):
    image, lm = portrait
    calls = []

    class Detector:
        def detect(self, image_rgb):
            calls.append(image_rgb.shape)
            return lm if image_rgb.shape == image.shape else None  # fails on the crop: falls back

    first = extract_first_frame(image, recipe_recon, provider=Detector(), mode="crop", size=256)
    assert calls == [image.shape, (256, 256, 3)]
    assert first.source_image.shape == (256, 256, 3) and first.row.shape == (73,)
    np.testing.assert_allclose(first.row[70:], first.trans_params[2:].astype(np.float32))
    with pytest.raises(NoFaceError):
        extract_first_frame(image, recipe_recon, provider=type("Blind", (), {"detect": lambda s, i: None})())


def test_static_landmarks_do_not_trigger_redetection(portrait, recipe_recon):
    image, lm = portrait
    a = extract_first_frame(image, recipe_recon, landmarks=lm, mode="extcrop")
    b = extract_first_frame(image, recipe_recon, provider=StaticLandmarks(lm), mode="extcrop")
    np.testing.assert_array_equal(a.row, b.row)
    assert torch.is_tensor(torch.from_numpy(a.row))
