"""The architecture, enforced: layers import one way, nothing cycles, nothing loads by file path,
command modules only parse arguments, and a lite-only run never imports torch.

Imports are read from the source with ``ast`` (absolute and relative, at module level and inside
functions), so a lazy import that breaks a rule is caught as surely as a top-level one.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from talkbridge.source_layout import package_folders

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = package_folders(ROOT)  # pyproject.toml's package-dir: the one statement of the mapping
TOP = ("talkbridge.api", "talkbridge.batch", "talkbridge.cluster")
FORBIDDEN = {
    "talkbridge.core": ("talkbridge.exporters", "talkbridge.bridge", "talkbridge.cli", *TOP),
    "talkbridge.exporters": ("talkbridge.bridge", "talkbridge.cli", *TOP),
    "talkbridge.bridge": ("talkbridge.cli", *TOP),
    "talkbridge.api": ("talkbridge.cli",),
}


def module_files() -> dict[str, Path]:
    modules = {}
    for package, folder in PACKAGES.items():
        for path in folder.rglob("*.py"):
            if "__pycache__" in path.parts:
                continue
            parts = path.relative_to(folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            name = ".".join((package, *parts))
            if package == "talkbridge" and parts and f"talkbridge.{parts[0]}" in PACKAGES:
                continue  # not a real folder of the talkbridge package
            modules[name] = path
    return modules


MODULES = module_files()


def imports_of(name: str, path: Path) -> set[str]:
    """Every talkbridge module ``name`` imports, anywhere in the file."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in _executed_nodes(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)  # `from pkg import module`
    return {module for module in found if module in MODULES}


def _executed_nodes(tree: ast.AST):
    """Every node except those under ``if TYPE_CHECKING:`` (imports for annotations never run)."""
    pending = [tree]
    while pending:
        node = pending.pop()
        yield node
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            pending.extend(node.orelse)
            continue
        pending.extend(ast.iter_child_nodes(node))


GRAPH = {name: imports_of(name, path) for name, path in MODULES.items()}


def layer_rules_broken() -> list[str]:
    broken = []
    for module, targets in GRAPH.items():
        for layer, forbidden in FORBIDDEN.items():
            if module == layer or module.startswith(layer + "."):
                broken += [f"{module} imports {t}" for t in targets if any(t == f or t.startswith(f + ".") for f in forbidden)]
    return broken


def test_the_walk_sees_the_whole_package():
    assert {"talkbridge.core.jobs.local", "talkbridge.bridge.server", "talkbridge.exporters.job_files",
            "talkbridge.cli.commands.generate", "talkbridge.api"} <= set(MODULES)
    assert "talkbridge.core.jobs.options" in GRAPH["talkbridge.core.jobs.request"]  # an absolute import
    assert "talkbridge.core.jobs.lite_job" in GRAPH["talkbridge.core.jobs.local"]  # one inside a function


def test_layers_import_one_way():
    assert layer_rules_broken() == []


def test_the_checker_catches_a_lazy_upward_import(tmp_path, monkeypatch):
    sneaky = tmp_path / "sneaky.py"
    sneaky.write_text("def later():\n    from ..bridge import client\n    from talkbridge.cli import main\n")
    found = imports_of("talkbridge.core.sneaky", sneaky)
    assert found == {"talkbridge.bridge", "talkbridge.bridge.client", "talkbridge.cli"}
    monkeypatch.setitem(GRAPH, "talkbridge.core.sneaky", found)
    assert "talkbridge.core.sneaky imports talkbridge.bridge.client" in layer_rules_broken()


