"""The sidecar's wire format: one place that says what a valid message is.

Every message is a ZeroMQ multipart::

    [identity]  (added/removed by the ROUTER socket, never seen by this module)
    preamble    MAGIC (4 bytes) + wire version (1 byte) + HMAC-SHA256 digest (32 bytes, or none
                when the peers share no signing key)
    header      UTF-8 JSON object: type, msg_id, job_id, seq, buffers (name, dtype, shape), body
    buffers...  one raw frame per array in the header's buffer table, in table order

Arrays travel as their raw little-endian bytes (zero-copy on both ends), never pickled, and the
header is checked against a per-type schema. Every size limit is checked from the header and the
frame lengths *before* any array is built, so a hostile peer cannot make us allocate what it claims.
docs/protocol.md is the prose version of this module.

Only numpy and the standard library are imported here: the Blender-side client depends on it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import re
import uuid
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np

from talkbridge.core.errors import TalkbridgeError
from talkbridge.core.motion import CHANNELS

MAGIC = b"TBRG"
PROTOCOL_VERSION = 2
SUPPORTED_VERSIONS: tuple[int, ...] = (2,)
"""Version 2: a job's facts come once, in ``info`` before its first chunk (version 1 sent them with
``done``). A version 1 peer is refused at ``hello`` with ``unsupported_version``."""
DIGEST_SIZE = hashlib.sha256().digest_size
PREAMBLE_SIZE = len(MAGIC) + 1

DEFAULT_ADDRESS = "tcp://127.0.0.1:5555"

# Message types. Client -> server: hello, submit, cancel, credit, ping.
# Server -> client: welcome, accepted, progress, info, chunk, done, error, cancelled, pong.
# A worker process speaks the server's part to its server (bridge/workers.py).
HELLO, WELCOME = "hello", "welcome"
SUBMIT, ACCEPTED, PROGRESS, INFO, CHUNK, DONE = "submit", "accepted", "progress", "info", "chunk", "done"
ERROR, CANCEL, CANCELLED, CREDIT = "error", "cancel", "cancelled", "credit"
PING, PONG = "ping", "pong"

CLIENT_TYPES = frozenset({HELLO, SUBMIT, CANCEL, CREDIT, PING})
SERVER_TYPES = frozenset({WELCOME, ACCEPTED, PROGRESS, INFO, CHUNK, DONE, ERROR, CANCELLED, PONG})
TERMINAL_TYPES = frozenset({DONE, ERROR, CANCELLED})
"""After one of these the server sends nothing more for that job."""

# Error codes carried by `error` messages (body.code).
E_BAD_MESSAGE = "bad_message"
E_BAD_SIGNATURE = "bad_signature"
E_UNSUPPORTED_VERSION = "unsupported_version"
E_TOO_LARGE = "too_large"
E_BAD_INPUT = "bad_input"
E_UNKNOWN_ENGINE = "unknown_engine"
E_ENGINE_FAILED = "engine_failed"
E_BUSY = "busy"
E_JOB_ID_IN_USE = "job_id_in_use"
E_STALLED = "stalled"
E_SERVER_LOST = "server_lost"
E_NO_ANSWER = "no_answer"
E_SHUTTING_DOWN = "shutting_down"
E_WORKER_LOST = "worker_lost"

ALLOWED_DTYPES = frozenset({"uint8", "int16", "int32", "int64", "float16", "float32", "float64"})
MAX_NDIM = 4
_ID_PATTERN = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


class BridgeError(TalkbridgeError):
    """Anything that goes wrong between a client and the sidecar, with a message worth showing."""


class ProtocolError(BridgeError):
    """A message that breaks the protocol. ``code`` is the error code the peer is told."""

    def __init__(self, code: str, message: str, job_id: str | None = None) -> None:
        self.code = code
        self.job_id = job_id
        super().__init__(message)


@dataclass(frozen=True)
class Limits:
    """Upper bounds one side accepts from its peer; checked before anything is allocated."""

    max_header_bytes: int = 64 * 1024
    max_buffers: int = 16
    max_buffer_bytes: int = 512 * 1024 * 1024
    max_message_bytes: int = 1024 * 1024 * 1024

    @classmethod
    def for_server(cls, max_input_bytes: int = 256 * 1024 * 1024) -> "Limits":
        """What a server takes from clients: inputs (audio and image files) up to ``max_input_bytes``."""
        return cls(max_buffer_bytes=max_input_bytes, max_message_bytes=2 * max_input_bytes)

    @property
    def socket_max_frame_bytes(self) -> int:
        """The ``MAXMSGSIZE`` for a socket that applies these limits.

        libzmq drops a peer silently when one frame exceeds ``MAXMSGSIZE``, so the socket limit is set
        to what no valid message can exceed (a whole message plus its header): anything between the
        announced buffer limit and that is received and answered ``too_large`` by :func:`decode`.
        """
        return self.max_message_bytes + self.max_header_bytes

    @classmethod
    def from_dict(cls, values: Any) -> "Limits":
        """The limits a peer announced (``welcome.limits``); missing or odd fields keep the defaults."""
        known = {}
        if isinstance(values, dict):
            for name in ("max_header_bytes", "max_buffers", "max_buffer_bytes", "max_message_bytes"):
                value = values.get(name)
                if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                    known[name] = value
        return cls(**known)

    def check_outgoing(self, message: "Message") -> None:
        """Raise ``too_large`` when the peer that announced these limits would refuse ``message``.

        Lets a client fail at once, before sending hundreds of megabytes the server will not take.
        """
        if len(message.buffers) > self.max_buffers:
            raise ProtocolError(E_TOO_LARGE, f"{len(message.buffers)} buffers, the server takes at most {self.max_buffers}", message.job_id)
        total = 0
        for name, value in message.buffers.items():
            nbytes = int(np.asarray(value).nbytes)
            if nbytes > self.max_buffer_bytes:
                raise ProtocolError(
                    E_TOO_LARGE,
                    f"the {name} input is {nbytes} bytes; the server takes at most {self.max_buffer_bytes} bytes per input",
                    message.job_id,
                )
            total += nbytes
        if total > self.max_message_bytes:
            raise ProtocolError(
                E_TOO_LARGE, f"the inputs add up to {total} bytes; the server takes at most {self.max_message_bytes} per job", message.job_id
            )

    def as_dict(self) -> dict[str, int]:
        return {
            "max_header_bytes": self.max_header_bytes,
            "max_buffers": self.max_buffers,
            "max_buffer_bytes": self.max_buffer_bytes,
            "max_message_bytes": self.max_message_bytes,
        }


DEFAULT_LIMITS = Limits()
"""What a client accepts from a server (frames of a long chunk can be large)."""


def new_id() -> str:
    """A fresh random id for a message or a job (32 hex digits)."""
    return uuid.uuid4().hex


@dataclass
class Message:
    """One protocol message as both ends handle it; ``buffers`` are numpy arrays or raw bytes."""

    type: str
    job_id: str | None = None
    body: dict[str, Any] = field(default_factory=dict)
    buffers: dict[str, Any] = field(default_factory=dict)
    seq: int = 0
    msg_id: str = field(default_factory=new_id)

    def array(self, name: str) -> np.ndarray | None:
        """The named buffer as an array, or None when the message does not carry it."""
        value = self.buffers.get(name)
        return None if value is None else np.asarray(value)


# ----------------------------------------------------------------------------------------------
# Schema: for each type, the body fields (name -> (accepted JSON types, required)) and the buffers
# it may carry (name -> (dtypes, allowed ndims)). Unknown body fields are refused too, so a typo in
# a client shows up as an error rather than as a silently ignored option.

_NUM = (int, float)
_BODY_SCHEMAS: dict[str, dict[str, tuple[tuple[type, ...], bool]]] = {
    HELLO: {"versions": ((list,), True), "client": ((str,), False)},
    WELCOME: {
        "version": ((int,), True),
        "server": ((str,), True),
        "capabilities": ((dict,), True),
        "heartbeat_s": (_NUM, True),
        "limits": ((dict,), True),
    },
    SUBMIT: {
        "engine": ((str,), True),
        "options": ((dict,), False),
        "credit": ((int,), False),
        "render_size": ((int, type(None)), False),
        "audio_name": ((str,), False),
        "image_name": ((str,), False),
        "ref_eyeblink_name": ((str,), False),
        "ref_pose_name": ((str,), False),
    },
    ACCEPTED: {"position": ((int,), True), "duplicate": ((bool,), False), "state": ((str,), False)},
    PROGRESS: {"stage": ((str,), True), "frames_done": ((int,), False), "device": ((str,), False)},
    INFO: {  # the job's facts (core.jobs.steps.JobInfo), once, before its first chunk
        "engine": ((str,), True),
        "engine_version": ((str,), True),
        "n_frames": ((int,), True),
        "expression_scale": (_NUM, True),
        "fps": ((int,), True),
        "first_frame": ((list, type(None)), True),
        "frame_size": ((list, type(None)), True),
        "metadata": ((dict,), True),
    },
    CHUNK: {"start": ((int,), True), "n_frames": ((int,), True)},
    DONE: {"n_frames": ((int,), True), "n_chunks": ((int,), True)},
    ERROR: {"code": ((str,), True), "retryable": ((bool,), True), "message": ((str,), True)},
    CANCEL: {},
    CANCELLED: {"already": ((bool,), False), "reason": ((str,), False)},
    CREDIT: {"consumed": ((int,), True)},
    PING: {"t": (_NUM, False)},
    PONG: {"t": (_NUM, False)},
}

_JOB_TYPES = frozenset({SUBMIT, ACCEPTED, PROGRESS, INFO, CHUNK, DONE, CANCEL, CANCELLED, CREDIT})
"""Types that must name a job (``error`` may or may not)."""

_FLOATS = ("float32",)
_BUFFER_SCHEMAS: dict[str, dict[str, tuple[tuple[str, ...], tuple[int, ...]]]] = {
    SUBMIT: {
        "audio": (("uint8",), (1,)),  # the bytes of an audio file (wav, mp3, flac, ...)
        "audio_pcm": (_FLOATS, (1,)),  # or 16 kHz mono float32 samples
        "image": (("uint8",), (1,)),  # the bytes of an image file
        "first_frame": (_FLOATS, (1,)),  # a 73-row (or 70-row) 3DMM first frame
        "ref_eyeblink": (("uint8",), (1,)),  # SadTalker references: the bytes of a video or a .mat
        "ref_pose": (("uint8",), (1,)),
    },
    CHUNK: {
        # every motion channel of the contract, (frames, *frame shape) float32, then the video frames
        **{channel.name: (_FLOATS, (1 + len(channel.frame_shape),)) for channel in CHANNELS},
        "frames": (("uint8",), (4,)),
    },
}


def valid_id(value: Any) -> bool:
    """Whether ``value`` may be used as a msg_id or job_id."""
    return isinstance(value, str) and _ID_PATTERN.match(value) is not None


def _check_id(value: Any, what: str) -> None:
    if not valid_id(value):
        raise ProtocolError(E_BAD_MESSAGE, f"{what} must be 1-64 characters of [A-Za-z0-9_.:-]")


def _check_int(value: Any, what: str, low: int = 0, high: int = 2**53) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ProtocolError(E_BAD_MESSAGE, f"{what} must be an integer in [{low}, {high}]")
    return value


def validate_header(header: Any) -> None:
    """Raise :class:`ProtocolError` unless ``header`` follows the schema of its type."""
    if not isinstance(header, dict):
        raise ProtocolError(E_BAD_MESSAGE, "the header must be a JSON object")
    expected = {"type", "msg_id", "job_id", "seq", "buffers", "body"}
    if set(header) != expected:
        raise ProtocolError(E_BAD_MESSAGE, f"the header must have exactly the keys {sorted(expected)}")
    kind = header["type"]
    if not isinstance(kind, str) or kind not in _BODY_SCHEMAS:
        raise ProtocolError(E_BAD_MESSAGE, f"unknown message type {str(kind)[:40]!r}")
    _check_id(header["msg_id"], "msg_id")
    job_id = header["job_id"]
    if job_id is not None:
        _check_id(job_id, "job_id")
    elif kind in _JOB_TYPES:
        raise ProtocolError(E_BAD_MESSAGE, f"a {kind} message must carry a job_id")
    _check_int(header["seq"], "seq")
    body = header["body"]
    if not isinstance(body, dict):
        raise ProtocolError(E_BAD_MESSAGE, "body must be a JSON object", job_id)
    schema = _BODY_SCHEMAS[kind]
    for name, value in body.items():
        if name not in schema:
            raise ProtocolError(E_BAD_MESSAGE, f"unknown field {str(name)[:40]!r} in a {kind} message", job_id)
        types, _ = schema[name]
        if isinstance(value, bool) and bool not in types:
            raise ProtocolError(E_BAD_MESSAGE, f"field {name!r} of {kind} has the wrong type", job_id)
        if not isinstance(value, types):
            raise ProtocolError(E_BAD_MESSAGE, f"field {name!r} of {kind} has the wrong type", job_id)
    for name, (_, required) in schema.items():
        if required and name not in body:
            raise ProtocolError(E_BAD_MESSAGE, f"a {kind} message needs the field {name!r}", job_id)
    if kind == HELLO and not all(isinstance(v, int) and not isinstance(v, bool) for v in body["versions"]):
        raise ProtocolError(E_BAD_MESSAGE, "hello.versions must be a list of integers")
    if kind == CREDIT:
        _check_int(body["consumed"], "credit.consumed")
    if kind == SUBMIT and "credit" in body:
        _check_int(body["credit"], "submit.credit", 1, 1_000_000)
    table = header["buffers"]
    if not isinstance(table, list):
        raise ProtocolError(E_BAD_MESSAGE, "buffers must be a list", job_id)


@dataclass(frozen=True)
class BufferSpec:
    name: str
    dtype: np.dtype
    shape: tuple[int, ...]
    nbytes: int


def _buffer_specs(header: dict, limits: Limits) -> list[BufferSpec]:
    """Check the buffer table against the type's schema and the limits; nothing is allocated."""
    kind, job_id = header["type"], header["job_id"]
    allowed = _BUFFER_SCHEMAS.get(kind, {})
    table = header["buffers"]
    if len(table) > limits.max_buffers:
        raise ProtocolError(E_TOO_LARGE, f"{len(table)} buffers, at most {limits.max_buffers}", job_id)
    specs: list[BufferSpec] = []
    seen: set[str] = set()
    total = 0
    for entry in table:
        if not isinstance(entry, dict) or set(entry) != {"name", "dtype", "shape"}:
            raise ProtocolError(E_BAD_MESSAGE, "each buffer entry needs exactly name, dtype, shape", job_id)
        name, dtype, shape = entry["name"], entry["dtype"], entry["shape"]
        if not isinstance(name, str) or name not in allowed:
            raise ProtocolError(E_BAD_MESSAGE, f"a {kind} message cannot carry a buffer {str(name)[:40]!r}", job_id)
        if name in seen:
            raise ProtocolError(E_BAD_MESSAGE, f"buffer {name!r} appears twice", job_id)
        seen.add(name)
        dtypes, ndims = allowed[name]
        if not isinstance(dtype, str) or dtype not in ALLOWED_DTYPES or dtype not in dtypes:
            raise ProtocolError(E_BAD_MESSAGE, f"buffer {name!r} must have dtype {' or '.join(dtypes)}", job_id)
        if not isinstance(shape, list) or len(shape) not in ndims or len(shape) > MAX_NDIM:
            raise ProtocolError(E_BAD_MESSAGE, f"buffer {name!r} must have {ndims} dimension(s)", job_id)
        for dim in shape:
            _check_int(dim, f"a dimension of buffer {name!r}")
        itemsize = np.dtype(dtype).itemsize
        nbytes = math.prod(shape) * itemsize  # exact Python integers: no overflow
        if nbytes > limits.max_buffer_bytes:
            raise ProtocolError(
                E_TOO_LARGE, f"buffer {name!r} would be {nbytes} bytes, at most {limits.max_buffer_bytes}", job_id
            )
        total += nbytes
        if total > limits.max_message_bytes:
            raise ProtocolError(E_TOO_LARGE, f"message over {limits.max_message_bytes} bytes", job_id)
        specs.append(BufferSpec(name, np.dtype(dtype).newbyteorder("<"), tuple(shape), nbytes))
    return specs


