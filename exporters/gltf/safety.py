"""What a head file may make talkbridge read: its own bytes, data URIs, and files in its own folder.

A head is often a file from the internet. Its URIs are the one way it can point at other files, so
every URI goes through :func:`read_uri`, which allows only a ``data:`` URI or a relative path that,
after percent-decoding and after symlinks are resolved, still lies inside the head's folder. Sizes
are capped before anything is read or decoded, so a head cannot make us allocate gigabytes by
declaring them. The caps are module constants (documented in docs/exporters.md); they are far above
a typical avatar (a few to a few tens of MB) and below what would hurt a farm node.

These are plain functions over paths and strings (no pygltflib), so anything that reads glTF
resources itself (the exporter, the reader, a future add-on path) can call them.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, unquote_to_bytes

from talkbridge.core.errors import InputError

MAX_HEAD_FILE_BYTES = 1 << 30
"""The largest .glb/.gltf file we open (1 GiB)."""
MAX_BUFFER_BYTES = 1 << 30
"""The largest byteLength a buffer may declare (1 GiB), fallback buffers included."""
MAX_DATA_URI_BYTES = 256 << 20
"""The largest payload a data: URI may carry once decoded (256 MiB)."""

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:")


def _quoted(uri: str) -> str:
    """A URI for an error line, cut short (a hostile file may make it megabytes long)."""
    text = repr(uri)
    return text if len(text) <= 80 else text[:77] + "..."


def check_file_size(path: Path, limit: int | None = None) -> int:
    """The size of ``path``, refusing files over ``limit`` (default :data:`MAX_HEAD_FILE_BYTES`) before they are read."""
    limit = MAX_HEAD_FILE_BYTES if limit is None else limit
    size = path.stat().st_size
    if size > limit:
        raise InputError(f"the file is {size} bytes, over talkbridge's limit of {limit} bytes for a head", path)
    return size


def _decode_data_uri(uri: str, what: str, head: Path, limit: int) -> bytes:
    header, comma, payload = uri.partition(",")
    if not comma:
        raise InputError(f"{what} has a data URI without a ',' before its data", head)
    # base64 turns 3 bytes into 4 characters: refuse oversized payloads before decoding them.
    if len(payload) * 3 // 4 > limit + 3:
        raise InputError(f"{what} has a data URI over the limit of {limit} bytes", head)
    if header.endswith(";base64"):
        try:
            data = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError) as error:
            raise InputError(f"{what} has a data URI whose base64 cannot be decoded: {error}", head) from error
    else:
        data = unquote_to_bytes(payload)
    if len(data) > limit:
        raise InputError(f"{what} has a data URI over the limit of {limit} bytes", head)
    return data


def resolve_relative_uri(uri: str, folder: Path, what: str, head: Path) -> Path:
    """The file a relative URI names, proven to lie inside ``folder`` after symlinks are resolved.

    Refused: any scheme (``file:``, ``http:``...), absolute paths (``/etc``, ``C:\\``, ``\\\\server``),
    ``..`` segments, backslashes and NUL, whether written plainly or %-encoded.
    """
    if _SCHEME.match(uri) and not _WINDOWS_DRIVE.match(uri):
        raise InputError(f"{what} has URI {_quoted(uri)}: only data: URIs and relative paths are allowed", head)
    decoded = unquote(uri)
    if "\0" in decoded or "\\" in decoded:
        raise InputError(f"{what} has URI {_quoted(uri)} with a backslash or NUL; glTF URIs use '/'", head)
    if decoded.startswith("/") or _WINDOWS_DRIVE.match(decoded) or _SCHEME.match(decoded):
        raise InputError(f"{what} has URI {_quoted(uri)}, an absolute path; a head may only name files in its own folder", head)
    relative = PurePosixPath(decoded)
    if ".." in relative.parts:
        raise InputError(f"{what} has URI {_quoted(uri)}, which leads out of the head's folder ('..')", head)
    root = folder.resolve()
    target = (root / relative).resolve()
    if target != root and root not in target.parents:
        raise InputError(f"{what} has URI {_quoted(uri)}, which resolves outside the head's folder (a symlink?)", head)
    return target


def read_uri(uri: str, folder: Path, what: str, head: Path, limit: int | None = None) -> bytes:
    """The bytes ``uri`` names: a data URI's payload or a file inside the head's ``folder``.

    ``what`` names the object in errors (``"buffer 1"``, ``"image 0"``); ``head`` is the file that
    holds the URI. Nothing outside ``folder`` is ever opened.
    """
    limit = MAX_BUFFER_BYTES if limit is None else limit
    if not isinstance(uri, str) or not uri:
        raise InputError(f"{what} has an empty or non-string URI", head)
    if uri.startswith("data:"):
        return _decode_data_uri(uri, what, head, min(limit, MAX_DATA_URI_BYTES))
    target = resolve_relative_uri(uri, folder, what, head)
    if not target.is_file():
        raise InputError(f"{what} refers to {_quoted(uri)}, which is not a file beside the head", head)
    size = os.stat(target).st_size
    if size > limit:
        raise InputError(f"{what} refers to {_quoted(uri)}, a file of {size} bytes, over the limit of {limit} bytes", head)
    return target.read_bytes()
