"""The `talkbridge` entry point exists as an installed console script."""

from __future__ import annotations

import subprocess
import sys

from talkbridge import __version__
from tests.helpers import run_cli

def run(*args: str) -> subprocess.CompletedProcess:
    return run_cli(*args)


def test_version():
    result = run("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"talkbridge {__version__}"


def test_help_lists_commands():
    """Every command module is discovered and listed with its one-line help."""
    import pkgutil

    from talkbridge.cli import commands

    result = run("--help")
    assert result.returncode == 0
    assert "usage: talkbridge" in result.stdout
    names = sorted(m.name for m in pkgutil.iter_modules(commands.__path__) if not m.name.startswith("_"))
    assert {"generate", "serve", "coeffs", "export", "demo", "addon", "models"} <= set(names)
    listed = result.stdout.split("positional arguments:")[1]
    for name in names:
        assert f"    {name} " in listed or f"    {name}\n" in listed, f"{name} is missing from --help"
    assert "make a talking-head video" in listed  # the help line, not only the name


def test_generate_help_shows_every_job_option_once():
    from talkbridge.core.jobs.options import OPTIONS

    text = run("generate", "--help").stdout
    for spec in OPTIONS.values():
        assert text.count(f"{spec.flag} ") + text.count(f"{spec.flag}\n") >= 1, spec.flag
    assert "--sidecar" in text and "--ref-pose" in text


def test_unknown_command_fails():
    assert run("no-such-command").returncode != 0


def test_bare_core_is_not_installed():
    probe = subprocess.run([sys.executable, "-c", "import core"], capture_output=True, cwd="/", timeout=60)
    assert probe.returncode != 0
