"""The built extension installed into a clean Blender (pip bpy), driven against a real lite sidecar.

Runs on whichever bpy this Python has: 4.5 in the project venv, 5.3 in ``.venv-blender5``
(``./scripts/dev test`` runs both). The zip is the one ``talkbridge addon build`` writes for this
Python's Blenders, installed through Blender's own extension install.

One Blender subprocess runs every scenario in turn (startup and install dominate the cost): it sees
only bpy and numpy from this environment, so talkbridge and pyzmq come from the wheels inside the
zip, exactly as for an artist. Scenarios: generate onto the mannequin (action channels, frame
range, values, head bone rotation, sequencer strips, the artist's keys untouched), cancel mid-job,
closing the file mid-job, a sidecar killed mid-job, a wrong address, then disabling the add-on.
The subprocess writes what it saw to JSON/NPZ and this file checks it against the lite engine's
motion (computed by the engine Python, as is the sidecar: see ``tests/blender_support.py``).

The Blender side lives in ``tests/test_addon_inside_blender.py`` (no tests there: it is the script
the subprocess runs).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import numpy as np
import pytest

from tests import blender_support

ROOT = Path(__file__).resolve().parents[1]

pytestmark = [pytest.mark.blender, pytest.mark.slow, pytest.mark.timeout(300)]

MODULE = "bl_ext.user_default.talkbridge"
INSIDE = Path(__file__).with_name("test_addon_inside_blender.py")


# =================================================================================== pytest side


def _make_keys(folder: Path) -> dict[str, str]:
    """Server and client CURVE key pairs (the client allowed), a stranger's pair, and a signing key."""
    from talkbridge.bridge.security import generate_keypair, generate_signing_key

    allowed = folder / "allowed"
    allowed.mkdir(parents=True)
    _, server_secret = generate_keypair(folder, "server")
    client_public, client_secret = generate_keypair(folder, "blender")
    (allowed / client_public.name).write_bytes(client_public.read_bytes())
    _, stranger_secret = generate_keypair(folder, "stranger")
    signing = generate_signing_key(folder / "shared.hmac")
    return {
        "server_public": str(folder / "server.key"), "server_secret": str(server_secret), "allowed": str(allowed),
        "client_secret": str(client_secret), "stranger_secret": str(stranger_secret), "signing": str(signing),
    }


