"""Writing outputs so that a final name never holds a half-written file.

Everything talkbridge writes goes to a temporary file in the destination folder and is renamed into
place only after it is complete; an existing output is kept unless the caller allows overwriting.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator

from talkbridge.core.errors import InputError


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


@contextlib.contextmanager
def atomic_output(path: str | Path, overwrite: bool = False, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` only if the block succeeds.

    On any exception (including KeyboardInterrupt) the temporary file is removed and the previous
    file at ``path``, if any, is untouched. ``suffix`` defaults to the target's, since some writers
    (ffmpeg, numpy) choose the format from the extension.
    """
    path = check_writable_target(path, overwrite)
    extension = suffix if suffix is not None else path.suffix
    handle, temp_name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".partial{extension}", dir=path.parent)
    os.close(handle)
    temp = Path(temp_name)
    os.chmod(temp, 0o666 & ~_current_umask())  # mkstemp makes 0600; outputs get the usual permissions
    try:
        yield temp
        if path.exists() and not overwrite:
            raise InputError("appeared while writing; pass --overwrite to replace it", path)
        os.replace(temp, path)
    finally:
        if temp.exists():
            temp.unlink()
