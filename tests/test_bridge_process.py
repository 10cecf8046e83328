"""The sidecar as a separate process: `talkbridge serve` + `ping` + a client, and a SIGKILLed server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from talkbridge.bridge import protocol as p
from talkbridge.bridge.client import Client, ServerUnavailable
from talkbridge.bridge.client_connect import wait_for_server
from talkbridge.cli import main

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parents[1]

SYNTHETIC_SERVER = """
import sys, time
from talkbridge.bridge.server import Server, ServerConfig
from talkbridge.bridge.synthetic import SyntheticRunner
server = Server(SyntheticRunner(), ServerConfig(bind=sys.argv[1])).start()
print("ready", flush=True)
while True:
    time.sleep(1)
"""


def _start(args: list[str], ready_address: str) -> subprocess.Popen:
    process = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for_server(ready_address, timeout=30, process=process)
    except ServerUnavailable as error:
        process.kill()
        raise AssertionError(f"the server did not come up: {error}") from error
    return process


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.kill()
    process.wait(10)
    process.stdout.close()


def test_a_sigkilled_sidecar_is_reported_within_three_seconds(tmp_path):
    address = f"ipc://{tmp_path}/sidecar.sock"
    server = _start([sys.executable, "-c", SYNTHETIC_SERVER, address], address)
    client = Client(address)
    try:
        client.connect()
        handle = client.submit("synthetic", audio=np.zeros(16, np.float32), options={"n_frames": 10**6, "chunk_frames": 5, "delay_s": 0.05})
        events = iter(handle)
        while next(events).type != p.CHUNK:
            pass
        os.kill(server.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        final = [event for event in events][-1]
        reported_after = time.monotonic() - killed_at
        assert final.type == p.ERROR and final.code == p.E_SERVER_LOST and final.body["retryable"]
        assert reported_after < 3.0, reported_after
        assert client.server_alive is False
    finally:
        client.close()
        _stop(server)


@pytest.mark.slow
def test_serve_and_ping_commands_run_both_engines_for_another_process(tmp_path, capsys):
    from tests.speech import speech_like, write_wav

    from tests.official_checkpoints import write_official_checkpoint_dir

    checkpoints = write_official_checkpoint_dir(tmp_path / "checkpoints", seed=7, render=False)  # --preload loads the recon net too
    address = f"ipc://{tmp_path}/serve.sock"
    command = [sys.executable, "-m", "talkbridge.cli", "serve", "--bind", address, "--checkpoints", str(checkpoints), "--preload", "lite,sadtalker"]
    serve = _start(command, address)
    try:
        assert main(["ping", address]) == 0
        out = capsys.readouterr().out
        assert "talkbridge" in out and f"protocol {p.PROTOCOL_VERSION}" in out and "lite" in out
        assert "render sizes: audio2face any even size 64..2048; lite any even size 64..2048; sadtalker 256, 512" in out
        speech = write_wav(tmp_path / "speech.wav", speech_like(1.2, seed=3))
        client = Client(address)
        try:
            client.connect()
            result = client.submit("lite", audio=speech, options={"chunk_frames": 10}).result()
            first_frame = np.random.default_rng(0).normal(0, 0.3, 73).astype(np.float32)
            sadtalker = client.submit("sadtalker", audio=speech, first_frame=first_frame).result()
        finally:
            client.close()
        assert sadtalker.final.type == p.DONE and sadtalker.array("expression").shape == (30, 64)
        assert result.final.type == p.DONE and result.final.body["n_frames"] == 30
        assert result.array("arkit").shape == (30, 52) and len(result.chunks) == 3
        serve.send_signal(signal.SIGTERM)
        assert serve.wait(10) == 143  # a clean shutdown on SIGTERM, exiting as every command does
    finally:
        _stop(serve)
    assert main(["ping", address, "--timeout", "0.5"]) == 1


def test_serve_refuses_to_start_with_an_engine_it_cannot_load(tmp_path, caplog):
    address = f"ipc://{tmp_path}/never.sock"
    assert main(["serve", "--bind", address, "--preload", "sadtalker"]) == 1  # no checkpoints given
    assert "the worker for cpu could not start" in caplog.text and "no SadTalker checkpoints" in caplog.text
    bad_config = tmp_path / "engines.json"
    bad_config.write_text("{not json")
    assert main(["serve", "--bind", address, "--engine-config", str(bad_config)]) == 1
    assert "engines.json" in caplog.text and "not valid JSON" in caplog.text


def test_wait_for_server_reports_an_early_exit_and_a_silent_address():
    dead = subprocess.Popen([sys.executable, "-c", "import sys; sys.exit(3)"], stdout=subprocess.PIPE, text=True)
    dead.wait(timeout=30)
    with pytest.raises(ServerUnavailable, match="exited with code 3"):
        wait_for_server("tcp://127.0.0.1:9", timeout=5, process=dead)
    with pytest.raises(ServerUnavailable, match="no sidecar answered at tcp://127.0.0.1:9"):
        wait_for_server("tcp://127.0.0.1:9", timeout=1)
