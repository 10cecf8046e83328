"""A local sidecar the add-on starts itself: ``talkbridge serve`` as a child process on loopback.

Blender's Python does not carry the engines (torch, pocketsphinx ...); they live in the user's own
talkbridge install, so the add-on runs that install's ``talkbridge`` command (set in the add-on
preferences). The process is started once, reused by later jobs (models stay loaded) and stopped
when the add-on is disabled or Blender quits. No bpy here.
"""

from __future__ import annotations

import logging
import os
import shlex
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

from talkbridge.core.errors import TalkbridgeError

log = logging.getLogger(__name__)


class SidecarStartError(TalkbridgeError):
    """The local sidecar could not be started; the message says what to set."""


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def resolve_command(command: str) -> list[str]:
    """The argv prefix that runs talkbridge: a path or name of the ``talkbridge`` script, or any command line."""
    parts = shlex.split(command or "talkbridge", posix=os.name != "nt")
    if not parts:
        parts = ["talkbridge"]
    found = shutil.which(parts[0]) or (parts[0] if Path(parts[0]).is_file() else None)
    if found is None:
        raise SidecarStartError(
            f"cannot find {parts[0]!r} to start a local sidecar; install talkbridge with its engines "
            "(pip install 'talkbridge[engine]') and set its path in the add-on preferences, or connect to a running sidecar"
        )
    return [found, *parts[1:]]


class LocalSidecar:
    """One ``talkbridge serve`` child process bound to a free loopback port."""

    def __init__(self, command: str = "talkbridge") -> None:
        self.command = command
        self.process: subprocess.Popen | None = None
        self.address: str | None = None
        self._log_file: tempfile._TemporaryFileWrapper | None = None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> str:
        """Start (or reuse) the sidecar and return its address; the caller's connect waits for it."""
        if self.running:
            assert self.address is not None
            return self.address
        self.stop()
        argv = resolve_command(self.command)
        self.address = f"tcp://127.0.0.1:{free_loopback_port()}"
        self._log_file = tempfile.NamedTemporaryFile(prefix="talkbridge-sidecar-", suffix=".log", delete=False)
        log.info("starting a local sidecar: %s serve --bind %s", " ".join(argv), self.address)
        try:
            self.process = subprocess.Popen(
                [*argv, "serve", "--bind", self.address],
                stdout=self._log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        except OSError as error:
            raise SidecarStartError(f"could not start {argv[0]!r}: {error}") from None
        return self.address

    def log_tail(self, characters: int = 600) -> str:
        if self._log_file is None:
            return ""
        try:
            return Path(self._log_file.name).read_text(errors="replace")[-characters:]
        except OSError:
            return ""

    def exit_message(self) -> str | None:
        """Why the process ended early, or None while it runs."""
        if self.process is None or self.process.poll() is None:
            return None
        return f"the local sidecar exited with code {self.process.returncode}: {self.log_tail().strip()}"

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5.0)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5.0)
        self.process = None
        if self._log_file is not None:
            self._log_file.close()
            try:
                os.unlink(self._log_file.name)
            except OSError:
                pass
            self._log_file = None
