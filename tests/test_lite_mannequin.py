"""The generated mannequin: a clean closed mesh whose 52 ARKit targets each move only their region."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial import cKDTree

from talkbridge.core.lite.mannequin import EYE_RADIUS, MOUTH_Y, TARGET_REGIONS, build_mannequin
from talkbridge.core.motion import ARKIT_52

MOVED = 1e-6  # metres: anything less counts as not moved


@pytest.fixture(scope="module")
def head():
    return build_mannequin()


def test_targets_joints_and_size(head):
    assert list(head.morph_targets) == list(ARKIT_52)
    assert 3000 <= head.n_vertices <= 12000
    assert [j.name for j in head.joints] == ["neck", "head"] and head.joints[1].parent == 0
    assert head.head_joint == "head"
    assert np.allclose(head.skin_weights.sum(axis=1), 1.0)
    # The head joint sits at the origin (between the ears); the neck below it.
    head_position = np.add(head.joints[0].translation, head.joints[1].translation)
    assert np.allclose(head_position, 0.0) and head.joints[0].translation[1] < -0.05
    assert head.colors.shape == (head.n_vertices, 3) and head.normals.shape == (head.n_vertices, 3)


def test_mesh_is_closed_with_no_degenerate_triangles(head):
    faces = head.indices.astype(np.int64)
    edges = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), axis=1)
    _, uses = np.unique(edges, axis=0, return_counts=True)
    assert np.all(uses == 2), "every edge must be shared by exactly two triangles"
    # Consistent winding: each directed edge appears once.
    directed = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    assert len(np.unique(directed, axis=0)) == len(directed)
    p = head.positions.astype(np.float64)
    area = 0.5 * np.linalg.norm(np.cross(p[faces[:, 1]] - p[faces[:, 0]], p[faces[:, 2]] - p[faces[:, 0]]), axis=1)
    assert area.min() > 1e-10
    # Outward: the signed volume is positive and about a head's (a few litres).
    volume = np.einsum("ij,ij->i", p[faces[:, 0]], np.cross(p[faces[:, 1]], p[faces[:, 2]])).sum() / 6
    assert 0.002 < volume < 0.01


@pytest.mark.parametrize("name", ARKIT_52)
def test_every_target_moves_only_its_region(head, name):
    delta = np.linalg.norm(head.morph_targets[name], axis=1)
    moved = np.flatnonzero(delta > MOVED)
    allowed = np.unique(np.concatenate([head.regions[r] for r in TARGET_REGIONS[name]]))
    assert delta.max() > 0.001, f"{name} barely moves anything"
    stray = np.setdiff1d(moved, allowed)
    assert stray.size == 0, f"{name} moves {stray.size} vertices outside {TARGET_REGIONS[name]}"
    # Sided targets stay on their side of the face (the subject's left is +X); jawLeft and mouthLeft
    # move the whole jaw or mouth towards a side instead.
    x = head.positions[moved, 0]
    if name in ("jawLeft", "jawRight", "mouthLeft", "mouthRight"):
        assert np.sign(head.morph_targets[name][moved, 0]).mean() == (1.0 if name.endswith("Left") else -1.0)
    elif name.endswith("Left"):
        assert x.min() > -0.008, name
    elif name.endswith("Right"):
        assert x.max() < 0.008, name


def test_left_and_right_targets_mirror_each_other(head):
    mirrored = head.positions * np.array([-1.0, 1.0, 1.0], np.float32)
    distance, partner = cKDTree(head.positions).query(mirrored)
    assert distance.max() < 1e-6, "the mesh is symmetric"
    for name in ARKIT_52:
        if name.endswith("Left"):
            left = head.morph_targets[name]
            right = head.morph_targets[name[:-4] + "Right"]
            assert np.allclose(right[partner] * np.array([-1, 1, 1]), left, atol=1e-6), name


def _nearest(head, region, point_xy):
    """The region's vertex closest to a point seen from the front (x, y)."""
    index = head.regions[region]
    return index[np.argmin(np.linalg.norm(head.positions[index, :2] - np.asarray(point_xy), axis=1))]


def test_targets_move_their_parts_plausibly(head):
    # The lips' meeting edges on the midline: the upper lip's lowest vertex and the lower lip's highest.
    midline_upper = head.regions["upper_lip"][np.abs(head.positions[head.regions["upper_lip"], 0]) < 1e-4]
    midline_lower = head.regions["lower_lip"][np.abs(head.positions[head.regions["lower_lip"], 0]) < 1e-4]
    upper = midline_upper[np.argmin(head.positions[midline_upper, 1])]
    lower = midline_lower[np.argmax(head.positions[midline_lower, 1])]

    def gap(weights):
        p = head.deformed(weights)
        return p[upper, 1] - p[lower, 1]

    assert gap({}) < 0.002  # lips touch at rest
    assert gap({"jawOpen": 1.0}) > 0.012  # the jaw opens the lips
    assert gap({"jawOpen": 1.0, "mouthClose": 1.0}) < 0.002  # mouthClose shuts them on an open jaw
    assert gap({"mouthLowerDownLeft": 1.0, "mouthLowerDownRight": 1.0}) > 0.006
    chin = _nearest(head, "jaw", (0.0, -0.085))
    assert head.morph_targets["jawOpen"][chin, 1] < -0.01
    # eyeBlink brings the upper lid's front edge down past the eye's centre.
    lid = head.regions["lid_left"]
    eye_center_y = head.positions[head.regions["eye_left"], 1].mean()
    front_edge = lid[np.argmax(head.positions[lid, 2])]
    assert head.positions[front_edge, 1] > eye_center_y + 0.3 * EYE_RADIUS
    assert head.deformed({"eyeBlinkLeft": 1.0})[front_edge, 1] < eye_center_y - 0.3 * EYE_RADIUS
    # A smile lifts the corner of the mouth; a frown lowers it.
    corner = _nearest(head, "mouth_left", (0.026, MOUTH_Y + 0.0014))
    assert head.morph_targets["mouthSmileLeft"][corner, 1] > 0.004
    assert head.morph_targets["mouthFrownLeft"][corner, 1] < -0.003
    # Looking left turns the pupil (front of the eye) towards +X; tongueOut pushes the tongue forward.
    pupil = head.regions["eye_left"][np.argmax(head.positions[head.regions["eye_left"], 2])]
    assert head.morph_targets["eyeLookOutLeft"][pupil, 0] > 0.003
    assert head.morph_targets["eyeLookInLeft"][pupil, 0] < -0.003
    assert head.morph_targets["tongueOut"][head.regions["tongue"], 2].min() > 0.02
    assert head.morph_targets["browInnerUp"][:, 1].max() > 0.003
