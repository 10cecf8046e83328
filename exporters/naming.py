"""Matching a head's morph-target names to talkbridge's motion channels.

Rigs name the same blend shape many ways: ``jawOpen`` (ARKit), ``JawOpen``, ``jaw_open``,
``A25_Jaw_Open`` (numbered character-creator exports), ``blendShape1.jawOpen`` (Maya), ``Jaw_Open_L``.
This module reduces a name to a comparison key and looks it up among the channel families talkbridge
can drive:

* ARKit 52 (``jawOpen`` ...), from the motion's ARKit curves and blink;
* Oculus visemes (``viseme_aa`` ...), from the viseme curves;
* VRM 1.0 expression presets (``aa ih ou ee oh blink blinkLeft blinkRight happy ...``), derived from
  visemes, blink and ARKit;
* 3DMM expression coefficients ``exp_00 .. exp_63``, SadTalker's raw expression;
* the tongue and emotion channels of the motion contract (``tongueTipUp`` ..., ``joy`` ...);
* rig-family aliases (:data:`RIG_ALIASES`): VRoid Studio's ``Fcl_*`` shapes and Character Creator 4's
  expression names that do not reduce to an ARKit name by case and separators alone.

A user JSON map (target name -> channel name, or ``null`` to leave a target alone) overrides the
automatic match. The result records how each target matched so the CLI and the Blender add-on can
show a report. This module is pure Python + numpy on purpose: the Blender add-on imports it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import numpy as np

from talkbridge.core.errors import InputError
from talkbridge.core.motion import (
    ARKIT_52, CHANNELS, EMOTIONS, EXPRESSION_DIM, EXPRESSION_NAMES, OCULUS_VISEMES, TONGUE_16, Motion, checked_channels,
)

EXPRESSION_CHANNELS = EXPRESSION_NAMES

VRM_PRESETS = (
    "happy", "angry", "sad", "relaxed", "surprised",
    "aa", "ih", "ou", "ee", "oh",
    "blink", "blinkLeft", "blinkRight",
    "lookUp", "lookDown", "lookLeft", "lookRight",
    "neutral",
)
"""VRM 1.0 expression preset names (VRMC_vrm ``expressions.preset``)."""

FAMILIES = {
    "arkit": ARKIT_52,
    "viseme": OCULUS_VISEMES,
    "vrm": VRM_PRESETS,
    "exp": EXPRESSION_CHANNELS,
    "tongue": TONGUE_16,
    "emotion": EMOTIONS,
}

# How a VRM preset is made from the motion's channels: a weighted sum of other channels.
_VRM_RECIPES: dict[str, dict[str, float]] = {
    "aa": {"viseme_aa": 1.0},
    "ih": {"viseme_I": 1.0},
    "ou": {"viseme_U": 1.0},
    "ee": {"viseme_E": 1.0},
    "oh": {"viseme_O": 1.0},
    "blink": {"eyeBlinkLeft": 0.5, "eyeBlinkRight": 0.5},
    "blinkLeft": {"eyeBlinkLeft": 1.0},
    "blinkRight": {"eyeBlinkRight": 1.0},
    "happy": {"mouthSmileLeft": 0.5, "mouthSmileRight": 0.5},
    "sad": {"mouthFrownLeft": 0.5, "mouthFrownRight": 0.5},
    "angry": {"browDownLeft": 0.5, "browDownRight": 0.5},
    "surprised": {"browInnerUp": 0.5, "eyeWideLeft": 0.25, "eyeWideRight": 0.25},
    "lookUp": {"eyeLookUpLeft": 0.5, "eyeLookUpRight": 0.5},
    "lookDown": {"eyeLookDownLeft": 0.5, "eyeLookDownRight": 0.5},
    # The subject's left: the left eye looks out, the right eye looks in.
    "lookLeft": {"eyeLookOutLeft": 0.5, "eyeLookInRight": 0.5},
    "lookRight": {"eyeLookInLeft": 0.5, "eyeLookOutRight": 0.5},
}

# Rig families whose names are not ARKit/viseme/VRM names in another spelling: alias -> channel.
# Where each table comes from is listed in docs/exporters.md ("Rig families").
VROID_ALIASES: dict[str, str] = {
    # VRoid Studio face shapes (mesh "Face"): vowels, eyes closed, brows and whole-face emotions.
    "Fcl_MTH_A": "aa", "Fcl_MTH_I": "ih", "Fcl_MTH_U": "ou", "Fcl_MTH_E": "ee", "Fcl_MTH_O": "oh",
    "Fcl_EYE_Close": "blink", "Fcl_EYE_Close_L": "blinkLeft", "Fcl_EYE_Close_R": "blinkRight",
    # The brow parts of VRoid's emotions follow the VRM emotion presets they belong to.
    "Fcl_BRW_Angry": "angry", "Fcl_BRW_Fun": "relaxed", "Fcl_BRW_Joy": "happy",
    "Fcl_BRW_Sorrow": "sad", "Fcl_BRW_Surprised": "surprised",
    # Whole-face emotions are emotion shapes: driven by the motion's emotion channel (Audio2Face-3D's 10).
    "Fcl_ALL_Joy": "joy", "Fcl_ALL_Angry": "anger", "Fcl_ALL_Sorrow": "sadness",
    "Fcl_ALL_Surprised": "amazement", "Fcl_ALL_Fun": "cheekiness", "Fcl_ALL_Neutral": "neutral",
}
CC4_ALIASES: dict[str, str] = {
    # Character Creator 4 / iClone "Extended" expressions whose words differ from ARKit's
    # (Mouth_Smile_L, Jaw_Open, Eye_Blink_L ... already match by spelling).
    "Brow_Drop_L": "browDownLeft", "Brow_Drop_R": "browDownRight",
    "Brow_Raise_Inner_L": "browInnerUp", "Brow_Raise_Inner_R": "browInnerUp",
    "Brow_Raise_Outer_L": "browOuterUpLeft", "Brow_Raise_Outer_R": "browOuterUpRight",
    "Cheek_Puff_L": "cheekPuff", "Cheek_Puff_R": "cheekPuff",
    "Cheek_Raise_L": "cheekSquintLeft", "Cheek_Raise_R": "cheekSquintRight",
    "Eye_L_Look_Down": "eyeLookDownLeft", "Eye_R_Look_Down": "eyeLookDownRight",
    "Eye_L_Look_Up": "eyeLookUpLeft", "Eye_R_Look_Up": "eyeLookUpRight",
    # CC4 says where each eye looks (the character's left or right); ARKit says in (to the nose) or out.
    "Eye_L_Look_L": "eyeLookOutLeft", "Eye_L_Look_R": "eyeLookInLeft",
    "Eye_R_Look_L": "eyeLookInRight", "Eye_R_Look_R": "eyeLookOutRight",
    "Mouth_Down_Lower_L": "mouthLowerDownLeft", "Mouth_Down_Lower_R": "mouthLowerDownRight",
    "Mouth_Up_Upper_L": "mouthUpperUpLeft", "Mouth_Up_Upper_R": "mouthUpperUpRight",
    "Mouth_Funnel_Up_L": "mouthFunnel", "Mouth_Funnel_Up_R": "mouthFunnel",
    "Mouth_Funnel_Down_L": "mouthFunnel", "Mouth_Funnel_Down_R": "mouthFunnel",
    "Mouth_Pucker_Up_L": "mouthPucker", "Mouth_Pucker_Up_R": "mouthPucker",
    "Mouth_Pucker_Down_L": "mouthPucker", "Mouth_Pucker_Down_R": "mouthPucker",
    "Mouth_Roll_In_Lower_L": "mouthRollLower", "Mouth_Roll_In_Lower_R": "mouthRollLower",
    "Mouth_Roll_In_Upper_L": "mouthRollUpper", "Mouth_Roll_In_Upper_R": "mouthRollUpper",
}
RIG_ALIASES: dict[str, str] = {**VROID_ALIASES, **CC4_ALIASES}

_NAMESPACE = re.compile(r"^.*[.|:/]")  # blendShape1.jawOpen, Face|jawOpen, mixamorig:..., a/b
_NUMBERED_PREFIX = re.compile(r"^(?:[A-Za-z]{1,2}\d{1,3}|\d{1,3})[_\- ]+")  # A01_..., 01_...
_SIDE_SUFFIX = re.compile(r"[_\-. ]?([LR])$")  # Eye_Blink_L, jawOpen.R
_EXPRESSION = re.compile(r"^(?:exp|expr|expression)_?(\d{1,2})$")
_VROID_MATERIAL_PREFIX = re.compile(r"^.*?_(?=Fcl_)", re.IGNORECASE)  # M_F00_000_00_Fcl_MTH_A (VRM add-on imports)


def name_key(name: str) -> str:
    """The comparison key of a morph-target or channel name: no namespace, numbering, case or separators."""
    name = _NAMESPACE.sub("", name.strip())
    name = _VROID_MATERIAL_PREFIX.sub("", name)
    name = _NUMBERED_PREFIX.sub("", name)
    side = _SIDE_SUFFIX.search(name)
    if side:
        name = name[: side.start()] + ("Left" if side.group(1) == "L" else "Right")
    return re.sub(r"[^0-9a-z]", "", name.lower())


def _build_index() -> dict[str, str]:
    index: dict[str, str] = {}
    for family in ("arkit", "viseme", "vrm", "tongue", "emotion"):
        for channel in FAMILIES[family]:
            index.setdefault(name_key(channel), channel)
    for alias, channel in RIG_ALIASES.items():
        if index.setdefault(name_key(alias), channel) != channel:
            raise AssertionError(f"rig alias {alias!r} collides with another channel's name")
    return index


_INDEX = _build_index()
ALL_CHANNELS = frozenset(name for names in FAMILIES.values() for name in names)


def canonical_channel(name: str) -> str | None:
    """The talkbridge channel a morph-target name stands for, or None."""
    if name in ALL_CHANNELS:
        return name
    bare = _NUMBERED_PREFIX.sub("", _NAMESPACE.sub("", name.strip()))
    expression = _EXPRESSION.match(bare.lower())
    if expression and int(expression.group(1)) < EXPRESSION_DIM:
        return EXPRESSION_CHANNELS[int(expression.group(1))]
    return _INDEX.get(name_key(name))


def family_of(channel: str) -> str:
    for family, names in FAMILIES.items():
        if channel in names:
            return family
    raise KeyError(channel)


@dataclass(frozen=True)
class TargetMatch:
    """One morph target bound to a channel, and why."""

    target: str
    channel: str
    how: str  # "exact", "variant", "user map" or "vrm binding"
    scale: float = 1.0


@dataclass(frozen=True)
class RestedTarget:
    """A target whose name matched a channel but that is held at rest on purpose, and why.

    Typically one of two mouth sets (the head's visemes while ARKit drives the mouth, see
    :mod:`talkbridge.exporters.mouth_source`): driving both would open the mouth twice as far.
    """

    target: str
    channel: str
    reason: str


@dataclass
class MatchReport:
    """Which of a head's targets talkbridge drives, which it leaves alone, and what went unused."""

    matches: list[TargetMatch] = field(default_factory=list)
    unmatched_targets: list[str] = field(default_factory=list)
    ignored_targets: list[str] = field(default_factory=list)  # set to null in the user map
    unused_channels: list[str] = field(default_factory=list)  # motion channels no target took
    missing_channels: list[str] = field(default_factory=list)  # matched names the motion cannot drive
    mouth_source: str | None = None  # the one set that drives the mouth ("arkit", "visemes", "vrm")
    at_rest: list[RestedTarget] = field(default_factory=list)  # matched, but held at rest (see RestedTarget)

    @property
    def channel_for(self) -> dict[str, TargetMatch]:
        return {m.target: m for m in self.matches}

    def to_dict(self) -> dict:
        return {
            "matched": [{"target": m.target, "channel": m.channel, "how": m.how, "scale": m.scale} for m in self.matches],
            "mouth_source": self.mouth_source,
            "left_at_rest": [{"target": r.target, "channel": r.channel, "reason": r.reason} for r in self.at_rest],
            "unmatched_targets": list(self.unmatched_targets),
            "ignored_targets": list(self.ignored_targets),
            "missing_channels": list(self.missing_channels),
            "unused_channels": list(self.unused_channels),
        }

    def summary(self) -> str:
        """A few human lines for logs and the add-on panel."""
        lines = [f"matched {len(self.matches)} target(s)"]
        by_family: dict[str, int] = {}
        for m in self.matches:
            by_family[family_of(m.channel)] = by_family.get(family_of(m.channel), 0) + 1
        if by_family:
            lines[0] += " (" + ", ".join(f"{n} {f}" for f, n in sorted(by_family.items())) + ")"
        if self.mouth_source is not None:
            lines.append(f"mouth driven by {self.mouth_source}")
        if self.at_rest:
            reasons: dict[str, list[str]] = {}
            for rested in self.at_rest:
                reasons.setdefault(rested.reason, []).append(rested.target)
            for reason, targets in reasons.items():
                shown = list(dict.fromkeys(targets))
                lines.append(f"held at rest {len(shown)} ({reason}): " + ", ".join(shown[:12]) + (" ..." if len(shown) > 12 else ""))
        if self.unmatched_targets:
            alone = list(dict.fromkeys(self.unmatched_targets))  # meshes of one head share names
            lines.append(f"left alone {len(alone)}: " + ", ".join(alone[:12]) + (" ..." if len(alone) > 12 else ""))
        if self.missing_channels:
            lines.append("the motion has no data for: " + ", ".join(self.missing_channels[:12]))
        return "\n".join(lines)


