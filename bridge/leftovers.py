"""Folders a killed sidecar or Ray actor left behind in the temp folder, removed at the next start.

Per-job folders hold uploaded inputs (audio, portraits), so they must not pile up after a SIGKILL or
a power cut; a server's worker folders hold its sockets. Each is named after the process that owns
it, so a folder whose process is gone is stale:

* ``talkbridge-job-<pid>-<random>``: a job's inputs in a sidecar worker process;
* ``talkbridge-worker-<pid>-<random>``: the sockets of a server's worker processes (``pid``: the server);
* ``talkbridge-ray-job-<pid>-<random>``: a job's inputs on a Ray actor.

The server calls :func:`sweep_stale_job_folders` once when it starts, and so does every Ray actor.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
import time

log = logging.getLogger(__name__)

FOLDER_PREFIXES = ("talkbridge-job-", "talkbridge-worker-", "talkbridge-ray-job-")
"""Every per-process temp folder talkbridge makes: the prefix, then the owner's pid and a dash."""
_OWNED_FOLDER = re.compile(r"^(?:talkbridge-job|talkbridge-worker|talkbridge-ray-job)-(\d+)-[A-Za-z0-9_]+$")
_OLD_JOB_FOLDER = re.compile(r"^talkbridge-job-[A-Za-z0-9_]+$")  # before folders carried a pid


def owned_folder_prefix(prefix: str) -> str:
    """``prefix`` plus this process's pid: what to pass to ``mkdtemp``/``TemporaryDirectory``."""
    if prefix not in FOLDER_PREFIXES:
        raise ValueError(f"{prefix!r} is not one of {FOLDER_PREFIXES}")
    return f"{prefix}{os.getpid()}-"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True


def sweep_stale_job_folders(root: str | None = None, older_than_s: float = 6 * 3600.0) -> list[str]:
    """Remove folders a killed server, worker or actor left in the temp folder.

    Folders named with a pid (:data:`FOLDER_PREFIXES`) go when process ``pid`` is gone; job folders
    without a pid (the older naming) when untouched for ``older_than_s``. Only this user's folders
    are touched. Returns the removed paths.
    """
    root = root or tempfile.gettempdir()
    removed: list[str] = []
    now = time.time()
    try:
        entries = list(os.scandir(root))
    except OSError:
        return removed
    for entry in entries:
        match = _OWNED_FOLDER.match(entry.name)
        if match is None and _OLD_JOB_FOLDER.match(entry.name) is None:
            continue
        try:
            if not entry.is_dir(follow_symlinks=False):
                continue
            info = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if hasattr(os, "getuid") and info.st_uid != os.getuid():
            continue
        stale = not _pid_alive(int(match.group(1))) if match is not None else now - info.st_mtime > older_than_s
        if stale:
            shutil.rmtree(entry.path, ignore_errors=True)
            removed.append(entry.path)
    if removed:
        log.info("removed %d folder(s) a stopped server, worker or actor left behind in %s", len(removed), root)
    return removed

