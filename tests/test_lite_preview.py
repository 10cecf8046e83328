"""The CPU preview renderer draws the head, and the drawing follows the motion."""

from __future__ import annotations

import numpy as np
import pytest

from talkbridge.core.lite.mannequin import build_mannequin
from talkbridge.core.lite.preview import PreviewRenderer
from talkbridge.core.motion import ARKIT_52, MotionChunk

SIZE = 256


@pytest.fixture(scope="module")
def renderer():
    return PreviewRenderer(build_mannequin(), size=SIZE)


def frames_for(renderer, weights: list[dict[str, float]], poses=None) -> np.ndarray:
    n = len(weights)
    arkit = np.zeros((n, 52), np.float32)
    for i, frame in enumerate(weights):
        for name, value in frame.items():
            arkit[i, ARKIT_52.index(name)] = value
    pose = np.zeros((n, 6), np.float32) if poses is None else np.asarray(poses, np.float32)
    return renderer.render(MotionChunk(0, pose, np.zeros(n), arkit=arkit))


def changed(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(a.astype(int) - b.astype(int)).sum(axis=2) > 30


def test_default_size_and_a_shaded_head(renderer):
    assert PreviewRenderer(renderer.head).size == 512
    frames = frames_for(renderer, [{}])
    assert frames.shape == (1, SIZE, SIZE, 3) and frames.dtype == np.uint8
    head = changed(frames[0], renderer.background)
    assert 0.15 < head.mean() < 0.6  # the head fills a good part of the frame, not all of it
    skin = frames[0][head]
    assert skin.std(axis=0).mean() > 8  # shaded, not a flat silhouette


def test_motion_changes_the_right_part_of_the_picture(renderer):
    rest, jaw, blink, turned = frames_for(
        renderer, [{}, {"jawOpen": 1.0}, {"eyeBlinkLeft": 1.0, "eyeBlinkRight": 1.0}, {}],
        poses=[[0] * 6, [0] * 6, [0] * 6, [0, 0.5, 0, 0, 0, 0]],
    )
    rows = np.arange(SIZE)[:, None] * np.ones((1, SIZE))
    jaw_change, blink_change = changed(rest, jaw), changed(rest, blink)
    assert jaw_change.sum() > 200 and blink_change.sum() > 30
    # The open mouth is dark inside and lies below the blinking eyes.
    assert rows[jaw_change].mean() > rows[blink_change].mean() + 0.1 * SIZE
    assert (jaw.sum(axis=2) < 150).sum() > (rest.sum(axis=2) < 150).sum() + 50
    # Turning the head (yaw > 0: towards the subject's left, the viewer's right) moves the pupils right.
    def pupil_column(frame):
        pupils = np.argwhere(frame.astype(int).sum(axis=2) < 45)
        assert len(pupils) > 4
        return pupils[:, 1].mean()

    assert pupil_column(turned) > pupil_column(rest) + 0.05 * SIZE


def test_frames_do_not_depend_on_how_motion_is_chunked():
    renderer = PreviewRenderer(build_mannequin(), size=64)
    rng = np.random.default_rng(0)
    pose = rng.normal(0, 0.05, (30, 6)).astype(np.float32)
    arkit = rng.uniform(0, 1, (30, 52)).astype(np.float32)
    whole = renderer.render(MotionChunk(0, pose, np.zeros(30), arkit=arkit))
    parts = [renderer.render(MotionChunk(s, pose[s : s + 7], np.zeros(len(pose[s : s + 7])), arkit=arkit[s : s + 7]))
             for s in range(0, 30, 7)]
    assert np.array_equal(whole, np.concatenate(parts))


def test_any_head_with_arkit_targets_renders():
    from talkbridge.core.head_mesh import HeadMesh

    # An octahedron "head" without colours or joints, whose jawOpen target drops its bottom vertex.
    positions = np.array([[0.1, 0, 0], [-0.1, 0, 0], [0, 0.1, 0], [0, -0.1, 0], [0, 0, 0.1], [0, 0, -0.1]], np.float32)
    faces = np.array([[0, 2, 4], [2, 1, 4], [1, 3, 4], [3, 0, 4], [2, 0, 5], [1, 2, 5], [3, 1, 5], [0, 3, 5]])
    jaw = np.zeros_like(positions)
    jaw[3, 1] = -0.1
    head = HeadMesh("octahedron", positions, faces, morph_targets={"jawOpen": jaw, "notArkit": jaw})
    renderer = PreviewRenderer(head, size=64)
    arkit = np.zeros((2, 52), np.float32)
    arkit[1, ARKIT_52.index("jawOpen")] = 1.0
    closed, opened = renderer.render(MotionChunk(0, np.zeros((2, 6)), np.zeros(2), arkit=arkit))
    covered = lambda frame: changed(frame, renderer.background).sum()  # noqa: E731
    assert covered(closed) > 200 and covered(opened) > covered(closed) * 1.1
