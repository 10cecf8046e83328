"""Live Link Face CSV and the plain JSON/CSV curve files."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from talkbridge.core.errors import InputError
from talkbridge.core.motion import ARKIT_52
from talkbridge.exporters.curves import write_curves_csv, write_curves_json
from talkbridge.exporters.livelink import BLENDSHAPE_COUNT, HEADER, timecode, write_livelink_csv
from tests.heads import synthetic_motion


def test_livelink_csv_has_the_app_layout(tmp_path):
    motion = synthetic_motion(30)
    path = write_livelink_csv(motion, tmp_path / "take.csv")
    rows = list(csv.reader(path.open()))
    header, body = rows[0], rows[1:]
    assert header[:2] == ["Timecode", "BlendShapeCount"]
    assert header[2:54] == [n[0].upper() + n[1:] for n in ARKIT_52]
    assert header[54:] == ["HeadYaw", "HeadPitch", "HeadRoll", "LeftEyeYaw", "LeftEyePitch", "LeftEyeRoll",
                           "RightEyeYaw", "RightEyePitch", "RightEyeRoll"]
    assert len(body) == 30 and all(len(r) == len(HEADER) for r in body)
    assert {r[1] for r in body} == {str(BLENDSHAPE_COUNT)} and BLENDSHAPE_COUNT == 61
    assert body[0][0] == "00:00:00:00.000" and body[26][0] == "00:00:01:01.000"
    values = np.array([[float(v) for v in r[2:]] for r in body])
    np.testing.assert_allclose(values[:, :52], motion.arkit, atol=1e-5)
    relative = motion.pose[:, :3] - motion.pose[:1, :3]
    np.testing.assert_allclose(values[:, 52], relative[:, 1], atol=1e-5)  # yaw
    np.testing.assert_allclose(values[:, 53], relative[:, 0], atol=1e-5)  # pitch
    np.testing.assert_allclose(values[:, 54], relative[:, 2], atol=1e-5)  # roll


def test_timecode_rolls_over_hours():
    assert timecode(25 * 3661 + 3, 25) == "01:01:01:03.000"
    assert timecode(0, 30, start_seconds=10.5) == "00:00:10:15.000"


def test_livelink_refuses_to_overwrite(tmp_path):
    path = write_livelink_csv(synthetic_motion(3), tmp_path / "take.csv")
    before = path.read_bytes()
    with pytest.raises(InputError, match="already exists"):
        write_livelink_csv(synthetic_motion(4), path)
    assert path.read_bytes() == before


def test_curves_json_and_csv_agree(tmp_path):
    motion = synthetic_motion(12)
    content = json.loads(write_curves_json(motion, tmp_path / "c.json").read_text())
    assert content["format"] == "talkbridge.curves" and content["frames"] == 12 and content["fps"] == 25
    np.testing.assert_allclose(content["channels"]["jawOpen"], motion.arkit[:, ARKIT_52.index("jawOpen")], atol=1e-6)
    np.testing.assert_allclose(content["channels"]["exp_63"], motion.expression[:, 63], atol=1e-6)
    rows = list(csv.DictReader(write_curves_csv(motion, tmp_path / "c.csv").open()))
    assert len(rows) == 12 and float(rows[5]["time"]) == pytest.approx(0.2)
    np.testing.assert_allclose([float(r["yaw"]) for r in rows], motion.pose[:, 1], atol=1e-5)
    lite = synthetic_motion(4, expression=False)
    assert "exp_00" not in json.loads(write_curves_json(lite, tmp_path / "l.json").read_text())["channels"]
