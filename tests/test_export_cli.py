"""`talkbridge export` end to end, in process."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
from scipy.io import savemat

from talkbridge.cli import main
from talkbridge.exporters.gltf import read_head
from talkbridge.exporters.gltf.glb import read_gltf
from talkbridge.exporters.motion_file import load_motion, save_motion
from tests.heads import recon_coefficients, synthetic_motion, write_synthetic_bfm, write_third_party_head


@pytest.fixture()
def motion_file(tmp_path):
    return save_motion(synthetic_motion(25), tmp_path / "clip.motion.npz")


def test_export_onto_a_head_with_a_name_map_and_report(tmp_path, motion_file):
    head = write_third_party_head(tmp_path)
    name_map = tmp_path / "map.json"
    name_map.write_text(json.dumps({"Muscle_Flex": "mouthPucker", "Cheek_Puff": None}))
    out = tmp_path / "out.glb"
    code = main(["export", str(motion_file), "--head", str(head), "-o", str(out), "--map", str(name_map),
                 "--report", str(tmp_path / "report.json")])
    assert code == 0
    report = json.loads((tmp_path / "report.json").read_text())
    matched = {m["target"]: (m["channel"], m["how"]) for m in report["matched"]}
    assert matched["Muscle_Flex"] == ("mouthPucker", "user map")
    assert "Cheek_Puff" in report["ignored_targets"] and report["frames"] == 25 and report["added_pivot"]
    assert [a.name for a in read_gltf(out)[0].animations] == ["Idle", "talkbridge"]


def test_export_builds_the_persons_3dmm_head(tmp_path, motion_file):
    bfm = write_synthetic_bfm(tmp_path / "BFM_model_front.mat")
    savemat(str(tmp_path / "portrait.mat"), {"full_3dmm": recon_coefficients(), "coeff_3dmm": np.zeros((1, 73))})
    sadtalker = synthetic_motion(25, engine="sadtalker")
    sadtalker.arkit = None
    motion_file = save_motion(sadtalker, tmp_path / "st.motion.npz")
    out = tmp_path / "person.glb"
    code = main(["export", str(motion_file), "--bfm", str(bfm), "--recon", str(tmp_path / "portrait.mat"),
                 "-o", str(out), "--save-motion", str(tmp_path / "retargeted.motion.npz")])
    assert code == 0
    head = read_head(out)
    assert len(head.morph_targets) == 64 and head.colors is not None
    saved = load_motion(tmp_path / "retargeted.motion.npz")
    assert saved.metadata["expression_source"] == "3dmm_geometric" and saved.arkit is not None


def test_export_livelink_and_curves(tmp_path, motion_file):
    assert main(["export", str(motion_file), "--format", "livelink", "-o", str(tmp_path / "take.csv")]) == 0
    assert (tmp_path / "take.csv").read_text().startswith("Timecode,BlendShapeCount,EyeBlinkLeft,")
    assert main(["export", str(motion_file), "-o", str(tmp_path / "curves.json")]) == 0
    assert json.loads((tmp_path / "curves.json").read_text())["frames"] == 25


def test_export_errors_are_one_clear_line(tmp_path, motion_file, caplog):
    caplog.set_level(logging.ERROR)
    head = write_third_party_head(tmp_path)
    assert main(["export", str(motion_file), "--head", str(head), "-o", str(tmp_path / "o.glb"), "--fps", "30"]) == 1
    assert "frame-rate mismatch" in caplog.text
    (tmp_path / "exists.glb").write_bytes(b"keep me")
    assert main(["export", str(motion_file), "--head", str(head), "-o", str(tmp_path / "exists.glb")]) == 1
    assert (tmp_path / "exists.glb").read_bytes() == b"keep me"
    assert main(["export", str(motion_file), "-o", str(tmp_path / "o.glb")]) == 1
    assert "--head" in caplog.text


def test_sadtalker_motion_without_a_3dmm_gets_its_mouth_from_the_viseme_engine(tmp_path):
    from scipy.io import wavfile

    from talkbridge.core.engine import MotionRequest, create_engine
    from talkbridge.core.motion import ARKIT_52, Motion
    from talkbridge.exporters.gltf import write_head_glb
    from tests.heads import arkit_head

    rate = 16000
    seconds = np.arange(2 * rate) / rate
    voiced = (0.3 * np.sin(2 * np.pi * 170 * seconds) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * seconds))).astype(np.float32)
    audio = tmp_path / "clip.wav"
    wavfile.write(str(audio), rate, voiced)
    sadtalker = synthetic_motion(50, engine="sadtalker")
    sadtalker.arkit = None
    motion_file = save_motion(sadtalker, tmp_path / "st.motion.npz")
    head = write_head_glb(arkit_head(), tmp_path / "head.glb")
    code = main(["export", str(motion_file), "--head", str(head), "--audio", str(audio), "-o", str(tmp_path / "o.glb"),
                 "--save-motion", str(tmp_path / "retargeted.motion.npz")])
    assert code == 0
    saved = load_motion(tmp_path / "retargeted.motion.npz")
    assert saved.metadata["expression_source"] == "viseme_mouth+sadtalker_blink"
    engine = create_engine("lite")
    lite = Motion.from_chunks(engine.stream_motion(MotionRequest(audio=audio)), engine="lite", engine_version="")
    jaw = ARKIT_52.index("jawOpen")
    np.testing.assert_allclose(saved.arkit[:, jaw], lite.arkit[:50, jaw], atol=1e-6)
    assert saved.arkit[:, jaw].max() > 0.05, "the voiced clip must open the jaw"
    np.testing.assert_allclose(saved.arkit[:, ARKIT_52.index("eyeBlinkLeft")], np.clip(sadtalker.blink, 0, 1))