def load_name_map(path: str | Path) -> dict[str, tuple[str | None, float]]:
    """Read a user name map: ``{"TargetName": "jawOpen" | null | {"channel": "jawOpen", "scale": 0.8}}``."""
    path = Path(path)
    if not path.is_file():
        raise InputError("name map file not found", path)
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(f"name map is not valid JSON: {error}", path) from error
    return parse_name_map(content, path)


def parse_name_map(content: object, path: str | Path | None = None) -> dict[str, tuple[str | None, float]]:
    """Validate a name map already parsed from JSON (see :func:`load_name_map`)."""
    if not isinstance(content, dict):
        raise InputError("name map must be a JSON object of target name -> channel name", path)
    parsed: dict[str, tuple[str | None, float]] = {}
    for target, value in content.items():
        scale = 1.0
        if isinstance(value, dict):
            scale = value.get("scale", 1.0)
            value = value.get("channel")
            if not isinstance(scale, (int, float)):
                raise InputError(f"name map entry {target!r}: 'scale' must be a number", path)
        if value is not None and not isinstance(value, str):
            raise InputError(f"name map entry {target!r} must be a channel name, null, or an object", path)
        if value is not None:
            channel = canonical_channel(value)
            if channel is None:
                raise InputError(
                    f"name map entry {target!r} -> {value!r}: not a channel talkbridge knows "
                    "(ARKit-52, viseme_*, VRM presets, exp_00..exp_63, tongue and emotion names)",
                    path,
                )
            value = channel
        parsed[str(target)] = (value, float(scale))
    return parsed


