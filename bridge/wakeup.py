"""A thread-safe way to wake a zmq poll loop from any thread.

ZeroMQ sockets must stay on the thread that uses them, so other threads never touch them: they
queue work and ring this doorbell, whose read end the I/O thread polls alongside its zmq sockets.
A socket pair (not a pipe) so that zmq's poller accepts it on Windows too, where Blender runs.
"""

from __future__ import annotations

import socket


class Doorbell:
    """Many threads ring; one thread polls :meth:`fileno` and calls :meth:`drain`."""

    def __init__(self) -> None:
        self._read, self._write = socket.socketpair()
        self._read.setblocking(False)
        self._write.setblocking(False)

    def fileno(self) -> int:
        return self._read.fileno()

    def ring(self) -> None:
        try:
            self._write.send(b"\0")
        except (BlockingIOError, OSError):
            pass  # already full of rings, or closed: the loop wakes (or has stopped) anyway

    def drain(self) -> None:
        try:
            while self._read.recv(4096):
                pass
        except (BlockingIOError, OSError):
            pass

    def close(self) -> None:
        self._read.close()
        self._write.close()
