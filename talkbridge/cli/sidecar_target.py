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
        from talkbridge.bridge.security import load_client_keys

        keys = load_client_keys(self.address, self.server_key, self.client_key, self.signing_key)
        return Client(self.address, **keys.as_kwargs())