def match_targets(
    target_names: list[str],
    available: set[str] | frozenset[str] | None = None,
    user_map: Mapping[str, tuple[str | None, float]] | None = None,
) -> MatchReport:
    """Bind each target name to a channel.

    ``available`` is the set of channels the motion can drive (see :func:`motion_channels`); a
    target whose name is recognised but whose channel the motion lacks is reported as missing and
    left alone rather than animated with zeros.
    """
    user_map = dict(user_map or {})
    report = MatchReport()
    taken: set[str] = set()
    for target in target_names:
        if target in user_map:
            channel, scale = user_map[target]
            if channel is None:
                report.ignored_targets.append(target)
                continue
            how = "user map"
        else:
            channel, scale = canonical_channel(target), 1.0
            how = "exact" if channel == target else "variant"
        if channel is None:
            report.unmatched_targets.append(target)
            continue
        if available is not None and channel not in available:
            report.missing_channels.append(channel)
            report.unmatched_targets.append(target)
            continue
        report.matches.append(TargetMatch(target, channel, how, scale))
        taken.add(channel)
    if available is not None:
        report.unused_channels = sorted(c for c in available if c not in taken and family_of(c) != "vrm")
    return report


def motion_channels(motion: Motion) -> dict[str, np.ndarray]:
    """Every per-frame channel ``motion`` can drive, by canonical name, each a (T,) float32 array.

    ARKit eye blinks fall back to the motion's blink when the engine produced no ARKit curves, so a
    SadTalker clip still blinks a blend-shape head. VRM presets are derived (see ``_VRM_RECIPES``).
    """
    try:
        arrays = checked_channels(motion.arrays(), "the motion")  # it may have been edited since it was made
    except ValueError as error:
        raise InputError(str(error)) from None
    for name, values in arrays.items():
        if not np.all(np.isfinite(values)):
            raise InputError(f"the motion's {name} contains NaN or infinite values")
    channels: dict[str, np.ndarray] = {}
    for channel in CHANNELS:
        values = arrays.get(channel.name)
        if values is None or not (channel.shape_weights or channel.name == "expression"):
            continue
        values = np.asarray(values, np.float32)
        for i, name in enumerate(channel.columns):
            channels[name] = values[:, i]
    if motion.arkit is None:
        blink = np.asarray(motion.blink, np.float32)
        channels["eyeBlinkLeft"] = blink
        channels["eyeBlinkRight"] = blink
    for preset, recipe in _VRM_RECIPES.items():
        if all(source in channels for source in recipe):
            total = sum(np.float32(w) * channels[source] for source, w in recipe.items())
            channels[preset] = np.asarray(total, np.float32)
    channels["neutral"] = np.zeros(motion.n_frames, np.float32)
    return channels


