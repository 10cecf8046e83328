"""Who may talk to the sidecar: bind policy, CURVE allow-list, HMAC signing, key files."""

from __future__ import annotations

import stat
import time

import numpy as np
import pytest

from talkbridge.bridge import protocol as p
from talkbridge.bridge.client import AuthenticationFailed, Client, ServerUnavailable
from talkbridge.bridge.security import (
    CurveServerKeys,
    SecurityConfigError,
    generate_keypair,
    generate_signing_key,
    load_keypair,
    load_public_key,
    load_signing_key,
)
from talkbridge.bridge.server import Server, ServerConfig, check_bind_is_safe
from talkbridge.bridge.synthetic import SyntheticRunner
from talkbridge.cli import main

pytestmark = pytest.mark.timeout(60)

AUDIO = np.zeros(16, np.float32)


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    root = tmp_path_factory.mktemp("keys")
    generate_keypair(root / "server", "server")
    generate_keypair(root / "allowed", "artist")
    generate_keypair(root / "strangers", "intruder")
    return root


@pytest.mark.parametrize("bind", ["tcp://0.0.0.0:5555", "tcp://*:5555", "tcp://192.168.0.10:5555", "tcp://eth0:5555"])
def test_a_non_loopback_bind_without_keys_is_refused(bind):
    with pytest.raises(SecurityConfigError, match="refusing to bind"):
        Server(SyntheticRunner(), ServerConfig(bind=bind))


def test_the_serve_command_refuses_too_and_says_how_to_fix_it(caplog):
    assert main(["serve", "--bind", "tcp://0.0.0.0:5555"]) == 1
    assert "refusing to bind tcp://0.0.0.0:5555 without CURVE keys" in caplog.text and "--curve-secret" in caplog.text


def test_keys_make_a_non_loopback_bind_acceptable(keys):
    curve = CurveServerKeys.load(keys / "server" / "server.key_secret", keys / "allowed")
    check_bind_is_safe("tcp://0.0.0.0:5555", curve)  # no exception; not actually bound in tests
    with pytest.raises(SecurityConfigError, match="public key"):
        CurveServerKeys.load(keys / "server" / "server.key", keys / "allowed")
    with pytest.raises(SecurityConfigError, match="must be a folder"):
        CurveServerKeys.load(keys / "server" / "server.key_secret", keys / "does-not-exist")
    (keys / "empty").mkdir(exist_ok=True)
    with pytest.raises(SecurityConfigError, match="no .key files"):
        CurveServerKeys.load(keys / "server" / "server.key_secret", keys / "empty")


def _curve_server(keys):
    curve = CurveServerKeys.load(keys / "server" / "server.key_secret", keys / "allowed")
    return Server(SyntheticRunner(), ServerConfig(bind="tcp://127.0.0.1:*", curve=curve)).start()


def test_an_allowed_curve_client_runs_a_job(keys):
    server = _curve_server(keys)
    client = Client(
        server.address,
        server_key=load_public_key(keys / "server" / "server.key"),
        client_keypair=load_keypair(keys / "allowed" / "artist.key_secret"),
    )
    try:
        assert client.connect(timeout=5)["capabilities"]["curve"] is True
        assert client.submit("synthetic", audio=AUDIO).result().final.type == p.DONE
    finally:
        client.close()
        server.stop()


def test_a_client_with_the_wrong_curve_key_is_rejected(keys):
    server = _curve_server(keys)
    intruder = Client(
        server.address,
        server_key=load_public_key(keys / "server" / "server.key"),
        client_keypair=load_keypair(keys / "strangers" / "intruder.key_secret"),
    )
    plain = Client(server.address)
    try:
        started = time.monotonic()
        with pytest.raises(AuthenticationFailed, match="allow-list"):
            intruder.connect(timeout=5)
        assert time.monotonic() - started < 3
        with pytest.raises(ServerUnavailable):  # no CURVE at all: the handshake never completes
            plain.connect(timeout=1)
        assert server.stats["messages"] == 0  # nothing of theirs reached the application
    finally:
        intruder.close()
        plain.close()
        server.stop()


