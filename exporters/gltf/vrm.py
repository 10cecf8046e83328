"""VRM expressions: the presets a ``.vrm`` file defines and the morph targets each one moves.

A VRM avatar says in its glTF extension which morph targets make each expression, with a weight:

* VRM 1.0, ``extensions.VRMC_vrm.expressions``: ``preset`` (an object keyed by ``aa ih ou ee oh
  blink blinkLeft blinkRight happy angry sad relaxed surprised lookUp lookDown lookLeft lookRight
  neutral``) and ``custom`` (keyed by the author's names), each expression with ``morphTargetBinds``
  ``[{"node", "index", "weight" 0..1}]`` (``node`` is a node index whose mesh holds the target) and
  ``isBinary`` (vrm-specification, ``specification/VRMC_vrm-1.0/schema/VRMC_vrm.expressions*.json``).
* VRM 0.x, ``extensions.VRM.blendShapeMaster.blendShapeGroups``: a list of groups with ``name``,
  ``presetName`` (``a i u e o blink blink_l blink_r joy angry sorrow fun lookup lookdown lookleft
  lookright neutral unknown``), ``binds`` ``[{"mesh", "index", "weight" 0..100}]`` (``mesh`` is a
  mesh index) and ``isBinary`` (``specification/0.0/schema/vrm.blendshape*.json``).

:func:`read_vrm_expressions` turns either into :class:`VrmExpression` s on talkbridge's channels (0.x
names become the 1.0 presets; a custom expression whose name is a channel, such as the ARKit names
of a "perfect sync" avatar, drives that channel). :func:`bind_vrm_expressions` then makes the binds
the way those channels reach the head: a bound target follows its presets with the bind weights, and
a preset the file binds is driven only through its binds (a target that merely shares the preset's
name is held at rest, or the face would make the expression twice). The extension itself is left in
the document untouched, so the output is still a valid ``.vrm``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pygltflib

from talkbridge.core.errors import InputError
from talkbridge.exporters.naming import VRM0_PRESETS, VRM_PRESETS, MatchReport, RestedTarget, TargetMatch, canonical_channel

log = logging.getLogger(__name__)

"""VRM 0.x ``presetName`` -> the VRM 1.0 preset (talkbridge channel) it became."""


@dataclass(frozen=True)
class VrmBind:
    """One morph target an expression moves: mesh index, target index, weight 0..1."""

    mesh: int
    index: int
    weight: float


@dataclass(frozen=True)
class VrmExpression:
    """One expression of a VRM file on a talkbridge channel."""

    channel: str
    name: str  # as the file names it (preset key, 0.x group name or custom name)
    binds: tuple[VrmBind, ...]
    is_binary: bool = False


@dataclass(frozen=True)
class VrmExpressions:
    version: str  # "0.x" or "1.0"
    expressions: tuple[VrmExpression, ...]

    @property
    def channels(self) -> set[str]:
        return {e.channel for e in self.expressions if e.binds}


def _number(value: Any, what: str, path: Path | None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
        raise InputError(f"{what} is not a number ({value!r})", path)
    return float(value)


def _index(value: Any, size: int, what: str, kind: str, path: Path | None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < size:
        plural = "meshes" if kind == "mesh" else f"{kind}s"
        where = "its mesh has" if kind == "morph target" else "the file has"
        raise InputError(f"{what} names {kind} {value!r}, but {where} {size} {plural}", path)
    return value


def _target_count(document: pygltflib.GLTF2, mesh: int) -> int:
    return max((len(p.targets or []) for p in document.meshes[mesh].primitives), default=0)


def _bind(document: pygltflib.GLTF2, mesh: int, index: Any, weight: float, what: str, path: Path | None) -> VrmBind:
    index = _index(index, _target_count(document, mesh), what, "morph target", path)
    return VrmBind(mesh, index, min(max(weight, 0.0), 1.0))


def _vrm1(document: pygltflib.GLTF2, extension: Mapping, path: Path | None) -> list[VrmExpression]:
    expressions = extension.get("expressions") or {}
    if not isinstance(expressions, dict):
        raise InputError("VRMC_vrm.expressions is not an object", path)
    found: list[VrmExpression] = []
    for group in ("preset", "custom"):
        entries = expressions.get(group) or {}
        if not isinstance(entries, dict):
            raise InputError(f"VRMC_vrm.expressions.{group} is not an object", path)
        for name, expression in entries.items():
            channel = name if group == "preset" and name in VRM_PRESETS else canonical_channel(name)
            if not isinstance(expression, dict):
                raise InputError(f"VRM expression {name!r} is not an object", path)
            binds = []
            for number, bind in enumerate(expression.get("morphTargetBinds") or []):
                what = f"VRM expression {name!r} morphTargetBinds[{number}]"
                if not isinstance(bind, dict):
                    raise InputError(f"{what} is not an object", path)
                node = document.nodes[_index(bind.get("node"), len(document.nodes), what, "node", path)]
                if node.mesh is None:
                    raise InputError(f"{what} names node {bind.get('node')}, which has no mesh", path)
                mesh = _index(node.mesh, len(document.meshes), what, "mesh", path)
                binds.append(_bind(document, mesh, bind.get("index"), _number(bind.get("weight", 1.0), f"{what} weight", path), what, path))
            if channel is None:
                log.info("VRM expression %r is not a channel talkbridge drives; left alone", name)
                continue
            found.append(VrmExpression(channel, name, tuple(binds), bool(expression.get("isBinary", False))))
    return found


def _vrm0(document: pygltflib.GLTF2, extension: Mapping, path: Path | None) -> list[VrmExpression]:
    master = extension.get("blendShapeMaster") or {}
    groups = master.get("blendShapeGroups") or [] if isinstance(master, dict) else None
    if not isinstance(groups, list):
        raise InputError("VRM.blendShapeMaster.blendShapeGroups is not a list", path)
    found: list[VrmExpression] = []
    for number, group in enumerate(groups):
        if not isinstance(group, dict):
            raise InputError(f"VRM blendShapeGroups[{number}] is not an object", path)
        name = str(group.get("name") or group.get("presetName") or f"group{number}")
        preset = str(group.get("presetName") or "unknown").lower()
        channel = VRM0_PRESETS.get(preset) or canonical_channel(name)
        binds = []
        for index, bind in enumerate(group.get("binds") or []):
            what = f"VRM blend shape group {name!r} binds[{index}]"
            if not isinstance(bind, dict):
                raise InputError(f"{what} is not an object", path)
            mesh = _index(bind.get("mesh"), len(document.meshes), what, "mesh", path)
            weight = _number(bind.get("weight", 100.0), f"{what} weight", path) / 100.0
            binds.append(_bind(document, mesh, bind.get("index"), weight, what, path))
        if channel is None:
            log.info("VRM blend shape group %r is not a channel talkbridge drives; left alone", name)
            continue
        found.append(VrmExpression(channel, name, tuple(binds), bool(group.get("isBinary", False))))
    return found


def read_vrm_expressions(document: pygltflib.GLTF2, path: Path | None = None) -> VrmExpressions | None:
    """The expressions of a VRM 1.0 or 0.x document, or None when it has neither extension.

    Every index is checked: a bind naming a node, mesh or morph target the file lacks is an
    :class:`InputError` naming the expression and the index.
    """
    extensions = document.extensions if isinstance(document.extensions, dict) else {}
    if isinstance(extensions.get("VRMC_vrm"), dict):
        return VrmExpressions("1.0", tuple(_vrm1(document, extensions["VRMC_vrm"], path)))
    if isinstance(extensions.get("VRM"), dict):
        return VrmExpressions("0.x", tuple(_vrm0(document, extensions["VRM"], path)))
    return None


def bind_vrm_expressions(
    vrm: VrmExpressions,
    morph_meshes: Mapping[int, list[str]],
    reports: Mapping[int, MatchReport],
    available: set[str],
    user_map: Mapping[str, Any] | None = None,
) -> None:
    """Drive the file's bound expressions through their binds, in the per-mesh ``reports``.

    A bound target gets one match per expression binding it (weights add up, as in a VRM runtime)
    in place of whatever its name matched; a name match to a channel the file binds is held at
    rest. Targets in the user's name map keep the user's choice. Expressions the motion cannot
    drive are reported as missing.
    """
    user_map = user_map or {}
    bound_channels = vrm.channels
    bound_targets: dict[int, set[str]] = {}
    for expression in vrm.expressions:
        for bind in expression.binds:
            if bind.mesh in morph_meshes:
                bound_targets.setdefault(bind.mesh, set()).add(morph_meshes[bind.mesh][bind.index])
    for mesh, report in reports.items():
        targets = bound_targets.get(mesh, set())
        kept = []
        for match in report.matches:
            if match.how == "user map" or (match.target not in targets and match.channel not in bound_channels):
                kept.append(match)
            elif match.target not in targets:
                report.at_rest.append(RestedTarget(match.target, match.channel, f"the VRM file binds {match.channel!r} to other targets"))
        report.matches = kept
        report.unmatched_targets = [t for t in report.unmatched_targets if t not in targets or t in user_map]
    for expression in vrm.expressions:
        for bind in expression.binds:
            report = reports.get(bind.mesh)
            if report is None:
                continue
            target = morph_meshes[bind.mesh][bind.index]
            if target in user_map:
                continue
            if expression.channel not in available:
                if expression.channel not in report.missing_channels:
                    report.missing_channels.append(expression.channel)
                if target not in report.unmatched_targets and target not in {m.target for m in report.matches}:
                    report.unmatched_targets.append(target)
                continue
            if target in report.unmatched_targets:
                report.unmatched_targets.remove(target)
            report.matches.append(TargetMatch(target, expression.channel, "vrm binding", bind.weight))


def binary_channels(vrm: VrmExpressions, channels: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``channels`` with each ``isBinary`` expression's channel snapped to 0 or 1 (above 0.5 is 1).

    Only the channels a binary expression binds change; name-matched targets of a bound channel are
    held at rest (see :func:`bind_vrm_expressions`), so nothing else reads the snapped values.
    """
    snapped = dict(channels)
    for expression in vrm.expressions:
        if expression.is_binary and expression.binds and expression.channel in snapped:
            snapped[expression.channel] = (snapped[expression.channel] > 0.5).astype(np.float32)
    return snapped
