"""A head mesh with named morph targets and an optional joint chain, independent of any file format.

The mannequin (lite engine), the 3DMM head builder and the glTF reader/writer all speak this type, so
the preview renderer and the exporters never care where a head came from.

Frame: glTF's, metres, +Y up, the face looking down +Z, the head's origin between the ears.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class HeadJoint:
    """One joint of the head's skeleton, in bind pose (rest translation relative to its parent)."""

    name: str
    parent: int  # index into HeadMesh.joints, -1 for the root
    translation: tuple[float, float, float]


@dataclass
class HeadMesh:
    name: str
    positions: np.ndarray  # (V, 3) float32
    indices: np.ndarray  # (F, 3) uint32, counter-clockwise seen from outside
    morph_targets: dict[str, np.ndarray] = field(default_factory=dict)  # name -> (V, 3) position deltas
    normals: np.ndarray | None = None  # (V, 3) float32
    colors: np.ndarray | None = None  # (V, 3) or (V, 4) float32 in 0..1
    joints: list[HeadJoint] = field(default_factory=list)
    skin_joints: np.ndarray | None = None  # (V, 4) uint16 joint indices
    skin_weights: np.ndarray | None = None  # (V, 4) float32, rows sum to 1
    head_joint: str | None = None  # the joint head pose drives (e.g. "head")
    regions: dict[str, np.ndarray] = field(default_factory=dict)  # named vertex index sets (lips, lids, ...)

    def __post_init__(self) -> None:
        self.positions = np.ascontiguousarray(self.positions, np.float32)
        self.indices = np.ascontiguousarray(self.indices, np.uint32)
        if self.positions.ndim != 2 or self.positions.shape[1] != 3:
            raise ValueError(f"head positions must be (V, 3), got {self.positions.shape}")
        if self.indices.ndim != 2 or self.indices.shape[1] != 3:
            raise ValueError(f"head indices must be (F, 3), got {self.indices.shape}")
        if self.indices.size and int(self.indices.max()) >= len(self.positions):
            raise ValueError("head indices refer to vertices that do not exist")
        for name, delta in list(self.morph_targets.items()):
            delta = np.ascontiguousarray(delta, np.float32)
            if delta.shape != self.positions.shape:
                raise ValueError(f"morph target {name!r} has shape {delta.shape}, expected {self.positions.shape}")
            self.morph_targets[name] = delta

    @property
    def n_vertices(self) -> int:
        return int(self.positions.shape[0])

    def deformed(self, weights: dict[str, float]) -> np.ndarray:
        """Positions with the named morph target weights applied (unknown names are ignored)."""
        out = self.positions.copy()
        for name, weight in weights.items():
            delta = self.morph_targets.get(name)
            if delta is not None and weight:
                out += np.float32(weight) * delta
        return out
