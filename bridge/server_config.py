"""How a sidecar listens, authenticates and schedules: :class:`ServerConfig`, apart from the server
that reads it, so the CLI and tests build a configuration without importing the I/O loop."""

from __future__ import annotations

from dataclasses import dataclass, field

from talkbridge.bridge import protocol as p
from talkbridge.bridge.security import CurveServerKeys


@dataclass
class ServerConfig:
    """How a sidecar listens, authenticates and schedules. Defaults suit a local Blender user."""

    bind: str = p.DEFAULT_ADDRESS
    devices: tuple[str, ...] = ("cpu",)
    jobs_per_device: int = 1  # jobs each device runs at once (one thread each, all from the same fair queue)
    curve: CurveServerKeys | None = None
    signing_key: bytes | None = None
    limits: p.Limits = field(default_factory=p.Limits.for_server)
    heartbeat_s: float = 0.5
    client_timeout_s: float = 10.0  # a client silent this long is presumed dead: its jobs are cancelled
    stall_timeout_s: float = 30.0  # a job whose client grants no credit this long frees its device
    default_credit: int = 4
    max_credit: int = 64
    outbox_chunks: int = 2
    max_jobs_per_client: int = 32
    max_queued_jobs: int = 512
    max_client_input_bytes: int = 1024 * 1024 * 1024  # inputs of one client's unfinished jobs
    max_total_input_bytes: int = 4 * 1024 * 1024 * 1024  # inputs of all unfinished jobs
    remembered_jobs: int = 4096
    sweep_job_folders_older_than_s: float = 6 * 3600.0  # old-format talkbridge-job-* folders
