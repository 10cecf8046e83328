"""The Basel Face Model in the ``BFM_model_front.mat`` layout, and a person's head built from it.

SadTalker's and Deep3DFaceRecon's 3DMM file holds (MATLAB v5 ``.mat``; N vertices, F triangles):

=============  ===========  ===============================================================
key            shape        meaning
=============  ===========  ===============================================================
``meanshape``  (1, 3N)      mean face, x0 y0 z0 x1 ..., in units of about 0.1 m
``idBase``     (3N, 80)     identity basis
``exBase``     (3N, 64)     expression basis (what SadTalker's 64 coefficients weight)
``meantex``    (1, 3N)      mean albedo, 0..255 RGB per vertex
``texBase``    (3N, 80)     albedo basis
``tri``        (F, 3)       triangles, 1-based vertex indices, counter-clockwise from outside
``keypoints``  (1, 68)      1-based vertex index of each iBUG-68 landmark
``point_buf``  (N, 8)       1-based triangles around each vertex (not needed here)
=============  ===========  ===============================================================

The reconstruction recentres the mean shape on its centroid, so SadTalker's head rotation turns
about that point; we do the same and put the head joint there. The recon network's 257-dim output
is ``id 0:80, exp 80:144, tex 144:224, angles 224:227, gamma 227:254, trans 254:257``.

We cannot ship the Basel model: the user supplies the file, and tests write a small synthetic one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from talkbridge.core.errors import InputError
from talkbridge.core.head_mesh import HeadJoint, HeadMesh
from talkbridge.core.motion import EXPRESSION_DIM
from talkbridge.exporters.gltf.pose import TRANSLATION_UNIT_M
from talkbridge.exporters.naming import EXPRESSION_CHANNELS

RECON_DIM = 257
ID_SLICE = slice(0, 80)
EXP_SLICE = slice(80, 144)
TEX_SLICE = slice(144, 224)
REQUIRED_KEYS = ("meanshape", "idBase", "exBase", "meantex", "texBase", "tri", "keypoints")


@dataclass
class BfmModel:
    """The parts of a BFM_model_front.mat talkbridge uses, with 0-based indices and (N, 3) layouts."""

    mean_shape: np.ndarray  # (N, 3), recentred
    id_base: np.ndarray  # (3N, 80)
    exp_base: np.ndarray  # (3N, 64)
    mean_tex: np.ndarray  # (N, 3), 0..255
    tex_base: np.ndarray  # (3N, 80)
    triangles: np.ndarray  # (F, 3) 0-based
    keypoints: np.ndarray  # (68,) 0-based
    path: Path | None = None

    @property
    def n_vertices(self) -> int:
        return int(self.mean_shape.shape[0])

    def expression_offsets(self, expression: np.ndarray, vertices: np.ndarray | None = None) -> np.ndarray:
        """(T, K, 3) displacement of ``vertices`` (default all) for (T, 64) expression coefficients."""
        expression = np.asarray(expression, np.float64).reshape(-1, EXPRESSION_DIM)
        if vertices is None:
            rows = self.exp_base
            count = self.n_vertices
        else:
            vertices = np.asarray(vertices, np.int64)
            rows = self.exp_base.reshape(-1, 3, EXPRESSION_DIM)[vertices].reshape(-1, EXPRESSION_DIM)
            count = len(vertices)
        return (expression @ rows.T).reshape(len(expression), count, 3)


def load_bfm(path: str | Path) -> BfmModel:
    """Read a BFM_model_front.mat, checking every array's shape against the layout above."""
    from scipy.io import loadmat

    path = Path(path)
    if not path.is_file():
        raise InputError("3DMM file not found (expected BFM_model_front.mat as used by SadTalker)", path)
    try:
        content = loadmat(str(path))
    except Exception as error:  # scipy raises ValueError/TypeError/MatReadError variously
        raise InputError(f"not a readable MATLAB .mat file: {error}", path) from error
    missing = [key for key in REQUIRED_KEYS if key not in content]
    if missing:
        raise InputError(f"not a BFM_model_front.mat: missing {', '.join(missing)}", path)
    mean = np.asarray(content["meanshape"], np.float64).reshape(-1)
    if mean.size % 3:
        raise InputError(f"meanshape has {mean.size} values, not a multiple of 3", path)
    n = mean.size // 3

    def matrix(key: str, columns: int) -> np.ndarray:
        array = np.asarray(content[key], np.float64)
        if array.shape != (3 * n, columns):
            raise InputError(f"{key} has shape {array.shape}, expected {(3 * n, columns)} for {n} vertices", path)
        return array

    tri = np.asarray(content["tri"]).astype(np.int64) - 1
    if tri.ndim != 2 or tri.shape[1] != 3 or tri.min() < 0 or tri.max() >= n:
        raise InputError("tri must be (F, 3) 1-based vertex indices", path)
    keypoints = np.asarray(content["keypoints"]).reshape(-1).astype(np.int64) - 1
    if keypoints.shape != (68,) or keypoints.min() < 0 or keypoints.max() >= n:
        raise InputError("keypoints must be 68 1-based vertex indices", path)
    mean_shape = mean.reshape(n, 3)
    mean_shape = mean_shape - mean_shape.mean(axis=0, keepdims=True)
    mean_tex = np.asarray(content["meantex"], np.float64).reshape(-1)
    if mean_tex.size != 3 * n:
        raise InputError(f"meantex has {mean_tex.size} values, expected {3 * n}", path)
    return BfmModel(
        mean_shape=mean_shape,
        id_base=matrix("idBase", 80),
        exp_base=matrix("exBase", EXPRESSION_DIM),
        mean_tex=mean_tex.reshape(n, 3),
        tex_base=matrix("texBase", 80),
        triangles=tri,
        keypoints=keypoints,
        path=path,
    )


