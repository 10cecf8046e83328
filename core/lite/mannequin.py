"""The built-in mannequin head: generated geometry with all 52 ARKit morph targets and a neck/head rig.

Everything is made by this code (no third-party asset), in the glTF frame of
:mod:`talkbridge.core.head_mesh` (metres, +Y up, face towards +Z, origin between the ears).

The head is five closed parts:

* the skin shell, a latitude/longitude grid shaped by a profile table and facial features. Around
  the mouth it has four close rows: the outer lip lines and, between them, two rows tucked into the
  head and coloured as the mouth's inside. At rest they touch; the jaw and lip targets pull them
  apart, which opens a dark mouth without any hole in the surface;
* two eyeballs whose poles face forward, so the iris and pupil are rings of the grid;
* two upper lids, each a thin closed visor around its eye, that the blink target rolls down over it.
  The lower lid is the skin itself, which passes just in front of the lower part of the eyeball;
* a tongue, hidden behind the lips until ``tongueOut``.

Each morph target is a displacement field with compact support (a smooth bump that is exactly zero
outside its radius), so it moves only its region; :data:`TARGET_REGIONS` says which named vertex
sets each target may touch, and the tests hold the mesh to it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from talkbridge.core.head_mesh import HeadJoint, HeadMesh
from talkbridge.core.motion import ARKIT_52

# --- layout (metres) -------------------------------------------------------------------------------

MOUTH_Y = -0.046
MOUTH_HALF_WIDTH = 0.026
EYE_X = 0.032
EYE_Y = 0.028
EYE_RADIUS = 0.0118
LID_RADIUS = 1.15 * EYE_RADIUS
LID_OPEN_DEG = 22.0  # upper lid edge above the line of sight, at rest
LID_CLOSED_DEG = -38.0  # where eyeBlink brings it
LID_WIDE_DEG = 40.0  # where eyeWide lifts it
JAW_PIVOT = np.array([0.0, -0.012, -0.005])
JAW_OPEN_DEG = 20.0

# (y, half width, front depth, back depth) of the skin below the skull dome; between rows it is
# interpolated linearly. Above the first row the skull is an ellipsoid cap.
PROFILE = np.array([
    [0.030, 0.076, 0.094, 0.100],
    [0.000, 0.075, 0.096, 0.095],
    [-0.030, 0.071, 0.095, 0.086],
    [-0.060, 0.062, 0.090, 0.072],
    [-0.082, 0.050, 0.083, 0.058],
    [-0.098, 0.040, 0.064, 0.052],
    [-0.110, 0.037, 0.036, 0.050],
    [-0.150, 0.039, 0.036, 0.050],
    [-0.200, 0.042, 0.040, 0.052],
])
SKULL_TOP = 0.128
NECK_BOTTOM = -0.200

SKIN = (0.80, 0.69, 0.62)
LIP = (0.70, 0.40, 0.40)
MOUTH_INSIDE = (0.22, 0.07, 0.08)
BROW = (0.42, 0.32, 0.27)
EYE_WHITE = (0.94, 0.94, 0.92)
IRIS = (0.24, 0.42, 0.58)
PUPIL = (0.03, 0.03, 0.04)
LASH = (0.16, 0.12, 0.11)
TONGUE = (0.78, 0.38, 0.40)

SIDES = {"Left": 1.0, "Right": -1.0}  # the subject's left is +X when the face looks down +Z


# --- small geometric helpers -----------------------------------------------------------------------


def _smoothstep(edge0: float, edge1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _bump(points: np.ndarray, center, radii) -> np.ndarray:
    """Smooth weight 1 at ``center`` falling to exactly 0 on the ellipsoid of ``radii`` and beyond."""
    d2 = np.sum(((points - np.asarray(center, np.float64)) / np.asarray(radii, np.float64)) ** 2, axis=1)
    return np.where(d2 < 1.0, (1.0 - d2) ** 2, 0.0)


def _rotation_x(degrees: float) -> np.ndarray:
    a = np.deg2rad(degrees)
    return np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])


def _rotation_y(degrees: float) -> np.ndarray:
    a = np.deg2rad(degrees)
    return np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])


def _grid_faces(n_rings: int, n_cols: int, offset: int, first_pole: int, last_pole: int) -> np.ndarray:
    """Triangles of a closed grid: rings of ``n_cols`` vertices, capped by two pole vertices."""
    faces = []
    ring = lambda k: offset + k * n_cols + (np.arange(n_cols + 1) % n_cols)  # noqa: E731
    for k in range(n_rings - 1):
        a, b = ring(k), ring(k + 1)
        for j in range(n_cols):
            faces.append((a[j], b[j], b[j + 1]))
            faces.append((a[j], b[j + 1], a[j + 1]))
    top, bottom = ring(0), ring(n_rings - 1)
    for j in range(n_cols):
        faces.append((first_pole, top[j], top[j + 1]))
        faces.append((last_pole, bottom[j + 1], bottom[j]))
    return np.array(faces, np.int64)


def _orient_outwards(positions: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Flip a closed part's triangles if they wind clockwise seen from outside (negative volume)."""
    v0, v1, v2 = positions[faces[:, 0]], positions[faces[:, 1]], positions[faces[:, 2]]
    volume = np.einsum("ij,ij->i", v0, np.cross(v1, v2)).sum()
    return faces if volume > 0 else faces[:, ::-1].copy()


