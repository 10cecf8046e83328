"""Blender from zero: the extension zip in a fresh user folder installs its own engine, for real.

Runs on whichever bpy this Python has (4.5 in the project venv, 5.3 in ``.venv-blender5``;
``./scripts/dev test`` runs both). One Blender subprocess per Python (``engine_install_in_blender.py``)
sees only bpy and numpy from this environment and an empty PATH, installs the zip, and then runs
Install Engine (lite) against the package index: one real install, reused by every check below.
pip's own cache (``~/.cache/pip``) makes reruns quick; a cold install downloads about 200 MB.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

from tests import blender_support
from tests.http_fixture import FileServer

pytestmark = [pytest.mark.blender, pytest.mark.slow, pytest.mark.timeout(1200)]

INSIDE = Path(__file__).with_name("engine_install_in_blender.py")
MISSING_PACKAGE = "talkbridge-test-no-such-package==0.0.1"  # never published: pip must fail to find it


def _weights(folder: Path) -> dict[str, bytes]:
    """A stand-in weight file (random bytes: only size and sha256 are checked by the download)."""
    import numpy as np

    return {"/SadTalker_test.safetensors": np.random.default_rng(5).bytes(3_000_000)}


def _catalog(path: Path, url: str, files: dict[str, bytes]) -> Path:
    import hashlib

    entries = [{"name": name.strip("/"), "group": "sadtalker", "folder": "checkpoints", "urls": [url + name],
                "size": len(data), "sha256": hashlib.sha256(data).hexdigest(), "default": True} for name, data in files.items()]
    path.write_text(json.dumps(entries))
    return path


@pytest.fixture(scope="session")
def engine_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("engine-install")
    inputs = json.loads(blender_support.run_engine(["-m", "tests.blender_support", "inputs", str(work / "inputs")]).stdout)
    built = blender_support.build_local_zip(work / "dist")
    out = work / "out"
    out.mkdir()
    weights = _weights(work / "mirror")
    config = {**inputs, "zip": str(built), "out": str(out), "missing_package": MISSING_PACKAGE, "store": str(work / "store"),
              "engine_command": f"{blender_support.engine_python()} -m talkbridge.cli"}
    empty_path = work / "empty-path"
    empty_path.mkdir()
    env = blender_support.blender_env(work)
    env["PATH"] = str(empty_path)  # no talkbridge, no python, nothing: the add-on must bring its own
    with FileServer(weights) as mirror:  # Models... downloads from this loopback mirror's catalog
        config["catalog"] = str(_catalog(work / "catalog.json", mirror.url, weights))
        done = blender_support.run_blender_script(work, INSIDE, config, env, 1100)
    results_path = out / "results.json"
    assert results_path.is_file(), f"Blender side produced no results:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    results = json.loads(results_path.read_text())
    assert not results["errors"], "\n".join(f"[{name}]\n{trace}" for name, trace in results["errors"])
    pid = results.get("exit_sidecar_pid")
    deadline = time.monotonic() + 20
    while pid and Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:  # the test side may read /proc
        time.sleep(0.1)
    results["exit_sidecar_alive"] = bool(pid) and Path(f"/proc/{pid}").exists()
    if results["exit_sidecar_alive"]:
        os.kill(pid, 9)
    return {"results": results, "work": work, "output": done.stdout + done.stderr}


def test_the_zip_installs_into_a_fresh_user_folder_with_its_wheel(engine_run):
    r, user = engine_run["results"], str(engine_run["work"] / "user")
    assert r["install"] == ["FINISHED"]
    assert r["talkbridge_file"].startswith(user) and r["engine_root"].startswith(user)
    wheel, present = r["wheel"]
    assert present and wheel.startswith(user) and wheel.endswith("-py3-none-any.whl")


def test_install_engine_is_refused_while_online_access_is_off(engine_run):
    r = engine_run["results"]
    assert r["online_before"] is False and r["online_after"] is True
    assert r["offline_refused"] and "online access is off" in r["offline_refused"] and "Allow Online Access" in r["offline_refused"]
    assert r["offline_env_made"] is False


def test_start_local_without_an_engine_points_at_install_engine(engine_run):
    r = engine_run["results"]
    assert r["no_engine_refused"] and "Install Engine" in r["no_engine_refused"]


def test_a_failing_pip_step_is_named_and_no_env_is_taken_for_good(engine_run):
    failing = engine_run["results"]["failing"]
    assert failing["state"] == "failed" and not failing["usable"] and not failing["exists"]
    first, *rest = failing["error"].splitlines()
    assert first.startswith("Installing talkbridge (lite) failed (exit code 1):") and "pip install" in first
    assert MISSING_PACKAGE in first  # the pip line that failed
    assert any("talkbridge-test-no-such-package" in line and line.startswith("ERROR:") for line in rest)  # pip's reason


def test_a_cancelled_install_leaves_nothing_that_is_used(engine_run):
    r = engine_run["results"]
    assert r["cancel_seen_step"].startswith("Installing talkbridge") and r["cancel_op"] == ["FINISHED"]
    cancelled = r["cancelled"]
    assert cancelled["state"] == "cancelled" and cancelled["private_argv"] is None
    assert not cancelled["env_exists"] and cancelled["status"] == "not installed"
    assert r["after_cancel_refused"] and "Install Engine" in r["after_cancel_refused"]


def test_install_engine_lite_runs_for_real_and_marks_the_env_complete(engine_run):
    r = engine_run["results"]
    assert r["real_install"] == ["FINISHED"], r.get("real_install_tail")
    assert r["env"] is not None and r["env"]["engines"] == ["lite"]
    assert r["env"]["path"].startswith(r["engine_root"])
    probe = r["env_probe"]
    assert probe["python"] == r["python"] == list(sys.version_info[:2])  # made with Blender's own Python
    assert {"talkbridge", "pyzmq", "numpy", "scipy", "pocketsphinx", "soundfile"} <= set(probe["dists"])
    print(f"Install Engine (lite), Python {sys.version_info[0]}.{sys.version_info[1]}: {r['real_install_s']:.1f} s")


def test_the_private_env_holds_no_torch(engine_run):
    probe = engine_run["results"]["env_probe"]
    assert probe["torch"] is False and not [d for d in probe["dists"] if d.startswith("torch") or d.startswith("nvidia-")]


def test_a_local_take_on_the_mannequin_runs_through_the_private_env_with_nothing_on_path(engine_run):
    r = engine_run["results"]
    assert r["local_generate"] == ["FINISHED"], (r["local_status"], r.get("local_log"))
    assert r["local_status"]["state"] == "done" and not r["local_status"]["error"]
    assert r["local_argv"][:3] == r["env"]["argv"] and "--exit-on-stdin-close" in r["local_argv"]
    assert r["local_frame_range"] == [1.0, 100.0]  # 4 s of speech at 25 fps
    assert r["local_strips"] == ["IMAGE", "SOUND"]
    assert r["local_jaw_at_20"] != 0.0  # the take drives the mannequin's keys


def test_disabling_the_add_on_stops_the_sidecar(engine_run):
    r = engine_run["results"]
    assert r["disabled"] and r["sidecar_stopped"] and r["engine_ops_gone"]


def _labels(calls: list) -> list[str]:
    return [c[2].get("text", "") for c in calls if c[0] in ("label", "progress")]


def test_preferences_and_panel_show_the_engine_state_and_the_install_progress(engine_run):
    r = engine_run["results"]
    operators = [c[1][0] for c in r["no_engine_prefs"] if c[0] == "operator"]
    assert operators == ["talkbridge.engine_install", "talkbridge.engine_models", "talkbridge.engine_remove"]
    assert "not installed" in _labels(r["no_engine_prefs"]) and any("Online access is off" in t for t in _labels(r["no_engine_prefs"]))
    assert any("Install Engine" in t for t in _labels(r["no_engine_panel"]))
    for running in (r["running_prefs"], r["running_panel"]):
        bars = [c for c in running if c[0] == "progress"]
        assert len(bars) == 1 and bars[0][2]["text"].startswith("Install Engine: Installing talkbridge (lite)")
        assert ["operator", ["talkbridge.engine_cancel"]] in [c[:2] for c in running]


def test_models_downloads_through_the_private_env_with_progress(engine_run):
    r = engine_run["results"]
    models = r["models"]
    assert models["state"] == "done", models
    assert models["step"] == "Downloading the sadtalker weights"
    assert "progress SadTalker_test.safetensors 3000000 3000000" in models["tail"]
    stored = engine_run["work"] / "store" / "checkpoints" / "SadTalker_test.safetensors"
    assert stored.is_file() and stored.stat().st_size == 3_000_000
    assert any(t.startswith("Models: done") for t in _labels(r["models_panel"]))


def test_the_engine_can_be_removed_after_the_add_on_is_enabled_again(engine_run):
    r = engine_run["results"]
    assert r["before_remove"].startswith("installed (lite)")
    assert r["remove"] == ["FINISHED"] and r["after_remove"] == {"status": "not installed", "exists": False}


def test_a_sidecar_still_running_when_blender_is_killed_stops_too(engine_run):
    """Blender SIGKILLed: no unregister, no atexit; the closed stdin pipe alone stops the sidecar."""
    r = engine_run["results"]
    assert r["exit_sidecar_pid"] and r["exit_sidecar_alive"] is False
