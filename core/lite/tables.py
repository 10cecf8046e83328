"""The lite engine's lookup tables, in one place so they can be read, reviewed and tuned.

Three tables drive the mouth:

* :data:`PHONE_VISEMES` maps each pocketsphinx (CMU ARPAbet) phone to one of the 15 Oculus visemes;
  diphthongs glide between two visemes (:data:`DIPHTHONG_VISEMES`).
* :data:`VISEME_SHAPES` gives each viseme's mouth shape as ARKit-52 weights. Any channel not listed is 0.
  Shapes are for full-voice speech; the engine scales opening by loudness.
* :data:`VISEME_DOMINANCE` says how strongly and how far each viseme spreads into its neighbours
  (co-articulation, after Cohen & Massaro's dominance model): lips must close for p/b/m whatever the
  neighbours, so bilabials dominate strongly over a short reach; vowels and silence are weaker and
  spread further.
"""

from __future__ import annotations

from dataclasses import dataclass

from talkbridge.core.motion import ARKIT_52, OCULUS_VISEMES

SILENCE = "viseme_sil"
BILABIAL = "viseme_PP"

# CMU phones (as pocketsphinx's en-us model names them) -> Oculus viseme.
PHONE_VISEMES: dict[str, str] = {
    "SIL": SILENCE,
    "P": BILABIAL, "B": BILABIAL, "M": BILABIAL,
    "F": "viseme_FF", "V": "viseme_FF",
    "TH": "viseme_TH", "DH": "viseme_TH",
    "T": "viseme_DD", "D": "viseme_DD",
    "K": "viseme_kk", "G": "viseme_kk", "NG": "viseme_kk", "HH": "viseme_kk",
    "CH": "viseme_CH", "JH": "viseme_CH", "SH": "viseme_CH", "ZH": "viseme_CH",
    "S": "viseme_SS", "Z": "viseme_SS",
    "N": "viseme_nn", "L": "viseme_nn",
    "R": "viseme_RR", "ER": "viseme_RR",
    "AA": "viseme_aa", "AE": "viseme_aa", "AH": "viseme_aa",
    "EH": "viseme_E",
    "IH": "viseme_I", "IY": "viseme_I", "Y": "viseme_I",
    "AO": "viseme_O", "OW": "viseme_O",
    "UH": "viseme_U", "UW": "viseme_U", "W": "viseme_U",
    # Diphthongs: their first viseme here; DIPHTHONG_VISEMES gives the glide.
    "AY": "viseme_aa", "AW": "viseme_aa", "OY": "viseme_O", "EY": "viseme_E",
}

# Diphthong -> (first half, second half): the mouth glides from one shape to the other.
DIPHTHONG_VISEMES: dict[str, tuple[str, str]] = {
    "AY": ("viseme_aa", "viseme_I"),
    "AW": ("viseme_aa", "viseme_U"),
    "OY": ("viseme_O", "viseme_I"),
    "EY": ("viseme_E", "viseme_I"),
}

# Phones that are non-speech fillers in pocketsphinx output (breath, noise, cough...) count as silence.
FILLER_PREFIX = "+"


def viseme_of(phone: str) -> str:
    """The viseme for a phone; unknown symbols and fillers are treated as silence."""
    if phone.startswith(FILLER_PREFIX):
        return SILENCE
    return PHONE_VISEMES.get(phone.upper().rstrip("012"), SILENCE)


def _both(name: str, value: float) -> dict[str, float]:
    """A symmetric pair of ARKit channels, e.g. mouthSmileLeft and mouthSmileRight."""
    return {f"{name}Left": value, f"{name}Right": value}