# ----------------------------------------------------------------------------------------------
# Signing


def _as_bytes_view(part: Any) -> memoryview:
    view = part.buffer if hasattr(part, "buffer") else memoryview(part)
    return view.cast("B") if view.format != "B" or view.ndim != 1 else view


def signature(key: bytes | None, header: bytes | memoryview, buffers: Sequence[Any]) -> bytes:
    """HMAC-SHA256 over the header bytes and then every buffer frame, in order (empty without a key)."""
    if not key:
        return b""
    mac = hmac.new(key, digestmod=hashlib.sha256)
    mac.update(header)
    for part in buffers:
        mac.update(_as_bytes_view(part))
    return mac.digest()


# ----------------------------------------------------------------------------------------------
# Encoding and decoding


def _wire_array(value: Any, name: str) -> np.ndarray:
    array = np.ascontiguousarray(value)
    dtype_name = array.dtype.name
    if dtype_name not in ALLOWED_DTYPES:
        raise ValueError(f"buffer {name!r} has dtype {dtype_name}; allowed: {sorted(ALLOWED_DTYPES)}")
    if array.dtype.byteorder == ">":
        array = array.astype(array.dtype.newbyteorder("<"))
    return array


def encode(message: Message, key: bytes | None = None, version: int = PROTOCOL_VERSION) -> list[Any]:
    """The frames of ``message``: preamble, header, then the arrays themselves (not copied)."""
    arrays = [(name, _wire_array(value, name)) for name, value in message.buffers.items()]
    header = {
        "type": message.type,
        "msg_id": message.msg_id,
        "job_id": message.job_id,
        "seq": int(message.seq),
        "buffers": [{"name": n, "dtype": a.dtype.name, "shape": list(a.shape)} for n, a in arrays],
        "body": message.body,
    }
    header_bytes = json.dumps(header, separators=(",", ":"), allow_nan=False).encode("utf-8")
    frames: list[Any] = [a if a.nbytes else b"" for _, a in arrays]
    preamble = MAGIC + bytes([version]) + signature(key, header_bytes, frames)
    return [preamble, header_bytes, *frames]


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:20]} is out of range")
    return value


