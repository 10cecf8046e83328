"""The blendshape solve: the SDK's regularised, bounded least-squares fit of pose weights per frame.

Prepared once per model (the "normal matrix"): the rows the solve uses (the blendshape file's
``frontalMask`` vertices, else all), the active poses' deltas ``D`` and
``A = D^T D + l1^2 s/4 * 1 + 10 s l2 * I + 100 s lt * I + 10 s ls * Sym^T Sym`` with
``s = (|bbox diagonal of the neutral| / templateBBSize)^2``. Per frame the SDK sets
``b = D^T (target - n0) + lt s x_prev`` and solves ``min |A x - b|^2`` with ``0 <= x <= 1`` (BVLS on
the pair (A, b), not the quadratic form of A). A cancel pair then caps its smaller pose at 1e-10 and
solves once more. Weights of inactive poses are 0; every weight is then ``w * multiplier + offset``.

Here the box-bounded problem is solved as the quadratic program it is equivalent to,
``min x^T Q x / 2 - q^T x`` with ``Q = A^T A`` (factored once) and ``q = A^T b``, by a primal-dual
active-set method warm-started from the previous frame: frames rarely change active set, so most take
one or two small linear solves. Its answer is checked against the optimality conditions; a frame that
does not converge falls back to scipy's BVLS, which gives the same unique optimum.
"""

from __future__ import annotations

import contextlib
import logging

import numpy as np
from scipy.linalg import cho_factor, cho_solve

from talkbridge.core.audio2face.files import BlendshapeSet

log = logging.getLogger(__name__)

CANCEL_CAP = 1e-10
MAX_ACTIVE_SET_STEPS = 40


def one_blas_thread() -> contextlib.AbstractContextManager:
    """BLAS on one thread for the per-frame solves: a 52x52 solve takes ~20 us on one thread, but
    milliseconds when a multi-threaded BLAS wakes its threads for it (measured on 2 shared cores)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # without it the solve is right, only slower where BLAS threads contend
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def solve_rows(bs: BlendshapeSet) -> np.ndarray:
    """Flattened coordinates the solve uses: x, y, z of each mask vertex in list order, else all."""
    if bs.mask is None:
        return np.arange(bs.neutral.size, dtype=np.int64)
    return (3 * bs.mask[:, None] + np.arange(3)[None, :]).reshape(-1)


def pose_pairs(ids: np.ndarray) -> list[tuple[int, int]]:
    """Pairs of active-pose positions sharing an id, as the SDK groups them (-1 counts as an id too)."""
    groups: dict[int, list[int]] = {}
    for position, pair_id in enumerate(ids.tolist()):
        groups.setdefault(int(pair_id), []).append(position)
    return [(members[0], members[1]) for members in groups.values() if len(members) == 2]


def regularisation_scale(neutral: np.ndarray, template_bb_size: float) -> float:
    """``(|max - min| / templateBBSize)^2`` over the whole neutral's bounding box (its diagonal length)."""
    extent = neutral.reshape(-1, 3).max(axis=0) - neutral.reshape(-1, 3).min(axis=0)
    return float((np.linalg.norm(extent.astype(np.float64)) / template_bb_size) ** 2)