@dataclass
class _Part:
    positions: np.ndarray
    faces: np.ndarray  # local indices
    colors: np.ndarray


# --- the skin shell --------------------------------------------------------------------------------


def _ring_heights() -> tuple[np.ndarray, dict[str, int]]:
    """Heights of the shell's rings, top to bottom, and the indices of the four mouth rows."""
    # The dome's rings are evenly spaced in angle over an ellipse, from near the crown to the brow.
    crown = PROFILE[0, 0]
    dome = crown + (SKULL_TOP - crown) * np.cos(np.deg2rad(np.linspace(9.0, 69.0, 11)))
    face = np.arange(0.060, -0.1101, -0.0026)
    face = face[np.abs(face - MOUTH_Y) > 0.0024]
    neck = np.linspace(-0.118, NECK_BOTTOM, 7)
    mouth = MOUTH_Y + np.array([0.0014, 0.0004, -0.0004, -0.0014])
    heights = np.sort(np.concatenate([dome, face, neck, mouth]))[::-1]
    rows = {name: int(np.argmin(np.abs(heights - y))) for name, y in zip(("upper", "upper_in", "lower_in", "lower"), mouth)}
    return heights, rows


def _column_angles() -> np.ndarray:
    """Azimuths (0 = facing +Z, towards +X positive): dense over the face, sparse behind."""
    front = np.deg2rad(np.arange(-64.0, 64.1, 2.0))
    back = np.deg2rad(np.linspace(64.0, 296.0, 31)[1:-1])
    back = np.where(back > np.pi, back - 2 * np.pi, back)
    return np.sort(np.concatenate([front, back]))


@functools.lru_cache(maxsize=1)
def _profile_curves():
    """Smooth (C1) curves through the profile table and the skull's elliptical dome above it."""
    from scipy.interpolate import PchipInterpolator

    crown = PROFILE[0]
    dome_y = crown[0] + (SKULL_TOP - crown[0]) * np.sin(np.deg2rad(np.arange(15.0, 90.0, 15.0)))
    scale = np.sqrt(1.0 - ((dome_y - crown[0]) / (SKULL_TOP - crown[0])) ** 2)
    dome = np.column_stack([dome_y, crown[1] * scale, crown[2] * scale, crown[3] * scale])
    table = np.concatenate([PROFILE[::-1], dome])
    return [PchipInterpolator(table[:, 0], table[:, c]) for c in (1, 2, 3)]


def _cross_section(y: float) -> tuple[float, float, float]:
    """(half width, front depth, back depth) of the skin at height ``y``."""
    crown = PROFILE[0]
    if y > crown[0] + (SKULL_TOP - crown[0]) * np.sin(np.deg2rad(75.0)):
        # Near the top the exact ellipse, so the crown closes neatly at the pole.
        t = np.sqrt(max(0.0, 1.0 - ((y - crown[0]) / (SKULL_TOP - crown[0])) ** 2))
        return crown[1] * t, crown[2] * t, crown[3] * t
    return tuple(float(curve(y)) for curve in _profile_curves())


