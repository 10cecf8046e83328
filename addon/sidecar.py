"""A local sidecar the add-on starts itself: ``talkbridge serve`` as a child process on loopback.

Blender's Python does not carry the engines (torch, pocketsphinx ...). *Start Local* runs, in order
of preference: the command set in the add-on preferences, the private environment Install Engine
made, or ``talkbridge`` on PATH. The process is started once, reused by later jobs (models stay
loaded) and stopped when the add-on is disabled or Blender quits. It dies with Blender on every
platform however Blender ends: it reads a pipe on its stdin (``serve --exit-on-stdin-close``) that
only Blender holds, and on Windows it also sits in a job object that kills it (and its worker
processes) when Blender's handle to that job closes. No bpy here.
"""

from __future__ import annotations

import logging
import os
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

from talkbridge.core.errors import TalkbridgeError

from .installer import child_environment

log = logging.getLogger(__name__)


class SidecarStartError(TalkbridgeError):
    """The local sidecar could not be started; the message says what to set."""


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


NO_ENGINE_MESSAGE = (
    "no talkbridge engine found for Start Local: press Install Engine in Edit > Preferences > Add-ons > "
    "talkbridge (one click, a few minutes), or set the talkbridge Command there, or Connect to a running sidecar"
)


def resolve_command(command: str, private_argv: list[str] | None = None, which=shutil.which) -> list[str]:
    """The argv prefix that runs talkbridge.

    ``command`` (the preference) wins when set: a path or name of the ``talkbridge`` script, or any
    command line. Empty: the private environment's talkbridge (``private_argv``), else ``talkbridge``
    on PATH, else an error that points at Install Engine.
    """
    if not (command or "").strip():
        if private_argv:
            return list(private_argv)
        found = which("talkbridge")
        if found is None:
            raise SidecarStartError(NO_ENGINE_MESSAGE)
        return [found]
    parts = shlex.split(command, posix=os.name != "nt")
    found = which(parts[0]) or (parts[0] if Path(parts[0]).is_file() else None)
    if found is None and parts == ["talkbridge"] and private_argv:
        return list(private_argv)  # the old default setting, saved before Install Engine existed
    if found is None:
        raise SidecarStartError(
            f"cannot find {parts[0]!r} (the talkbridge Command in the add-on preferences) to start a local sidecar; "
            "clear it to use the engine Install Engine makes, or connect to a running sidecar"
        )
    return [found, *parts[1:]]


def detached_process_options(platform: str | None = None) -> dict:
    """Popen options that keep the sidecar out of Blender's console signals.

    POSIX: its own session (Ctrl-C in Blender's terminal does not hit it; the add-on stops it).
    Windows: its own process group and no console window.
    """
    if (platform or sys.platform).startswith("win"):
        flags = getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0x200) | getattr(subprocess, "CREATE_NO_WINDOW", 0x8000000)
        return {"creationflags": flags}
    return {"start_new_session": True}


class LocalSidecar:
    """One ``talkbridge serve`` child process bound to a free loopback port."""

    def __init__(self, command: str = "", private_argv: list[str] | None = None) -> None:
        self.command = command
        self.private_argv = private_argv  # the private env's talkbridge, used when ``command`` is empty
        self._job_object = None  # Windows: the job object that kills the process tree with Blender
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
        argv = resolve_command(self.command, self.private_argv)
        self.address = f"tcp://127.0.0.1:{free_loopback_port()}"
        self._log_file = tempfile.NamedTemporaryFile(prefix="talkbridge-sidecar-", suffix=".log", delete=False)
        log.info("starting a local sidecar: %s serve --bind %s", " ".join(argv), self.address)
        try:
            self.process = subprocess.Popen(
                [*argv, "serve", "--bind", self.address, "--exit-on-stdin-close"],
                stdout=self._log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.PIPE,  # held only by Blender: closed on stop, or by the OS when Blender dies
                env=child_environment(),
                **detached_process_options(),
            )
        except OSError as error:
            raise SidecarStartError(f"could not start {argv[0]!r}: {error}") from None
        if os.name == "nt":
            from .winjob import kill_with_parent

            self._job_object = kill_with_parent(self.process)
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

    def stop(self, grace_s: float = 5.0) -> None:
        """Stop the sidecar: close its stdin (it shuts its workers down cleanly), then terminate, then kill."""
        process = self.process
        if process is not None and process.poll() is None:
            if process.stdin is not None:
                try:
                    process.stdin.close()
                except OSError:
                    pass
            try:
                process.wait(grace_s)
            except subprocess.TimeoutExpired:
                process.terminate()
                try:
                    process.wait(5.0)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(5.0)
        elif process is not None and process.stdin is not None:
            process.stdin.close()
        self.process = None
        if self._job_object is not None:
            self._job_object.close()  # kills whatever of the tree is left (Windows)
            self._job_object = None
        if self._log_file is not None:
            self._log_file.close()
            try:
                os.unlink(self._log_file.name)
            except OSError:
                pass
            self._log_file = None
