"""Refuse to time on a CPU other processes are using: their load makes torch's threads spin and wait.

The check reads Linux's ``/proc/stat`` (all CPU time spent not idle) and ``/proc/self/stat`` (this
process's own) over a short window: whatever is busy and is not us belongs to someone else. A bench
calls :meth:`QuietCpu.wait` before each timed run; it waits a little for the machine to settle and
then either raises :class:`BusyCpu` or, with ``allow_busy``, logs a warning once and lets it time.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass

log = logging.getLogger(__name__)

DEFAULT_LIMIT_CORES = 0.15  # other processes' average use allowed during the window, in cores


class BusyCpu(RuntimeError):
    """Other processes use the CPU; timing now would measure them."""


def _busy_and_own_seconds() -> tuple[float, float]:
    tick = os.sysconf("SC_CLK_TCK")
    with open("/proc/stat") as stat:
        fields = [int(v) for v in stat.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    busy = sum(fields[:8]) - idle  # user nice system idle iowait irq softirq steal; guest is in user
    with open("/proc/self/stat") as own:
        after_name = own.read().rsplit(")", 1)[1].split()
    mine = int(after_name[11]) + int(after_name[12])  # utime, stime (all threads)
    return busy / tick, mine / tick


def others_cores(window_s: float = 0.5) -> float:
    """Average number of cores used by other processes over ``window_s`` (Linux only)."""
    busy0, own0 = _busy_and_own_seconds()
    time.sleep(window_s)
    busy1, own1 = _busy_and_own_seconds()
    return max(0.0, (busy1 - busy0) - (own1 - own0)) / window_s


@dataclass
class QuietCpu:
    allow_busy: bool = False
    limit_cores: float = DEFAULT_LIMIT_CORES
    settle_s: float = 20.0
    busy_runs: int = 0

    def wait(self) -> float:
        """Block until other processes use under ``limit_cores`` (up to ``settle_s``); their load."""
        if not os.path.exists("/proc/stat"):
            if self.allow_busy:
                return float("nan")
            raise BusyCpu("cannot see other processes' CPU use here (no /proc/stat): pass --allow-busy to time anyway")
        deadline = time.monotonic() + self.settle_s
        while True:
            load = others_cores()
            if load <= self.limit_cores:
                return load
            if time.monotonic() >= deadline:
                break
        if not self.allow_busy:
            raise BusyCpu(
                f"other processes use {load:.2f} cores (limit {self.limit_cores}): their load makes torch's threads "
                "spin and the figures meaningless; stop them, or pass --allow-busy for a smoke run"
            )
        if not self.busy_runs:
            log.warning("TIMING ON A BUSY CPU (other processes use %.2f cores): figures are NOT comparable", load)
        self.busy_runs += 1
        return load
