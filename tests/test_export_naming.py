"""Morph-target name matching: ARKit variants, visemes, VRM, exp_XX, user maps, and the report."""

from __future__ import annotations

import json

import numpy as np
import pytest

from talkbridge.core.errors import InputError
from talkbridge.core.motion import ARKIT_52
from talkbridge.exporters.naming import (
    canonical_channel,
    load_name_map,
    match_targets,
    motion_channels,
    parse_name_map,
    weight_matrix,
)
from tests.heads import synthetic_motion


@pytest.mark.parametrize(
    "name, channel",
    [
        ("jawOpen", "jawOpen"),
        ("JawOpen", "jawOpen"),
        ("jaw_open", "jawOpen"),
        ("A25_Jaw_Open", "jawOpen"),
        ("blendShape1.jawOpen", "jawOpen"),
        ("Face|mouthSmile_L", "mouthSmileLeft"),
        ("Eye_Blink_R", "eyeBlinkRight"),
        ("03_browInnerUp", "browInnerUp"),
        ("viseme_aa", "viseme_aa"),
        ("viseme_PP", "viseme_PP"),
        ("aa", "aa"),
        ("blinkLeft", "blinkLeft"),
        ("exp_07", "exp_07"),
        ("Exp_7", "exp_07"),
        ("Body_Fat", None),
        ("exp_64", None),
        ("jawOpenExtra", None),
    ],
)
def test_canonical_channel(name, channel):
    assert canonical_channel(name) == channel


def test_every_arkit_name_survives_common_renamings():
    for name in ARKIT_52:
        snake = "".join("_" + c.lower() if c.isupper() else c for c in name)
        assert canonical_channel(snake) == name
        assert canonical_channel(name[0].upper() + name[1:]) == name
        assert canonical_channel(f"blendShape2.{name}") == name


def test_user_map_overrides_ignores_and_scales():
    user = parse_name_map({"MouthOpen": {"channel": "jawOpen", "scale": 0.5}, "jawOpen": None, "Smile": "mouthSmileLeft"})
    report = match_targets(["MouthOpen", "jawOpen", "Smile", "Hair"], set(ARKIT_52), user)
    bound = report.channel_for
    assert bound["MouthOpen"].channel == "jawOpen" and bound["MouthOpen"].scale == 0.5
    assert bound["MouthOpen"].how == "user map"
    assert report.ignored_targets == ["jawOpen"]
    assert report.unmatched_targets == ["Hair"]
    assert "Hair" in report.summary()


def test_bad_name_maps_are_reported(tmp_path):
    with pytest.raises(InputError, match="not a channel"):
        parse_name_map({"A": "notAChannel"})
    with pytest.raises(InputError, match="JSON object"):
        parse_name_map(["jawOpen"])
    broken = tmp_path / "map.json"
    broken.write_text("{not json")
    with pytest.raises(InputError, match="map.json"):
        load_name_map(broken)
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"Mouth": "jawOpen"}))
    assert load_name_map(good) == {"Mouth": ("jawOpen", 1.0)}


def test_channels_the_motion_lacks_are_missing_not_zero_animated():
    motion = synthetic_motion(10, expression=False)
    channels = motion_channels(motion)
    assert "exp_00" not in channels
    report = match_targets(["exp_00", "jawOpen"], set(channels))
    assert [m.target for m in report.matches] == ["jawOpen"]
    assert report.missing_channels == ["exp_00"]


def test_vrm_presets_and_blink_fallback_are_derived():
    motion = synthetic_motion(10)
    channels = motion_channels(motion)
    np.testing.assert_allclose(channels["aa"], motion.visemes[:, 10])
    np.testing.assert_allclose(channels["blinkLeft"], motion.arkit[:, ARKIT_52.index("eyeBlinkLeft")])
    no_arkit = synthetic_motion(10)
    no_arkit.arkit = None
    assert np.array_equal(motion_channels(no_arkit)["eyeBlinkRight"], no_arkit.blink)


def test_weight_matrix_holds_unmatched_targets_at_rest():
    motion = synthetic_motion(6)
    channels = motion_channels(motion)
    names = ["jawOpen", "Body_Fat"]
    report = match_targets(names, set(channels))
    weights = weight_matrix(report, names, channels, motion.n_frames, rest=[0.0, 0.3])
    np.testing.assert_allclose(weights[:, 0], motion.arkit[:, ARKIT_52.index("jawOpen")])
    np.testing.assert_allclose(weights[:, 1], 0.3)


def test_naming_imports_neither_pygltflib_nor_bpy():
    import subprocess
    import sys

    code = "import sys, talkbridge.exporters.naming; print('pygltflib' in sys.modules, 'bpy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]


def test_inconsistent_or_broken_motion_is_refused():
    motion = synthetic_motion(6)
    motion.arkit = motion.arkit[:4]
    with pytest.raises(InputError, match=r"'arkit' has shape \(4, 52\), expected \(6, 52\)"):
        motion_channels(motion)
    motion = synthetic_motion(6)
    motion.visemes[2, 3] = np.nan
    with pytest.raises(InputError, match="NaN"):
        motion_channels(motion)
