"""Heads and motions built inside the tests (we ship no third-party assets and no Basel model).

* :func:`arkit_head` - a small skinned head (neck + head joints) with a handful of ARKit targets,
  standing in for the mannequin when the lite engine's is not available.
* :func:`write_third_party_head` - a ``.gltf`` + ``.bin`` + ``.png`` head the way DCC exports look:
  prefixed/numbered target names, extra non-face targets, a second mesh (teeth) with its own
  targets, a user animation, a texture, and no head joint.
* :func:`write_synthetic_bfm` - a tiny 3DMM in the ``BFM_model_front.mat`` layout with 68 landmarks
  and expression bases whose first few components open the jaw, smile, pucker, close each eye and
  raise the brows.
* :func:`synthetic_motion` - a deterministic clip with pose, blink, ARKit, visemes and expression.
"""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import numpy as np

from talkbridge.core.head_mesh import HeadJoint, HeadMesh
from talkbridge.core.motion import ARKIT_52, Motion

ARKIT_SUBSET = ("jawOpen", "eyeBlinkLeft", "eyeBlinkRight", "mouthSmileLeft", "mouthSmileRight", "mouthPucker", "browInnerUp")


def grid_sphere(radius: float = 0.1, rings: int = 10, segments: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """A UV sphere (positions, CCW-outward triangles) centred at the origin."""
    points = [[0.0, radius, 0.0]]
    for i in range(1, rings):
        phi = np.pi * i / rings
        for j in range(segments):
            theta = 2 * np.pi * j / segments
            points.append([radius * np.sin(phi) * np.sin(theta), radius * np.cos(phi), radius * np.sin(phi) * np.cos(theta)])
    points.append([0.0, -radius, 0.0])
    faces = []
    bottom = len(points) - 1

    def ring(i: int, j: int) -> int:
        return 1 + (i - 1) * segments + (j % segments)

    for j in range(segments):
        faces.append([0, ring(1, j), ring(1, j + 1)])
        faces.append([bottom, ring(rings - 1, j + 1), ring(rings - 1, j)])
    for i in range(1, rings - 1):
        for j in range(segments):
            a, b, c, d = ring(i, j), ring(i, j + 1), ring(i + 1, j), ring(i + 1, j + 1)
            faces += [[a, c, b], [b, c, d]]
    return np.asarray(points, np.float32), np.asarray(faces, np.uint32)


def _region_delta(points: np.ndarray, centre, radius: float, move) -> np.ndarray:
    distance = np.linalg.norm(points - np.asarray(centre, np.float32), axis=1)
    falloff = np.clip(1.0 - distance / radius, 0.0, 1.0)[:, None]
    return (falloff * np.asarray(move, np.float32)).astype(np.float32)


def arkit_head(name: str = "test_head") -> HeadMesh:
    """A skinned sphere head on neck/head joints with :data:`ARKIT_SUBSET` targets."""
    points, faces = grid_sphere()
    points = points + np.array([0.0, 0.12, 0.0], np.float32)  # sits above the origin (the neck base)
    r = 0.1
    targets = {
        "jawOpen": _region_delta(points, [0, 0.12 - 0.6 * r, 0.8 * r], 0.6 * r, [0, -0.02, 0]),
        "eyeBlinkLeft": _region_delta(points, [0.35 * r, 0.12 + 0.3 * r, 0.88 * r], 0.3 * r, [0, -0.006, 0]),
        "eyeBlinkRight": _region_delta(points, [-0.35 * r, 0.12 + 0.3 * r, 0.88 * r], 0.3 * r, [0, -0.006, 0]),
        "mouthSmileLeft": _region_delta(points, [0.3 * r, 0.12 - 0.4 * r, 0.85 * r], 0.3 * r, [0.004, 0.006, 0]),
        "mouthSmileRight": _region_delta(points, [-0.3 * r, 0.12 - 0.4 * r, 0.85 * r], 0.3 * r, [-0.004, 0.006, 0]),
        "mouthPucker": _region_delta(points, [0, 0.12 - 0.4 * r, 0.9 * r], 0.35 * r, [0, 0, 0.01]),
        "browInnerUp": _region_delta(points, [0, 0.12 + 0.55 * r, 0.8 * r], 0.35 * r, [0, 0.008, 0]),
    }
    skin_joints = np.zeros((len(points), 4), np.uint16)
    skin_joints[:, 0] = 1
    skin_weights = np.zeros((len(points), 4), np.float32)
    skin_weights[:, 0] = 1.0
    return HeadMesh(
        name=name,
        positions=points,
        indices=faces,
        morph_targets=targets,
        colors=np.tile(np.array([[0.9, 0.75, 0.65]], np.float32), (len(points), 1)),
        joints=[HeadJoint("neck", -1, (0.0, 0.0, 0.0)), HeadJoint("head", 0, (0.0, 0.08, 0.0))],
        skin_joints=skin_joints,
        skin_weights=skin_weights,
        head_joint="head",
    )


# Third-party head: name -> (how the DCC named it, which canonical channel it should match or None).
THIRD_PARTY_FACE_TARGETS = {
    "A25_Jaw_Open": "jawOpen",
    "A01_Brow_Inner_Up": "browInnerUp",
    "blendShape1.eyeBlink_L": "eyeBlinkLeft",
    "blendShape1.eyeBlink_R": "eyeBlinkRight",
    "Mouth_Smile_L": "mouthSmileLeft",
    "mouth_smile_R": "mouthSmileRight",
    "Cheek_Puff": "cheekPuff",  # one mouth set on this head (ARKit-like); tests/rig_families.py has the mixed ones
    "Breathe_Chest": None,
    "Body_Fat": None,
    "Muscle_Flex": None,
}
THIRD_PARTY_TEETH_TARGETS = {"teeth.jaw_open": "jawOpen", "Teeth_Forward": None}


def _png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    rows = b"".join(b"\0" + bytes(rgb) * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def write_third_party_head(folder: Path, stem: str = "character") -> Path:
    """Write ``stem.gltf`` + ``stem.bin`` + ``skin.png`` into ``folder``; returns the .gltf path.

    The scene is ``Character_Root (scaled 0.01, as centimetre rigs are) -> Face, Teeth``, with no node
    named like a head, and a user animation ``Idle`` moving the root.
    """
    face_points, face_faces = grid_sphere(radius=10.0, rings=8, segments=12)  # centimetres
    face_points = face_points + np.array([0, 160.0, 0], np.float32)
    teeth_points, teeth_faces = grid_sphere(radius=3.0, rings=4, segments=8)
    teeth_points = teeth_points + np.array([0, 155.0, 6.0], np.float32)
    uv = np.stack([np.linspace(0, 1, len(face_points)), np.linspace(1, 0, len(face_points))], 1).astype(np.float32)
    rng = np.random.default_rng(7)
    blob = bytearray()
    views, accessors = [], []

    def add(array: np.ndarray, kind: str, component: int, target: int | None = None, bounds: bool = False) -> int:
        array = np.ascontiguousarray(array)
        blob.extend(b"\0" * ((-len(blob)) % 4))
        view = {"buffer": 0, "byteOffset": len(blob), "byteLength": array.nbytes}
        if target:
            view["target"] = target
        views.append(view)
        blob.extend(array.tobytes())
        rows = array.reshape(len(array), -1)
        accessor = {"bufferView": len(views) - 1, "componentType": component, "count": len(rows), "type": kind}
        if bounds:
            accessor["min"] = [float(v) for v in rows.min(0)]
            accessor["max"] = [float(v) for v in rows.max(0)]
        accessors.append(accessor)
        return len(accessors) - 1

    def mesh(name: str, points: np.ndarray, faces: np.ndarray, target_names: dict, with_uv: bool) -> dict:
        attributes = {"POSITION": add(points, "VEC3", 5126, 34962, True)}
        if with_uv:
            attributes["TEXCOORD_0"] = add(uv, "VEC2", 5126, 34962)
        targets = []
        for _ in target_names:
            delta = (rng.normal(size=points.shape) * 0.2).astype(np.float32)
            targets.append({"POSITION": add(delta, "VEC3", 5126, 34962, True)})
        primitive = {"attributes": attributes, "indices": add(faces.reshape(-1).astype(np.uint16), "SCALAR", 5123, 34963),
                     "material": 0 if with_uv else 1, "targets": targets}
        return {"name": name, "primitives": [primitive], "weights": [0.0] * len(targets),
                "extras": {"targetNames": list(target_names)}}

    meshes = [
        mesh("Face", face_points, face_faces, THIRD_PARTY_FACE_TARGETS, True),
        mesh("Teeth", teeth_points, teeth_faces, THIRD_PARTY_TEETH_TARGETS, False),
    ]
    idle_times = add(np.array([0.0, 1.0], np.float32), "SCALAR", 5126, None, True)
    idle_values = add(np.array([[0, 0, 0], [0, 2.0, 0]], np.float32), "VEC3", 5126)
    blob.extend(b"\0" * ((-len(blob)) % 4))
    (folder / f"{stem}.bin").write_bytes(bytes(blob))
    (folder / "skin.png").write_bytes(_png(4, 4, (200, 160, 140)))
    content = {
        "asset": {"version": "2.0", "generator": "talkbridge test third-party exporter"},
        "scene": 0,
        "scenes": [{"name": "Scene", "nodes": [0]}],
        "nodes": [
            {"name": "Character_Root", "scale": [0.01, 0.01, 0.01], "children": [1, 2]},
            {"name": "Face", "mesh": 0},
            {"name": "Teeth", "mesh": 1},
        ],
        "meshes": meshes,
        "materials": [
            {"name": "SkinMat", "pbrMetallicRoughness": {"baseColorTexture": {"index": 0}, "metallicFactor": 0.0}},
            {"name": "TeethMat", "pbrMetallicRoughness": {"baseColorFactor": [0.95, 0.95, 0.9, 1.0]}},
        ],
        "textures": [{"source": 0, "sampler": 0}],
        "samplers": [{"magFilter": 9729, "minFilter": 9987}],
        "images": [{"uri": "skin.png"}],
        "animations": [{"name": "Idle", "samplers": [{"input": idle_times, "output": idle_values}],
                        "channels": [{"sampler": 0, "target": {"node": 0, "path": "translation"}}]}],
        "accessors": accessors,
        "bufferViews": views,
        "buffers": [{"uri": f"{stem}.bin", "byteLength": len(blob)}],
    }
    path = folder / f"{stem}.gltf"
    path.write_text(json.dumps(content, indent=1))
    return path


# 68-landmark template in the 3DMM frame (units ~decimetres, +x = subject's left, +y up).
def landmark_template() -> np.ndarray:
    """Approximate 2D positions of the 68 iBUG landmarks on a face 1.6 units wide."""
    points = []
    for theta in np.linspace(np.pi * 1.05, np.pi * 1.95, 17):  # jaw line, 0 at the subject's right
        points.append([0.7 * np.cos(theta), -0.1 + 0.85 * np.sin(theta)])
    for x in np.linspace(-0.62, -0.14, 5):
        points.append([x, 0.46])
    for x in np.linspace(0.14, 0.62, 5):
        points.append([x, 0.46])
    for y in np.linspace(0.34, 0.02, 4):
        points.append([0.0, y])
    for x in np.linspace(-0.16, 0.16, 5):
        points.append([x, -0.08])

    def eye(cx: float, outer_first: bool) -> list[list[float]]:
        half = 0.14
        right_side = cx < 0
        out = -1 if right_side else 1
        corner_a = [cx + out * half, 0.26] if outer_first else [cx - out * half, 0.26]
        corner_b = [cx - out * half, 0.26] if outer_first else [cx + out * half, 0.26]
        step = (corner_b[0] - corner_a[0]) / 3
        return [corner_a, [corner_a[0] + step, 0.32], [corner_a[0] + 2 * step, 0.32], corner_b,
                [corner_a[0] + 2 * step, 0.20], [corner_a[0] + step, 0.20]]

    points += eye(-0.32, True)  # 36..41: subject's right eye, starting at its outer corner
    points += eye(0.32, False)  # 42..47: subject's left eye, starting at its inner corner
    outer = [[-0.28, -0.36], [-0.18, -0.30], [-0.08, -0.26], [0.0, -0.28], [0.08, -0.26], [0.18, -0.30],
             [0.28, -0.36], [0.18, -0.46], [0.08, -0.50], [0.0, -0.52], [-0.08, -0.50], [-0.18, -0.46]]
    inner = [[-0.22, -0.36], [-0.08, -0.34], [0.0, -0.34], [0.08, -0.34], [0.22, -0.36], [0.08, -0.40],
             [0.0, -0.40], [-0.08, -0.40]]
    points += outer + inner
    template = np.asarray(points, np.float64)
    assert template.shape == (68, 2)
    return template


def synthetic_bfm_arrays(step: float = 0.02, seed: int = 3) -> dict[str, np.ndarray]:
    """The arrays of a tiny BFM_model_front-layout 3DMM (see module docstring)."""
    xs = np.arange(-0.8, 0.8 + 1e-9, step)
    ys = np.arange(-1.0, 0.7 + 1e-9, step)
    gx, gy = np.meshgrid(xs, ys)
    gz = 0.6 * np.sqrt(np.clip(1.0 - (gx / 1.0) ** 2 - (gy / 1.2) ** 2, 0.0, None))
    points = np.stack([gx.ravel(), gy.ravel(), gz.ravel()], 1)
    n = len(points)
    cols = len(xs)
    faces = []
    for r in range(len(ys) - 1):
        for c in range(cols - 1):
            a, b, d, e = r * cols + c, r * cols + c + 1, (r + 1) * cols + c, (r + 1) * cols + c + 1
            faces += [[a, b, e], [a, e, d]]  # counter-clockwise seen from +z (outside, the face side)
    faces = np.asarray(faces, np.int64)
    template = landmark_template()
    keypoints = np.array([int(np.argmin(np.sum((points[:, :2] - p) ** 2, 1))) for p in template])
    assert len(set(keypoints.tolist())) == 68, "landmarks must land on distinct vertices"

    def bump(centre, radius, move):
        d = np.linalg.norm(points[:, :2] - np.asarray(centre), axis=1)
        return (np.clip(1.0 - d / radius, 0.0, 1.0) ** 2)[:, None] * np.asarray(move)

    exp = np.zeros((n, 3, 64))
    # exp_00 opens the jaw: everything below the upper lip drops, the mouth corners half as far.
    lower = np.clip((-0.34 - points[:, 1]) / 0.04, 0.0, 1.0)
    exp[:, 1, 0] = -0.12 * lower
    exp[:, :, 1] = bump([-0.26, -0.36], 0.16, [-0.03, 0.05, 0]) + bump([0.26, -0.36], 0.16, [0.03, 0.05, 0])
    exp[:, :, 2] = bump([0, -0.4], 0.3, [0, 0, 0.06]) + np.stack([-0.25 * points[:, 0] * (bump([0, -0.4], 0.3, [1, 0, 0])[:, 0]), np.zeros(n), np.zeros(n)], 1)
    exp[:, :, 3] = bump([0.32, 0.33], 0.12, [0, -0.12, 0])  # subject's left upper lid down
    exp[:, :, 4] = bump([-0.32, 0.33], 0.12, [0, -0.12, 0])  # subject's right upper lid down
    exp[:, 1, 5] = 0.04 * np.clip(1.0 - np.abs(points[:, 1] - 0.46) / 0.08, 0.0, 1.0)  # the brow band rises
    rng = np.random.default_rng(seed)
    exp[:, :, 6:] = rng.normal(scale=0.002, size=(n, 3, 58))
    identity = rng.normal(scale=0.003, size=(n, 3, 80))
    texture = rng.normal(scale=2.0, size=(n, 3, 80))
    mean_tex = np.tile([[190.0, 150.0, 130.0]], (n, 1))

    point_buf = np.full((n, 8), len(faces) + 1, np.int64)
    fill = np.zeros(n, np.int64)
    for f, tri in enumerate(faces):
        for v in tri:
            if fill[v] < 8:
                point_buf[v, fill[v]] = f + 1
                fill[v] += 1
    return {
        "meanshape": points.reshape(1, -1).astype(np.float32),
        "idBase": identity.reshape(3 * n, 80).astype(np.float32),
        "exBase": exp.reshape(3 * n, 64).astype(np.float32),
        "meantex": mean_tex.reshape(1, -1).astype(np.float32),
        "texBase": texture.reshape(3 * n, 80).astype(np.float32),
        "tri": (faces + 1).astype(np.int32),
        "point_buf": point_buf.astype(np.int32),
        "keypoints": (keypoints + 1).reshape(1, 68).astype(np.int32),
    }


def write_synthetic_bfm(path: Path) -> Path:
    """Save :func:`synthetic_bfm_arrays` as a MATLAB .mat file like BFM_model_front.mat."""
    from scipy.io import savemat

    savemat(str(path), synthetic_bfm_arrays())
    return path


def recon_coefficients(seed: int = 5) -> np.ndarray:
    """A (1, 257) Deep3DFaceRecon-style coefficient row: id, exp, tex, angles, gamma, trans."""
    rng = np.random.default_rng(seed)
    row = np.zeros((1, 257), np.float32)
    row[0, 0:80] = rng.normal(scale=0.5, size=80)
    row[0, 80:144] = rng.normal(scale=0.1, size=64)
    row[0, 144:224] = rng.normal(scale=0.5, size=80)
    row[0, 224:227] = [0.05, -0.1, 0.02]
    row[0, 254:257] = [0.0, 0.1, 0.3]
    return row


def synthetic_motion(frames: int = 50, fps: int = 25, engine: str = "lite", expression: bool = True) -> Motion:
    """A clip whose channels are distinct, smooth and easy to check at any frame."""
    t = np.arange(frames, dtype=np.float64) / fps
    pose = np.zeros((frames, 6))
    pose[:, 0] = 0.15 * np.sin(2 * np.pi * 0.5 * t)  # pitch
    pose[:, 1] = 0.25 * np.sin(2 * np.pi * 0.3 * t + 0.4)  # yaw
    pose[:, 2] = 0.10 * np.cos(2 * np.pi * 0.4 * t)  # roll
    pose[:, 3:6] = np.stack([0.2 * t, 0.1 * np.sin(t), -0.1 * t], 1)
    arkit = np.zeros((frames, 52))
    for k, name in enumerate(ARKIT_52):
        arkit[:, k] = 0.5 + 0.45 * np.sin(2 * np.pi * (0.2 + 0.03 * k) * t + k)
    visemes = np.zeros((frames, 15))
    for k in range(15):
        visemes[:, k] = 0.5 + 0.4 * np.cos(2 * np.pi * (0.25 + 0.02 * k) * t + k)
    blink = arkit[:, ARKIT_52.index("eyeBlinkLeft")]
    exp = None
    if expression:
        exp = np.stack([np.sin(2 * np.pi * (0.1 + 0.01 * k) * t + k) for k in range(64)], 1)
    return Motion(
        fps=fps,
        engine=engine,
        engine_version="test",
        pose=pose.astype(np.float32),
        blink=blink.astype(np.float32),
        expression=None if exp is None else exp.astype(np.float32),
        arkit=arkit.astype(np.float32),
        visemes=visemes.astype(np.float32),
        metadata={"source": "tests.heads.synthetic_motion"},
    )


__all__ = [
    "ARKIT_SUBSET",
    "THIRD_PARTY_FACE_TARGETS",
    "THIRD_PARTY_TEETH_TARGETS",
    "arkit_head",
    "recon_coefficients",
    "synthetic_bfm_arrays",
    "synthetic_motion",
    "write_synthetic_bfm",
    "write_third_party_head",
]
