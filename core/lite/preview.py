"""A CPU preview renderer: any head with ARKit morph targets, shaded, to RGB frames, without a GPU.

Per chunk it blends the morph targets for all frames with one matrix product, turns the head about
its head joint by the pose (linear-blend skinning against the neck, so the neck base stays put), and
rasterises each frame with a vectorised z-buffer in numpy: every triangle facing the camera lists
the pixels of its bounding box, barycentric coordinates keep those inside, and a sort by pixel then
depth picks the nearest. Vertex colours are lit per vertex (two lights and ambient) and interpolated
across triangles (Gouraud shading).
"""

from __future__ import annotations

import numpy as np

from talkbridge.core.head_mesh import HeadMesh
from talkbridge.core.lite.meshmath import vertex_normals
from talkbridge.core.lite.procedural import TRANSLATION_UNIT_M
from talkbridge.core.motion import ARKIT_52, MotionChunk

BACKGROUND_TOP = np.array([58, 66, 80], np.float32)
BACKGROUND_BOTTOM = np.array([24, 27, 33], np.float32)
DEFAULT_COLOR = np.array([0.78, 0.74, 0.70], np.float32)
KEY_LIGHT = np.array([-0.45, 0.55, 0.70])
FILL_LIGHT = np.array([0.70, 0.05, 0.45])


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def pose_rotation(pitch: float, yaw: float, roll: float) -> np.ndarray:
    """``Rz(roll) @ Ry(yaw) @ Rx(pitch)``: the motion contract's angles in the glTF head frame."""
    cx, sx, cy, sy, cz, sz = np.cos(pitch), np.sin(pitch), np.cos(yaw), np.sin(yaw), np.cos(roll), np.sin(roll)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