def _frame_length(part: Any) -> int:
    if hasattr(part, "buffer"):
        return len(part.buffer)
    return memoryview(part).nbytes


def decode(frames: Sequence[Any], key: bytes | None = None, limits: Limits = DEFAULT_LIMITS) -> Message:
    """Parse and validate one multipart (identity already removed).

    ``frames`` are bytes or ``zmq.Frame`` s; arrays in the result are read-only views on the frames.
    Raises :class:`ProtocolError` with an error code for anything malformed, unsigned or too large.
    """
    if len(frames) < 2:
        raise ProtocolError(E_BAD_MESSAGE, "a message needs at least a preamble and a header")
    if len(frames) > 2 + limits.max_buffers:
        raise ProtocolError(E_TOO_LARGE, f"{len(frames)} frames, at most {2 + limits.max_buffers}")
    preamble = bytes(_as_bytes_view(frames[0])[: PREAMBLE_SIZE + DIGEST_SIZE + 1])
    if len(preamble) < PREAMBLE_SIZE or preamble[: len(MAGIC)] != MAGIC:
        raise ProtocolError(E_BAD_MESSAGE, "not a talkbridge message (bad magic)")
    version = preamble[len(MAGIC)]
    if version not in SUPPORTED_VERSIONS:
        raise ProtocolError(
            E_UNSUPPORTED_VERSION, f"wire version {version} is not supported (this side speaks {list(SUPPORTED_VERSIONS)})"
        )
    header_view = _as_bytes_view(frames[1])
    if header_view.nbytes > limits.max_header_bytes:
        raise ProtocolError(E_TOO_LARGE, f"header of {header_view.nbytes} bytes, at most {limits.max_header_bytes}")
    total = sum(_frame_length(part) for part in frames[2:])
    if total > limits.max_message_bytes:
        raise ProtocolError(E_TOO_LARGE, f"message of {total} bytes, at most {limits.max_message_bytes}")
    if key:
        expected = signature(key, header_view, frames[2:])
        if not hmac.compare_digest(preamble[PREAMBLE_SIZE:], expected):
            raise ProtocolError(E_BAD_SIGNATURE, "the message signature does not match (wrong or missing signing key)")
    try:
        header = json.loads(bytes(header_view).decode("utf-8"), parse_constant=_refuse_constant, parse_float=_finite_float)
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise ProtocolError(E_BAD_MESSAGE, f"the header is not valid UTF-8 JSON: {str(error)[:80]}") from None
    validate_header(header)
    specs = _buffer_specs(header, limits)
    if len(specs) != len(frames) - 2:
        raise ProtocolError(
            E_BAD_MESSAGE, f"the buffer table lists {len(specs)} buffers but {len(frames) - 2} frames came", header["job_id"]
        )
    buffers: dict[str, np.ndarray] = {}
    for spec, part in zip(specs, frames[2:]):
        length = _frame_length(part)
        if length != spec.nbytes:
            raise ProtocolError(
                E_BAD_MESSAGE,
                f"buffer {spec.name!r} declares {spec.shape} {spec.dtype.name} ({spec.nbytes} bytes) but carries {length}",
                header["job_id"],
            )
        raw = part.buffer if hasattr(part, "buffer") else part
        buffers[spec.name] = np.frombuffer(raw, dtype=spec.dtype).reshape(spec.shape) if length else np.zeros(
            spec.shape, spec.dtype
        )
    return Message(
        type=header["type"],
        job_id=header["job_id"],
        body=header["body"],
        buffers=buffers,
        seq=header["seq"],
        msg_id=header["msg_id"],
    )


