"""CURVE key files and HMAC signing keys: making, loading and checking them.

Key pairs use ZeroMQ's own certificate format (``NAME.key`` public, ``NAME.key_secret`` secret), so
pyzmq's authenticator can read a folder of allowed client public keys directly. A signing key is a
file holding at least 32 random bytes as hex, shared by server and client for the HMAC.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import zmq
import zmq.auth

from talkbridge.bridge.protocol import BridgeError, is_local_address


class SecurityConfigError(BridgeError):
    """The requested security set-up is unsafe or incomplete; the message says how to fix it."""


def generate_keypair(folder: str | Path, name: str) -> tuple[Path, Path]:
    """Write ``NAME.key`` and ``NAME.key_secret`` in ``folder``; refuse to replace existing keys."""
    folder = Path(folder)
    public, secret = folder / f"{name}.key", folder / f"{name}.key_secret"
    for path in (public, secret):
        if path.exists():
            raise SecurityConfigError(f"{path}: a key already exists; choose another name or folder (keys are never overwritten)")
    if not zmq.has("curve"):
        raise SecurityConfigError("this libzmq was built without CURVE support; install pyzmq's wheels")
    folder.mkdir(parents=True, exist_ok=True)
    made_public, made_secret = zmq.auth.create_certificates(str(folder), name)
    os.chmod(made_secret, 0o600)
    return Path(made_public), Path(made_secret)


def generate_signing_key(path: str | Path) -> Path:
    """Write a fresh 32-byte HMAC key (hex) to ``path`` with owner-only permissions."""
    path = Path(path)
    if path.exists():
        raise SecurityConfigError(f"{path}: a signing key already exists (keys are never overwritten)")
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(secrets.token_hex(32) + "\n")
    return path


def load_signing_key(path: str | Path) -> bytes:
    """The key bytes from a signing-key file (hex text, at least 32 bytes of key)."""
    path = Path(path)
    try:
        text = path.read_text().strip()
    except OSError as error:
        raise SecurityConfigError(f"{path}: cannot read the signing key ({error.strerror})") from None
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise SecurityConfigError(f"{path}: a signing key file must hold hex digits (make one with `talkbridge keys generate --signing`)") from None
    if len(key) < 32:
        raise SecurityConfigError(f"{path}: the signing key is only {len(key)} bytes; use at least 32")
    return key


def load_public_key(path: str | Path) -> bytes:
    """A CURVE public key (z85) from a ``.key`` or ``.key_secret`` file."""
    public, _ = _load(path)
    return public


def load_keypair(path: str | Path) -> tuple[bytes, bytes]:
    """(public, secret) from a ``.key_secret`` file; a public-only file is an error."""
    public, secret = _load(path)
    if secret is None:
        raise SecurityConfigError(f"{path}: this is a public key; pass the matching .key_secret file")
    return public, secret


def _load(path: str | Path) -> tuple[bytes, bytes | None]:
    path = Path(path)
    if not path.is_file():
        raise SecurityConfigError(f"{path}: no such key file (make keys with `talkbridge keys generate`)")
    try:
        public, secret = zmq.auth.load_certificate(str(path))
    except (ValueError, OSError) as error:
        raise SecurityConfigError(f"{path}: not a ZeroMQ certificate ({error})") from None
    if public is None or len(public) != 40:
        raise SecurityConfigError(f"{path}: holds no valid CURVE public key")
    return public, secret


@dataclass(frozen=True)
class ClientKeys:
    """What a client needs to reach one sidecar: CURVE keys (both or neither) and a signing key."""

    server_key: bytes | None = None
    client_keypair: tuple[bytes, bytes] | None = None
    signing_key: bytes | None = None

    def as_kwargs(self) -> dict[str, object]:
        """The :class:`~talkbridge.bridge.client.Client` keyword arguments."""
        return {"server_key": self.server_key, "client_keypair": self.client_keypair, "signing_key": self.signing_key}


def load_client_keys(
    address: str,
    server_key: str | Path | None = None,
    client_key: str | Path | None = None,
    signing_key: str | Path | None = None,
) -> ClientKeys:
    """The keys for reaching ``address``, read from their files: the one place that checks them.

    CURVE needs both the server's public key and this client's key pair; a sidecar that is not on
    this machine is only reached with CURVE (a server off loopback refuses to run without it, and
    nothing else would encrypt the speech and portraits on the network).
    """
    if bool(server_key) != bool(client_key):
        raise SecurityConfigError("CURVE needs both the server's public key (--server-key) and this client's key pair (--client-key)")
    if not server_key and not is_local_address(address):
        raise SecurityConfigError(
            f"{address} is not on this machine: give the server's public key and a client key pair (CURVE), "
            "made with `talkbridge keys generate`"
        )
    return ClientKeys(
        server_key=load_public_key(server_key) if server_key else None,
        client_keypair=load_keypair(client_key) if client_key else None,
        signing_key=load_signing_key(signing_key) if signing_key else None,
    )


@dataclass(frozen=True)
class CurveServerKeys:
    """The server's key pair and the folder of client public keys it lets in."""

    public: bytes
    secret: bytes
    allowed_clients: Path

    @classmethod
    def load(cls, server_secret_file: str | Path, allowed_clients: str | Path) -> "CurveServerKeys":
        public, secret = load_keypair(server_secret_file)
        folder = Path(allowed_clients)
        if not folder.is_dir():
            raise SecurityConfigError(f"{folder}: the client allow-list must be a folder of .key files")
        if not any(folder.glob("*.key")):
            raise SecurityConfigError(f"{folder}: the client allow-list holds no .key files, so no client could connect")
        return cls(public, secret, folder)


def check_bind_is_safe(bind: str, curve: "CurveServerKeys | None") -> None:
    """Refuse to listen beyond this machine unless CURVE keys and a client allow-list are set."""
    if curve is None and not is_local_address(bind):
        raise SecurityConfigError(
            f"refusing to bind {bind} without CURVE keys: anyone on the network could run jobs. "
            "Bind tcp://127.0.0.1:PORT or ipc://PATH, or pass --curve-secret SERVER.key_secret and "
            "--allow CLIENT_KEYS_DIR (make keys with `talkbridge keys generate`)."
        )
