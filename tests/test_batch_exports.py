"""exporters/job_exports.py: the export kinds a batch row or a job plan asks for, written by the existing exporters."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pygltflib
import pytest

from talkbridge.core.errors import InputError
from talkbridge.core.motion import ARKIT_52
from talkbridge.exporters.gltf import write_head_glb
from talkbridge.core.jobs.viseme_mouth import needs_viseme_motion, viseme_motion_for
from talkbridge.exporters.job_exports import export_targets, parse_export_kinds, write_exports
from talkbridge.exporters.livelink import HEADER
from tests.heads import arkit_head, synthetic_motion
from tests.speech import speech_like, write_wav

JAW = ARKIT_52.index("jawOpen")


def test_kinds_parse_with_commas_spaces_and_dashes_once_each():
    assert parse_export_kinds("glb, livelink curves-json,glb") == ("glb", "livelink", "curves_json")
    with pytest.raises(InputError, match="unknown export 'fbx'.*glb, livelink, curves, curves_json"):
        parse_export_kinds("glb,fbx")


def test_every_kind_is_written_under_its_planned_name(tmp_path):
    head = write_head_glb(arkit_head(), tmp_path / "head.glb")
    motion = synthetic_motion(frames=30)
    out = tmp_path / "out"
    out.mkdir()
    written = write_exports(motion, "glb,livelink,curves,curves_json", head, out, "line_01")
    assert written == export_targets(["glb", "livelink", "curves", "curves_json"], out, "line_01")
    assert sorted(p.name for p in out.iterdir()) == [
        "line_01.curves.csv", "line_01.curves.json", "line_01.glb", "line_01.livelink.csv"]
    animation = pygltflib.GLTF2().load(str(written["glb"])).animations
    assert [a.name for a in animation] == ["talkbridge"]
    rows = written["livelink"].read_text().splitlines()
    assert rows[0].split(",") == list(HEADER) and len(rows) == 31
    curves = json.loads(written["curves_json"].read_text())
    assert curves["frames"] == 30 and np.allclose(curves["channels"]["jawOpen"], motion.arkit[:, JAW], atol=1e-6)
    assert len(written["curves"].read_text().splitlines()) == 31
    with pytest.raises(InputError, match="already exists"):
        write_exports(motion, ["livelink"], None, out, "line_01")
    assert write_exports(motion, ["livelink"], None, out, "line_01", overwrite=True) == {"livelink": written["livelink"]}


def test_glb_needs_a_head_and_nothing_is_written_without_one(tmp_path):
    with pytest.raises(InputError, match="glb export needs a head"):
        write_exports(synthetic_motion(frames=10), ["curves", "glb"], None, tmp_path, "x")
    with pytest.raises(InputError, match="head file not found"):
        write_exports(synthetic_motion(frames=10), ["glb"], tmp_path / "missing.glb", tmp_path, "x")
    assert list(tmp_path.iterdir()) == []


def test_sadtalker_motion_gets_its_mouth_from_the_audio(tmp_path):
    sadtalker = dataclasses.replace(synthetic_motion(frames=50), arkit=None, engine="sadtalker")
    with pytest.raises(InputError, match="need mouth shapes from the job's audio"):
        write_exports(sadtalker, ["livelink"], None, tmp_path, "st")
    audio = write_wav(tmp_path / "st.wav", speech_like(2.0, seed=2))
    mouth = viseme_motion_for(audio)  # the job layer's step: the viseme engine on the same audio
    written = write_exports(sadtalker, ["livelink", "curves"], None, tmp_path, "st", viseme_motion=mouth)
    table = np.loadtxt(written["livelink"], delimiter=",", skiprows=1, usecols=range(2, 63))
    assert table.shape == (50, 61) and np.ptp(table[:, JAW]) > 0  # JawOpen moves with the speech
    header = written["curves"].read_text().splitlines()[0].split(",")
    assert "jawOpen" in header and "exp_00" in header  # curves carry the engine's expression and the mouth shapes


def test_only_engines_without_arkit_curves_need_the_viseme_engine():
    assert needs_viseme_motion("sadtalker", arkit_exports=True)
    assert not needs_viseme_motion("sadtalker", arkit_exports=False)
    assert not needs_viseme_motion("lite", arkit_exports=True)
