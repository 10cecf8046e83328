"""The rig families people bring (tests/rig_families.py): names match, one mouth source drives the
mouth, VRM presets go through their binds with weights, every mesh is animated, outputs validate."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from talkbridge.cli import main
from talkbridge.core.errors import InputError
from talkbridge.core.motion import ARKIT_52, EMOTIONS, OCULUS_VISEMES
from talkbridge.exporters.gltf import ExportOptions, add_animation
from talkbridge.exporters.gltf.glb import read_gltf
from talkbridge.exporters.motion_file import save_motion
from talkbridge.exporters.mouth_source import ARKIT_MOUTH, choose_mouth_source, parse_mouth_source
from talkbridge.exporters.naming import canonical_channel, motion_channels
from tests import rig_families as rigs
from tests.heads import synthetic_motion

FRAMES = 24


@pytest.fixture(scope="module")
def motion():
    motion = synthetic_motion(FRAMES)
    t = np.arange(FRAMES) / 25.0
    motion.emotion = np.stack([0.5 + 0.4 * np.sin(2 * np.pi * (0.3 + 0.05 * k) * t + k) for k in range(10)], 1).astype(np.float32)
    return motion


@pytest.fixture(scope="module")
def channels(motion):
    return motion_channels(motion)


def moving(values: np.ndarray) -> bool:
    return float(np.ptp(values)) > 1e-3


@pytest.mark.parametrize("style", ["apple", "lr", "pascal", "snake"])
def test_every_arkit_spelling_matches_all_52_and_is_a_complete_mouth(style):
    names = rigs.arkit_names(style)
    assert [canonical_channel(n) for n in names] == list(ARKIT_52)
    choice = choose_mouth_source(names)
    assert choice.source == "arkit" and choice.arkit_complete and choice.at_rest == ()


def test_the_spellings_are_the_ones_tools_write():
    assert {"mouthSmile_L", "eyeBlink_R"} <= set(rigs.arkit_names("lr"))
    assert {"MouthSmileLeft", "JawOpen"} <= set(rigs.arkit_names("pascal"))
    assert {"mouth_smile_left", "jaw_open", "eye_blink_right"} <= set(rigs.arkit_names("snake"))


def test_the_oculus_visemes_are_the_fifteen():
    assert [canonical_channel(n) for n in rigs.OCULUS_VISEME_NAMES] == list(OCULUS_VISEMES)
    assert len(OCULUS_VISEMES) == 15 and choose_mouth_source(OCULUS_VISEMES).source == "visemes"


def test_vroid_names_match_their_channels():
    for name, channel in rigs.VROID_EXPECTED.items():
        assert canonical_channel(name) == channel, name
        # The common VRM add-on for Blender imports them prefixed with the face material.
        assert canonical_channel(f"Face.M_F00_000_00_{name}") == channel, name
    assert {canonical_channel(n) for n in ("Fcl_ALL_Joy", "Fcl_ALL_Angry", "Fcl_ALL_Sorrow", "Fcl_ALL_Surprised")} <= set(EMOTIONS)
    assert canonical_channel("Fcl_EYE_Iris_Hide") is None and canonical_channel("Fcl_HA_Fung1") is None


def test_cc4_expressions_make_a_complete_arkit_mouth_and_its_visemes_are_not_a_second_set():
    names = list(rigs.CC4_BODY)
    choice = choose_mouth_source(names)
    assert choice.arkit_complete and choice.source == "arkit"
    assert set(choice.present) == {"arkit"}  # V_Open, V_Explosive ... are CC's own lip sync, not driven
    assert {canonical_channel(n) for n in names if canonical_channel(n)} >= set(ARKIT_52) - {"tongueOut"}
    assert canonical_channel("Eye_L_Look_R") == "eyeLookInLeft" and canonical_channel("Eye_R_Look_R") == "eyeLookOutRight"


@pytest.mark.parametrize(
    "names, expected",
    [
        (list(ARKIT_52) + list(OCULUS_VISEMES), "arkit"),  # complete ARKit wins
        (["jawOpen", "mouthSmileLeft"] + list(OCULUS_VISEMES), "visemes"),  # partial ARKit: visemes
        (["jawOpen", "Fcl_MTH_A", "Fcl_MTH_O"], "vrm"),  # partial ARKit, no visemes: VRM vowels
        (["jawOpen", "mouthSmileLeft", "eyeBlinkLeft"], "arkit"),  # the only mouth set, partial
        (["Fcl_MTH_A", "viseme_aa"], "visemes"),
        (["eyeBlinkLeft", "browInnerUp"], None),
    ],
)
def test_default_mouth_source_order(names, expected):
    choice = choose_mouth_source(names)
    assert choice.source == expected
    assert all(canonical_channel(n) is not None and canonical_channel(n) not in ("eyeBlinkLeft",) for n in choice.at_rest)
    chosen = {"arkit": set(ARKIT_MOUTH), "visemes": set(OCULUS_VISEMES), "vrm": {"aa", "ih", "ou", "ee", "oh"}}.get(expected, set())
    assert not {canonical_channel(n) for n in choice.at_rest} & chosen


def test_mouth_choice_words_and_errors(tmp_path):
    assert [parse_mouth_source(w) for w in ("auto", None, "ARKit", "viseme", "oculus", "VRM")] == [None, None, "arkit", "visemes", "visemes", "vrm"]
    with pytest.raises(InputError, match="unknown mouth source 'lips'"):
        parse_mouth_source("lips")
    with pytest.raises(InputError, match=r"head\.glb: mouth source 'vrm' was asked for.*mouth sets it has: arkit, visemes"):
        choose_mouth_source(list(ARKIT_52) + list(OCULUS_VISEMES), "vrm", where=tmp_path / "head.glb")


def _mouth_sets(weights: dict[str, np.ndarray]) -> tuple[bool, bool]:
    arkit = any(moving(weights[n]) for n in ARKIT_MOUTH if n in weights)
    visemes = any(moving(weights[n]) for n in OCULUS_VISEMES if n in weights)
    return arkit, visemes


def test_rpm_head_gets_one_mouth_source_and_visemes_flips_it(tmp_path, motion, channels):
    head = rigs.write_rpm_head(tmp_path / "rpm.glb")
    default = add_animation(head.path, motion, tmp_path / "default.glb")
    assert default.mouth_source == "arkit"
    assert sorted(default.animated_nodes) == sorted(["Wolf3D_Head", "Wolf3D_Teeth", "EyeLeft", "EyeRight", "Head"])
    weights = rigs.animated_weights(tmp_path / "default.glb")
    for mesh in ("Wolf3D_Head", "Wolf3D_Teeth", "EyeLeft", "EyeRight"):
        assert _mouth_sets(weights[mesh]) == (True, False), mesh
        np.testing.assert_allclose(weights[mesh]["jawOpen"], channels["jawOpen"], atol=1e-6)
        assert all(np.all(weights[mesh][v] == 0.0) for v in OCULUS_VISEMES)  # held at rest (weight 0)
    rested = {(r["target"], r["reason"]) for r in default.report.to_dict()["left_at_rest"]}
    assert {v for v, _ in rested} == set(OCULUS_VISEMES)
    assert {reason for _, reason in rested} == {"the mouth is driven by arkit"}
    assert "mouth driven by arkit" in default.report.summary()

    flipped = add_animation(head.path, motion, tmp_path / "visemes.glb", ExportOptions(mouth="visemes"))
    assert flipped.mouth_source == "visemes"
    weights = rigs.animated_weights(tmp_path / "visemes.glb")["Wolf3D_Head"]
    assert _mouth_sets(weights) == (False, True)
    np.testing.assert_allclose(weights["viseme_aa"], channels["viseme_aa"], atol=1e-6)
    # Eyes, brows and cheeks still come from the ARKit set, the only one that has them.
    for name in ("eyeBlinkLeft", "browInnerUp", "cheekSquintLeft", "noseSneerLeft", "tongueOut"):
        np.testing.assert_allclose(weights[name], channels[name], atol=1e-6)
    assert {r.target for r in flipped.report.at_rest} == set(ARKIT_MOUTH)


def test_export_cli_mouth_flag_and_report(tmp_path, motion):
    head = rigs.write_rpm_head(tmp_path / "rpm.glb")
    motion_file = save_motion(motion, tmp_path / "clip.motion.npz")
    out = tmp_path / "out.glb"
    assert main(["export", str(motion_file), "--head", str(head.path), "-o", str(out), "--mouth", "visemes",
                 "--report", str(tmp_path / "report.json")]) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["mouth_source"] == "visemes"
    rested = {r["target"] for r in report["left_at_rest"]}
    assert "jawOpen" in rested and "viseme_aa" not in rested
    assert {m["channel"] for m in report["matched"]} & set(OCULUS_VISEMES) == set(OCULUS_VISEMES)


def test_asking_for_a_mouth_set_the_head_lacks_names_the_file(tmp_path, motion, caplog):
    head = rigs.write_arkit_head(tmp_path / "arkit.glb")
    with pytest.raises(InputError, match=r"arkit\.glb: mouth source 'visemes' was asked for"):
        add_animation(head.path, motion, tmp_path / "o.glb", ExportOptions(mouth="visemes"))
    assert not (tmp_path / "o.glb").exists()


@pytest.mark.parametrize("style", ["lr", "pascal", "snake"])
def test_arkit_variant_heads_animate_face_and_teeth(tmp_path, motion, channels, style):
    head = rigs.write_arkit_head(tmp_path / "h.glb", style)
    result = add_animation(head.path, motion, tmp_path / "o.glb")
    assert len(result.report.matches) == 52 + 4 and result.mouth_source == "arkit"
    weights = rigs.animated_weights(tmp_path / "o.glb")
    jaw = rigs.arkit_names(style)[ARKIT_52.index("jawOpen")]
    for mesh in ("Face", "Teeth"):
        np.testing.assert_allclose(weights[mesh][jaw], channels["jawOpen"], atol=1e-6)


def test_cc4_head_animates_every_mesh_with_matching_names(tmp_path, motion, channels):
    head = rigs.write_cc4_head(tmp_path / "cc4.glb")
    result = add_animation(head.path, motion, tmp_path / "o.glb")
    meshes = ["CC_Base_Body", "CC_Base_Teeth", "CC_Base_Tongue", "CC_Base_EyeOcclusion", "CC_Base_TearLine", "Eyelash_Up"]
    assert set(meshes) <= set(result.animated_nodes) and result.head_node == "CC_Base_Head"
    weights = rigs.animated_weights(tmp_path / "o.glb")
    np.testing.assert_allclose(weights["CC_Base_Teeth"]["Jaw_Open"], channels["jawOpen"], atol=1e-6)
    np.testing.assert_allclose(weights["CC_Base_Tongue"]["Tongue_Out"], channels["tongueOut"], atol=1e-6)
    for mesh in ("CC_Base_Body", "CC_Base_EyeOcclusion", "CC_Base_TearLine", "Eyelash_Up"):
        np.testing.assert_allclose(weights[mesh]["Eye_Blink_L"], channels["eyeBlinkLeft"], atol=1e-6)
    body = weights["CC_Base_Body"]
    for part in ("Mouth_Pucker_Up_L", "Mouth_Pucker_Down_R"):  # CC4 splits one ARKit shape in four
        np.testing.assert_allclose(body[part], channels["mouthPucker"], atol=1e-6)
    np.testing.assert_allclose(body["Brow_Raise_Inner_R"], channels["browInnerUp"], atol=1e-6)
    assert all(np.all(body[v] == 0.0) for v in ("V_Open", "V_Explosive"))


def test_metahuman_style_head_turns_its_head_joint_and_animates_every_lod0_mesh(tmp_path, motion, channels):
    head = rigs.write_metahuman_head(tmp_path / "mh.glb")
    result = add_animation(head.path, motion, tmp_path / "o.glb")
    assert result.head_node == "head" and not result.added_pivot
    lod0 = [m.name for m in head.meshes]
    assert set(lod0) <= set(result.animated_nodes)
    weights = rigs.animated_weights(tmp_path / "o.glb")
    np.testing.assert_allclose(weights["teeth_lod0_mesh"]["JawOpen"], channels["jawOpen"], atol=1e-6)
    np.testing.assert_allclose(weights["eyelashes_lod0_mesh"]["EyeBlinkRight"], channels["eyeBlinkRight"], atol=1e-6)


def test_vroid_glb_drives_vowels_blinks_brows_and_emotions_by_name(tmp_path, motion, channels):
    head = rigs.write_vroid_head(tmp_path / "vroid.glb")
    result = add_animation(head.path, motion, tmp_path / "o.glb")
    assert result.mouth_source == "vrm" and result.vrm_version is None
    face = rigs.animated_weights(tmp_path / "o.glb")["Face"]
    for name, channel in (("Fcl_MTH_A", "aa"), ("Fcl_MTH_O", "oh"), ("Fcl_EYE_Close_L", "blinkLeft"),
                          ("Fcl_BRW_Surprised", "surprised"), ("Fcl_ALL_Joy", "joy"), ("Fcl_ALL_Sorrow", "sadness")):
        np.testing.assert_allclose(face[name], channels[channel], atol=1e-6, err_msg=name)
    # Both-eyes blink beside per-eye blinks would close each eye twice.
    assert np.all(face["Fcl_EYE_Close"] == 0.0)
    assert ("Fcl_EYE_Close", "blink") in {(r.target, r.channel) for r in result.report.at_rest}


def test_vrm0_presets_drive_their_binds_with_weights_and_keep_the_extension(tmp_path, motion, channels):
    head = rigs.write_vroid_head(tmp_path / "avatar.vrm", vrm="0.x")
    motion_file = save_motion(motion, tmp_path / "clip.motion.npz")
    out = tmp_path / "talking.vrm"
    assert main(["export", str(motion_file), "--head", str(head.path), "-o", str(out), "--report", str(tmp_path / "r.json")]) == 0
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["vrm"] == "0.x" and report["mouth_source"] == "vrm"
    hows = {m["target"]: m["how"] for m in report["matched"]}
    assert hows["Fcl_MTH_A"] == "vrm binding" and hows["Fcl_ALL_Joy"] == "vrm binding"
    face = rigs.animated_weights(out)["Face"]
    np.testing.assert_allclose(face["Fcl_MTH_A"], channels["aa"], atol=1e-6)
    np.testing.assert_allclose(face["Fcl_MTH_I"], channels["ih"], atol=1e-6)
    np.testing.assert_allclose(face["Fcl_EYE_Close_R"], channels["blinkRight"], atol=1e-6)
    # Joy is VRM 1.0's happy: Fcl_ALL_Joy follows the preset, not the motion's joy emotion its name matches.
    np.testing.assert_allclose(face["Fcl_ALL_Joy"], channels["happy"], atol=1e-6)
    # "Surprised" is a group without a preset name; its name still says which channel it is.
    np.testing.assert_allclose(face["Fcl_ALL_Surprised"], channels["surprised"], atol=1e-6)
    # The file binds Angry/Joy/Sorrow/Surprised to Fcl_ALL_*, so the Fcl_BRW_* names stay at rest.
    assert all(np.all(face[n] == 0.0) for n in ("Fcl_BRW_Joy", "Fcl_BRW_Angry"))
    document, _ = read_gltf(out)
    assert document.extensions["VRM"] == head.document["extensions"]["VRM"]
    assert document.extensionsUsed == ["VRM"]


def test_vrm1_presets_drive_their_binds_with_weights_and_binary_ones_snap(tmp_path, motion, channels):
    head = rigs.write_vroid_head(tmp_path / "avatar.vrm", vrm="1.0")
    result = add_animation(head.path, motion, tmp_path / "o.vrm")
    assert result.vrm_version == "1.0" and result.mouth_source == "vrm"
    face = rigs.animated_weights(tmp_path / "o.vrm")["Face"]
    np.testing.assert_allclose(face["Fcl_MTH_U"], channels["ou"], atol=1e-6)
    np.testing.assert_allclose(face["Fcl_ALL_Joy"], channels["happy"], atol=1e-6)
    np.testing.assert_allclose(face["Fcl_EYE_Joy"], channels["happy"] * 0.6, atol=1e-6)
    surprised = face["Fcl_ALL_Surprised"]
    assert set(np.unique(surprised)) <= {0.0, 1.0} and np.array_equal(surprised, (channels["surprised"] > 0.5).astype(np.float32))
    assert np.all(face["Fcl_EYE_Close"] == 0.0)  # blinkLeft/Right drive the eyes
    document, _ = read_gltf(tmp_path / "o.vrm")
    assert document.extensions["VRMC_vrm"] == head.document["extensions"]["VRMC_vrm"]
    assert document.extensionsUsed == ["VRMC_vrm"]
    assert document.nodes[document.extensions["VRMC_vrm"]["humanoid"]["humanBones"]["head"]["node"]].name == "J_Bip_C_Head"


@pytest.mark.parametrize("version, path, value, message", [
    ("1.0", ("VRMC_vrm", "expressions", "preset", "aa", "morphTargetBinds", 0, "index"), 999,
     r"VRM expression 'aa' morphTargetBinds\[0\] names morph target 999, but its mesh has 44 morph targets"),
    ("1.0", ("VRMC_vrm", "expressions", "preset", "aa", "morphTargetBinds", 0, "node"), 77,
     r"names node 77, but the file has \d+ nodes"),
    ("0.x", ("VRM", "blendShapeMaster", "blendShapeGroups", 1, "binds", 0, "mesh"), 9,
     r"VRM blend shape group 'A' binds\[0\] names mesh 9, but the file has 3 meshes"),
    ("0.x", ("VRM", "blendShapeMaster", "blendShapeGroups", 1, "binds", 0, "weight"), "full",
     r"weight is not a number"),
])
def test_broken_vrm_binds_are_one_clear_error_naming_the_file(tmp_path, motion, version, path, value, message):
    head = rigs.write_vroid_head(tmp_path / "a.vrm", vrm=version)
    extensions = head.document["extensions"]
    node = extensions
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    broken = rigs.write_head(tmp_path / "broken.vrm", head.meshes, ("J_Bip_C_Hips", "J_Bip_C_Spine", "J_Bip_C_Neck", "J_Bip_C_Head"),
                             extensions=extensions)
    with pytest.raises(InputError, match=r"broken\.vrm: .*" + message):
        add_animation(broken.path, motion, tmp_path / "o.vrm")
    assert not (tmp_path / "o.vrm").exists()


def test_morph_names_that_match_nothing_are_an_error_naming_the_file(tmp_path, motion):
    head = rigs.write_head(tmp_path / "odd.glb", [rigs.MeshSpec("Body", ["Breathe_Chest", "Muscle_Flex"]),
                                                  rigs.MeshSpec("Cape", ["Wind"])])
    with pytest.raises(InputError, match=r"odd\.glb: none of the head's morph targets match a talkbridge channel"):
        add_animation(head.path, motion, tmp_path / "o.glb")
    assert not (tmp_path / "o.glb").exists()


def test_every_family_output_is_validator_clean(tmp_path, motion):
    from tests.test_export_validation import run_validator

    builders = {
        "arkit": lambda p: rigs.write_arkit_head(p, "lr"), "rpm": rigs.write_rpm_head, "cc4": rigs.write_cc4_head,
        "metahuman": rigs.write_metahuman_head, "vroid": rigs.write_vroid_head,
        "vrm0": lambda p: rigs.write_vroid_head(p, "0.x"), "vrm1": lambda p: rigs.write_vroid_head(p, "1.0"),
    }
    paths = []
    for name, build in builders.items():
        head = build(tmp_path / f"{name}_head.glb")
        out = tmp_path / f"{name}.glb"
        add_animation(head.path, motion, out)
        paths += [head.path, out]
    reports = run_validator(paths)
    for head, out in zip(paths[::2], paths[1::2]):
        report = reports[str(out)]
        assert report["errors"] == 0, (out, report["messages"])
        # Nothing new: the only warnings are the head's own (VRM 0.x's extension name "VRM" is not in
        # Khronos' PREFIX_name form, which the validator notes on every VRM 0.x file).
        codes = {m.split(" ", 1)[0] for m in report["messages"]}
        assert codes <= {m.split(" ", 1)[0] for m in reports[str(head)]["messages"]} | {"UNUSED_OBJECT"}, (out, report["messages"])
        assert report["warnings"] == reports[str(head)]["warnings"], (out, report["messages"])
    assert reports[str(tmp_path / "rpm.glb")]["warnings"] == 0 and reports[str(tmp_path / "vrm1.glb")]["warnings"] == 0


def test_batch_rows_use_their_mouth_column(tmp_path):
    from tests.speech import speech_like, write_wav

    write_wav(tmp_path / "line.wav", speech_like(0.8, seed=3))
    head = rigs.write_rpm_head(tmp_path / "rpm.glb")
    (tmp_path / "lines.csv").write_text(
        "audio,name,size,exports,head,mouth\n"
        "line.wav,auto,64,glb,rpm.glb,\n"
        "line.wav,visemes,64,glb,rpm.glb,visemes\n"
        "line.wav,lips,64,glb,rpm.glb,lips\n"
    )
    out = tmp_path / "out"
    assert main(["-q", "batch", str(tmp_path / "lines.csv"), "-o", str(out), "--engine", "lite"]) == 1
    rows = {row["name"]: row for row in json.loads((out / "batch_report.json").read_text())["rows"]}
    assert rows["auto"]["status"] == "done" and rows["visemes"]["status"] == "done"
    assert rows["lips"]["status"] == "failed" and "unknown mouth source 'lips'" in rows["lips"]["reason"]
    for name, expected in (("auto", (True, False)), ("visemes", (False, True))):
        assert _mouth_sets(rigs.animated_weights(out / f"{name}.glb")["Wolf3D_Head"]) == expected, name
    assert json.loads((out / "visemes.batch.json").read_text())["inputs"]["mouth"] == "visemes"
    # The default row's record is as it was before a mouth choice existed.
    assert "mouth" not in json.loads((out / "auto.batch.json").read_text())["inputs"]
    # --mouth is the default for rows that name none.
    out2 = tmp_path / "out2"
    (tmp_path / "one.csv").write_text("audio,name,size,exports,head\nline.wav,one,64,glb,rpm.glb\n")
    assert main(["-q", "batch", str(tmp_path / "one.csv"), "-o", str(out2), "--engine", "lite", "--mouth", "visemes"]) == 0
    assert _mouth_sets(rigs.animated_weights(out2 / "one.glb")["Wolf3D_Head"]) == (False, True)


def test_the_add_on_api_chooses_once_for_every_mesh_of_a_character():
    """The add-on matches each mesh's shape keys, then makes one choice over all of them."""
    from talkbridge.exporters.mouth_source import choose_sources
    from talkbridge.exporters.naming import match_targets

    names = list(ARKIT_52) + list(OCULUS_VISEMES)
    available = set(ARKIT_52) | set(OCULUS_VISEMES)
    face = match_targets(names, available)
    # The teeth alone have a partial ARKit mouth and all visemes: alone they would pick visemes.
    teeth_names = ["jawOpen", "mouthClose"] + list(OCULUS_VISEMES)
    teeth = match_targets(teeth_names, available)
    user = match_targets(["Tongue_Viseme"], available, {"Tongue_Viseme": ("viseme_TH", 1.0)})
    choice = choose_sources([face, teeth, user])
    assert choice.mouth.source == "arkit" and choice.blink == "arkit"
    assert face.mouth_source == teeth.mouth_source == "arkit"
    assert {m.channel for m in teeth.matches} == {"jawOpen", "mouthClose"}
    assert {r.target for r in teeth.at_rest} == set(OCULUS_VISEMES)
    assert [m.target for m in user.matches] == ["Tongue_Viseme"]  # the user's map is never overruled
    assert set(choice.mouth.at_rest) == set(OCULUS_VISEMES)
    assert choose_mouth_source(teeth_names).source == "visemes"


