"""The `talkbridge` entry point exists as an installed console script."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from talkbridge import __version__

SCRIPT = Path(sys.executable).with_name("talkbridge")


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, timeout=120)


def test_version():
    result = run("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"talkbridge {__version__}"


def test_help_lists_commands():
    result = run("--help")
    assert result.returncode == 0
    assert "usage: talkbridge" in result.stdout


def test_unknown_command_fails():
    assert run("no-such-command").returncode != 0


def test_bare_core_is_not_installed():
    probe = subprocess.run([sys.executable, "-c", "import core"], capture_output=True, cwd="/", timeout=60)
    assert probe.returncode != 0
