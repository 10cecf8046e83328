"""One mouth source per head: of a head's mouth sets, exactly one drives the mouth.

Most web and game avatars carry more than one set of mouth shapes: Ready Player Me and Avaturn heads
have the 52 ARKit shapes *and* the 15 Oculus visemes, a VRoid avatar with "perfect sync" has ARKit
shapes beside its VRM vowels. Each set alone makes the whole mouth, so driving two from one motion
opens the mouth about twice as far. The sets (:data:`MOUTH_SOURCES`):

* ``arkit``: the ARKit jaw and mouth shapes (:data:`ARKIT_MOUTH`, the ``jaw*`` and ``mouth*`` names);
* ``visemes``: the Oculus visemes ``viseme_sil .. viseme_U``;
* ``vrm``: the VRM vowels ``aa ih ou ee oh`` (VRoid's ``Fcl_MTH_A .. O``, or a .vrm file's binds).

The default is ARKit when the head has every ARKit mouth shape, else visemes, else VRM vowels, else
whatever partial set is there; a caller can ask for one. The other sets' targets are held at rest
and listed in the report with the reason. Eyes, brows and cheeks are not mouth shapes and still come
from whichever set has them; only blinks get the same treatment (:func:`choose_sources`): a head
with per-eye blinks (ARKit's ``eyeBlinkLeft/Right`` or VRM's ``blinkLeft/Right``) does not also get
VRM's both-eyes ``blink``, which would close each eye twice.

Targets bound by the user's name map are the user's explicit choice and never held at rest.

Pure Python on purpose: the Blender add-on calls it with the shape-key names of every mesh of a
character (:func:`choose_mouth_source` for names, :func:`choose_sources` for match reports).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

from talkbridge.core.errors import InputError
from talkbridge.core.motion import ARKIT_52, OCULUS_VISEMES
from talkbridge.exporters.naming import MatchReport, RestedTarget, TargetMatch, canonical_channel

log = logging.getLogger(__name__)

MOUTH_SOURCES = ("arkit", "visemes", "vrm")
"""The mouth sets, in default preference order."""

ARKIT_MOUTH = tuple(name for name in ARKIT_52 if name.startswith(("jaw", "mouth")))
"""The ARKit shapes that make the mouth (27): a head with all of them has a complete ARKit mouth."""

VRM_VOWELS = ("aa", "ih", "ou", "ee", "oh")
_SOURCE_CHANNELS = {"arkit": frozenset(ARKIT_MOUTH), "visemes": frozenset(OCULUS_VISEMES), "vrm": frozenset(VRM_VOWELS)}
_SOURCE_WORDS = {
    "arkit": "arkit", "ark": "arkit", "apple": "arkit",
    "visemes": "visemes", "viseme": "visemes", "oculus": "visemes", "ovr": "visemes",
    "vrm": "vrm", "vowels": "vrm", "vrm_vowels": "vrm", "vroid": "vrm",
}
_AUTO_WORDS = ("", "auto", "default")
_DESCRIPTION = {"arkit": "ARKit jaw/mouth shapes", "visemes": "Oculus visemes (viseme_*)", "vrm": "VRM vowels (aa ih ou ee oh)"}

# Blinks: per-eye sets win over VRM's both-eyes preset; ARKit's per-eye pair wins over VRM's.
_BLINK_SOURCES = (
    ("arkit", frozenset({"eyeBlinkLeft", "eyeBlinkRight"})),
    ("vrm per-eye", frozenset({"blinkLeft", "blinkRight"})),
    ("vrm both-eyes", frozenset({"blink"})),
)


def parse_mouth_source(value: str | None) -> str | None:
    """``value`` as one of :data:`MOUTH_SOURCES`, or None for the default (``auto``, empty, None).

    Raises :class:`InputError` naming the choices; the CLI, batch manifests and the add-on share it.
    """
    if value is None:
        return None
    word = str(value).strip().lower().replace("-", "_")
    if word in _AUTO_WORDS:
        return None
    if word not in _SOURCE_WORDS:
        raise InputError(f"unknown mouth source {value!r}; choose from {', '.join(MOUTH_SOURCES)} (or auto)")
    return _SOURCE_WORDS[word]


def mouth_source_of(channel: str) -> str | None:
    """The mouth set ``channel`` belongs to, or None for a channel that is not a mouth shape."""
    for source, channels in _SOURCE_CHANNELS.items():
        if channel in channels:
            return source
    return None


@dataclass(frozen=True)
class MouthChoice:
    """Which set drives the mouth, what the head offered, and which targets are held at rest.

    ``source`` is None when the head has no mouth shapes at all. ``present`` maps each set the head
    has to the channels it covers; ``at_rest`` lists the targets of the other sets, in head order.
    """

    source: str | None
    requested: str | None
    present: dict[str, frozenset[str]] = field(default_factory=dict)
    at_rest: tuple[str, ...] = ()

    @property
    def arkit_complete(self) -> bool:
        return self.present.get("arkit", frozenset()) >= _SOURCE_CHANNELS["arkit"]

    def describe(self) -> str:
        """One line for logs and the add-on panel."""
        if self.source is None:
            return "the head has no mouth shapes"
        how = "as asked" if self.requested else "by default"
        others = [s for s in self.present if s != self.source]
        text = f"mouth driven by {self.source} ({how})"
        if others:
            text += f"; {len(self.at_rest)} target(s) of {', '.join(others)} held at rest"
        return text


def _pick(present: dict[str, frozenset[str]], requested: str | None, where: str | Path | None = None) -> str | None:
    if requested is not None:
        if requested not in present:
            offered = ", ".join(present) or "none"
            raise InputError(
                f"mouth source {requested!r} was asked for, but the head has no {_DESCRIPTION[requested]} the motion "
                f"can drive (mouth sets it has: {offered})",
                where,
            )
        return requested
    if present.get("arkit", frozenset()) >= _SOURCE_CHANNELS["arkit"]:
        return "arkit"
    for source in ("visemes", "vrm", "arkit"):
        if source in present:
            return source
    return None


def choose_mouth_source(
    target_names: Iterable[str],
    requested: str | None = None,
    channel_of: Callable[[str], str | None] = canonical_channel,
    where: str | Path | None = None,
) -> MouthChoice:
    """Choose the mouth set for a head from the names of its targets (all meshes together).

    ``target_names``: every morph-target / shape-key name on the head (repeats across meshes are
    fine: a teeth mesh shares the face's names). ``requested``: ``"arkit"``, ``"visemes"``,
    ``"vrm"`` or None for the default. ``channel_of`` maps a name to its channel (default: the name
    matcher). Returns a :class:`MouthChoice`; its ``at_rest`` are the names to leave at rest.
    Raises :class:`InputError` (naming ``where``, e.g. the head file) when ``requested`` is a set
    the head does not have.
    """
    requested = parse_mouth_source(requested)
    names = list(target_names)
    channels = {name: channel_of(name) for name in names}
    present: dict[str, set[str]] = {}
    for channel in channels.values():
        source = mouth_source_of(channel) if channel else None
        if source is not None:
            present.setdefault(source, set()).add(channel)
    frozen = {s: frozenset(present[s]) for s in MOUTH_SOURCES if s in present}
    source = _pick(frozen, requested, where)
    rest = tuple(dict.fromkeys(n for n in names if channels[n] and mouth_source_of(channels[n]) not in (None, source)))
    return MouthChoice(source=source, requested=requested, present=frozen, at_rest=rest)


@dataclass(frozen=True)
class SourceChoice:
    """The outcome of :func:`choose_sources` for one head: the mouth set and the blink set."""

    mouth: MouthChoice
    blink: str | None


def _hold(report: MatchReport, keep: Callable[[TargetMatch], bool], reason: str) -> None:
    kept: list[TargetMatch] = []
    for match in report.matches:
        if match.how == "user map" or keep(match):
            kept.append(match)
        else:
            report.at_rest.append(RestedTarget(match.target, match.channel, reason))
    report.matches = kept


def choose_sources(reports: Sequence[MatchReport], requested: str | None = None, where: str | Path | None = None) -> SourceChoice:
    """Choose one mouth set and one blink set over all ``reports`` of one head, and apply the choice.

    ``reports`` are the match reports of every mesh of the head (a character's face, teeth, tongue
    and eyelashes share names, and the choice must be the same for all of them). Matches of the
    other mouth sets and of the overlapping blinks move from ``matches`` to ``at_rest`` with the
    reason; every report's ``mouth_source`` is set. User-map matches are never moved.
    """
    requested = parse_mouth_source(requested)
    present: dict[str, set[str]] = {}
    for report in reports:
        for match in report.matches:
            source = mouth_source_of(match.channel)
            if source is not None:
                present.setdefault(source, set()).add(match.channel)
    frozen = {s: frozenset(present[s]) for s in MOUTH_SOURCES if s in present}
    source = _pick(frozen, requested, where)
    rested: list[str] = []
    if source is not None and len(frozen) > 1:
        reason = f"the mouth is driven by {source}"
        for report in reports:
            before = len(report.at_rest)
            _hold(report, lambda m: mouth_source_of(m.channel) in (None, source), reason)
            rested += [r.target for r in report.at_rest[before:]]
    for report in reports:
        report.mouth_source = source
    blink = _choose_blink(reports)
    choice = MouthChoice(source=source, requested=requested, present=frozen, at_rest=tuple(dict.fromkeys(rested)))
    log.debug("%s; blinks from %s", choice.describe(), blink)
    return SourceChoice(mouth=choice, blink=blink)


def blink_source(channels: Iterable[str]) -> str | None:
    """The one blink set that closes the eyes: the first of :data:`_BLINK_SOURCES` that ``channels``
    (the channels a head's targets matched) hold completely, or None."""
    have = set(channels)
    return next((name for name, members in _BLINK_SOURCES if members <= have), None)


def _other_blinks(chosen: str) -> frozenset[str]:
    return frozenset().union(*(members for name, members in _BLINK_SOURCES if name != chosen))


def held_at_rest(channel: str, mouth: str | None, blink: str | None = None) -> bool:
    """Whether ``channel`` stays at rest on a head whose mouth is driven by ``mouth`` and whose eyes
    blink with ``blink``: a mouth shape of another set, or a blink of another blink set."""
    source = mouth_source_of(channel)
    if source is not None:
        return mouth is not None and source != mouth
    return blink is not None and channel in _other_blinks(blink)


def _choose_blink(reports: Sequence[MatchReport]) -> str | None:
    """Keep one blink set: the first of :data:`_BLINK_SOURCES` the head has completely."""
    chosen = blink_source(m.channel for report in reports for m in report.matches if m.how != "user map")
    if chosen is None:
        return None
    dropped = _other_blinks(chosen)
    reason = f"the eyes blink with {chosen} shapes"
    for report in reports:
        _hold(report, lambda m: m.channel not in dropped, reason)
    return chosen