def weight_matrix(
    report: MatchReport,
    target_names: list[str],
    channels: Mapping[str, np.ndarray],
    n_frames: int,
    rest: list[float] | None = None,
) -> np.ndarray:
    """(T, len(target_names)) weights: matched targets follow their channel, the rest hold ``rest``.

    A glTF weights animation must key every target of a mesh, so targets we do not drive are held at
    the mesh's default weight (``rest``, zeros if absent) and look exactly as they did before. A
    target with several matches (a VRM file binding one morph target to two presets) follows their
    weighted sum, as a VRM runtime would.
    """
    weights = np.zeros((n_frames, len(target_names)), np.float32)
    if rest is not None:
        weights[:] = np.asarray(rest, np.float32)[None, :]
    columns = {target: column for column, target in enumerate(target_names)}
    driven: set[int] = set()
    for match in report.matches:
        column = columns.get(match.target)
        if column is None:
            continue
        if column not in driven:
            weights[:, column] = 0.0
            driven.add(column)
        weights[:, column] += channels[match.channel] * np.float32(match.scale)
    return weights


VRM0_PRESETS = {
    "a": "aa", "i": "ih", "u": "ou", "e": "ee", "o": "oh",
    "blink": "blink", "blink_l": "blinkLeft", "blink_r": "blinkRight",
    "joy": "happy", "angry": "angry", "sorrow": "sad", "fun": "relaxed",
    "lookup": "lookUp", "lookdown": "lookDown", "lookleft": "lookLeft", "lookright": "lookRight",
    "neutral": "neutral",
}
"""VRM 0.x ``presetName`` -> the VRM 1.0 preset it became (one table for the .vrm reader and the add-on)."""
