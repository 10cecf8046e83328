"""Every GLB we write is checked by the real tools: Khronos gltf-validator and Blender's glTF importer.

One fixture builds the head kinds (the lite engine's mannequin driven by the lite engine's own
motion, a small skinned ARKit head, a synthetic-3DMM head with exp_00..exp_63, a third-party .gltf
with prefixed names and non-face targets), animates them, then runs the validator once and Blender once (in a subprocess
running this file as a script, since bpy in-process is fragile). The tests read those reports.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
VALIDATOR_PACKAGE = ROOT / "tools" / "node" / "node_modules" / "gltf-validator"
FRAMES = 60
SAMPLE_FRAMES = (0, 1, 17, 59)
KINDS = ["mannequin", "arkit", "bfm", "third_party"]

VALIDATE_JS = r"""
const fs = require('fs');
const path = require('path');
const validator = require(process.argv[1]);
(async () => {
  const out = {};
  for (const file of process.argv.slice(2)) {
    const report = await validator.validateBytes(new Uint8Array(fs.readFileSync(file)), {uri: file, maxIssues: 100,
      externalResourceFunction: (uri) => new Promise((resolve, reject) =>
        fs.readFile(path.resolve(path.dirname(file), decodeURIComponent(uri)),
                    (error, data) => error ? reject(error.toString()) : resolve(new Uint8Array(data))))});
    out[file] = {errors: report.issues.numErrors, warnings: report.issues.numWarnings,
                 infos: report.issues.numInfos, messages: report.issues.messages.map(m => m.code + ' ' + (m.pointer || '') + ' ' + m.message)};
  }
  process.stdout.write(JSON.stringify(out));
})().catch(e => { console.error(e); process.exit(2); });
"""


def run_validator(paths: list[Path]) -> dict:
    """Run gltf-validator on ``paths``; returns file -> {errors, warnings, infos, messages}."""
    if not VALIDATOR_PACKAGE.is_dir():
        pytest.fail(f"gltf-validator is not installed at {VALIDATOR_PACKAGE}; run ./scripts/dev setup")
    result = subprocess.run(
        ["node", "-e", VALIDATE_JS, str(VALIDATOR_PACKAGE)] + [str(p) for p in paths],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def run_blender(specs: list[dict]) -> dict:
    """Import each GLB with Blender's own importer in a fresh subprocess and describe the result."""
    result = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), json.dumps(specs)],
        capture_output=True, text=True, timeout=300, cwd=str(ROOT),
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("PROBE:")]
    assert result.returncode == 0 and lines, result.stdout[-3000:] + result.stderr[-3000:]
    return json.loads(lines[-1][len("PROBE:"):])


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    from talkbridge.exporters.bfm import build_head_from_coefficients, load_bfm
    from talkbridge.exporters.gltf import ExportOptions, add_animation, write_head_glb
    from tests.heads import arkit_head, recon_coefficients, synthetic_motion, write_synthetic_bfm, write_third_party_head

    from talkbridge.core.engine import MotionRequest, create_engine
    from talkbridge.core.lite.mannequin import build_mannequin
    from talkbridge.core.motion import Motion

    folder = tmp_path_factory.mktemp("heads")
    motion = synthetic_motion(FRAMES)
    heads: dict[str, dict] = {}

    engine = create_engine("lite")
    rate = 16000
    seconds = np.arange(int(rate * FRAMES / 25)) / rate
    voiced = 0.3 * np.sin(2 * np.pi * 180 * seconds) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * seconds))
    lite_motion = Motion.from_chunks(engine.stream_motion(MotionRequest(audio=voiced.astype(np.float32), seed=1)),
                                     engine=engine.name, engine_version=engine.version)
    assert lite_motion.n_frames == FRAMES
    mannequin_path = write_head_glb(build_mannequin(), folder / "mannequin.glb")
    heads["mannequin"] = {"head": mannequin_path, "bone": "head", "object": None, "motion": lite_motion}

    arkit_path = write_head_glb(arkit_head(), folder / "arkit_head.glb")
    heads["arkit"] = {"head": arkit_path, "bone": "head", "object": None}

    model = load_bfm(write_synthetic_bfm(folder / "BFM_model_front.mat"))
    bfm_path = write_head_glb(build_head_from_coefficients(model, recon_coefficients(), name="person"), folder / "person.glb")
    heads["bfm"] = {"head": bfm_path, "bone": None, "object": "head"}

    third_party = write_third_party_head(folder)
    heads["third_party"] = {"head": third_party, "bone": None, "object": "talkbridge_head"}

    for kind, entry in heads.items():
        out = folder / f"{kind}_animated.glb"
        entry.setdefault("motion", motion)
        entry["result"] = add_animation(entry["head"], entry["motion"], out, ExportOptions(pose_reference="first"))
        entry["out"] = out
    validation = run_validator([e["head"] for e in heads.values()] + [e["out"] for e in heads.values()])
    specs = [{"path": str(e["out"]), "animation": "talkbridge", "bone": e["bone"], "object": e["object"],
              "frames": list(SAMPLE_FRAMES)} for e in heads.values()]
    return {"heads": heads, "validation": validation, "blender": run_blender(specs)}


@pytest.mark.blender
@pytest.mark.parametrize("kind", KINDS)
def test_validator_reports_no_errors_or_warnings(exported, kind):
    entry = exported["heads"][kind]
    for path in (entry["head"], entry["out"]):
        report = exported["validation"][str(path)]
        assert report["errors"] == 0 and report["warnings"] == 0, (path, report["messages"])


