"""Waiting for a sidecar to come up: for scripts and tests that start ``talkbridge serve`` themselves."""

from __future__ import annotations

import time
from typing import Any

from talkbridge.bridge.client import Client
from talkbridge.bridge.client_events import ServerUnavailable


def wait_for_server(address: str, timeout: float = 60.0, process: Any = None, **client_options: Any) -> dict:
    """Block until a sidecar at ``address`` answers hello, and return its welcome.

    For scripts that start ``talkbridge serve`` and must not submit before it listens. ``process``
    (a ``subprocess.Popen``) makes an early exit fail at once instead of after ``timeout``.
    ``client_options`` are :class:`Client` keyword arguments (keys for CURVE or signing).
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            output = process.stdout.read() if getattr(process, "stdout", None) else ""
            raise ServerUnavailable(f"the sidecar process exited with code {process.returncode} before answering: {output}")
        probe = Client(address, **client_options)
        try:
            return probe.connect(timeout=0.5)
        except ServerUnavailable:
            continue
        finally:
            probe.close()
    raise ServerUnavailable(f"no sidecar answered at {address} within {timeout:.0f} s")
