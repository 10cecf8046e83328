"""Writing outputs so that a final name never holds a half-written file.

Everything talkbridge writes goes to a temporary file in the destination folder and is renamed into
place only after it is complete; an existing output is kept unless the caller allows overwriting.
Temporary files are hidden and named after their target, ``.<stem>.<8 random>.partial<suffix>``;
the writer of a target owns those names, so it first removes the ones a killed run left behind.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import tempfile
from pathlib import Path
from typing import Iterator

from talkbridge.core.errors import InputError

log = logging.getLogger(__name__)


def check_writable_target(path: str | Path, overwrite: bool) -> Path:
    """Fail early, before any work, if ``path`` exists (without overwrite) or its folder is unwritable."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise InputError("already exists; pass --overwrite to replace it", path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise InputError("output folder does not exist", folder)
    if not os.access(folder, os.W_OK):
        raise InputError("output folder is not writable", folder)
    return path


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def remove_stale_partials(path: Path, extension: str) -> list[Path]:
    """Remove hidden partial files of ``path`` (``.<stem>.<random>.partial<extension>``) that a
    killed run left; another target's partials never match (mkstemp's random part has no dot)."""
    pattern = re.compile(rf"^\.{re.escape(path.stem)}\.[a-z0-9_]{{8}}\.partial{re.escape(extension)}$")
    removed = []
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return removed
    for entry in entries:
        if pattern.match(entry.name) and entry.is_file(follow_symlinks=False):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
    if removed:
        log.info("removed %d partial file(s) of %s left by an interrupted run", len(removed), path)
    return removed


@contextlib.contextmanager
def atomic_output(path: str | Path, overwrite: bool = False, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` only if the block succeeds.

    On any exception (including KeyboardInterrupt) the temporary file is removed and the previous
    file at ``path``, if any, is untouched. ``suffix`` defaults to the target's, since some writers
    (ffmpeg, numpy) choose the format from the extension.
    """
    path = check_writable_target(path, overwrite)
    extension = suffix if suffix is not None else path.suffix
    remove_stale_partials(path, extension)
    handle, temp_name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".partial{extension}", dir=path.parent)
    os.close(handle)
    temp = Path(temp_name)
    os.chmod(temp, 0o666 & ~_current_umask())  # mkstemp makes 0600; outputs get the usual permissions
    try:
        try:
            yield temp
        except OSError as error:
            if error.errno is None or error.filename not in (None, str(temp)):
                raise
            # A write error (a full disk: ENOSPC, a quota, a file size limit) knows no file name;
            # the user needs the output's, not the hidden partial's.
            raise OSError(error.errno, error.strerror, str(path)) from error
        if path.exists() and not overwrite:
            raise InputError("appeared while writing; pass --overwrite to replace it", path)
        os.replace(temp, path)
    finally:
        if temp.exists():
            temp.unlink()