def test_signed_traffic_needs_the_same_signing_key(tmp_path):
    key = load_signing_key(generate_signing_key(tmp_path / "shared.hmac"))
    other = load_signing_key(generate_signing_key(tmp_path / "other.hmac"))
    server = Server(SyntheticRunner(), ServerConfig(bind="tcp://127.0.0.1:*", signing_key=key)).start()
    good, wrong, unsigned = Client(server.address, signing_key=key), Client(server.address, signing_key=other), Client(server.address)
    try:
        assert good.connect()["capabilities"]["signed"] is True
        assert good.submit("synthetic", audio=AUDIO).result().final.type == p.DONE
        for client in (wrong, unsigned):
            with pytest.raises(AuthenticationFailed, match="signature|signing key"):
                client.connect(timeout=3)
        assert server.stats["rejected"] >= 2
    finally:
        for client in (good, wrong, unsigned):
            client.close()
        server.stop()


def test_keys_generate_writes_private_secrets_and_never_overwrites(tmp_path, capsys):
    assert main(["keys", "generate", "workstation", "--dir", str(tmp_path), "--signing"]) == 0
    secret = tmp_path / "workstation.key_secret"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "workstation.hmac").stat().st_mode) == 0o600
    public, secret_key = load_keypair(secret)
    assert load_public_key(tmp_path / "workstation.key") == public and len(secret_key) == 40
    before = secret.read_bytes()
    assert main(["keys", "generate", "workstation", "--dir", str(tmp_path)]) == 1
    assert secret.read_bytes() == before
    with pytest.raises(SecurityConfigError, match="hex"):
        (tmp_path / "bad.hmac").write_text("not hex")
        load_signing_key(tmp_path / "bad.hmac")


def test_ping_command_with_keys_reports_success_or_the_refusal(keys, capsys, caplog):
    server = _curve_server(keys)
    try:
        server_key = str(keys / "server" / "server.key")
        good = ["ping", server.address, "--server-key", server_key, "--client-key", str(keys / "allowed" / "artist.key_secret"), "--json"]
        assert main(good) == 0
        assert '"curve": true' in capsys.readouterr().out
        bad = ["ping", server.address, "--server-key", server_key, "--client-key", str(keys / "strangers" / "intruder.key_secret")]
        assert main(bad) == 1
        assert "refused the CURVE handshake" in caplog.text
        assert main(["ping", server.address, "--server-key", server_key]) == 1  # half a key set
        assert "CURVE needs both the server's public key (--server-key) and this client's key pair (--client-key)" in caplog.text
    finally:
        server.stop()


def test_a_wrong_server_key_is_reported_naming_both_keys_not_as_a_missing_server(keys):
    server = _curve_server(keys)
    wrong_server_key = load_public_key(keys / "strangers" / "intruder.key")  # not the server's key
    mine = load_keypair(keys / "allowed" / "artist.key_secret")
    client = Client(server.address, server_key=wrong_server_key, client_keypair=mine)
    try:
        started = time.monotonic()
        with pytest.raises(AuthenticationFailed) as raised:
            client.connect(timeout=5)
        assert time.monotonic() - started < 3
        text = str(raised.value)
        assert wrong_server_key.decode() in text and mine[0].decode() in text and "--server-key" in text
        assert "running there" not in text
    finally:
        client.close()
        server.stop()


def test_the_curve_cap_on_queued_inputs_counts_a_key_not_a_connection(keys):
    """Two connections with one CURVE key share one per-client input cap."""
    import threading

    curve = CurveServerKeys.load(keys / "server" / "server.key_secret", keys / "allowed")
    runner = SyntheticRunner(gates={"g": threading.Event()})
    config = ServerConfig(bind="tcp://127.0.0.1:*", curve=curve, max_client_input_bytes=150_000, limits=p.Limits.for_server(1 << 20))
    server = Server(runner, config).start()
    options = {"server_key": load_public_key(keys / "server" / "server.key"), "client_keypair": load_keypair(keys / "allowed" / "artist.key_secret")}
    first, second = Client(server.address, **options), Client(server.address, **options)
    try:
        first.connect(timeout=5)
        second.connect(timeout=5)
        held = first.submit("synthetic", audio=bytes(100_000), options={"hold": "g"})
        assert next(iter(held)).type == p.ACCEPTED
        refused = second.submit("synthetic", audio=bytes(100_000)).result().final
        assert refused.code == p.E_BUSY and "this client's unfinished jobs hold 100000 bytes" in refused.body["message"]
        runner.gates["g"].set()
        assert list(held)[-1].type == p.DONE
    finally:
        first.close()
        second.close()
        server.stop()
