"""Reading and writing the GLB container around a pygltflib document.

We serialise the JSON ourselves (pygltflib's ``to_json``) and frame the two chunks directly, so
that a large animation buffer is written in one pass and every write goes through
:func:`~talkbridge.exporters.atomic.atomic_output` (a crash never leaves a half-written head).
"""

from __future__ import annotations

import base64
import json
import struct
import warnings
from pathlib import Path
from urllib.parse import unquote

import pygltflib

from talkbridge.core.errors import InputError
from talkbridge.exporters.atomic import atomic_output

GLB_MAGIC = b"glTF"
CHUNK_JSON = 0x4E4F534A
CHUNK_BIN = 0x004E4942


def encode_glb(document: pygltflib.GLTF2, blob: bytes) -> bytes:
    """The GLB bytes for ``document`` whose single buffer is ``blob``."""
    text = document.to_json(separators=(",", ":")).encode("utf-8")
    text += b" " * ((-len(text)) % 4)
    blob = blob + b"\0" * ((-len(blob)) % 4)
    total = 12 + 8 + len(text) + (8 + len(blob) if blob else 0)
    parts = [struct.pack("<4sII", GLB_MAGIC, 2, total), struct.pack("<II", len(text), CHUNK_JSON), text]
    if blob:
        parts += [struct.pack("<II", len(blob), CHUNK_BIN), blob]
    return b"".join(parts)


def write_glb(document: pygltflib.GLTF2, blob: bytes, path: str | Path, overwrite: bool = False) -> Path:
    """Write ``document`` + ``blob`` atomically as a GLB file."""
    path = Path(path)
    data = encode_glb(document, blob)
    with atomic_output(path, overwrite=overwrite) as temp:
        temp.write_bytes(data)
    return path


def read_gltf(path: str | Path) -> tuple[pygltflib.GLTF2, list[bytes]]:
    """Load a .glb or .gltf head and the bytes of each of its buffers, never modifying the file.

    Returns the document and, per buffer, its content (GLB chunk, data URI or the external file
    beside a .gltf). Anything that is not glTF 2.0 is rejected with the reason.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("head file not found", path)
    raw = path.read_bytes()
    blob: bytes | None = None
    if raw[:4] == GLB_MAGIC:
        if len(raw) < 20:
            raise InputError("truncated GLB file", path)
        _, version, length = struct.unpack_from("<4sII", raw, 0)
        if version != 2:
            raise InputError(f"GLB container version {version} is not glTF 2.0", path)
        offset = 12
        text = None
        while offset + 8 <= min(length, len(raw)):
            chunk_length, chunk_type = struct.unpack_from("<II", raw, offset)
            chunk = raw[offset + 8 : offset + 8 + chunk_length]
            if chunk_type == CHUNK_JSON and text is None:
                text = chunk
            elif chunk_type == CHUNK_BIN and blob is None:
                blob = chunk
            offset += 8 + chunk_length + ((-chunk_length) % 4)
        if text is None:
            raise InputError("GLB file has no JSON chunk", path)
    else:
        text = raw
    try:
        content = json.loads(text.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(f"not a glTF file (.glb or .gltf JSON): {error}", path) from error
    if not isinstance(content, dict) or not isinstance(content.get("asset"), dict):
        raise InputError("not a glTF file: no 'asset' object", path)
    version = str(content["asset"].get("version", ""))
    if not version.startswith("2."):
        raise InputError(f"glTF version {version or '?'} is not supported; talkbridge reads glTF 2.0", path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # dataclasses_json notes every absent optional field
            document = pygltflib.GLTF2.from_json(json.dumps(content), infer_missing=True)
    except Exception as error:  # pygltflib raises assorted types on malformed JSON
        raise InputError(f"malformed glTF JSON: {error}", path) from error
    buffers = []
    for index, buffer in enumerate(document.buffers):
        buffers.append(_buffer_bytes(buffer, index, blob, path))
    return document, buffers


def _buffer_bytes(buffer: pygltflib.Buffer, index: int, blob: bytes | None, path: Path) -> bytes:
    uri = buffer.uri
    if uri is None:
        if blob is None:
            raise InputError(f"buffer {index} has no URI and the file has no binary chunk", path)
        data = blob
    elif uri.startswith("data:"):
        try:
            data = base64.b64decode(uri.split(",", 1)[1])
        except (IndexError, ValueError) as error:
            raise InputError(f"buffer {index} has an unreadable data URI", path) from error
    else:
        external = path.parent / unquote(uri)
        if not external.is_file():
            raise InputError(f"buffer {index} refers to {uri!r}, which is not beside the head file", path)
        data = external.read_bytes()
    if len(data) < (buffer.byteLength or 0):
        raise InputError(f"buffer {index} is shorter than its declared byteLength", path)
    return data[: buffer.byteLength] if buffer.byteLength else data


def read_uri_bytes(uri: str, base: Path) -> bytes:
    """The bytes an image URI points at (a data URI or a file beside the glTF)."""
    if uri.startswith("data:"):
        return base64.b64decode(uri.split(",", 1)[1])
    return (base / unquote(uri)).read_bytes()
