"""Hostile traffic: ten thousand malformed multiparts, then the sidecar must still say welcome."""

from __future__ import annotations

import json
import random
import time

import numpy as np
import pytest
import zmq

from talkbridge.bridge import protocol as p
from talkbridge.bridge.client import Client
from talkbridge.bridge.server import Server, ServerConfig
from talkbridge.bridge.synthetic import SyntheticRunner

pytestmark = pytest.mark.timeout(120)

N_MESSAGES = 10_000
PREAMBLE = p.MAGIC + bytes([p.PROTOCOL_VERSION])


def _valid_submit() -> list[bytes]:
    message = p.Message(p.SUBMIT, "fuzz-job", {"engine": "synthetic", "options": {"n_frames": 5}}, {"audio_pcm": np.zeros(8, np.float32)})
    return [bytes(f) for f in p.encode(message)]


def _random_json(rng: random.Random, depth: int = 0):
    choice = rng.randrange(8 if depth < 3 else 5)
    if choice == 0:
        return rng.randint(-(2**70), 2**70)
    if choice == 1:
        return rng.random() * 10 ** rng.randint(-5, 300)
    if choice == 2:
        return "".join(chr(rng.randrange(32, 0x2FFF)) for _ in range(rng.randrange(12)))
    if choice == 3:
        return rng.choice([None, True, False])
    if choice == 4:
        return rng.choice(["hello", "submit", "chunk", "uint8", "float32", "audio", "frames", "../x", ""])
    if choice == 5:
        return [_random_json(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {rng.choice(["type", "msg_id", "job_id", "seq", "buffers", "body", "name", "dtype", "shape", "n"]): _random_json(rng, depth + 1) for _ in range(rng.randrange(5))}


def _malformed(rng: random.Random, valid: list[bytes]) -> list[bytes]:
    """One multipart from a family of protocol violations."""
    header = json.loads(valid[1])
    family = rng.randrange(10)
    if family == 0:  # random frames
        return [rng.randbytes(rng.randrange(40)) for _ in range(rng.randrange(1, 5))]
    if family == 1:  # bad JSON, including the non-standard numbers Python would otherwise accept
        text = bytearray(valid[1])
        if rng.random() < 0.3:
            token = rng.choice([b"NaN", b"Infinity", b"-Infinity", b"1e999"])
            text = bytearray(bytes(text).replace(b'"n_frames":5', b'"n_frames":' + token))
            text = bytearray(bytes(text).replace(b'"seq":0', b'"seq":' + token))
        else:
            for _ in range(rng.randrange(1, 4)):
                text[rng.randrange(len(text))] = rng.randrange(256)
        return [PREAMBLE, bytes(text), valid[2]]
    if family == 2:  # wrong version or magic
        return [rng.choice([p.MAGIC + bytes([rng.randrange(2, 256)]), b"TBRX\x01", b"TBR", b""]), valid[1], valid[2]]
    if family == 3:  # unknown or server-only types
        header["type"] = rng.choice(["launch", "welcome", "chunk", "done", "pong", "error", "", "SUBMIT"])
    elif family == 4:  # lying shapes
        header["buffers"][0]["shape"] = [rng.choice([0, 1, 7, 2**31, 2**40, 3])]
    elif family == 5:  # oversized buffers claimed
        header["buffers"][0]["shape"] = [rng.randrange(2**29, 2**45)]
        header["buffers"][0]["dtype"] = rng.choice(["float32", "float64", "uint8"])
    elif family == 6:  # a field replaced by random JSON
        target = rng.choice(list(header))
        header[target] = _random_json(rng)
    elif family == 7:  # body fields of the wrong kind
        header["body"][rng.choice(["engine", "credit", "options", "render_size", "bogus"])] = _random_json(rng)
    elif family == 8:  # frame count mismatches
        return [PREAMBLE, valid[1], *([valid[2]] * rng.choice([0, 2, 3, 30]))]
    else:  # buffer table entries mangled
        header["buffers"] = [_random_json(rng) for _ in range(rng.randrange(1, 4))]
    return [PREAMBLE, json.dumps(header).encode(), valid[2]]


def _must_be_rejected(frames: list[bytes]) -> bool:
    """True when the protocol refuses ``frames`` (or they decode to a type clients may not send)."""
    try:
        message = p.decode(frames, None, p.Limits.for_server())
    except p.ProtocolError:
        return True
    return message.type not in p.CLIENT_TYPES


def test_ten_thousand_malformed_messages_then_a_valid_hello_is_welcomed():
    rng = random.Random(20261123)
    valid = _valid_submit()
    runner = SyntheticRunner()
    server = Server(runner, ServerConfig(bind="tcp://127.0.0.1:*")).start()
    context = zmq.Context()
    fuzzer = context.socket(zmq.DEALER)
    fuzzer.linger = 0
    fuzzer.sndtimeo = 5000
    fuzzer.connect(server.address)
    try:
        sent = 0
        started = time.monotonic()
        while sent < N_MESSAGES:
            frames = _malformed(rng, valid)
            if not _must_be_rejected(frames):
                continue  # a random edit that happens to be valid is not a fuzz case
            fuzzer.send_multipart(frames)
            sent += 1
            while fuzzer.poll(0):  # keep draining the error replies
                fuzzer.recv_multipart()
        deadline = time.monotonic() + 30
        while server.stats["rejected"] < N_MESSAGES and time.monotonic() < deadline:
            while fuzzer.poll(10):
                fuzzer.recv_multipart()
        assert server.stats["rejected"] == N_MESSAGES, server.stats
        assert runner.started == []  # nothing malformed ever reached an engine
        elapsed = time.monotonic() - started

        client = Client(server.address)
        try:
            welcome = client.connect(timeout=5)
            assert welcome["version"] == p.PROTOCOL_VERSION
            assert client.submit("synthetic", audio=np.zeros(8, np.float32)).result().final.type == p.DONE
        finally:
            client.close()
        assert elapsed < 60
    finally:
        fuzzer.close()
        context.term()
        server.stop()


def test_frames_over_the_size_limit_drop_the_sender_not_the_server():
    runner = SyntheticRunner()
    server = Server(runner, ServerConfig(bind="tcp://127.0.0.1:*", limits=p.Limits.for_server(64 * 1024))).start()
    context = zmq.Context()
    flooder = context.socket(zmq.DEALER)
    flooder.linger = 0
    flooder.connect(server.address)
    try:
        submit = p.Message(p.SUBMIT, "too-big", {"engine": "synthetic"}, {"audio": np.zeros(4 * 2**20, np.uint8)})
        for _ in range(3):  # libzmq refuses the frame before allocating it and drops the connection
            flooder.send_multipart(p.encode(submit))
        time.sleep(0.3)
        assert runner.started == [] and server.stats["messages"] == 0  # never reached the application
        client = Client(server.address)
        try:
            assert client.connect(timeout=5)["limits"]["max_buffer_bytes"] == 64 * 1024
        finally:
            client.close()
    finally:
        flooder.close()
        context.term()
        server.stop()
