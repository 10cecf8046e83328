"""What a sidecar does as it starts: IPv6 loopback binds, and stale job folders are swept."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
import pytest

from talkbridge.bridge import protocol as p
from talkbridge.bridge.client import Client
from talkbridge.bridge.server import Server, ServerConfig, sweep_stale_job_folders
from talkbridge.bridge.synthetic import SyntheticRunner

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize("bind", ["tcp://[::1]:*", "tcp://::1:*"])
def test_ipv6_loopback_binds_and_serves_a_client(bind):
    assert p.is_local_address(bind.replace("*", "5555"))
    server = Server(SyntheticRunner(), ServerConfig(bind=bind)).start()
    try:
        assert server.address.startswith("tcp://[::1]:")
        with Client(server.address) as client:
            assert client.submit("synthetic", audio=np.zeros(16, np.float32)).result().final.type == p.DONE
        port = server.address.rpartition(":")[2]
        with Client(f"tcp://::1:{port}") as client:  # the unbracketed form, as users type it
            assert client.ping() < 1.0
    finally:
        server.stop()


def test_a_bind_that_cannot_work_says_so_without_blaming_another_server(tmp_path):
    bind = f"ipc://{tmp_path}/no-such-folder/sidecar.sock"
    with pytest.raises(p.BridgeError, match="cannot bind ipc://") as raised:
        Server(SyntheticRunner(), ServerConfig(bind=bind)).start()
    assert "another server" not in str(raised.value) and "address right" in str(raised.value)


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_stale_job_folders_are_swept_at_start_and_live_ones_kept(tmp_path, monkeypatch):
    dead, alive = _dead_pid(), os.getpid()
    folders = {
        "dead": tmp_path / f"talkbridge-job-{dead}-abc123",
        "alive": tmp_path / f"talkbridge-job-{alive}-def456",
        "old": tmp_path / "talkbridge-job-x1y2z3",
        "recent": tmp_path / "talkbridge-job-q9w8e7",
        "other": tmp_path / "talkbridge-jobless",
    }
    for folder in folders.values():
        folder.mkdir()
        (folder / "audio.wav").write_bytes(b"uploaded speech")
    week_ago = time.time() - 7 * 24 * 3600
    os.utime(folders["old"], (week_ago, week_ago))
    removed = sweep_stale_job_folders(str(tmp_path), older_than_s=6 * 3600)
    assert sorted(removed) == sorted([str(folders["dead"]), str(folders["old"])])
    assert {name for name, folder in folders.items() if folder.exists()} == {"alive", "recent", "other"}

    (tmp_path / f"talkbridge-job-{dead}-again1").mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    server = Server(SyntheticRunner(), ServerConfig(bind="tcp://127.0.0.1:*")).start()
    server.stop()
    assert not (tmp_path / f"talkbridge-job-{dead}-again1").exists()