VISEME_SHAPES: dict[str, dict[str, float]] = {
    SILENCE: {},
    # Lips pressed together: jawOpen and mouthClose cancel, so the lip gap is exactly zero.
    BILABIAL: {"jawOpen": 0.06, "mouthClose": 0.06, **_both("mouthPress", 0.35),
               "mouthRollLower": 0.15, "mouthRollUpper": 0.10},
    # Lower lip tucked under the upper teeth.
    "viseme_FF": {"jawOpen": 0.10, "mouthClose": 0.04, "mouthRollLower": 0.55,
                  **_both("mouthUpperUp", 0.25), **_both("mouthPress", 0.10)},
    "viseme_TH": {"jawOpen": 0.18, "tongueOut": 0.35, **_both("mouthLowerDown", 0.10)},
    "viseme_DD": {"jawOpen": 0.20, **_both("mouthLowerDown", 0.15), **_both("mouthStretch", 0.10)},
    "viseme_kk": {"jawOpen": 0.26, **_both("mouthLowerDown", 0.10), **_both("mouthStretch", 0.15)},
    "viseme_CH": {"jawOpen": 0.16, "mouthFunnel": 0.55, "mouthPucker": 0.20,
                  **_both("mouthUpperUp", 0.25), **_both("mouthLowerDown", 0.20)},
    "viseme_SS": {"jawOpen": 0.08, **_both("mouthStretch", 0.35), **_both("mouthSmile", 0.15),
                  **_both("mouthLowerDown", 0.10), **_both("mouthUpperUp", 0.10)},
    "viseme_nn": {"jawOpen": 0.18, **_both("mouthLowerDown", 0.10), **_both("mouthStretch", 0.10)},
    "viseme_RR": {"jawOpen": 0.16, "mouthFunnel": 0.35, "mouthPucker": 0.30},
    # Vowels, from the most open (aa) to the most closed (I, U).
    "viseme_aa": {"jawOpen": 0.65, **_both("mouthLowerDown", 0.30), **_both("mouthUpperUp", 0.10),
                  **_both("mouthStretch", 0.10)},
    "viseme_E": {"jawOpen": 0.40, **_both("mouthStretch", 0.30), **_both("mouthSmile", 0.20),
                 **_both("mouthLowerDown", 0.25), **_both("mouthUpperUp", 0.15)},
    "viseme_I": {"jawOpen": 0.18, **_both("mouthStretch", 0.40), **_both("mouthSmile", 0.30),
                 **_both("mouthUpperUp", 0.15), **_both("mouthLowerDown", 0.12)},
    "viseme_O": {"jawOpen": 0.45, "mouthFunnel": 0.55, "mouthPucker": 0.25, **_both("mouthLowerDown", 0.15)},
    "viseme_U": {"jawOpen": 0.18, "mouthPucker": 0.70, "mouthFunnel": 0.40},
}


@dataclass(frozen=True)
class Dominance:
    """How a viseme competes with its neighbours.

    ``strength`` weighs it against overlapping visemes; ``reach_s`` is the time constant (seconds) of
    the exponential ramp before its onset and after its offset.
    """

    strength: float
    reach_s: float


VISEME_DOMINANCE: dict[str, Dominance] = {
    SILENCE: Dominance(0.6, 0.060),
    BILABIAL: Dominance(4.0, 0.030),
    "viseme_FF": Dominance(2.5, 0.035),
    "viseme_TH": Dominance(1.2, 0.035),
    "viseme_DD": Dominance(0.8, 0.035),
    "viseme_kk": Dominance(0.7, 0.035),
    "viseme_CH": Dominance(1.5, 0.045),
    "viseme_SS": Dominance(1.2, 0.040),
    "viseme_nn": Dominance(0.8, 0.035),
    "viseme_RR": Dominance(1.0, 0.045),
    "viseme_aa": Dominance(1.0, 0.060),
    "viseme_E": Dominance(1.0, 0.060),
    "viseme_I": Dominance(1.0, 0.055),
    "viseme_O": Dominance(1.2, 0.070),
    "viseme_U": Dominance(1.3, 0.070),
}

# Channels the loudness of the voice scales (how wide the mouth opens), rather than the phone alone.
OPENING_CHANNELS: tuple[str, ...] = (
    "jawOpen", "mouthLowerDownLeft", "mouthLowerDownRight", "mouthUpperUpLeft", "mouthUpperUpRight",
)

# Channels that must relax while the lips are held shut for a bilabial.
LIP_PARTING_CHANNELS: tuple[str, ...] = (
    "mouthLowerDownLeft", "mouthLowerDownRight", "mouthUpperUpLeft", "mouthUpperUpRight",
    "mouthFunnel", "tongueOut",
)

assert set(VISEME_SHAPES) == set(OCULUS_VISEMES) == set(VISEME_DOMINANCE)
assert all(name in ARKIT_52 for shape in VISEME_SHAPES.values() for name in shape)
assert all(0.0 <= value <= 1.0 for shape in VISEME_SHAPES.values() for value in shape.values())