class BoxQP:
    """``min |A x - b|^2`` subject to ``lower <= x <= upper`` for one fixed, nonsingular A."""

    def __init__(self, a: np.ndarray) -> None:
        self.a = np.asarray(a, np.float64)
        self.q_matrix = self.a.T @ self.a
        self.full = cho_factor(self.q_matrix)
        self.step = 1.0 / np.diag(self.q_matrix)
        self.fallbacks = 0

    def solve(self, b: np.ndarray, upper: np.ndarray, start: np.ndarray) -> np.ndarray:
        q = self.a.T @ b
        x = self._active_set(q, upper, start)
        if x is None:
            from scipy.optimize import lsq_linear

            self.fallbacks += 1
            x = lsq_linear(self.a, b, bounds=(np.zeros_like(upper), upper), method="bvls", tol=1e-12).x
        return np.clip(x, 0.0, upper)

    def _active_set(self, q: np.ndarray, upper: np.ndarray, start: np.ndarray) -> np.ndarray | None:
        matrix = self.q_matrix
        x = np.clip(start, 0.0, upper)
        gradient = matrix @ x - q
        tolerance = 1e-9 * (1.0 + float(np.abs(q).max()))
        previous: tuple[bytes, bytes] | None = None
        for _ in range(MAX_ACTIVE_SET_STEPS):
            trial = x - self.step * gradient
            at_lower = trial <= 0.0
            at_upper = (trial >= upper) & ~at_lower
            free = ~(at_lower | at_upper)
            sets = (at_lower.tobytes(), at_upper.tobytes())
            if sets == previous:
                return None  # cycling: let BVLS decide
            previous = sets
            x = np.where(at_upper, upper, 0.0)
            if free.all():
                x = cho_solve(self.full, q)
            elif free.any():
                fixed = ~free
                rhs = q[free] - matrix[np.ix_(free, fixed)] @ x[fixed]
                x[free] = np.linalg.solve(matrix[np.ix_(free, free)], rhs)
            gradient = matrix @ x - q
            inside = np.all(x[free] >= -tolerance) and np.all(x[free] <= upper[free] + tolerance)
            if inside and np.all(gradient[at_lower] >= -tolerance) and np.all(gradient[at_upper] <= tolerance):
                return x
        return None


class BlendshapeSolver:
    """Per-frame pose weights for one blendshape set; keeps the previous frame's weights between calls."""

    def __init__(self, bs: BlendshapeSet) -> None:
        self.bs = bs
        self.rows = solve_rows(bs)
        self.active = np.flatnonzero(bs.active)
        flat = bs.deltas.reshape(len(bs.names), -1)
        self.design = flat[self.active][:, self.rows].T.astype(np.float64)  # (rows, n)
        self.neutral_rows = bs.neutral.reshape(-1)[self.rows].astype(np.float64)
        self.cancel_pairs = pose_pairs(bs.cancel_ids[self.active])
        symmetry_pairs = pose_pairs(bs.symmetry_ids[self.active])
        n = len(self.active)
        symmetry = np.zeros((len(symmetry_pairs), n))
        for row, (i, j) in enumerate(symmetry_pairs):
            symmetry[row, i], symmetry[row, j] = 1.0, -1.0
        scale = regularisation_scale(bs.neutral, bs.template_bb_size)
        self.scale = scale
        self.a = (
            self.design.T @ self.design
            + bs.l1 ** 2 * 0.25 * scale * np.ones((n, n))
            + (bs.l2 * 10.0 * scale + bs.temporal * 100.0 * scale) * np.eye(n)
            + bs.symmetry * 10.0 * scale * symmetry.T @ symmetry
        )
        self.temporal = bs.temporal * scale  # the SDK's b uses lt * s, not the 100 s of A
        self.qp = BoxQP(self.a)
        self.previous = np.zeros(n)

    def reset(self) -> None:
        self.previous = np.zeros(len(self.active))

    def rhs_from_poses(self, poses: np.ndarray) -> np.ndarray:
        """(T, n) ``D^T (pose[rows] - n0)`` for full poses (T, V, 3) or (T, 3V)."""
        flat = np.asarray(poses, np.float64).reshape(len(poses), -1)
        return (flat[:, self.rows] - self.neutral_rows) @ self.design

    def solve(self, rhs: np.ndarray) -> np.ndarray:
        """(T, P) weights in the blendshape file's pose order for per-frame ``D^T target`` rows (T, n)."""
        with one_blas_thread():
            return self._solve(rhs)

    def _solve(self, rhs: np.ndarray) -> np.ndarray:
        n = len(self.active)
        ones = np.ones(n)
        out = np.empty((len(rhs), len(self.bs.names)), np.float32)
        full = np.zeros(len(self.bs.names))
        for k, row in enumerate(np.asarray(rhs, np.float64)):
            b = row + self.temporal * self.previous
            x = self.qp.solve(b, ones, self.previous)
            if self.cancel_pairs:
                upper = ones.copy()
                for i, j in self.cancel_pairs:
                    upper[j if x[i] >= x[j] else i] = CANCEL_CAP
                x = self.qp.solve(b, upper, x)
            self.previous = x
            full[:] = 0.0
            full[self.active] = x
            out[k] = full * self.bs.multipliers + self.bs.offsets
        return out