class PreviewRenderer:
    """Draws ``head`` animated by motion chunks as ``size`` x ``size`` RGB frames."""

    def __init__(self, head: HeadMesh, size: int = 512, distance_m: float = 1.0) -> None:
        if size < 16:
            raise ValueError(f"preview size must be at least 16 pixels, got {size}")
        self.head = head
        self.size = int(size)
        self.indices = head.indices.astype(np.int64)
        self.rest = head.positions.astype(np.float64)
        self.names = [name for name in ARKIT_52 if name in head.morph_targets]
        self.channels = np.array([ARKIT_52.index(name) for name in self.names], np.int64)
        self.targets = (
            np.stack([head.morph_targets[name].reshape(-1) for name in self.names]).astype(np.float64)
            if self.names else np.zeros((0, self.rest.size))
        )
        colors = head.colors[:, :3] if head.colors is not None else np.tile(DEFAULT_COLOR, (head.n_vertices, 1))
        self.albedo = np.asarray(colors, np.float64)
        self.pivot, self.head_weight = self._rig(head)
        # Frame the head, not the whole neck: at most 1.7 head widths from the top down.
        low, high = self.rest.min(axis=0), self.rest.max(axis=0)
        width = float(high[0] - low[0])
        span = min(float(high[1] - low[1]), 1.7 * width) if width > 0 else float(high[1] - low[1])
        span = max(span, 1e-6)
        self.center = np.array([0.5 * (low[0] + high[0]), high[1] - 0.5 * span, 0.5 * (low[2] + high[2])])
        self.extent = 0.56 * span  # half the framed height
        self.distance = distance_m
        self.focal = 0.5 * self.size * distance_m / self.extent
        ramp = np.linspace(0.0, 1.0, self.size, dtype=np.float32)[:, None, None]
        self.background = np.broadcast_to(
            BACKGROUND_TOP * (1 - ramp) + BACKGROUND_BOTTOM * ramp, (self.size, self.size, 3)
        ).astype(np.uint8)
        self.lights = [(_unit(KEY_LIGHT), 0.75), (_unit(FILL_LIGHT), 0.25)]

    @staticmethod
    def _rig(head: HeadMesh) -> tuple[np.ndarray, np.ndarray]:
        """The head joint's rest position and how much each vertex follows it (1 without a rig)."""
        ones = np.ones(head.n_vertices)
        if not head.joints or head.head_joint is None or head.skin_joints is None or head.skin_weights is None:
            return np.zeros(3), ones
        names = [joint.name for joint in head.joints]
        if head.head_joint not in names:
            return np.zeros(3), ones
        index = names.index(head.head_joint)
        position, joint = np.zeros(3), index
        while joint >= 0:
            position += np.asarray(head.joints[joint].translation, np.float64)
            joint = head.joints[joint].parent
        # Descendants of the head joint (eyes, jaw bones) also follow the head.
        follows = {index}
        for i, joint_info in enumerate(head.joints):
            parent = joint_info.parent
            while parent >= 0 and parent not in follows:
                parent = head.joints[parent].parent
            if parent in follows:
                follows.add(i)
        weight = np.zeros(head.n_vertices)
        for slot in range(head.skin_joints.shape[1]):
            hit = np.isin(head.skin_joints[:, slot], list(follows))
            weight += np.where(hit, head.skin_weights[:, slot], 0.0)
        return position, np.clip(weight, 0.0, 1.0)

    def shapes(self, arkit: np.ndarray | None) -> np.ndarray:
        """(n, V, 3) rest positions with each frame's ARKit weights applied."""
        n = 1 if arkit is None else len(arkit)
        base = np.broadcast_to(self.rest, (n,) + self.rest.shape)
        if arkit is None or not self.names:
            return base.copy()
        weights = np.asarray(arkit, np.float64)[:, self.channels]
        return base + (weights @ self.targets).reshape(n, -1, 3)

    def posed(self, positions: np.ndarray, pose: np.ndarray) -> np.ndarray:
        """One frame's vertices turned and moved about the head joint by a pose row."""
        rotation = pose_rotation(*pose[:3])
        shift = np.asarray(pose[3:6], np.float64) * TRANSLATION_UNIT_M
        moved = (positions - self.pivot) @ rotation.T + self.pivot + shift
        w = self.head_weight[:, None]
        return w * moved + (1.0 - w) * positions

    def render(self, chunk: MotionChunk) -> np.ndarray:
        """(n, size, size, 3) uint8 frames for the chunk's motion."""
        frames = np.empty((chunk.n_frames, self.size, self.size, 3), np.uint8)
        batch = 25  # blend targets a second at a time: one product per batch, bounded memory
        for start in range(0, chunk.n_frames, batch):
            stop = min(chunk.n_frames, start + batch)
            if chunk.arkit is None:
                shapes = np.repeat(self.shapes(None), stop - start, axis=0)
            else:
                shapes = self.shapes(chunk.arkit[start:stop])
            for i in range(start, stop):
                frames[i] = self.render_positions(self.posed(shapes[i - start], chunk.pose[i]))
        return frames

    def render_positions(self, positions: np.ndarray) -> np.ndarray:
        """Rasterise the head at the given vertex positions (head frame) to one RGB frame."""
        normals = vertex_normals(positions, self.indices).astype(np.float64)
        light = np.full(len(positions), 0.30)
        for direction, strength in self.lights:
            light += strength * np.clip(normals @ direction, 0.0, None)
        half = _unit(self.lights[0][0] + np.array([0.0, 0.0, 1.0]))
        specular = 0.12 * np.clip(normals @ half, 0.0, None) ** 24
        shade = np.clip(self.albedo * light[:, None] + specular[:, None], 0.0, 1.0)

        u, v, depth = self.project(positions)
        return self._rasterise(u, v, depth, shade)

    def project(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Pixel column, pixel row and camera distance of head-frame points (camera on +Z, looking back)."""
        rel = np.atleast_2d(np.asarray(positions, np.float64)) - self.center
        depth = self.distance - rel[:, 2]
        u = 0.5 * self.size + self.focal * rel[:, 0] / depth
        v = 0.5 * self.size - self.focal * rel[:, 1] / depth
        return u, v, depth

    def _rasterise(self, u: np.ndarray, v: np.ndarray, depth: np.ndarray, shade: np.ndarray) -> np.ndarray:
        size = self.size
        tri = self.indices
        x0, x1, x2 = u[tri[:, 0]], u[tri[:, 1]], u[tri[:, 2]]
        y0, y1, y2 = v[tri[:, 0]], v[tri[:, 1]], v[tri[:, 2]]
        area = (x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0)
        # Image rows grow downwards, so triangles facing the camera have negative signed area here.
        keep = area < -1e-9
        # Only pixels whose centres (px + 0.5, py + 0.5) can fall inside: tiny triangles list few or none.
        xmin = np.clip(np.ceil(np.minimum(np.minimum(x0, x1), x2) - 0.5), 0, size - 1).astype(np.int64)
        xmax = np.clip(np.floor(np.maximum(np.maximum(x0, x1), x2) - 0.5), 0, size - 1).astype(np.int64)
        ymin = np.clip(np.ceil(np.minimum(np.minimum(y0, y1), y2) - 0.5), 0, size - 1).astype(np.int64)
        ymax = np.clip(np.floor(np.maximum(np.maximum(y0, y1), y2) - 0.5), 0, size - 1).astype(np.int64)
        keep &= (xmax >= xmin) & (ymax >= ymin)
        faces = np.flatnonzero(keep)
        image = self.background.copy()
        if faces.size == 0:
            return image
        width = xmax[faces] - xmin[faces] + 1
        height = ymax[faces] - ymin[faces] + 1
        counts = width * height
        owner = np.repeat(np.arange(faces.size), counts)
        offset = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        px = xmin[faces][owner] + offset % width[owner]
        py = ymin[faces][owner] + offset // width[owner]
        f = faces[owner]
        cx, cy = px + 0.5, py + 0.5
        inv = 1.0 / area[f]
        b0 = ((x1[f] - cx) * (y2[f] - cy) - (x2[f] - cx) * (y1[f] - cy)) * inv
        b1 = ((x2[f] - cx) * (y0[f] - cy) - (x0[f] - cx) * (y2[f] - cy)) * inv
        b2 = 1.0 - b0 - b1
        inside = (b0 >= -1e-7) & (b1 >= -1e-7) & (b2 >= -1e-7)
        f, px, py, b0, b1, b2 = f[inside], px[inside], py[inside], b0[inside], b1[inside], b2[inside]
        corners = tri[f]
        z = b0 * depth[corners[:, 0]] + b1 * depth[corners[:, 1]] + b2 * depth[corners[:, 2]]
        pixel = py * size + px
        # Sort by pixel, nearest first within a pixel: depth (0.5..1.5 m) is squeezed into the key's fraction.
        key = pixel + np.clip((z - self.distance + 0.5) / 1.0, 0.0, 0.999)
        order = np.argsort(key, kind="stable")
        pixel_sorted = pixel[order]
        first = np.ones(order.size, bool)
        first[1:] = pixel_sorted[1:] != pixel_sorted[:-1]
        win = order[first]
        color = (
            b0[win, None] * shade[corners[win, 0]]
            + b1[win, None] * shade[corners[win, 1]]
            + b2[win, None] * shade[corners[win, 2]]
        )
        flat = image.reshape(-1, 3)
        flat[pixel[win]] = np.clip(color * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return image
