"""Long commands the add-on runs for the artist (Install Engine, Models...), off the UI thread (no bpy).

A :class:`CommandTask` runs its steps one after another as child processes on a worker thread and
reads their output there, line by line; the UI polls :meth:`CommandTask.snapshot` from a
``bpy.app.timers`` callback, so Blender never waits on pip or a download. It can be cancelled at any
time (the running child is terminated: ``TerminateProcess`` on Windows, SIGTERM elsewhere, both
via :meth:`subprocess.Popen.terminate`), and nothing it made counts until its ``finish`` callback,
run only after every step succeeded, says so (Install Engine writes its completion marker there).

Portable by design: no fork, no signals beyond ``Popen.terminate``/``kill``, no /proc; children get
no console window on Windows.
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .install_paths import Step, extras_for, install_steps, write_marker

log = logging.getLogger(__name__)

RUNNING, DONE, FAILED, CANCELLED = "running", "done", "failed", "cancelled"
TAIL_LINES = 40


def child_environment() -> dict[str, str]:
    """The environment for pip and the env's Python: Blender's own Python settings left out.

    Blender may set PYTHONHOME/PYTHONPATH for its interpreter; a venv child must not inherit them
    (it would import Blender's site-packages), and user site-packages stay out of the engine.
    """
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONHOME", "PYTHONPATH", "PYTHONSTARTUP", "PYTHONEXECUTABLE", "__PYVENV_LAUNCHER__")}
    env.update(PYTHONNOUSERSITE="1", PYTHONUNBUFFERED="1", PYTHONIOENCODING="utf-8", PIP_NO_INPUT="1")
    return env


def quiet_creation_flags() -> int:
    """No console window for children on Windows (0 elsewhere)."""
    return getattr(subprocess, "CREATE_NO_WINDOW", 0)


def command_line(argv: tuple[str, ...] | list[str]) -> str:
    return shlex.join(str(a) for a in argv)


@dataclass
class Snapshot:
    """What the preferences and the panel show (a copy: the worker thread keeps changing the task)."""

    title: str
    state: str
    step: str
    step_index: float  # steps done, with the running step's fraction when it reports one
    steps: int
    detail: str
    error: str
    elapsed_s: float

    @property
    def progress(self) -> float:
        if self.state == DONE:
            return 1.0
        return min(1.0, self.step_index / max(1, self.steps))

    @property
    def finished(self) -> bool:
        return self.state != RUNNING


@dataclass
class CommandTask:
    """Run ``steps`` in order on a thread; ``finish`` runs after the last one succeeded (in that thread)."""

    title: str
    steps: list[Step]
    finish: Callable[[], None] | None = None
    prepare: Callable[[], None] | None = None  # first, on the worker thread (slow clean-ups)
    cleanup: Callable[[], None] | None = None  # after a failure or a cancel: remove what was half made
    line_hook: Callable[[str], float | None] | None = None  # every output line; may return the step's done fraction
    log_path: Path | None = None  # every command and output line, for a bug report (the panel shows the tail)
    state: str = RUNNING
    error: str = ""
    tail: list[str] = field(default_factory=list)
    _index: int = 0
    _detail: str = ""
    _fraction: float = 0.0
    _process: subprocess.Popen | None = None
    _cancel: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _thread: threading.Thread | None = None
    _began: float = field(default_factory=time.monotonic)
    _log_file: object = None

    def start(self) -> "CommandTask":
        self._thread = threading.Thread(target=self._run, name=f"talkbridge-{self.title}", daemon=True)
        self._thread.start()
        return self

    def wait(self, timeout_s: float | None = None) -> bool:
        """Block until the task ends (headless ``mode='BLOCKING'``); True when it did."""
        if self._thread is not None:
            self._thread.join(timeout_s)
        return self.state != RUNNING

    def cancel(self) -> None:
        """Stop at the next line or step; the running child is terminated now."""
        self._cancel.set()
        with self._lock:
            process = self._process
        if process is not None and process.poll() is None:
            process.terminate()

    def snapshot(self) -> Snapshot:
        with self._lock:
            step = self.steps[self._index].title if self._index < len(self.steps) else ""
            return Snapshot(self.title, self.state, step, self._index + self._fraction, len(self.steps), self._detail,
                            self.error, time.monotonic() - self._began)

    # ------------------------------------------------------------------------------ worker thread

    def _run(self) -> None:
        self._log_file = None
        if self.log_path is not None:
            try:
                self.log_path.parent.mkdir(parents=True, exist_ok=True)
                self._log_file = self.log_path.open("w", encoding="utf-8")
            except OSError as error:
                log.warning("%s: cannot write %s (%s)", self.title, self.log_path, error)
        try:
            self._steps()
        finally:
            if self._log_file is not None:
                self._log_file.close()

    def _write_log(self, line: str) -> None:
        if self._log_file is not None:
            self._log_file.write(line + "\n")
            self._log_file.flush()

    def _steps(self) -> None:
        try:
            if self.prepare is not None:
                self.prepare()
            for index, step in enumerate(self.steps):
                with self._lock:
                    self._index, self._fraction, self._detail = index, 0.0, ""
                if self._cancel.is_set():
                    break
                failure = self._run_step(step)
                if failure is not None:
                    if self._cancel.is_set():
                        break
                    self._end(FAILED, failure)
                    return
            if self._cancel.is_set():
                self._end(CANCELLED, f"{self.title} was cancelled; nothing it made is used")
                return
            if self.finish is not None:
                self.finish()
            with self._lock:
                self._index, self._fraction = len(self.steps), 0.0
            self._end(DONE, "")
        except Exception as error:  # noqa: BLE001 - a worker thread must report, never die silently
            log.exception("%s failed", self.title)
            self._end(FAILED, f"{self.title} failed: {error}")

    def _run_step(self, step: Step) -> str | None:
        """Run one step; None on success, else the message naming the step, its command and pip's error."""
        log.info("%s: %s", step.title, command_line(step.argv))
        self._write_log(f"== {step.title}: {command_line(step.argv)}")
        try:
            process = subprocess.Popen(
                list(step.argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                text=True, encoding="utf-8", errors="replace", env=child_environment(),
                creationflags=quiet_creation_flags(),
            )
        except OSError as error:
            return f"{step.title} could not start ({error}): {command_line(step.argv)}"
        with self._lock:
            self._process = process
        if self._cancel.is_set():  # cancelled between the check and the start
            process.terminate()
        assert process.stdout is not None
        for raw in process.stdout:
            line = raw.rstrip()
            if not line:
                continue
            self.tail = (self.tail + [line])[-TAIL_LINES:]
            self._write_log(line)
            with self._lock:
                self._detail = line[:160]
            fraction = self.line_hook(line) if self.line_hook is not None else None
            if fraction is not None:
                with self._lock:
                    self._fraction = max(0.0, min(0.999, fraction))
        code = process.wait()
        with self._lock:
            self._process = None
        if code == 0:
            return None
        where = f"\nfull output: {self.log_path}" if self._log_file is not None else ""
        return f"{step.title} failed (exit code {code}): {command_line(step.argv)}\n{failed_line(self.tail)}{where}"

    def _end(self, state: str, error: str) -> None:
        if state != DONE and self.cleanup is not None:
            try:
                self.cleanup()
            except Exception as cleanup_error:  # noqa: BLE001 - the first error is the one to show
                log.warning("%s: could not clean up (%s)", self.title, cleanup_error)
        with self._lock:
            self.state, self.error = state, error
        if error:
            log.warning("%s", error)


def failed_line(tail: list[str]) -> str:
    """pip's own explanation from the output's tail: its ERROR lines, else the last lines."""
    errors = [line for line in tail if line.startswith("ERROR:") or "Error:" in line]
    return "\n".join(errors[-3:] if errors else tail[-3:])


_PROGRESS_LINE = re.compile(r"^progress (\S+) (\d+) (\d+)$")


def models_line_progress(line: str) -> float | None:
    """The done fraction from a ``talkbridge models download --progress-lines`` line (None for other lines)."""
    match = _PROGRESS_LINE.match(line)
    if match is None:
        return None
    done, total = int(match.group(2)), int(match.group(3))
    return done / total if total else None


# ---------------------------------------------------------------------------------- Install Engine


def remove_env(env: Path) -> None:
    """Delete the private environment (its marker goes first, so a half-deleted env is never used)."""
    marker = env / "talkbridge-engine.json"
    if marker.exists():
        marker.unlink()
    if env.exists():
        shutil.rmtree(env, ignore_errors=True)
    if env.exists():
        raise OSError(f"could not delete every file in {env} (in use? close the sidecar and try again)")


def install_task(
    env: Path,
    base_python: str,
    wheel: Path,
    version: str,
    engines: list[str] | tuple[str, ...] = ("lite",),
    platform: str | None = None,
    nvidia_gpu: bool = False,
    extra_requirements: tuple[str, ...] = (),
) -> CommandTask:
    """The Install Engine task (not started): wipe ``env``, make it, install, check, then mark it complete."""
    if not wheel.is_file():
        raise FileNotFoundError(f"the extension's talkbridge wheel is missing: {wheel}")
    steps = install_steps(env, base_python, wheel, engines, platform, nvidia_gpu, extra_requirements)
    marker = env / "talkbridge-engine.json"
    if marker.exists():
        marker.unlink()  # at once: from this click on, the old env is no longer taken for a good one
    env.parent.mkdir(parents=True, exist_ok=True)
    chosen = tuple(extras_for(engines))

    def finish() -> None:
        write_marker(env, version, chosen, platform)

    # The old env (complete or not) is deleted on the worker thread, never mixed with the new one.
    return CommandTask("Install Engine", steps, finish=finish, prepare=lambda: remove_env(env), cleanup=lambda: remove_env(env),
                       log_path=env.parent / f"{env.name}-install.log")


__all__ = ["CANCELLED", "DONE", "FAILED", "RUNNING", "CommandTask", "Snapshot", "install_task", "models_line_progress", "remove_env"]