def _features(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Forward relief of the face (metres along +Z) at (x, y) on its front."""
    p = np.stack([x, y, np.zeros_like(x)], axis=1)
    tip = np.clip((0.036 - y) / (0.036 + 0.010), 0.0, 1.0)  # 0 at the bridge, 1 at the tip
    nose_height = np.where(y > -0.010, 0.005 + 0.019 * tip**1.4, 0.024 * _smoothstep(-0.026, -0.010, y))
    nose_width = 0.009 + 0.009 * tip
    bridge = _smoothstep(0.050, 0.030, y)  # the nose grows out of the brow without a step
    relief = np.where(y > -0.026, bridge * nose_height * np.exp(-((x / nose_width) ** 2)), 0.0)
    for side in (-1.0, 1.0):
        relief += 0.006 * _bump(p, (side * 0.013, -0.014, 0.0), (0.008, 0.007, 1.0))  # nostril wings
        relief += 0.005 * _bump(p, (side * 0.046, -0.004, 0.0), (0.026, 0.022, 1.0))  # cheekbones
        relief -= 0.003 * _bump(p, (side * MOUTH_HALF_WIDTH, MOUTH_Y, 0.0), (0.008, 0.008, 1.0))  # corners
    brow_span = _smoothstep(0.07, 0.04, np.abs(x)) * (0.35 + 0.65 * _smoothstep(0.004, 0.024, np.abs(x)))
    relief += 0.006 * np.exp(-(((y - 0.046) / 0.008) ** 2)) * brow_span  # brow ridge, softer over the nose
    relief += 0.0045 * _bump(p, (0.0, MOUTH_Y + 0.0045, 0.0), (0.025, 0.007, 1.0))  # upper lip
    relief += 0.0050 * _bump(p, (0.0, MOUTH_Y - 0.0055, 0.0), (0.023, 0.0075, 1.0))  # lower lip
    relief += 0.0060 * _bump(p, (0.0, -0.082, 0.0), (0.020, 0.014, 1.0))  # chin
    return relief


def _shell() -> tuple[_Part, dict[str, np.ndarray], np.ndarray]:
    heights, rows = _ring_heights()
    angles = _column_angles()
    n_rings, n_cols = len(heights), len(angles)
    sin, cos = np.sin(angles), np.cos(angles)
    positions = np.zeros((n_rings, n_cols, 3))
    for k, y in enumerate(heights):
        width, front, back = _cross_section(y)
        depth = np.where(cos >= 0, front * np.sign(cos) * np.abs(cos) ** 0.8, back * cos)
        positions[k, :, 0] = width * np.sign(sin) * np.abs(sin) ** 0.9
        positions[k, :, 1] = y
        positions[k, :, 2] = depth - 0.004
    x, y, z = positions[..., 0], positions[..., 1], positions[..., 2]
    facing = _smoothstep(0.15, 0.55, np.cos(angles))[None, :] * np.ones((n_rings, 1))
    z += _features(x.ravel(), y.ravel()).reshape(x.shape) * facing
    # Ears: flattened bumps on the sides.
    flat = positions.reshape(-1, 3)
    for side in (-1.0, 1.0):
        ear = _bump(flat, (side * 0.074, 0.004, -0.008), (0.02, 0.032, 0.024))
        flat[:, 0] += side * 0.012 * ear
    positions = flat.reshape(n_rings, n_cols, 3)

    # Mouth: the two inner rows tuck into the head over the mouth's width.
    mouth_mask = _smoothstep(MOUTH_HALF_WIDTH, 0.0, np.abs(positions[rows["upper_in"], :, 0])) * facing[0]
    for name in ("upper_in", "lower_in"):
        positions[rows[name], :, 2] -= 0.0055 * mouth_mask

    colors = np.tile(np.array(SKIN), (n_rings, n_cols, 1))
    lips_band = np.zeros((n_rings, n_cols))
    for k in range(n_rings):
        p = positions[k]
        lip = _bump(p * np.array([1, 1, 0]), (0, MOUTH_Y, 0), (MOUTH_HALF_WIDTH + 0.004, 0.0115, 1.0)) * facing[k]
        lips_band[k] = np.clip(lip * 3.0, 0, 1)
        brow_x = _smoothstep(0.058, 0.045, np.abs(np.abs(p[:, 0]) - 0.034) + 0.03)  # two arcs, none mid-face
        brow = np.exp(-(((p[:, 1] - 0.050) / 0.0045) ** 2)) * brow_x * facing[k]
        colors[k] = colors[k] * (1 - lips_band[k, :, None]) + np.array(LIP) * lips_band[k, :, None]
        colors[k] = colors[k] * (1 - brow[:, None]) + np.array(BROW) * brow[:, None]
    for name in ("upper_in", "lower_in"):
        inside = np.clip(mouth_mask * 4.0, 0, 1)[:, None]
        colors[rows[name]] = colors[rows[name]] * (1 - inside) + np.array(MOUTH_INSIDE) * inside

    flat = positions.reshape(-1, 3)
    pole_top = np.array([[0.0, SKULL_TOP, -0.004]])
    pole_bottom = np.array([[0.0, NECK_BOTTOM - 0.004, 0.002]])
    all_positions = np.concatenate([flat, pole_top, pole_bottom])
    all_colors = np.concatenate([colors.reshape(-1, 3), [SKIN, SKIN]])
    faces = _grid_faces(n_rings, n_cols, 0, len(flat), len(flat) + 1)
    faces = _orient_outwards(all_positions, faces)
    ring_of = np.concatenate([np.repeat(np.arange(n_rings), n_cols), [-1, n_rings]])
    return _Part(all_positions, faces, all_colors), rows, ring_of


def _carve_eye_sockets(shell: _Part) -> dict[str, np.ndarray]:
    """Shape the skin around each eye so the eyeball shows through an almond opening.

    Returns each eye's centre. The skin is pulled onto a surface just behind the eyeball's front that
    rises steeply below its centre (the lower lid) and sits a little further back above it (under the
    upper lid).
    """
    centers = {}
    p = shell.positions
    for side_name, side in SIDES.items():
        near = (np.abs(p[:, 0] - side * EYE_X) < 0.006) & (np.abs(p[:, 1] - EYE_Y) < 0.004) & (p[:, 2] > 0)
        surface_z = float(np.median(p[near, 2]))
        center = np.array([side * EYE_X, EYE_Y, surface_z - 0.55 * EYE_RADIUS])
        centers[side_name] = center
        dx = (p[:, 0] - center[0]) / EYE_RADIUS
        dy = (p[:, 1] - center[1]) / EYE_RADIUS
        socket = center[2] + EYE_RADIUS * (0.30 + 0.30 * dx**2 + np.where(dy < 0, 1.5 * np.abs(dy) ** 1.3, 0.25 * dy))
        weight = _bump(p * np.array([1, 1, 0]), (center[0], center[1], 0), (2.2 * EYE_RADIUS, 1.9 * EYE_RADIUS, 1.0))
        weight = np.clip(weight * 2.5, 0, 1) * (p[:, 2] > 0)
        p[:, 2] = p[:, 2] * (1 - weight) + np.minimum(p[:, 2], socket) * weight
    return centers


# --- eyes, lids, tongue ----------------------------------------------------------------------------


def _eyeball(center: np.ndarray) -> _Part:
    # Rings of constant angle from the gaze, with doubled rings at the iris and pupil edges.
    polar = np.deg2rad(np.array([6, 10, 10.5, 16, 22, 22.5, 30, 40, 55, 70, 85, 100, 120, 140, 160]))
    azimuth = np.linspace(0, 2 * np.pi, 20, endpoint=False)
    st, ct = np.sin(polar)[:, None], np.cos(polar)[:, None]
    ring = np.stack([st * np.cos(azimuth), st * np.sin(azimuth), ct * np.ones_like(azimuth)], axis=-1).reshape(-1, 3)
    points = np.concatenate([ring, [[0, 0, 1], [0, 0, -1]]]) * EYE_RADIUS + center
    angle = np.concatenate([np.repeat(np.rad2deg(polar), len(azimuth)), [0, 180]])
    colors = np.where((angle <= 10.0)[:, None], PUPIL, np.where((angle <= 22.0)[:, None], IRIS, EYE_WHITE))
    faces = _grid_faces(len(polar), len(azimuth), 0, len(ring), len(ring) + 1)
    return _Part(points, _orient_outwards(points, faces), colors.astype(np.float64))


def _lid_points(center: np.ndarray, rim_deg: float, n_across: int = 14, n_along: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """A closed thin visor over the eye: its outer and inner layers meet at the rim and at the back.

    Grid: ``n_across`` rings from the inner to the outer eye corner, ``n_along`` around each ring;
    the first half of each ring is the outer layer (rim to back), the second half the inner layer.
    """
    across = np.linspace(0.0, np.pi, n_across + 2)[1:-1]
    around = np.linspace(0.0, 2 * np.pi, n_along, endpoint=False)
    back_deg = 170.0
    folded = np.where(around <= np.pi, around / np.pi, 2.0 - around / np.pi)
    elevation = np.deg2rad(rim_deg + (back_deg - rim_deg) * folded)
    radius = LID_RADIUS * (1.0 + 0.10 * np.sin(around))
    sa = np.sin(across)[:, None]
    ring = np.stack([
        np.cos(across)[:, None] * radius,
        sa * radius * np.sin(elevation),
        sa * radius * np.cos(elevation),
    ], axis=-1)
    ring[..., 0] *= 1.25  # a little wider than tall, like a real lid
    points = np.concatenate([ring.reshape(-1, 3), [[1.25 * LID_RADIUS, 0, 0], [-1.25 * LID_RADIUS, 0, 0]]])
    at_rim = np.tile((folded < 0.06).astype(np.float64), n_across)  # the lash line along the lid's edge
    lash = np.concatenate([at_rim, [0.0, 0.0]])
    return points + center, lash


def _lid(center: np.ndarray) -> tuple[_Part, dict[str, np.ndarray]]:
    rest, lash = _lid_points(center, LID_OPEN_DEG)
    closed, _ = _lid_points(center, LID_CLOSED_DEG)
    wide, _ = _lid_points(center, LID_WIDE_DEG)
    n_across, n_along = 14, 20
    faces = _grid_faces(n_across, n_along, 0, n_across * n_along, n_across * n_along + 1)
    faces = _orient_outwards(rest, faces)
    colors = np.array(SKIN) * (1 - lash[:, None]) + np.array(LASH) * lash[:, None]
    colors *= 0.96
    return _Part(rest, faces, colors), {"blink": closed - rest, "wide": wide - rest}


def _tongue() -> _Part:
    polar = np.linspace(0, np.pi, 9)[1:-1]
    azimuth = np.linspace(0, 2 * np.pi, 14, endpoint=False)
    unit = np.stack([np.sin(polar)[:, None] * np.cos(azimuth), np.sin(polar)[:, None] * np.sin(azimuth),
                     np.cos(polar)[:, None] * np.ones_like(azimuth)], axis=-1).reshape(-1, 3)
    unit = np.concatenate([unit, [[0, 0, 1], [0, 0, -1]]])
    points = unit * np.array([0.016, 0.0055, 0.024]) + np.array([0.0, MOUTH_Y - 0.008, 0.062])
    faces = _grid_faces(len(polar), len(azimuth), 0, len(unit) - 2, len(unit) - 1)
    return _Part(points, _orient_outwards(points, faces), np.tile(TONGUE, (len(points), 1)).astype(np.float64))


# --- regions and morph targets ---------------------------------------------------------------------

# Which named vertex sets each ARKit target may move (the locality contract the tests check).
TARGET_REGIONS: dict[str, tuple[str, ...]] = {}
for _s in SIDES:
    _l = _s.lower()
    TARGET_REGIONS.update({
        f"eyeBlink{_s}": (f"lid_{_l}", f"eye_area_{_l}"),
        f"eyeWide{_s}": (f"lid_{_l}", f"eye_area_{_l}"),
        f"eyeSquint{_s}": (f"lid_{_l}", f"eye_area_{_l}", f"cheek_{_l}"),
        f"eyeLookDown{_s}": (f"eye_{_l}", f"lid_{_l}"),
        f"eyeLookUp{_s}": (f"eye_{_l}", f"lid_{_l}"),
        f"eyeLookIn{_s}": (f"eye_{_l}",),
        f"eyeLookOut{_s}": (f"eye_{_l}",),
        f"mouthSmile{_s}": (f"mouth_{_l}", f"cheek_{_l}"),
        f"mouthFrown{_s}": (f"mouth_{_l}",),
        f"mouthDimple{_s}": (f"mouth_{_l}",),
        f"mouthStretch{_s}": (f"mouth_{_l}",),
        f"mouthPress{_s}": ("upper_lip", "lower_lip"),
        f"mouthLowerDown{_s}": ("lower_lip",),
        f"mouthUpperUp{_s}": ("upper_lip",),
        f"browDown{_s}": (f"brow_{_l}",),
        f"browOuterUp{_s}": (f"brow_{_l}",),
        f"cheekSquint{_s}": (f"cheek_{_l}",),
        f"noseSneer{_s}": ("nose",),
    })
TARGET_REGIONS.update({
    "jawOpen": ("jaw", "tongue"),
    "jawForward": ("jaw", "tongue"),
    "jawLeft": ("jaw", "tongue"),
    "jawRight": ("jaw", "tongue"),
    "mouthClose": ("lower_lip",),
    "mouthFunnel": ("upper_lip", "lower_lip"),
    "mouthPucker": ("upper_lip", "lower_lip"),
    "mouthLeft": ("mouth",),
    "mouthRight": ("mouth",),
    "mouthRollLower": ("lower_lip",),
    "mouthRollUpper": ("upper_lip",),
    "mouthShrugLower": ("lower_lip",),
    "mouthShrugUpper": ("upper_lip",),
    "browInnerUp": ("brow_left", "brow_right"),
    "cheekPuff": ("cheek_left", "cheek_right"),
    "tongueOut": ("tongue",),
})
assert set(TARGET_REGIONS) == set(ARKIT_52)


def _shell_regions(p: np.ndarray, ring: np.ndarray, rows: dict[str, int], eyes: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Boolean masks over the shell's vertices for each anatomical region (boxes, not target weights)."""
    x, y, z = p[:, 0], p[:, 1], p[:, 2]
    front = z > 0.02
    mouth = front & (np.abs(x) < 0.05) & (y > MOUTH_Y - 0.030) & (y < MOUTH_Y + 0.024)
    lips_x = np.abs(x) < MOUTH_HALF_WIDTH + 0.012
    regions = {
        "mouth": mouth,
        "upper_lip": front & lips_x & (ring <= rows["upper_in"]) & (y < MOUTH_Y + 0.020),
        "lower_lip": front & lips_x & (ring >= rows["lower_in"]) & (y > MOUTH_Y - 0.022),
        "jaw": (ring >= rows["lower_in"]) & (z > -0.035) & (y > -0.14),
        "nose": (np.abs(x) < 0.03) & (y > -0.03) & (y < 0.045) & (z > 0.05),
        "neck": y < -0.10,
    }
    for name, side in SIDES.items():
        s = name.lower()
        sx = side * x
        center = eyes[name]
        regions[f"mouth_{s}"] = mouth & (sx > 0.0)
        regions[f"brow_{s}"] = front & (sx > -0.006) & (sx < 0.08) & (y > 0.030) & (y < 0.070)
        regions[f"cheek_{s}"] = front & (sx > 0.015) & (sx < 0.08) & (y > -0.075) & (y < 0.020)
        regions[f"eye_area_{s}"] = (
            front & (np.abs(x - center[0]) < 2.4 * EYE_RADIUS)
            & (y > center[1] - 2.5 * EYE_RADIUS) & (y < center[1] + 1.5 * EYE_RADIUS)
        )
    return regions


def _shell_targets(p: np.ndarray, ring: np.ndarray, rows: dict[str, int], eyes: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Displacements of the skin for every target that moves it."""
    x, y, z = p[:, 0], p[:, 1], p[:, 2]
    flat = p * np.array([1.0, 1.0, 0.0])
    front = (z > 0.025).astype(np.float64)
    upper_side = (ring <= rows["upper_in"]).astype(np.float64)
    lower_side = (ring >= rows["lower_in"]).astype(np.float64)
    w = MOUTH_HALF_WIDTH
    middle = _smoothstep(w, 0.3 * w, np.abs(x))  # 1 between the corners, 0 at and beyond them
    upper_lip = upper_side * front * _bump(flat, (0, MOUTH_Y + 0.004, 0), (w + 0.008, 0.014, 1))
    lower_lip = lower_side * front * _bump(flat, (0, MOUTH_Y - 0.005, 0), (w + 0.008, 0.016, 1))
    lips = upper_lip + lower_lip
    targets: dict[str, np.ndarray] = {}

    def field(*components) -> np.ndarray:
        return np.stack(np.broadcast_arrays(*components), axis=1).astype(np.float64)

    # Jaw: the lower face turns about the hinge below the ears; near the mouth only the lips between
    # the corners follow fully, so the opening is an almond and the cheeks stretch smoothly.
    vertical = middle + (1.0 - middle) * _smoothstep(MOUTH_Y, MOUTH_Y - 0.028, y)
    jaw = lower_side * vertical * _smoothstep(0.074, 0.03, np.abs(x)) * _smoothstep(-0.03, 0.02, z)
    jaw *= _smoothstep(-0.135, -0.095, y)
    turned = (p - JAW_PIVOT) @ _rotation_x(JAW_OPEN_DEG).T + JAW_PIVOT
    targets["jawOpen"] = (turned - p) * jaw[:, None]
    targets["jawForward"] = field(0, 0, 0.006 * jaw)
    for name, side in SIDES.items():
        targets[f"jaw{name}"] = field(side * 0.006 * jaw, 0, 0)
    # mouthClose brings the lower lip back up to the upper one while the jaw stays open.
    closing = lower_side * front * _smoothstep(MOUTH_Y - 0.018, MOUTH_Y - 0.002, y) * (np.abs(x) < w + 0.01)
    targets["mouthClose"] = -targets["jawOpen"] * closing[:, None]

    round_open = middle * 0.003
    targets["mouthFunnel"] = field(-0.25 * x * lips, (upper_lip - lower_lip) * round_open, 0.006 * lips)
    targets["mouthPucker"] = field(-0.38 * x * lips, -0.15 * (y - MOUTH_Y) * lips, 0.009 * lips)
    mouth_area = front * _bump(flat, (0, MOUTH_Y - 0.002, 0), (0.046, 0.026, 1))
    targets["mouthRollLower"] = field(0, 0.0015 * lower_lip, -0.005 * lower_lip)
    targets["mouthRollUpper"] = field(0, -0.0015 * upper_lip, -0.005 * upper_lip)
    targets["mouthShrugLower"] = field(0, 0.003 * lower_lip, 0.002 * lower_lip)
    targets["mouthShrugUpper"] = field(0, 0.0025 * upper_lip, 0.001 * upper_lip)
    for name, side in SIDES.items():
        targets[f"mouth{name}"] = field(side * 0.007 * mouth_area, 0, 0)
        sided = _smoothstep(-0.006, 0.006, side * x)
        corner = front * _bump(flat, (side * w, MOUTH_Y, 0), (0.016, 0.014, 1))
        cheek = front * _bump(flat, (side * 0.040, MOUTH_Y + 0.022, 0), (0.018, 0.016, 1))
        targets[f"mouthSmile{name}"] = field(side * 0.006 * corner, 0.007 * corner + 0.003 * cheek, -0.003 * corner)
        targets[f"mouthFrown{name}"] = field(side * 0.001 * corner, -0.005 * corner, -0.001 * corner)
        targets[f"mouthDimple{name}"] = field(side * 0.002 * corner, 0, -0.004 * corner)
        targets[f"mouthStretch{name}"] = field(side * 0.006 * corner, -0.0015 * corner, -0.001 * corner)
        press = lips * sided
        targets[f"mouthPress{name}"] = field(0, -0.3 * (y - MOUTH_Y) * press, -0.001 * press)
        targets[f"mouthLowerDown{name}"] = field(0, -0.0075 * lower_lip * sided, 0.001 * lower_lip * sided)
        targets[f"mouthUpperUp{name}"] = field(0, 0.006 * upper_lip * sided, 0.0005 * upper_lip * sided)

        brow = front * _bump(flat, (side * 0.034, 0.050, 0), (0.028, 0.014, 1))
        outer = front * _bump(flat, (side * 0.048, 0.049, 0), (0.022, 0.013, 1))
        targets[f"browDown{name}"] = field(-side * 0.0015 * brow, -0.004 * brow, 0.001 * brow)
        targets[f"browOuterUp{name}"] = field(0, 0.005 * outer, 0)
        puff = front * _bump(flat, (side * 0.045, MOUTH_Y + 0.008, 0), (0.022, 0.024, 1))
        targets.setdefault("cheekPuff", np.zeros_like(p))
        targets["cheekPuff"] += field(side * 0.006 * puff, 0, 0.004 * puff)
        targets[f"cheekSquint{name}"] = field(0, 0.003 * front * _bump(flat, (side * 0.040, 0.004, 0), (0.02, 0.016, 1)), 0)
        targets[f"noseSneer{name}"] = field(0, 0.003 * front * _bump(flat, (side * 0.012, -0.006, 0), (0.012, 0.014, 1)), 0)

        e = eyes[name]
        under = front * _bump(flat, (e[0], e[1] - 0.8 * EYE_RADIUS, 0), (1.6 * EYE_RADIUS, 0.9 * EYE_RADIUS, 1))
        squint = front * _bump(flat, (e[0], e[1] - 1.1 * EYE_RADIUS, 0), (1.9 * EYE_RADIUS, 1.3 * EYE_RADIUS, 1))
        targets[f"eyeBlink{name}"] = field(0, 0.0010 * under, 0.0003 * under)
        targets[f"eyeWide{name}"] = field(0, -0.0008 * under, 0)
        targets[f"eyeSquint{name}"] = field(0, 0.0025 * squint, 0.0005 * squint)
    inner = sum(front * _bump(flat, (side * 0.014, 0.050, 0), (0.018, 0.014, 1)) for side in SIDES.values())
    targets["browInnerUp"] = field(0, 0.005 * inner, 0)
    return targets


@dataclass
class _Assembly:
    positions: list[np.ndarray]
    faces: list[np.ndarray]
    colors: list[np.ndarray]
    count: int = 0

    def add(self, part: _Part) -> np.ndarray:
        index = np.arange(self.count, self.count + len(part.positions))
        self.positions.append(part.positions)
        self.faces.append(part.faces + self.count)
        self.colors.append(part.colors)
        self.count += len(part.positions)
        return index


def build_mannequin() -> HeadMesh:
    """Generate the mannequin head with its 52 ARKit targets, regions and neck/head joints."""
    shell, rows, ring = _shell()
    eyes = _carve_eye_sockets(shell)
    assembly = _Assembly([], [], [])
    shell_index = assembly.add(shell)
    regions_bool = _shell_regions(shell.positions, ring, rows, eyes)
    shell_targets = _shell_targets(shell.positions, ring, rows, eyes)
    part_index: dict[str, np.ndarray] = {}
    lid_moves: dict[str, dict[str, np.ndarray]] = {}
    for name, center in eyes.items():
        part_index[f"eye_{name.lower()}"] = assembly.add(_eyeball(center))
    for name, center in eyes.items():
        lid, moves = _lid(center)
        part_index[f"lid_{name.lower()}"] = assembly.add(lid)
        lid_moves[name] = moves
    part_index["tongue"] = assembly.add(_tongue())

    positions = np.concatenate(assembly.positions)
    n = len(positions)
    targets = {name: np.zeros((n, 3)) for name in ARKIT_52}
    for name, delta in shell_targets.items():
        targets[name][shell_index] = delta
    for name, center in eyes.items():
        s = name.lower()
        side = SIDES[name]
        eye, lid = part_index[f"eye_{s}"], part_index[f"lid_{s}"]
        local = positions[eye] - center
        turns = {"Down": _rotation_x(20.0), "Up": _rotation_x(-18.0),
                 "In": _rotation_y(-side * 22.0), "Out": _rotation_y(side * 22.0)}
        for direction, rotation in turns.items():
            targets[f"eyeLook{direction}{name}"][eye] = local @ rotation.T - local
        targets[f"eyeBlink{name}"][lid] = lid_moves[name]["blink"]
        targets[f"eyeWide{name}"][lid] = lid_moves[name]["wide"]
        targets[f"eyeSquint{name}"][lid] = 0.15 * lid_moves[name]["blink"]
        targets[f"eyeLookDown{name}"][lid] = 0.3 * lid_moves[name]["blink"]
        targets[f"eyeLookUp{name}"][lid] = 0.4 * lid_moves[name]["wide"]
    tongue = part_index["tongue"]
    tongue_points = positions[tongue]
    turned = (tongue_points - JAW_PIVOT) @ _rotation_x(JAW_OPEN_DEG).T + JAW_PIVOT
    targets["jawOpen"][tongue] = turned - tongue_points
    targets["jawForward"][tongue] = (0.0, 0.0, 0.006)
    for name, side in SIDES.items():
        targets[f"jaw{name}"][tongue] = (side * 0.006, 0.0, 0.0)
    targets["tongueOut"][tongue] = (0.0, -0.004, 0.030)

    regions = {name: shell_index[mask] for name, mask in regions_bool.items()}
    regions.update(part_index)
    regions["jaw"] = np.concatenate([regions["jaw"], tongue])
    regions["skin"] = shell_index

    head_weight = np.ones(n)
    head_weight[shell_index] = _smoothstep(-0.135, -0.085, shell.positions[:, 1])
    skin_joints = np.zeros((n, 4), np.uint16)
    skin_joints[:, 0], skin_joints[:, 1] = 1, 0
    skin_weights = np.zeros((n, 4), np.float32)
    skin_weights[:, 0], skin_weights[:, 1] = head_weight, 1.0 - head_weight
    neck_origin = (0.0, -0.105, -0.012)
    joints = [HeadJoint("neck", -1, neck_origin), HeadJoint("head", 0, tuple(-v for v in neck_origin))]

    from talkbridge.core.lite.meshmath import vertex_normals

    indices = np.concatenate(assembly.faces).astype(np.uint32)
    return HeadMesh(
        name="talkbridge_mannequin",
        positions=positions.astype(np.float32),
        indices=indices,
        morph_targets={name: targets[name].astype(np.float32) for name in ARKIT_52},
        normals=vertex_normals(positions, indices),
        colors=np.concatenate(assembly.colors).astype(np.float32),
        joints=joints,
        skin_joints=skin_joints,
        skin_weights=skin_weights,
        head_joint="head",
        regions={name: np.asarray(index, np.int64) for name, index in regions.items()},
    )
