"""Install Engine and Start Local without Blender: venv layouts per OS, the torch index choice, the
install plan, the command runner (failure, cancel, completion marker) and the sidecar's command
and stdin-close shutdown. The real install inside Blender is ``tests/test_addon_engine_install.py``."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path, PurePosixPath, PureWindowsPath

import pytest

from tests.test_addon_units import _load as _plain

ROOT = Path(__file__).resolve().parents[1]
paths = _plain("install_paths")
installer = _plain("installer")
sidecar = _plain("sidecar")


# ---------------------------------------------------------------------------------- paths per OS


@pytest.mark.parametrize(
    "platform, python, script",
    [
        ("win32", PureWindowsPath("C:/u/engine/env/Scripts/python.exe"), PureWindowsPath("C:/u/engine/env/Scripts/talkbridge.exe")),
        ("darwin", PurePosixPath("/u/engine/env/bin/python"), PurePosixPath("/u/engine/env/bin/talkbridge")),
        ("linux", PurePosixPath("/u/engine/env/bin/python"), PurePosixPath("/u/engine/env/bin/talkbridge")),
    ],
)
def test_venv_layout_per_platform(platform, python, script):
    env = (PureWindowsPath("C:/u/engine") if platform == "win32" else PurePosixPath("/u/engine")) / "env"
    assert paths.env_python(env, platform) == python
    assert paths.env_script(env, "talkbridge", platform) == script
    assert paths.talkbridge_argv(env, platform) == [str(python), "-m", "talkbridge.cli"]


@pytest.mark.parametrize(
    "platform, nvidia, index",
    [
        ("win32", True, paths.CUDA_TORCH_INDEX),
        ("linux", True, paths.CUDA_TORCH_INDEX),
        ("linux", False, paths.CPU_TORCH_INDEX),  # PyPI's Linux torch is the CUDA build: not for a CPU-only box
        ("win32", False, None),  # PyPI serves the CPU build on Windows
        ("darwin", True, None),  # macOS: PyPI (CPU/MPS); no CUDA there
        ("darwin", False, None),
    ],
)
def test_sadtalker_torch_comes_from_the_right_index(platform, nvidia, index):
    assert paths.torch_index(platform, nvidia) == index
    steps = paths.install_steps(Path("/e"), "/blender/python", Path("/w/t.whl"), ("sadtalker",), platform, nvidia)
    torch_step = next(s for s in steps if "torch==2.13.0" in s.argv)
    assert ("--index-url" in torch_step.argv) is (index is not None)
    if index:
        assert torch_step.argv[torch_step.argv.index("--index-url") + 1] == index
        assert ("CUDA" in torch_step.title) is nvidia


def test_nvidia_is_detected_by_nvidia_smi_on_path():
    assert paths.has_nvidia_gpu(lambda name: "/usr/bin/nvidia-smi" if name == "nvidia-smi" else None)
    assert not paths.has_nvidia_gpu(lambda name: None)


def test_the_lite_plan_installs_the_bundled_wheel_with_its_extra_and_no_torch():
    steps = paths.install_steps(Path("/e"), "/blender/python", Path("/w/talkbridge-0.1.0-py3-none-any.whl"), ("lite",), "linux")
    assert [s.argv[:3] for s in steps[:1]] == [("/blender/python", "-m", "venv")]
    assert all(s.argv[0] == "/e/bin/python" for s in steps[1:])  # everything else runs in the new env
    install = steps[1]
    assert "/w/talkbridge-0.1.0-py3-none-any.whl[lite]" in install.argv
    assert not any("torch" in a for s in steps for a in s.argv)
    both = paths.install_steps(Path("/e"), "/p", Path("/w/t.whl"), ("audio2face", "sadtalker"), "linux")
    assert any(a.endswith("t.whl[lite,sadtalker,audio2face]") for a in both[-2].argv)
    with pytest.raises(ValueError, match="unknown engine"):
        paths.extras_for(["wav2lip"])


def test_an_env_counts_only_with_a_marker_for_this_version(tmp_path):
    env = tmp_path / "env"
    assert paths.find_env(env, "0.1.0") is None and paths.env_problem(env, "0.1.0") == "not installed"
    python = paths.env_python(env)
    python.parent.mkdir(parents=True)
    python.write_text("")
    assert paths.find_env(env, "0.1.0") is None and "incomplete" in paths.env_problem(env, "0.1.0")
    paths.write_marker(env, "0.0.9", ["lite"])
    assert paths.find_env(env, "0.1.0") is None and "0.0.9" in paths.env_problem(env, "0.1.0")
    paths.write_marker(env, "0.1.0", ["lite", "sadtalker"])
    found = paths.find_env(env, "0.1.0")
    assert found is not None and found.engines == ("lite", "sadtalker") and found.argv()[0] == str(python)
    python.unlink()  # verified on use, not trusted from the marker
    assert paths.find_env(env, "0.1.0") is None and "missing" in paths.env_problem(env, "0.1.0")
    (env / paths.MARKER_NAME).write_text("{not json")
    assert "unreadable" in paths.env_problem(env, "0.1.0")


# ---------------------------------------------------------------------------------- the runner


def _py(title: str, code: str) -> object:
    return paths.Step(title, (sys.executable, "-c", code))


def test_a_failing_step_names_itself_its_command_and_pips_error_and_nothing_is_marked(tmp_path):
    made = tmp_path / "half"
    steps = [
        _py("Creating", f"import pathlib; pathlib.Path({str(made)!r}).mkdir()"),
        _py("Installing talkbridge", "import sys; print('Collecting nothing'); print('ERROR: No matching distribution found for nosuch'); sys.exit(1)"),
        _py("Never", "open('never', 'w')"),
    ]
    finished = []
    task = installer.CommandTask("Install Engine", steps, finish=lambda: finished.append(1),
                                 cleanup=lambda: installer.remove_env(made), log_path=tmp_path / "install.log").start()
    assert task.wait(30)
    snap = task.snapshot()
    logged = (tmp_path / "install.log").read_text()
    assert "== Creating:" in logged and "Collecting nothing" in logged and f"full output: {tmp_path / 'install.log'}" in snap.error
    assert snap.state == installer.FAILED and not finished and not made.exists()
    assert snap.error.startswith("Installing talkbridge failed (exit code 1):")
    assert "No matching distribution found for nosuch" in snap.error and sys.executable in snap.error
    assert not (tmp_path / "never").exists()


def test_cancel_terminates_the_running_step_and_never_finishes(tmp_path):
    started = tmp_path / "started"
    steps = [_py("Downloading", f"import pathlib, time; pathlib.Path({str(started)!r}).touch(); print('go', flush=True); time.sleep(60)"),
             _py("After", "pass")]
    finished, cleaned = [], []
    task = installer.CommandTask("Install Engine", steps, finish=lambda: finished.append(1), cleanup=lambda: cleaned.append(1)).start()
    deadline = time.monotonic() + 20
    while task.snapshot().detail != "go" and time.monotonic() < deadline:
        time.sleep(0.02)
    assert task.snapshot().step == "Downloading" and task.snapshot().state == installer.RUNNING
    began = time.monotonic()
    task.cancel()
    assert task.wait(20) and time.monotonic() - began < 10  # the sleeping child was terminated, not waited for
    snap = task.snapshot()
    assert snap.state == installer.CANCELLED and "cancelled" in snap.error and not finished and cleaned == [1]


def test_a_good_run_reports_progress_and_finishes_once():
    lines = []
    steps = [_py("One", "print('progress a 5 10')"), _py("Two", "print('two')")]
    seen = []

    def hook(line):
        lines.append(line)
        fraction = installer.models_line_progress(line)
        seen.append(fraction)
        return fraction

    finished = []
    task = installer.CommandTask("Models", steps, finish=lambda: finished.append(1), line_hook=hook).start()
    assert task.wait(30)
    snap = task.snapshot()
    assert snap.state == installer.DONE and finished == [1] and snap.progress == 1.0
    assert lines == ["progress a 5 10", "two"] and seen == [0.5, None]


def test_install_task_wipes_the_old_env_and_marks_the_new_one_last(tmp_path):
    env = tmp_path / "env"
    wheel = tmp_path / "talkbridge-0.1.0-py3-none-any.whl"
    wheel.write_bytes(b"")
    (env / "old").mkdir(parents=True)
    paths.write_marker(env, "0.1.0", ["lite"])
    task = installer.install_task(env, sys.executable, wheel, "0.1.0")
    assert not (env / paths.MARKER_NAME).exists()  # at once, before anything runs
    # Run the plan's bookkeeping with harmless steps in place of pip.
    task.steps = [_py("Creating the environment", f"import pathlib; p = pathlib.Path({str(paths.env_python(env))!r}); "
                                                   "p.parent.mkdir(parents=True); p.write_text('')")]
    task.start()
    assert task.wait(30) and task.snapshot().state == installer.DONE
    assert not (env / "old").exists()
    assert json.loads((env / paths.MARKER_NAME).read_text())["engines"] == ["lite"]
    assert paths.find_env(env, "0.1.0") is not None
    with pytest.raises(FileNotFoundError, match="wheel is missing"):
        installer.install_task(env, sys.executable, tmp_path / "gone.whl", "0.1.0")


def test_children_get_no_blender_python_settings(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", "/blender/site")
    monkeypatch.setenv("PYTHONHOME", "/blender")
    env = installer.child_environment()
    assert "PYTHONPATH" not in env and "PYTHONHOME" not in env and env["PYTHONNOUSERSITE"] == "1"


# ---------------------------------------------------------------------------------- Start Local


def test_start_local_prefers_the_setting_then_the_private_env_then_path():
    which = {"talkbridge": "/usr/local/bin/talkbridge", "tb2": "/opt/tb2"}.get
    assert sidecar.resolve_command("tb2 --verbose", ["/env/python", "-m", "talkbridge.cli"], which) == ["/opt/tb2", "--verbose"]
    assert sidecar.resolve_command("", ["/env/python", "-m", "talkbridge.cli"], which) == ["/env/python", "-m", "talkbridge.cli"]
    assert sidecar.resolve_command("  ", None, which) == ["/usr/local/bin/talkbridge"]
    with pytest.raises(sidecar.SidecarStartError, match="Install Engine"):
        sidecar.resolve_command("", None, lambda name: None)
    # "talkbridge", the default saved by older versions, falls back to the private env when PATH has none
    assert sidecar.resolve_command("talkbridge", ["/env/python"], lambda name: None) == ["/env/python"]
    with pytest.raises(sidecar.SidecarStartError, match="talkbridge Command"):
        sidecar.resolve_command("/nowhere/talkbridge", None, lambda name: None)


def test_the_sidecar_is_detached_the_right_way_per_platform():
    assert sidecar.detached_process_options("linux") == {"start_new_session": True}
    assert sidecar.detached_process_options("darwin") == {"start_new_session": True}
    flags = sidecar.detached_process_options("win32")["creationflags"]
    assert flags & 0x200 and flags & 0x8000000  # CREATE_NEW_PROCESS_GROUP, CREATE_NO_WINDOW


def _code_facts(path: Path) -> tuple[set[str], list[str]]:
    """Dotted names the module's code uses and its string literals (docstrings left out)."""
    import ast

    tree = ast.parse(path.read_text())
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef)) and node.body
                  and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    names, strings = set(), []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            names.add(f"{node.value.id}.{node.attr}")
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update(alias.name for alias in node.names)
            if isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
        elif isinstance(node, ast.keyword) and node.arg:
            names.add(f"kw:{node.arg}")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            strings.append(node.value)
    return names, strings


