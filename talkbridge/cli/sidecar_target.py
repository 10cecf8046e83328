"""Where a CLI command reaches a sidecar: its address and the key files (`ping`, `generate --sidecar`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class SidecarTarget:
    """Where the job runs and the keys to reach it (all optional on loopback)."""

    address: str
    server_key: Path | None = None
    client_key: Path | None = None
    signing_key: Path | None = None

    def client(self) -> Any:
        from talkbridge.bridge.client import Client
        from talkbridge.bridge.security import SecurityConfigError, load_keypair, load_public_key, load_signing_key

        if (self.server_key is None) != (self.client_key is None):
            raise SecurityConfigError("CURVE needs both --server-key and --client-key")
        return Client(
            self.address,
            server_key=load_public_key(self.server_key) if self.server_key else None,
            client_keypair=load_keypair(self.client_key) if self.client_key else None,
            signing_key=load_signing_key(self.signing_key) if self.signing_key else None,
        )