def recon_row(coefficients: np.ndarray, source: str | Path | None = None) -> np.ndarray:
    """The portrait's 257-dim recon row from a (257,), (1, 257) or (N, 257) array (first row)."""
    array = np.asarray(coefficients, np.float64)
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2 or array.shape[1] != RECON_DIM or len(array) == 0:
        raise InputError(
            f"recon coefficients must be (1, {RECON_DIM}) (SadTalker's 'full_3dmm'), got {array.shape}", source
        )
    return array[0]


def neutral_shape(model: BfmModel, coefficients: np.ndarray) -> np.ndarray:
    """(N, 3) the person's face with a neutral expression, in 3DMM units."""
    row = recon_row(coefficients)
    return model.mean_shape + (model.id_base @ row[ID_SLICE]).reshape(-1, 3)


def albedo(model: BfmModel, coefficients: np.ndarray) -> np.ndarray:
    """(N, 3) per-vertex colour 0..1 from the texture coefficients (lighting not baked in)."""
    row = recon_row(coefficients)
    colour = model.mean_tex + (model.tex_base @ row[TEX_SLICE]).reshape(-1, 3)
    return np.clip(colour / 255.0, 0.0, 1.0)


def build_head_from_coefficients(model: BfmModel, coefficients: np.ndarray, name: str = "person") -> HeadMesh:
    """The person's head: neutral identity shape, vertex colours, 64 ``exp_XX`` targets, a head joint.

    Geometry is scaled to metres (:data:`TRANSLATION_UNIT_M` per unit). The ``head`` joint sits at the
    3DMM origin, the point SadTalker's rotation turns about, and the mesh hangs rigidly from it, so
    the exporter's pose channel turns the face exactly as the reconstruction does. Expression
    targets are the expression basis columns, so glTF weights equal SadTalker's coefficients.
    """
    positions = neutral_shape(model, coefficients) * TRANSLATION_UNIT_M
    targets = {
        EXPRESSION_CHANNELS[k]: (model.exp_base[:, k].reshape(-1, 3) * TRANSLATION_UNIT_M).astype(np.float32)
        for k in range(EXPRESSION_DIM)
    }
    triangles = _outward(positions, model.triangles)
    return HeadMesh(
        name=name,
        positions=positions.astype(np.float32),
        indices=triangles.astype(np.uint32),
        morph_targets=targets,
        colors=albedo(model, coefficients).astype(np.float32),
        joints=[HeadJoint("head", -1, (0.0, 0.0, 0.0))],
        head_joint="head",
        regions={"landmarks": model.keypoints.copy()},
    )


def _outward(positions: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Triangles wound counter-clockwise seen from the front (+z), flipping the set if needed."""
    corners = positions[triangles]
    normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    return triangles if normals[:, 2].sum() >= 0 else triangles[:, ::-1].copy()