def test_perfect_sync_vrm_drives_its_mouth_with_arkit_custom_expressions(tmp_path, motion, channels):
    """A VRoid avatar with "perfect sync": ARKit-named custom expressions beside the vowel presets."""
    names = list(rigs.VROID_FACE) + list(ARKIT_52)
    face_node = 5
    custom = {name: {"morphTargetBinds": [{"node": face_node, "index": names.index(name), "weight": 1.0}]} for name in ARKIT_52}
    preset = {vowel: {"morphTargetBinds": [{"node": face_node, "index": names.index(target), "weight": 1.0}]}
              for vowel, target in (("aa", "Fcl_MTH_A"), ("ih", "Fcl_MTH_I"), ("ou", "Fcl_MTH_U"), ("ee", "Fcl_MTH_E"), ("oh", "Fcl_MTH_O"))}
    extensions = {"VRMC_vrm": {"specVersion": "1.0", "meta": {"name": "sync"}, "humanoid": {"humanBones": {"head": {"node": 4}}},
                               "expressions": {"preset": preset, "custom": custom}}}
    head = rigs.write_head(tmp_path / "sync.vrm", [rigs.MeshSpec("Face", names)],
                           ("J_Bip_C_Hips", "J_Bip_C_Spine", "J_Bip_C_Neck", "J_Bip_C_Head"), extensions=extensions)
    result = add_animation(head.path, motion, tmp_path / "o.vrm")
    assert result.mouth_source == "arkit"
    face = rigs.animated_weights(tmp_path / "o.vrm")["Face"]
    np.testing.assert_allclose(face["jawOpen"], channels["jawOpen"], atol=1e-6)
    assert all(np.all(face[f"Fcl_MTH_{v}"] == 0.0) for v in "AIUEO")
    assert {r.target for r in result.report.at_rest if "mouth" in r.reason} == {f"Fcl_MTH_{v}" for v in "AIUEO"}
    assert {m.how for m in result.report.matches if m.target == "jawOpen"} == {"vrm binding"}


def test_mouth_source_imports_neither_pygltflib_nor_bpy():
    """The Blender add-on bundles it without pygltflib."""
    import subprocess
    import sys

    code = "import sys, talkbridge.exporters.mouth_source; print('pygltflib' in sys.modules, 'bpy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]