def test_no_import_cycles():
    """Strongly connected components of the import graph (Tarjan) must all be single modules."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in GRAPH[node]:
            if target == node or _is_parent(target, node):
                continue  # a package importing its own submodule is not a cycle with it
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in GRAPH:
        if module not in index:
            visit(module)
    assert cycles == []


def _is_parent(package: str, module: str) -> bool:
    return module.startswith(package + ".")


def test_nothing_is_loaded_by_file_path():
    offenders = []
    for name, path in MODULES.items():
        text = path.read_text(encoding="utf-8")
        for marker in ("spec_from_file_location", "SourceFileLoader", "sys.path.insert", "sys.path.append", "runpy.run_path"):
            if marker in text:
                offenders.append(f"{name}: {marker}")
    addon = [f"addon/{p.name}" for p in (ROOT / "addon").glob("*.py") if "spec_from_file_location" in p.read_text(encoding="utf-8")]
    assert offenders == [] and addon == []


def test_only_the_preview_renderer_imports_bpy():
    """Blender is the add-on's host and the preview's renderer; nothing else in the package loads it
    (the preview runs it in a child process, see exporters/preview.py)."""
    users = []
    for name, path in MODULES.items():
        for node in _executed_nodes(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import) and any(alias.name.split(".")[0] in ("bpy", "mathutils") for alias in node.names):
                users.append(name)
            elif isinstance(node, ast.ImportFrom) and not node.level and (node.module or "").split(".")[0] in ("bpy", "mathutils"):
                users.append(name)
    assert sorted(set(users)) == ["talkbridge.exporters.preview_render"]


@pytest.mark.parametrize("command", ["generate", "coeffs", "demo"])
def test_job_commands_only_parse_arguments_and_call_the_job_layer(command):
    name = f"talkbridge.cli.commands.{command}"
    lines = [line for line in MODULES[name].read_text(encoding="utf-8").splitlines() if line.strip()]
    allowed = ("talkbridge.api", "talkbridge.cli", "talkbridge.core.jobs", "talkbridge.core.errors",
               "talkbridge.exporters.job_files", "talkbridge.exporters.atomic", "talkbridge.core.lite.samples",
               "talkbridge.core.face.landmarks")
    assert len(lines) <= 90, f"{name} has {len(lines)} lines: job logic belongs in the job layer"
    assert all(t.startswith(allowed) for t in GRAPH[name]), sorted(GRAPH[name])


def test_every_command_module_stays_a_thin_parser():
    commands = {name: path for name, path in MODULES.items() if name.startswith("talkbridge.cli.commands.")}
    assert len(commands) >= 10
    sizes = {name: sum(1 for line in path.read_text(encoding="utf-8").splitlines() if line.strip()) for name, path in commands.items()}
    assert {name: size for name, size in sizes.items() if size > 150} == {}, "logic belongs below the CLI"


def _run_python(code: str, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def test_a_lite_generate_never_imports_torch(tmp_path):
    from tests.speech import speech_like, write_wav

    speech = write_wav(tmp_path / "speech.wav", speech_like(1.0, seed=2))
    code = (
        "import sys\n"
        "from talkbridge.core.lite.samples import write_portrait\n"
        f"write_portrait({str(tmp_path / 'p.png')!r})\n"
        "from talkbridge.cli import main\n"
        f"code = main(['-q', 'generate', {str(tmp_path / 'p.png')!r}, {str(speech)!r}, '-o', {str(tmp_path / 'out')!r}, '--engine', 'lite', '--size', '64'])\n"
        "assert code == 0, code\n"
        "loaded = sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.'))\n"
        "print('TORCH', loaded)\n"
    )
    done = _run_python(code)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "TORCH []" in done.stdout
    assert (tmp_path / "out" / "speech.mp4").is_file()


def test_a_lite_batch_never_imports_torch(tmp_path):
    from tests.speech import speech_like, write_wav

    lines = tmp_path / "lines"
    lines.mkdir()
    for i in range(2):
        write_wav(lines / f"line{i}.wav", speech_like(0.6, seed=i))
    code = (
        "import sys\n"
        "from talkbridge.cli import main\n"
        f"code = main(['-q', 'batch', {str(lines)!r}, '-o', {str(tmp_path / 'out')!r}, '--engine', 'lite', '--size', '64', '--exports', 'livelink'])\n"
        "assert code == 0, code\n"
        "print('TORCH', sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')))\n"
    )
    done = _run_python(code)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "TORCH []" in done.stdout
    assert (tmp_path / "out" / "line1.mp4").is_file() and (tmp_path / "out" / "line1.livelink.csv").is_file()


def _process_tree(pid: int) -> list[int]:
    found, frontier = [pid], [pid]
    while frontier:
        current = frontier.pop()
        children = Path(f"/proc/{current}/task/{current}/children")
        if children.exists():
            kids = [int(k) for k in children.read_text().split()]
            found += kids
            frontier += kids
    return found


def test_a_lite_only_sidecar_never_loads_torch(tmp_path):
    """The server and its worker processes, after serving a lite job: no libtorch in their memory maps."""
    import socket

    from talkbridge.bridge.client import Client
    from tests.speech import speech_like

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "TALKBRIDGE_MODELS": str(tmp_path / "no_models")}
    server = subprocess.Popen([sys.executable, "-m", "talkbridge", "serve", "--bind", address], env=env, cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        client = Client(address)
        try:
            client.connect(timeout=60)
            result = client.submit("lite", audio=speech_like(1.0, seed=3), options={"seed": 1}, render_size=64).result()
        finally:
            client.close()
        assert result.final.type == "done", result.final.body
        deadline = time.monotonic() + 5
        pids = _process_tree(server.pid)
        while len(pids) < 2 and time.monotonic() < deadline:  # the worker process is a child
            time.sleep(0.1)
            pids = _process_tree(server.pid)
        mapped = {pid: Path(f"/proc/{pid}/maps").read_text() for pid in pids if Path(f"/proc/{pid}/maps").exists()}
        assert len(mapped) >= 2, f"expected the server and its worker process, found {sorted(mapped)}"
        assert [pid for pid, maps in mapped.items() if "libtorch" in maps] == []
    finally:
        server.terminate()
        server.wait(timeout=30)