def _start_sidecar(address: str, keys: dict[str, str]) -> subprocess.Popen:
    from talkbridge.bridge.client import ServerUnavailable
    from talkbridge.bridge.client_connect import wait_for_server
    from talkbridge.bridge.security import load_keypair, load_public_key, load_signing_key

    process = subprocess.Popen(
        [blender_support.engine_python(), "-m", "talkbridge.cli", "-q", "serve", "--bind", address,
         "--curve-secret", keys["server_secret"], "--allow", keys["allowed"], "--signing-key", keys["signing"]],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    credentials = {
        "server_key": load_public_key(keys["server_public"]),
        "client_keypair": load_keypair(keys["client_secret"]),
        "signing_key": load_signing_key(keys["signing"]),
    }
    try:
        wait_for_server(address, timeout=60, process=process, **credentials)
    except ServerUnavailable as error:
        process.kill()
        raise AssertionError(f"the sidecar did not come up: {error}") from error
    return process


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _other_range_copy(built: Path, target: Path) -> Path:
    """The zip with the other Blender Python's version range in its manifest (same wheels): Blender must refuse it."""
    from talkbridge import extension_build as build_command

    other = next(t for t in build_command.TARGETS.values() if t.python != blender_support.blender_python())
    target.parent.mkdir(parents=True)
    with zipfile.ZipFile(built) as source, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as copy:
        for info in source.infolist():
            data = source.read(info.filename)
            if info.filename == "blender_manifest.toml":
                manifest = tomllib.loads(data.decode())
                wheels = [Path(w).name for w in manifest["wheels"]]
                data = build_command.manifest_for_platform(data.decode(), manifest["platforms"][0], wheels, other).encode()
            copy.writestr(info, data)
    return target


@pytest.fixture(scope="module")
def blender_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("addon")
    inputs = json.loads(blender_support.run_engine(["-m", "tests.blender_support", "inputs", str(work / "inputs")]).stdout)
    built = blender_support.build_local_zip(work / "dist")
    other = _other_range_copy(built, work / "other" / built.name)
    address = f"tcp://127.0.0.1:{_free_port()}"
    keys = _make_keys(work / "keys")
    sidecar = _start_sidecar(address, keys)
    out = work / "out"
    out.mkdir()
    config = {
        **inputs, "zip": str(built), "other_zip": str(other), "address": address, "sidecar_pid": sidecar.pid,
        "wrong_address": f"tcp://127.0.0.1:{_free_port()}", "out": str(out),
        "sidecar_command": f"{blender_support.engine_python()} -m talkbridge.cli", "keys": keys,
    }
    try:
        done = blender_support.run_blender_script(work, INSIDE, config, blender_support.blender_env(work), 240)
    finally:
        if sidecar.poll() is None:
            sidecar.kill()
        sidecar.wait(10)
        sidecar.stdout.close()
    results_path = out / "results.json"
    assert results_path.is_file(), f"Blender side produced no results:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    results = json.loads(results_path.read_text())
    arrays = dict(np.load(out / "arrays.npz"))
    assert not results["errors"], "\n".join(f"[{name}]\n{trace}" for name, trace in results["errors"])
    return {"results": results, "arrays": arrays, "config": config, "work": work, "output": done.stdout + done.stderr}


def _lite_reference(config: dict):
    """The lite engine's motion for the 4 s speech (computed by the engine Python)."""
    return dict(np.load(config["reference"]))


def test_the_zip_installs_and_uses_its_own_wheels(blender_run):
    r = blender_run["results"]
    user = str(blender_run["work"] / "user")
    assert r["install"] == ["FINISHED"] and MODULE in r["addons"]
    assert r["talkbridge_file"].startswith(user) and r["zmq_file"].startswith(user)
    assert not r["pygltflib_loaded"]  # the add-on imports neither the glTF writer nor torch


def test_the_zip_built_for_this_python_covers_this_blender(blender_run):
    r = blender_run["results"]
    assert r["python"] == list(sys.version_info[:2])
    with zipfile.ZipFile(blender_run["config"]["zip"]) as archive:
        manifest = tomllib.loads(archive.read("blender_manifest.toml").decode())
    version = tuple(r["bpy_version"])
    assert version >= tuple(int(x) for x in manifest["blender_version_min"].split("."))
    if "blender_version_max" in manifest:
        assert version < tuple(int(x) for x in manifest["blender_version_max"].split("."))
    pyzmq = next(w for w in manifest["wheels"] if "/pyzmq-" in w)
    tags = pyzmq.split("-")[-3:-1]  # python tag, abi tag
    assert tags == [f"cp{sys.version_info[0]}{sys.version_info[1]}"] * 2 or (tags[1] == "abi3" and int(tags[0][3:]) <= sys.version_info[1])


def test_this_blender_refuses_the_zip_for_the_other_range(blender_run):
    refused = blender_run["results"]["other_zip"]
    assert refused["enabled"] is False and refused["installed"] is False, refused
    # 4.x: "doesn't meet the minimum supported version (5.1.0)"; 5.1+: "must be less than the maximum version (5.1.0)"
    said = blender_run["output"] + " ".join(map(str, refused["result"]))
    assert "This Blender version" in said and "(5.1.0)" in said


def test_the_panel_registers_on_enable(blender_run):
    r = blender_run["results"]
    assert r["panel_registered"] == ["Generate Talking Head", "VIEW_3D", "UI"]
    assert r["operators_registered"] == [True, True]


def test_no_deprecated_blender_api_is_used(blender_run):
    r = blender_run["results"]
    blender_api = [w for w in r["warnings"] if "expected to be removed" in w[1] or "deprecated" in w[1].lower()]
    ours = [w for w in r["warnings"] if "talkbridge" in w[2] or "/extensions/" in w[2]]
    assert not blender_api and not ours, blender_api + ours
    assert "expected to be removed" not in blender_run["output"] and "DeprecationWarning" not in blender_run["output"]


def test_generate_writes_a_new_take_with_the_engines_values(blender_run):
    r, a = blender_run["results"], blender_run["arrays"]
    from talkbridge.core.motion import ARKIT_52

    assert r["generate"] == ["FINISHED"], r["status"]
    assert r["status"]["state"] == "done" and not r["status"]["error"]
    assert r["scene_fps"] == 25.0
    take = r["take"]
    assert take["tag"] == 1 and take["face_active"] == r["status"]["action"] == take["rig_active"]
    assert [t for t, _ in take["slots"]] == ["KEY", "OBJECT"]
    assert sorted(r["shape_names"]) == sorted(ARKIT_52)  # every mannequin key matched by name
    assert sorted(map(tuple, take["rig_paths"])) == [('pose.bones["head"].rotation_quaternion', i) for i in range(4)]
    assert take["interpolations"] == ["LINEAR"]

    motion = _lite_reference(blender_run["config"])
    n = len(motion["arkit"])
    assert n == 100
    assert take["frame_range"] == [1.0, float(n)] and r["scene_frame_end"] >= n
    np.testing.assert_array_equal(a["shape_frames"], np.tile(np.arange(1, n + 1), (52, 1)))
    expected = np.stack([motion["arkit"][:, ARKIT_52.index(name)] for name in r["shape_names"]])
    assert np.abs(expected).max() > 0.2  # a speaking mouth, not a flat line
    np.testing.assert_allclose(a["shape_keys"], expected, atol=1e-6)
    rows = a["sample_frames"] - 1
    np.testing.assert_allclose(a["evaluated"], expected[:, rows].T, atol=1e-5)


def test_head_bone_turns_by_the_engines_pose_in_blenders_frame(blender_run):
    a = blender_run["arrays"]
    from talkbridge.exporters.gltf.pose import rotation_matrices

    motion = _lite_reference(blender_run["config"])
    reference = rotation_matrices(motion["pose"][:, :3])
    c = np.array([[1, 0, 0], [0, 0, -1], [0, 1, 0]], np.float64)  # glTF +Y up -> Blender +Z up
    head_rest, neck_rest = a["head_rest"][:3, :3], a["neck_rest"][:3, :3]
    turned = 0.0
    for frame, head, neck in zip(a["sample_frames"], a["head_pose"], a["neck_pose"]):
        parent_motion = neck[:3, :3] @ np.linalg.inv(neck_rest)  # the artist's neck keys still play
        observed = np.linalg.inv(parent_motion) @ head[:3, :3] @ np.linalg.inv(head_rest)
        expected = c @ reference[frame - 1] @ reference[0].T @ c.T
        np.testing.assert_allclose(observed, expected, atol=2e-4)
        turned = max(turned, np.degrees(np.arccos(np.clip((np.trace(expected) - 1) / 2, -1, 1))))
    assert turned > 0.5  # the lite engine really moved the head at some sampled frame


def test_sequencer_gets_the_frames_and_the_audio(blender_run):
    r = blender_run["results"]
    strips = {s["type"]: s for s in r["strips"]}
    assert set(strips) == {"IMAGE", "SOUND"}
    video, sound = strips["IMAGE"], strips["SOUND"]
    assert video["start"] == 1 and video["duration"] == 100 and video["elements"] == 100
    frames = sorted(Path(video["path"]).glob("frame_*.png"))
    assert len(frames) == 100 and frames[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sound["start"] == 1 and sound["channel"] == video["channel"] + 1
    assert sound["path"] == blender_run["config"]["audio"]
    assert 95 <= sound["duration"] <= 105  # 4 s at 25 fps


def test_the_artists_keys_are_untouched(blender_run):
    r = blender_run["results"]
    assert r["user_after"]["face"] == r["user_before"]["face"]
    assert r["user_after"]["rig"] == r["user_before"]["rig"]
    assert r["user_before"]["face"][0][2] == [[1.0, 0.30000001192092896], [40.0, 0.8999999761581421]]
    assert all(r["user_after"]["fake_users"])
    assert len(r["user_after"]["face_tracks"]) == 1 and r["user_after"]["face_tracks"][0][0].startswith("[talkbridge kept]")
    assert len(r["user_after"]["rig_tracks"]) == 1


def test_cancel_mid_job_keeps_what_arrived(blender_run):
    r = blender_run["results"]
    assert r["cancel_op"] == ["FINISHED"]
    assert r["cancel_status"]["state"] == "cancelled" and not r["cancel_status"]["error"]
    assert 0 < r["cancel_frames_before"] <= r["cancel_frames"] < r["cancel_expected_frames"] == 300
    assert r["cancel_action_keys"] == r["cancel_frames"]
    assert r["cancel_after"]["elapsed_s"] < 5.0
    assert r["cancel_generate_poll"]  # ready for the next take


def test_closing_the_file_mid_job_cancels_it(blender_run):
    close = blender_run["results"]["close"]
    assert close == {"state": "cancelled", "finished": True, "active": False, "timer": False}


def test_a_dead_sidecar_leaves_blender_responsive_with_an_error(blender_run):
    r = blender_run["results"]
    assert r["dead_status"]["state"] == "failed" and not r["dead_status"]["running"]
    assert "stopped answering" in r["dead_status"]["error"]
    assert r["dead"]["elapsed_s"] < 8.0
    assert r["dead"]["longest_tick_s"] < 0.25
    assert r["dead_frames_kept"] > 0


def test_a_wrong_address_times_out_with_a_clear_message(blender_run):
    r = blender_run["results"]
    wrong = blender_run["config"]["wrong_address"]
    assert r["wrong_status"]["state"] == "failed"
    assert wrong in r["wrong_status"]["error"] and "no answer" in r["wrong_status"]["error"]
    assert r["wrong"]["elapsed_s"] < 6.0 and r["wrong"]["longest_tick_s"] < 0.1
    assert r["remote_refused"] and "online access" in r["remote_refused"]


def test_a_local_sidecar_started_by_the_addon_animates_a_sound_strip(blender_run):
    r = blender_run["results"]
    assert r["local_generate"] == ["FINISHED"] and r["local_status"]["state"] == "done", r["local_status"]
    assert r["local_address"].startswith("tcp://127.0.0.1:") and r["local_address"] != blender_run["config"]["address"]
    assert r["local_frame_range"] == [11.0, 110.0]  # the take starts where the strip starts
    assert r["local_rig_paths"] == ['pose.bones["head"].location', 'pose.bones["head"].rotation_quaternion']  # found unnamed; moves too
    assert r["local_strips"] == ["line"]  # no second copy of the audio, no video when frames are off


def test_the_panel_shows_generate_progress_and_errors(blender_run):
    r = blender_run["results"]
    done, running, failed = r["panel_done"], r["panel_running"], r["panel_failed"]
    assert (done["label"], done["category"], done["region"]) == ("Generate Talking Head", "talkbridge", "UI")
    for drawn in (done, running, failed):
        assert drawn["unknown_props"] == []
        drawn_props = {c[1][1] for c in drawn["calls"] if c[0] in ("prop", "prop_search") and len(c[1]) > 1}
        assert {"image", "audio", "target", "rig", "head_bone", "engine", "seed", "sidecar_mode", "address"} <= drawn_props
    assert done["operators"] == ["talkbridge.generate"] and not done["progress"]
    assert any("done: 100 frames" in label for label in done["labels"])
    assert running["operators"] == ["talkbridge.cancel"] and len(running["progress"]) == 1
    assert 0.0 < running["progress"][0][2]["factor"] < 1.0  # frames arrived out of a known length
    assert failed["operators"] == ["talkbridge.generate"]
    assert "stopped answering" in " ".join(failed["labels"])  # the error, wrapped over a few lines


def test_the_sidecar_is_reached_with_curve_keys_and_a_stranger_is_refused(blender_run):
    r = blender_run["results"]
    assert r["status"]["state"] == "done"  # the main take came over CURVE with an HMAC signing key
    refused = r["stranger_status"]
    assert refused["state"] == "failed" and "CURVE" in refused["error"] and blender_run["config"]["address"] in refused["error"]


def test_disabling_the_addon_unregisters_everything_and_stops_its_sidecar(blender_run):
    r = blender_run["results"]
    assert r["disabled"] is True
    assert r["local_sidecar_stopped"] is True
    assert r["after_disable"] == {
        "panel": False, "operators": [False, False], "status": False, "timer": False, "load_pre_removed": 1, "load_pre_left": [],
    }
