"""One mouth source per character: the take drives ARKit mouth shapes, visemes or VRM vowels, never two.

Avatars for the web and games often carry two or three mouth sets (Ready Player Me: the 52 ARKit
shapes and the 15 Oculus visemes); driving every set at once opens the mouth about twice as far as
one. The choice is made once for the whole character (head, teeth, tongue together), so the teeth
follow the same set as the lips. Default: ARKit when its mouth and jaw shapes are all there, else
visemes, else VRM vowels, else what ARKit mouth shapes there are. Shapes outside the mouth (eyes,
brows, cheeks) are not part of the choice: they come from whichever set has them, except blinks:
one blink set closes the eyes (per-eye blinks before VRM's both-eyes ``blink``).

Plain Python (no bpy). The add-on's local rule; the exporters' own (``talkbridge export --mouth``)
follows the same default.
"""

from __future__ import annotations

from typing import Iterable

from talkbridge.core.errors import InputError
from talkbridge.core.motion import ARKIT_52, OCULUS_VISEMES

MOUTH_SOURCES = ("auto", "arkit", "visemes", "vrm")
ARKIT_MOUTH = frozenset(name for name in ARKIT_52 if name.startswith(("mouth", "jaw")))
VISEME_MOUTH = frozenset(OCULUS_VISEMES) - {"viseme_sil"}
VRM_VOWELS = frozenset(("aa", "ih", "ou", "ee", "oh"))


def mouth_family(channel: str) -> str | None:
    """Which mouth set a channel belongs to (``arkit``, ``visemes``, ``vrm``), or None outside the mouth."""
    if channel in ARKIT_MOUTH:
        return "arkit"
    if channel in VISEME_MOUTH or channel == "viseme_sil":
        return "visemes"
    if channel in VRM_VOWELS:
        return "vrm"
    return None


def choose_mouth_source(channels: Iterable[str], requested: str = "auto") -> str | None:
    """The mouth set that drives the mouth, given every channel the character's shapes matched.

    None when the character has no mouth shapes at all. A requested set the character lacks is an
    error (the artist asked for something that would leave the mouth shut).
    """
    requested = (requested or "auto").lower()
    if requested not in MOUTH_SOURCES:
        raise InputError(f"unknown mouth source {requested!r}; choose from {', '.join(MOUTH_SOURCES)}")
    present: dict[str, set[str]] = {"arkit": set(), "visemes": set(), "vrm": set()}
    for channel in channels:
        family = mouth_family(channel)
        if family is not None:
            present[family].add(channel)
    if requested != "auto":
        if not present[requested]:
            have = [name for name, found in present.items() if found]
            raise InputError(
                f"the mouth source {requested!r} was chosen, but the character has no such shapes"
                + (f" (it has {', '.join(have)})" if have else " (it has no mouth shapes)")
            )
        return requested
    if present["arkit"] >= ARKIT_MOUTH:
        return "arkit"
    for family in ("visemes", "vrm", "arkit"):
        if present[family]:
            return family
    return None


BLINK_SETS = (
    ("arkit", frozenset({"eyeBlinkLeft", "eyeBlinkRight"})),
    ("vrm per-eye", frozenset({"blinkLeft", "blinkRight"})),
    ("vrm both-eyes", frozenset({"blink"})),
)
"""Blink sets, preferred first: per-eye blinks win over VRM's both-eyes ``blink``, which on top of
them would close each eye twice (VRoid models bind all three)."""


def choose_blink(channels: Iterable[str]) -> str | None:
    """The one blink set that drives the eyes: the first of :data:`BLINK_SETS` the character has whole."""
    have = set(channels)
    return next((name for name, members in BLINK_SETS if members <= have), None)


def left_at_rest(channel: str, chosen: str | None, blink: str | None = None) -> bool:
    """True when ``channel`` is a mouth shape of a set other than the chosen one, or a blink of a
    set other than the chosen blink set."""
    family = mouth_family(channel)
    if family is not None:
        return chosen is not None and family != chosen
    if blink is not None:
        return any(channel in members for name, members in BLINK_SETS if name != blink)
    return False
