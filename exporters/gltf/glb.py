"""Reading and writing the GLB container around a pygltflib document.

We serialise the JSON ourselves (pygltflib's ``to_json``) and frame the two chunks directly, so
that a large animation buffer is written in one pass and every write goes through
:func:`~talkbridge.exporters.atomic.atomic_output` (a crash never leaves a half-written head).
"""

from __future__ import annotations

import json
import struct
import warnings
from pathlib import Path

import pygltflib

from talkbridge.core.errors import InputError
from talkbridge.exporters.atomic import atomic_output
from talkbridge.exporters.gltf.integrity import check_document
from talkbridge.exporters.gltf.safety import check_file_size, read_uri

GLB_MAGIC = b"glTF"
CHUNK_JSON = 0x4E4F534A
CHUNK_BIN = 0x004E4942


def encode_glb(document: pygltflib.GLTF2, blob: bytes) -> bytes:
    """The GLB bytes for ``document`` whose buffer 0 is ``blob``."""
    for accessor in document.accessors:
        if accessor.bufferView is None:
            # pygltflib defaults byteOffset to 0; without a bufferView (Draco, all-zero sparse) glTF
            # forbids it ("'bufferView' must be defined").
            accessor.byteOffset = None
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


def _glb_chunks(raw: bytes, path: Path) -> tuple[bytes, bytes | None]:
    """The JSON chunk and the BIN chunk (if any) of a GLB, every length checked against the file."""
    if len(raw) < 20:
        raise InputError("truncated GLB file (shorter than its 12-byte header and a chunk header)", path)
    _, version, length = struct.unpack_from("<4sII", raw, 0)
    if version != 2:
        raise InputError(f"GLB container version {version} is not glTF 2.0", path)
    if length > len(raw):
        raise InputError(f"truncated GLB file: the header says {length} bytes, the file has {len(raw)}", path)
    chunks: list[tuple[int, bytes]] = []
    offset = 12
    while offset < length:
        if offset + 8 > length:
            raise InputError(f"malformed GLB: a chunk header at byte {offset} runs past the end of the file", path)
        chunk_length, chunk_type = struct.unpack_from("<II", raw, offset)
        if offset + 8 + chunk_length > length:
            raise InputError(
                f"malformed GLB: chunk {len(chunks)} at byte {offset} declares {chunk_length} bytes, "
                f"past the end of the file ({length} bytes)",
                path,
            )
        chunks.append((chunk_type, raw[offset + 8 : offset + 8 + chunk_length]))
        offset += 8 + chunk_length + ((-chunk_length) % 4)
    if not chunks or chunks[0][0] != CHUNK_JSON:
        raise InputError("malformed GLB: its first chunk is not the JSON chunk", path)
    blob = chunks[1][1] if len(chunks) > 1 and chunks[1][0] == CHUNK_BIN else None
    return chunks[0][1], blob


def read_gltf(path: str | Path) -> tuple[pygltflib.GLTF2, list[bytes]]:
    """Load a .glb or .gltf head and the bytes of each of its buffers, never modifying the file.

    Returns the document and, per buffer, its content (GLB chunk, data URI or a file in the head's
    folder; empty for an ``EXT_meshopt_compression`` fallback buffer, which has no bytes by design).
    Anything that is not sound glTF 2.0 is rejected with the reason, before any index is followed
    (see :mod:`~talkbridge.exporters.gltf.integrity`), and no file outside the head's folder is
    read (see :mod:`~talkbridge.exporters.gltf.safety`).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("head file not found", path)
    check_file_size(path)
    raw = path.read_bytes()
    blob: bytes | None = None
    if raw[:4] == GLB_MAGIC:
        text, blob = _glb_chunks(raw, path)
    else:
        text = raw
    try:
        content = json.loads(text.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(f"not a glTF file (.glb or .gltf JSON): {error}", path) from error
    except RecursionError:
        raise InputError("malformed glTF JSON: nested too deeply", path) from None
    if not isinstance(content, dict) or not isinstance(content.get("asset"), dict):
        raise InputError("not a glTF file: no 'asset' object", path)
    version = str(content["asset"].get("version", ""))
    if not version.startswith("2."):
        raise InputError(f"glTF version {version or '?'} is not supported; talkbridge reads glTF 2.0", path)
    check_document(content, path)
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


def is_fallback_buffer(buffer: pygltflib.Buffer) -> bool:
    """True for an EXT_meshopt_compression fallback buffer: only compressed views use it, so its bytes are never needed."""
    extension = (buffer.extensions or {}).get("EXT_meshopt_compression") if isinstance(buffer.extensions, dict) else None
    return isinstance(extension, dict) and extension.get("fallback") is True


def _buffer_bytes(buffer: pygltflib.Buffer, index: int, blob: bytes | None, path: Path) -> bytes:
    if is_fallback_buffer(buffer):
        return b""
    uri = buffer.uri
    if uri is None:
        if index != 0 or blob is None:
            raise InputError(
                f"buffer {index} has no URI, and only buffer 0 of a GLB may use the file's binary chunk", path
            )
        data = blob
    else:
        data = read_uri(uri, path.parent, f"buffer {index}", path)
    if len(data) < (buffer.byteLength or 0):
        raise InputError(f"buffer {index} has {len(data)} bytes, fewer than its declared byteLength {buffer.byteLength}", path)
    return data[: buffer.byteLength] if buffer.byteLength else data