def _expected_weights(exported, kind: str) -> dict[str, np.ndarray]:
    from talkbridge.exporters.naming import motion_channels

    channels = motion_channels(exported["heads"][kind]["motion"])
    result = exported["heads"][kind]["result"]
    return {m.target: channels[m.channel] * m.scale for m in result.report.matches}


@pytest.mark.blender
@pytest.mark.parametrize("kind", KINDS)
def test_blender_imports_shape_key_animation(exported, kind):
    probe = exported["blender"][str(exported["heads"][kind]["out"])]
    expected = _expected_weights(exported, kind)
    seen: dict[str, dict] = {}
    for mesh in probe["meshes"].values():
        seen.update(mesh["curves"])
    assert set(expected) <= set(seen), sorted(set(expected) - set(seen))
    for target, values in expected.items():
        curve = seen[target]
        assert curve["keys"] == FRAMES
        assert curve["first"] == pytest.approx(0.0) and curve["last"] == pytest.approx(FRAMES - 1)
        sampled = [values[f] for f in SAMPLE_FRAMES]
        assert curve["values"] == pytest.approx(sampled, abs=1e-4), target
    if kind == "third_party":
        # Non-face targets are held at their rest weight (0); the user's own animation survives.
        face = probe["meshes"]["Face"]
        for extra in ("Body_Fat", "Breathe_Chest", "Muscle_Flex"):
            assert extra in face["shape_keys"]
            values = face["curves"][extra]["values"] if extra in face["curves"] else [0.0]
            assert values == pytest.approx([0.0] * len(values))
        assert "Idle" in probe["actions"]


@pytest.mark.blender
@pytest.mark.parametrize("kind", KINDS)
def test_blender_head_rotation_follows_pose(exported, kind):
    from talkbridge.exporters.gltf.pose import relative_to_first, quaternion_to_matrix, sadtalker_to_quaternions

    probe = exported["blender"][str(exported["heads"][kind]["out"])]
    rotations = probe["head_rotations"]
    assert rotations, "Blender found no animated head joint/node"
    gltf_to_blender = np.array([[1, 0, 0], [0, 0, -1], [0, 1, 0]], np.float64)
    motion = exported["heads"][kind]["motion"]
    assert np.abs(motion.pose[:, :3] - motion.pose[:1, :3]).max() > 0.01, "the clip must actually turn the head"
    expected = quaternion_to_matrix(relative_to_first(sadtalker_to_quaternions(motion.pose[:, :3])))
    rest = np.asarray(rotations[str(SAMPLE_FRAMES[0])])
    for frame in SAMPLE_FRAMES:
        world = np.asarray(rotations[str(frame)])
        delta = world @ np.linalg.inv(rest)
        want = gltf_to_blender @ expected[frame] @ gltf_to_blender.T
        np.testing.assert_allclose(delta, want, atol=2e-3, err_msg=f"frame {frame}")


# --------------------------------------------------------------------------------------------
# Run as a script: the Blender probe (imports bpy, so only ever in a subprocess).

def _fcurves(action, slot) -> list:
    curves = []
    for layer in getattr(action, "layers", []):
        for strip in layer.strips:
            bag = strip.channelbag(slot) if slot is not None else None
            if bag is not None:
                curves.extend(bag.fcurves)
    return curves


def _bind(idblock, animation: str):
    """Make ``animation`` the active action of ``idblock`` (the importer may have put it on the NLA)."""
    data = idblock.animation_data
    if data is None:
        return None, None
    if data.action is not None and data.action.name == animation:
        return data.action, data.action_slot
    for track in data.nla_tracks:
        for strip in track.strips:
            if strip.action is not None and strip.action.name == animation:
                data.use_nla = False
                data.action = strip.action
                data.action_slot = strip.action_slot
                return strip.action, strip.action_slot
    return None, None


def _probe(specs: list[dict]) -> dict:
    import bpy

    out = {}
    for spec in specs:
        bpy.ops.wm.read_factory_settings(use_empty=True)
        scene = bpy.context.scene
        scene.render.fps = 25
        bpy.ops.import_scene.gltf(filepath=spec["path"])
        info = {"actions": sorted(a.name for a in bpy.data.actions), "meshes": {}, "head_rotations": {}}
        for obj in bpy.data.objects:
            if obj.type != "MESH" or obj.data.shape_keys is None:
                continue
            keys = obj.data.shape_keys
            action, slot = _bind(keys, spec["animation"])
            curves = {}
            for curve in _fcurves(action, slot) if action is not None else []:
                name = curve.data_path.split('"')[1] if '"' in curve.data_path else curve.data_path
                points = curve.keyframe_points
                curves[name] = {"keys": len(points), "first": points[0].co[0], "last": points[-1].co[0],
                                "values": [curve.evaluate(f) for f in spec["frames"]]}
            info["meshes"][obj.name] = {"shape_keys": [k.name for k in keys.key_blocks], "curves": curves}
        target = None
        if spec.get("bone"):
            armature = next(o for o in bpy.data.objects if o.type == "ARMATURE")
            _bind(armature, spec["animation"])
            bone = armature.pose.bones[spec["bone"]]
            target = lambda: armature.matrix_world @ bone.matrix  # noqa: E731
        elif spec.get("object"):
            obj = bpy.data.objects[spec["object"]]
            _bind(obj, spec["animation"])
            target = lambda: obj.matrix_world  # noqa: E731
        if target is not None:
            for frame in spec["frames"]:
                scene.frame_set(frame)
                matrix = target().to_3x3().normalized()
                info["head_rotations"][str(frame)] = [list(row) for row in matrix]
        out[spec["path"]] = info
    return out


if __name__ == "__main__":
    print("PROBE:" + json.dumps(_probe(json.loads(sys.argv[1]))))
