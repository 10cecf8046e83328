"""Landmark sources: user files (JSON / text, 68 or 5 points), validation, providers, no-face errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from talkbridge.core.errors import CheckpointError, InputError
from talkbridge.core.face.landmarks import (
    FaceAlignmentProvider,
    NoFaceError,
    StaticLandmarks,
    face_alignment_weight_files,
    load_landmark_file,
    missing_face_alignment_weights,
    resolve_landmarks,
)
from tests.render_helpers import landmarks_y_down


@pytest.fixture(scope="module")
def face():
    return landmarks_y_down()


def test_json_pairs_object_and_point_dicts(tmp_path, face):
    _, lm = face
    pairs = tmp_path / "pairs.json"
    pairs.write_text(json.dumps(lm.tolist()))
    np.testing.assert_allclose(load_landmark_file(pairs), lm, atol=1e-4)
    wrapped = tmp_path / "wrapped.json"
    wrapped.write_text(json.dumps({"landmarks": lm[:5].tolist(), "source": "manual"}))
    assert load_landmark_file(wrapped).shape == (5, 2)
    dicts = tmp_path / "dicts.json"
    dicts.write_text(json.dumps([{"x": float(x), "y": float(y)} for x, y in lm]))
    np.testing.assert_allclose(load_landmark_file(dicts), lm, atol=1e-4)


def test_text_file_with_comments_and_commas(tmp_path, face):
    _, lm = face
    path = tmp_path / "points.txt"
    path.write_text("# x y\n" + "\n".join(f"{x:.4f}, {y:.4f}" for x, y in lm[:5]) + "\n\n")
    np.testing.assert_allclose(load_landmark_file(path), lm[:5], atol=1e-3)
    with_depth = tmp_path / "points3d.txt"
    with_depth.write_text("\n".join(f"{x:.4f} {y:.4f} 0.5" for x, y in lm))
    np.testing.assert_allclose(load_landmark_file(with_depth), lm, atol=1e-3)


@pytest.mark.parametrize(
    "content,message",
    [
        ("[[1, 2], [3, 4]]", "68 or 5"),
        ("{\"points_wrong\": []}", "no 'landmarks'"),
        ("[[1, 2", "not valid JSON"),
        ("1 2\nthree 4\n", "line 2"),
        ("1 2 3\n4 5\n", "different numbers of values"),
        ("[[1, NaN]" + ", [1, 1]" * 4 + "]", "NaN"),
    ],
)
def test_bad_landmark_files_say_what_is_wrong(tmp_path, content, message):
    path = tmp_path / ("bad.json" if content.lstrip().startswith(("[", "{")) else "bad.txt")
    path.write_text(content)
    with pytest.raises(InputError, match=message) as error:
        load_landmark_file(path)
    assert str(path) in str(error.value)


def test_points_outside_the_image_are_rejected(tmp_path, face):
    image, lm = face
    path = tmp_path / "scaled.json"
    path.write_text(json.dumps((lm * 4).tolist()))
    with pytest.raises(InputError, match="outside the 256x256 image"):
        resolve_landmarks(image, str(path))


def test_missing_file_is_named(tmp_path):
    with pytest.raises(InputError, match="landmark file not found"):
        load_landmark_file(tmp_path / "nope.json")


def test_no_face_suggests_the_landmark_option(face):
    image, _ = face

    class Blind:
        def detect(self, image_rgb):
            return None

    with pytest.raises(NoFaceError, match="--landmarks FILE") as error:
        resolve_landmarks(image, provider=Blind(), image_path="portrait.png")
    assert "portrait.png" in str(error.value) and "68 points" in str(error.value)


def test_user_landmarks_win_over_the_provider(face):
    image, lm = face
    other = StaticLandmarks(lm + 3)
    np.testing.assert_array_equal(resolve_landmarks(image, lm, provider=other), lm)
    np.testing.assert_array_equal(resolve_landmarks(image, provider=other), lm + 3)


def test_face_alignment_provider_without_weights_fails_clearly(tmp_path, monkeypatch, face):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    names = set(face_alignment_weight_files())
    assert {"2DFAN4-11f355bf06.pth.tar", "s3fd-619a316812.pth"} == names
    assert {p.name for p in missing_face_alignment_weights()} == names
    assert all(p.parent == tmp_path / "hub" / "checkpoints" for p in missing_face_alignment_weights())
    with pytest.raises(CheckpointError, match="--landmarks") as error:
        FaceAlignmentProvider().detect(face[0])
    assert "2DFAN4-11f355bf06.pth.tar" in str(error.value)


def test_face_alignment_provider_glue_with_seeded_weights(tmp_path, monkeypatch, face):
    """With the weight files pre-seeded, the provider builds face-alignment offline-safe and keeps the largest face."""
    import face_alignment

    image, lm = face
    checkpoints = tmp_path / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    for name in face_alignment_weight_files():
        (checkpoints / name).write_bytes(b"seeded")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    built = {}

    class FakeFaceAlignment:
        def __init__(self, landmarks_type, **kwargs):
            built.update(kwargs, landmarks_type=landmarks_type)

        def get_landmarks_from_image(self, image_rgb):
            if image_rgb.mean() == 0:
                return None
            small = lm * 0.5 + 10
            return [np.column_stack([small, np.zeros(68)]), np.column_stack([lm, np.ones(68)])]

    monkeypatch.setattr(face_alignment, "FaceAlignment", FakeFaceAlignment)
    provider = FaceAlignmentProvider(device="cpu")
    found = provider.detect(image)
    np.testing.assert_allclose(found, lm, atol=1e-4)
    assert found.dtype == np.float32 and found.shape == (68, 2)
    assert built["compile"] is False and built["device"] == "cpu"
    assert built["landmarks_type"] == face_alignment.LandmarksType.TWO_D
    assert provider.detect(np.zeros_like(image)) is None
