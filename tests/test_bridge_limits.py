"""Limits and lost peers: too_large answered (never dropped), input caps per client and in total,
and jobs of a client that gave up on the server cancelled instead of holding the device."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import zmq

from talkbridge.bridge import protocol as p
from talkbridge.bridge.client import Client, InputTooLarge
from talkbridge.bridge.server import ServerConfig
from talkbridge.bridge.synthetic import SyntheticRunner
from tests.test_bridge_process import SYNTHETIC_SERVER, _start, _stop
from tests.test_bridge_server import connect, serve, wait_for

pytestmark = pytest.mark.timeout(90)

ROOT = Path(__file__).resolve().parents[1]
KIB = 1024


def _bytes(n: int) -> bytes:
    return bytes(n)


def test_the_client_refuses_an_input_over_the_announced_limit_at_once():
    with serve(SyntheticRunner(), limits=p.Limits.for_server(64 * KIB)) as server, connect(server) as client:
        assert client.server_limits.max_buffer_bytes == 64 * KIB
        started = time.monotonic()
        with pytest.raises(InputTooLarge, match="audio input is 70000 bytes; the server takes at most 65536") as raised:
            client.submit("synthetic", audio=_bytes(70_000))
        assert raised.value.code == p.E_TOO_LARGE and time.monotonic() - started < 0.5
        messages = server.stats["messages"]
        assert client.submit("synthetic", audio=_bytes(60_000)).result().final.type == p.DONE  # a fitting one goes
        assert server.stats["messages"] > messages


def test_the_server_answers_too_large_instead_of_dropping_the_message():
    runner = SyntheticRunner()
    with serve(runner, limits=p.Limits.for_server(64 * KIB)) as server:
        dealer = zmq.Context.instance().socket(zmq.DEALER)
        dealer.linger = 0
        dealer.rcvtimeo = 3000
        dealer.connect(server.address)
        try:
            big = p.Message(p.SUBMIT, "big", {"engine": "synthetic"}, {"audio": np.zeros(100 * KIB, np.uint8)})
            started = time.monotonic()
            dealer.send_multipart(p.encode(big))
            answer = p.decode(dealer.recv_multipart())
            assert answer.type == p.ERROR and answer.body["code"] == p.E_TOO_LARGE and answer.job_id == "big"
            assert "65536" in answer.body["message"] and time.monotonic() - started < 2.0
            assert runner.started == []
        finally:
            dealer.close()


def test_queued_input_bytes_are_capped_per_client_and_in_total():
    runner = SyntheticRunner(gates={"g": threading.Event()})
    caps = {"max_client_input_bytes": 300 * KIB, "max_total_input_bytes": 500 * KIB, "limits": p.Limits.for_server(256 * KIB)}
    held = {"hold": "g", "n_frames": 5}
    with serve(runner, **caps) as server, connect(server) as alice, connect(server) as bob:
        mine = [alice.submit("synthetic", audio=_bytes(100 * KIB), options=held) for _ in range(3)]
        for handle in mine:
            assert next(iter(handle)).type == p.ACCEPTED
        over = alice.submit("synthetic", audio=_bytes(10 * KIB)).result().final
        assert over.code == p.E_BUSY and over.body["retryable"] and "this client's unfinished jobs hold 307200 bytes" in over.body["message"]
        fits = bob.submit("synthetic", audio=_bytes(190 * KIB), options=held)  # 490 KiB in all
        assert next(iter(fits)).type == p.ACCEPTED
        assert wait_for(lambda: server._input_bytes and sum(server._input_bytes.values()) == 490 * KIB)
        total = bob.submit("synthetic", audio=_bytes(20 * KIB)).result().final
        assert total.code == p.E_BUSY and "the server holds 501760 bytes" in total.body["message"]
        runner.gates["g"].set()
        for handle in [*mine, fits]:
            assert list(handle)[-1].type == p.DONE
        assert wait_for(lambda: not server._jobs and not server._input_bytes)  # released as jobs end
        assert alice.submit("synthetic", audio=_bytes(250 * KIB)).result().final.type == p.DONE


def test_a_single_job_over_the_per_client_cap_is_too_large_not_busy():
    with serve(SyntheticRunner(), max_client_input_bytes=50 * KIB, limits=p.Limits.for_server(256 * KIB)) as server, connect(server) as client:
        final = client.submit("synthetic", audio=_bytes(60 * KIB)).result().final
    assert final.code == p.E_TOO_LARGE and final.body["retryable"] is False


def test_a_client_that_declares_the_server_lost_cancels_its_job_so_the_device_frees_up(tmp_path):
    address = f"ipc://{tmp_path}/frozen.sock"
    server = _start([sys.executable, "-c", SYNTHETIC_SERVER, address], address)
    client = Client(address, server_timeout_s=1.0)
    try:
        client.connect()
        handle = client.submit("synthetic", audio=np.zeros(16, np.float32), credit=1, options={"n_frames": 10**6, "chunk_frames": 5, "delay_s": 0.01})
        events = iter(handle)
        while next(events).type != p.CHUNK:
            pass
        server.send_signal(signal.SIGSTOP)  # a frozen server: no answers, but the connection stays up
        try:
            final = list(events)[-1]
            assert final.code == p.E_SERVER_LOST
        finally:
            server.send_signal(signal.SIGCONT)
        assert wait_for(lambda: client.server_alive, timeout=5)
        # The one device is free again at once, not after the server's stall timeout (30 s).
        with Client(address) as other:
            started = time.monotonic()
            result = other.submit("synthetic", audio=np.zeros(16, np.float32), options={"n_frames": 20}).result()
            assert result.final.type == p.DONE and time.monotonic() - started < 3.0
    finally:
        client.close()
        _stop(server)


def test_the_documented_timeouts_are_the_servers_defaults():
    text = (ROOT / "docs" / "protocol.md").read_text()
    config = ServerConfig()
    assert f"`client_timeout_s` ({config.client_timeout_s:.0f} s" in text
    assert f"`stall_timeout_s` ({config.stall_timeout_s:.0f} s" in text
    assert config.stall_timeout_s <= 60 and config.client_timeout_s <= 60  # no device held for minutes
    caps = re.search(r"(\d+) GiB per client identity and (\d+) GiB in total", text)
    assert caps is not None
    assert (int(caps.group(1)) * 2**30, int(caps.group(2)) * 2**30) == (config.max_client_input_bytes, config.max_total_input_bytes)
