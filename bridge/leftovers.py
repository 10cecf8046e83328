"""Folders a killed sidecar left behind in the temp folder, found and removed at the next start.

Per-job folders hold uploaded inputs (audio, portraits), so they must not pile up after a SIGKILL or
a power cut. They are named ``talkbridge-job-<pid>-<random>``: a folder whose process is gone is
stale. The server calls :func:`sweep_stale_job_folders` once when it starts.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
import time

log = logging.getLogger(__name__)

_JOB_FOLDER = re.compile(r"^talkbridge-job-(?:(\d+)-[A-Za-z0-9_]+|[A-Za-z0-9_]+)$")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True


def sweep_stale_job_folders(root: str | None = None, older_than_s: float = 6 * 3600.0) -> list[str]:
    """Remove job folders a killed server left in the temp folder (they hold uploaded inputs).

    ``talkbridge-job-<pid>-<random>`` folders go when process ``pid`` is gone; folders without a pid
    (the older naming) when untouched for ``older_than_s``. Only this user's folders are touched.
    Returns the removed paths.
    """
    root = root or tempfile.gettempdir()
    removed: list[str] = []
    now = time.time()
    try:
        entries = list(os.scandir(root))
    except OSError:
        return removed
    for entry in entries:
        match = _JOB_FOLDER.match(entry.name)
        if match is None:
            continue
        try:
            if not entry.is_dir(follow_symlinks=False):
                continue
            info = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if hasattr(os, "getuid") and info.st_uid != os.getuid():
            continue
        pid = match.group(1)
        stale = not _pid_alive(int(pid)) if pid is not None else now - info.st_mtime > older_than_s
        if stale:
            shutil.rmtree(entry.path, ignore_errors=True)
            removed.append(entry.path)
    if removed:
        log.info("removed %d job folder(s) a stopped server left behind in %s", len(removed), root)
    return removed