def test_the_add_ons_start_paths_use_no_posix_only_calls():
    """Portable by construction: the install and start modules never fork, read /proc, send POSIX signals or call apt."""
    for name in ("install_paths", "installer", "sidecar", "engine_setup", "winjob"):
        names, strings = _code_facts(ROOT / "addon" / f"{name}.py")
        banned = {"os.fork", "os.kill", "os.killpg", "os.setsid", "signal", "kw:preexec_fn"} & names
        assert not banned, (name, banned)
        assert not [s for s in strings if "/proc" in s or "apt" in s.split()], name


@pytest.mark.timeout(90)
def test_a_local_sidecar_stops_when_its_stdin_closes(tmp_path):
    """``serve --exit-on-stdin-close``: closing the pipe (Blender quit or crashed) stops the server and its workers."""
    local = sidecar.LocalSidecar(f"{sys.executable} -m talkbridge.cli")
    address = local.start()
    from talkbridge.bridge.client_connect import wait_for_server

    process = local.process
    try:
        wait_for_server(address, timeout=60, process=process)
        assert "--exit-on-stdin-close" in process.args
        process.stdin.close()  # what the OS does when Blender dies
        assert process.wait(30) == 0
        assert "standard input closed" in local.log_tail(4000)
    finally:
        if process.poll() is None:
            process.kill()
        local.stop()


def test_models_download_prints_progress_lines_for_a_program(tmp_path):
    """``--progress-lines``: what *Models...* reads from a pipe (tqdm draws nothing there). Run by the
    engine Python (a Blender test venv has only the base package)."""
    import hashlib

    from tests.blender_support import run_engine
    from tests.http_fixture import FileServer

    data = bytes(range(256)) * 4000
    with FileServer({"/w.bin": data}) as server:
        catalog = tmp_path / "catalog.json"
        catalog.write_text(json.dumps([{"name": "w.bin", "group": "sadtalker", "folder": "checkpoints", "urls": [server.url + "/w.bin"],
                                        "size": len(data), "sha256": hashlib.sha256(data).hexdigest(), "default": True}]))
        done = run_engine(["-m", "talkbridge.cli", "models", "download", "--dir", str(tmp_path / "store"), "--catalog", str(catalog),
                           "--progress-lines", "sadtalker"], timeout=120)
    lines = [line for line in done.stdout.splitlines() if line.startswith("progress ")]
    assert lines and lines[-1] == f"progress w.bin {len(data)} {len(data)}"
    assert [installer.models_line_progress(line) for line in lines][-1] == 1.0
    assert (tmp_path / "store" / "checkpoints" / "w.bin").read_bytes() == data