def error_message(code: str, message: str, job_id: str | None = None, retryable: bool = False) -> Message:
    return Message(ERROR, job_id=job_id, body={"code": code, "retryable": retryable, "message": message[:2000]})


def choose_version(offered: Iterable[int]) -> int | None:
    """The highest wire version both sides speak, or None."""
    common = set(offered) & set(SUPPORTED_VERSIONS)
    return max(common) if common else None


# ----------------------------------------------------------------------------------------------
# Addresses


_LOOPBACK_HOSTS = {"localhost", "::1", "[::1]"}


def is_ipv6_address(address: str) -> bool:
    """True for a ``tcp://`` address whose host is an IPv6 literal (``tcp://[::1]:5555``, ``tcp://::1:5555``).

    libzmq refuses such an address unless the socket has ``IPV6`` enabled.
    """
    if not address.startswith("tcp://"):
        return False
    host = address[len("tcp://"):].rpartition(":")[0]
    return ":" in host or host.startswith("[")


def is_local_address(address: str) -> bool:
    """True for ``ipc://``/``inproc://`` and ``tcp://`` on a loopback host; false for anything else."""
    if address.startswith(("ipc://", "inproc://")):
        return True
    if not address.startswith("tcp://"):
        return False
    rest = address[len("tcp://"):]
    if ";" in rest:
        return False
    host, sep, port = rest.rpartition(":")
    if not sep or not host:
        return False
    if host in _LOOPBACK_HOSTS:
        return True
    parts = host.split(".")
    return len(parts) == 4 and parts[0] == "127" and all(p.isdigit() and int(p) < 256 for p in parts)
