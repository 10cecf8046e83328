"""The wire format on its own: round trips, signatures, schema and size checks, address policy."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from talkbridge.bridge import protocol as p


PREAMBLE = p.MAGIC + bytes([p.PROTOCOL_VERSION])


def _frames(kind: str, job_id: str | None = "job-1", body: dict | None = None, buffers: list | None = None, raw=()) -> list[bytes]:
    header = {"type": kind, "msg_id": "m1", "job_id": job_id, "seq": 0, "buffers": buffers or [], "body": body or {}}
    return [p.MAGIC + bytes([p.PROTOCOL_VERSION]), json.dumps(header).encode(), *raw]


def test_chunk_round_trip_keeps_arrays_exact_and_zero_copy():
    pose = np.random.default_rng(0).normal(size=(7, 6)).astype(np.float32)
    frames_in = np.arange(7 * 4 * 4 * 3, dtype=np.uint8).reshape(7, 4, 4, 3)
    message = p.Message(p.CHUNK, "job-1", {"start": 14, "n_frames": 7}, {"pose": pose, "blink": pose[:, 0].copy(), "frames": frames_in})
    wire = p.encode(message, key=b"k" * 32)
    assert wire[4] is not None and np.shares_memory(wire[4], frames_in)  # the array itself goes on the wire
    decoded = p.decode([bytes(f) for f in wire], key=b"k" * 32)
    assert decoded.type == p.CHUNK and decoded.job_id == "job-1" and decoded.body == {"start": 14, "n_frames": 7}
    assert np.array_equal(decoded.buffers["pose"], pose) and decoded.buffers["pose"].dtype == np.float32
    assert np.array_equal(decoded.buffers["frames"], frames_in)


def test_big_endian_arrays_arrive_little_endian_with_the_same_values():
    pose = np.arange(12, dtype=">f4").reshape(2, 6)
    decoded = p.decode(p.encode(p.Message(p.CHUNK, "j", {"start": 0, "n_frames": 2}, {"pose": pose, "blink": np.zeros(2, np.float32)})))
    assert np.array_equal(decoded.buffers["pose"], pose.astype("<f4"))


def test_signature_covers_header_and_every_buffer():
    key = b"s" * 32
    message = p.Message(p.SUBMIT, "job-1", {"engine": "lite"}, {"audio": np.frombuffer(b"RIFF....", np.uint8)})
    wire = [bytes(f) for f in p.encode(message, key)]
    assert p.decode(wire, key).type == p.SUBMIT
    tampered_buffer = wire[:2] + [b"RIFX...."]
    tampered_header = [wire[0], wire[1].replace(b"lite", b"lute"), wire[2]]
    for frames in (tampered_buffer, tampered_header, [p.MAGIC + bytes([p.PROTOCOL_VERSION]), *wire[1:]]):
        with pytest.raises(p.ProtocolError) as caught:
            p.decode(frames, key)
        assert caught.value.code == p.E_BAD_SIGNATURE
    with pytest.raises(p.ProtocolError, match="signature"):
        p.decode(wire, b"t" * 32)


@pytest.mark.parametrize(
    "frames, code, words",
    [
        ([PREAMBLE], p.E_BAD_MESSAGE, "at least"),
        ([b"XXXX" + bytes([p.PROTOCOL_VERSION]), b"{}"], p.E_BAD_MESSAGE, "magic"),
        ([b"TBRG\x09", b"{}"], p.E_UNSUPPORTED_VERSION, "version 9"),
        ([b"TBRG\x01", b"{}"], p.E_UNSUPPORTED_VERSION, "version 1"),  # facts came with `done` then
        ([PREAMBLE, b"\xff\xfe"], p.E_BAD_MESSAGE, "JSON"),
        ([PREAMBLE, b"[" * 5000 + b"]" * 5000], p.E_BAD_MESSAGE, "recursion"),
        ([PREAMBLE, b"[1, 2]"], p.E_BAD_MESSAGE, "JSON object"),
        (_frames("launch"), p.E_BAD_MESSAGE, "unknown message type"),
        (_frames(p.SUBMIT, job_id=None, body={"engine": "lite"}), p.E_BAD_MESSAGE, "job_id"),
        (_frames(p.SUBMIT, job_id="../../etc", body={"engine": "lite"}), p.E_BAD_MESSAGE, "job_id"),
        (_frames(p.SUBMIT, body={}), p.E_BAD_MESSAGE, "'engine'"),
        (_frames(p.SUBMIT, body={"engine": 3}), p.E_BAD_MESSAGE, "wrong type"),
        (_frames(p.SUBMIT, body={"engine": "lite", "rm": "-rf"}), p.E_BAD_MESSAGE, "unknown field"),
        (_frames(p.CREDIT, body={"consumed": True}), p.E_BAD_MESSAGE, "wrong type"),
        (_frames(p.CREDIT, body={"consumed": -5}), p.E_BAD_MESSAGE, "credit.consumed"),
        (_frames(p.CREDIT, body={"n": 1}), p.E_BAD_MESSAGE, "unknown field"),
        (_frames(p.HELLO, None, {"versions": ["1"]}), p.E_BAD_MESSAGE, "versions"),
        ([PREAMBLE, b'{"type": "ping", "msg_id": "m", "job_id": null, "seq": 0, "buffers": [], "body": {"t": NaN}}'], p.E_BAD_MESSAGE, "NaN"),
        ([PREAMBLE, b'{"type": "ping", "msg_id": "m", "job_id": null, "seq": 0, "buffers": [], "body": {"t": 1e999}}'], p.E_BAD_MESSAGE, "out of range"),
    ],
)
def test_malformed_messages_are_refused_with_a_code(frames, code, words):
    with pytest.raises(p.ProtocolError, match=words) as caught:
        p.decode(frames)
    assert caught.value.code == code


def test_lying_and_oversized_buffer_tables_are_refused_before_allocation():
    submit = {"engine": "lite"}
    lying = _frames(p.SUBMIT, body=submit, buffers=[{"name": "audio", "dtype": "uint8", "shape": [1000]}], raw=[b"x" * 10])
    with pytest.raises(p.ProtocolError, match="carries 10"):
        p.decode(lying)
    huge = _frames(p.SUBMIT, body=submit, buffers=[{"name": "audio", "dtype": "uint8", "shape": [2**50]}], raw=[b"x"])
    with pytest.raises(p.ProtocolError) as caught:
        p.decode(huge)
    assert caught.value.code == p.E_TOO_LARGE
    small = p.Limits(max_buffer_bytes=100)
    over = _frames(p.SUBMIT, body=submit, buffers=[{"name": "audio", "dtype": "uint8", "shape": [101]}], raw=[b"x" * 101])
    with pytest.raises(p.ProtocolError, match="at most 100"):
        p.decode(over, limits=small)
    wrong_dtype = _frames(p.SUBMIT, body=submit, buffers=[{"name": "audio", "dtype": "object", "shape": [1]}], raw=[b"x"])
    with pytest.raises(p.ProtocolError, match="dtype"):
        p.decode(wrong_dtype)
    not_allowed_here = _frames(p.CANCEL, buffers=[{"name": "audio", "dtype": "uint8", "shape": [1]}], raw=[b"x"])
    with pytest.raises(p.ProtocolError, match="cannot carry"):
        p.decode(not_allowed_here)
    missing_frame = _frames(p.SUBMIT, body=submit, buffers=[{"name": "audio", "dtype": "uint8", "shape": [1]}])
    with pytest.raises(p.ProtocolError, match="1 buffers but 0 frames"):
        p.decode(missing_frame)


def test_encode_refuses_object_arrays_so_nothing_is_ever_pickled():
    with pytest.raises(ValueError, match="dtype object"):
        p.encode(p.Message(p.SUBMIT, "j", {"engine": "lite"}, {"audio": np.array([{"a": 1}], dtype=object)}))


@pytest.mark.parametrize(
    "address, local",
    [
        ("tcp://127.0.0.1:5555", True),
        ("tcp://127.3.0.9:5555", True),
        ("tcp://localhost:5555", True),
        ("tcp://[::1]:5555", True),
        ("ipc:///tmp/talkbridge.sock", True),
        ("tcp://0.0.0.0:5555", False),
        ("tcp://*:5555", False),
        ("tcp://eth0:5555", False),
        ("tcp://192.168.1.20:5555", False),
        ("tcp://127.0.0.1;10.0.0.1:5555", False),
        ("tcp://127.0.0.1.evil.example:5555", False),
        ("udp://127.0.0.1:5555", False),
    ],
)
def test_only_loopback_and_ipc_count_as_local(address, local):
    assert p.is_local_address(address) is local


def test_version_negotiation_picks_the_highest_common_version():
    assert p.choose_version([1, 2, 7]) == 2
    assert p.choose_version([1]) is None  # version 1 sent the job facts with `done`: refused, not misread
    assert p.choose_version([7, 8]) is None


def test_importing_the_client_does_not_import_torch():
    code = "import sys, talkbridge.bridge.client; heavy = sorted(m for m in ('torch', 'librosa', 'cv2', 'scipy') if m in sys.modules); print(heavy)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_nothing_in_the_bridge_can_unpickle():
    from pathlib import Path

    import talkbridge.bridge

    folder = Path(talkbridge.bridge.__file__).parent
    risky = ("import pickle", "from pickle", "recv_pyobj", "send_pyobj", "recv_serialized", "allow_pickle=True", "marshal")
    found = [(path.name, word) for path in folder.glob("*.py") for word in risky if word in path.read_text()]
    assert found == []
