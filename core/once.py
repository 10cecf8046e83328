"""Objects built at most once per key, safely from several threads: loaded engines and networks."""

from __future__ import annotations

import threading
from typing import Any, Callable, Hashable


class BuiltOnce:
    """A thread-safe ``key -> object`` cache whose objects are built on first request."""

    def __init__(self) -> None:
        self._built: dict[Hashable, Any] = {}
        self._lock = threading.RLock()

    def get(self, key: Hashable, build: Callable[[], Any]) -> Any:
        with self._lock:
            if key not in self._built:
                self._built[key] = build()
            return self._built[key]

    def put(self, key: Hashable, value: Any) -> None:
        with self._lock:
            self._built[key] = value
