"""How the sidecar holds jobs between the socket and the devices.

:class:`FairQueue` decides which waiting job a free device takes next (least recently served
client first); :class:`Outbox` is a job's small bounded buffer between its worker and the I/O
thread, the piece that turns a client's missing credit into a paused worker instead of memory.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

from talkbridge.bridge import protocol as p
from talkbridge.bridge.codec import JobSpec


class Outbox:
    """A job's bounded queue of encoded messages, filled by its worker and emptied by the I/O thread.

    Only chunks count against the capacity: the terminal message of a job must never wait.
    """

    def __init__(self, capacity: int) -> None:
        self._capacity = max(1, capacity)
        self._items: deque[tuple[str, list[Any]]] = deque()
        self._chunks = 0
        self._changed = threading.Condition()

    def put(self, kind: str, frames: list[Any], cancel: threading.Event, stall_timeout_s: float) -> bool:
        """Queue a message; for chunks, wait for room. False when cancelled while waiting."""
        with self._changed:
            if kind == p.CHUNK:
                deadline = time.monotonic() + stall_timeout_s
                while self._chunks >= self._capacity and not cancel.is_set():
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise Stalled()
                    self._changed.wait(min(remaining, 0.05))
                if cancel.is_set():
                    return False
                self._chunks += 1
            self._items.append((kind, frames))
            return True

    def peek(self) -> tuple[str, list[Any]] | None:
        with self._changed:
            return self._items[0] if self._items else None

    def pop(self) -> None:
        with self._changed:
            kind, _ = self._items.popleft()
            if kind == p.CHUNK:
                self._chunks -= 1
            self._changed.notify_all()

    def drop_chunks(self) -> None:
        """Forget chunks not yet sent (the job was cancelled) and wake a waiting worker."""
        with self._changed:
            self._items = deque(item for item in self._items if item[0] != p.CHUNK)
            self._chunks = 0
            self._changed.notify_all()

    def wake(self) -> None:
        with self._changed:
            self._changed.notify_all()


class Stalled(Exception):
    """The client gave no credit for ``stall_timeout_s``."""


@dataclass(eq=False)
class Job:
    """One accepted job as the server tracks it.

    Flow control is cumulative: the client reports how many chunks it has ``consumed`` so far, and
    a chunk may leave while ``sent < consumed + window``. A lost or repeated credit message therefore
    changes nothing once a later one arrives.
    """

    spec: JobSpec
    client: bytes
    window: int  # chunks the client lets be in flight (the submit's credit)
    outbox: Outbox
    cancel: threading.Event = field(default_factory=threading.Event)
    state: str = "queued"  # queued -> running -> finished
    orphaned: bool = False  # the client is gone: discard whatever is left
    cancel_reason: str | None = None
    terminal_posted: bool = False
    seq: Any = field(default_factory=itertools.count)
    sent: int = 0  # chunks sent
    consumed: int = 0  # chunks the client says it has taken

    @property
    def job_id(self) -> str:
        return self.spec.job_id

    @property
    def credit(self) -> int:
        return self.consumed + self.window - self.sent

    def acknowledge(self, consumed: int) -> None:
        """Record the client's running count (never more than was sent, never backwards)."""
        self.consumed = max(self.consumed, min(consumed, self.sent))


class FairQueue:
    """Jobs waiting for a device: the next one comes from the client served least recently.

    Within one client jobs run in submission order. A client that just had a job started goes
    behind every other waiting client, so one client's long batch never starves another's.
    """

    def __init__(self, remembered_clients: int = 4096) -> None:
        self._per_client: dict[bytes, deque[Job]] = {}
        self._last_served: OrderedDict[bytes, int] = OrderedDict()
        self._remembered = remembered_clients
        self._turn = 0
        self._size = 0
        self._changed = threading.Condition()

    def __len__(self) -> int:
        return self._size

    def put(self, job: Job) -> int:
        """Queue ``job``; returns how many jobs were waiting before it."""
        with self._changed:
            ahead = self._size
            self._per_client.setdefault(job.client, deque()).append(job)
            self._size += 1
            self._changed.notify()
            return ahead

    def get(self, timeout: float) -> Job | None:
        with self._changed:
            if not self._size and not self._changed.wait_for(lambda: self._size > 0, timeout):
                return None
            client = min(self._per_client, key=lambda c: self._last_served.get(c, -1))  # ties: arrival order
            waiting = self._per_client[client]
            job = waiting.popleft()
            if not waiting:
                del self._per_client[client]
            self._size -= 1
            self._turn += 1
            self._last_served[client] = self._turn
            self._last_served.move_to_end(client)
            while len(self._last_served) > self._remembered:
                self._last_served.popitem(last=False)
            return job

    def remove(self, job: Job) -> bool:
        with self._changed:
            waiting = self._per_client.get(job.client)
            if not waiting or job not in waiting:
                return False
            waiting.remove(job)
            self._size -= 1
            if not waiting:
                del self._per_client[job.client]
            return True
