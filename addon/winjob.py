"""Windows only: a job object that kills the local sidecar's whole process tree when Blender goes.

Windows has no process groups that die with their parent and no parent-death signal. A job object
created with JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE terminates every process in it (the sidecar and the
worker processes it spawns, which inherit the job) when its last handle closes: Blender holds that
handle, so the OS closes it however Blender ends, crash included. The stdin pipe
(``serve --exit-on-stdin-close``) is the clean path; this is the guarantee. Imported only on
Windows (``ctypes.windll``); nothing else in the add-on depends on it.
"""

from __future__ import annotations

import ctypes
import logging
import subprocess
from ctypes import wintypes

log = logging.getLogger(__name__)

JOB_OBJECT_EXTENDED_LIMIT_INFORMATION_CLASS = 9
JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE = 0x2000


class _BasicLimits(ctypes.Structure):
    _fields_ = [
        ("PerProcessUserTimeLimit", ctypes.c_int64),
        ("PerJobUserTimeLimit", ctypes.c_int64),
        ("LimitFlags", wintypes.DWORD),
        ("MinimumWorkingSetSize", ctypes.c_size_t),
        ("MaximumWorkingSetSize", ctypes.c_size_t),
        ("ActiveProcessLimit", wintypes.DWORD),
        ("Affinity", ctypes.c_size_t),
        ("PriorityClass", wintypes.DWORD),
        ("SchedulingClass", wintypes.DWORD),
    ]


class _IoCounters(ctypes.Structure):
    _fields_ = [(name, ctypes.c_uint64) for name in (
        "ReadOperationCount", "WriteOperationCount", "OtherOperationCount", "ReadTransferCount",
        "WriteTransferCount", "OtherTransferCount")]


class _ExtendedLimits(ctypes.Structure):
    _fields_ = [
        ("BasicLimitInformation", _BasicLimits),
        ("IoInfo", _IoCounters),
        ("ProcessMemoryLimit", ctypes.c_size_t),
        ("JobMemoryLimit", ctypes.c_size_t),
        ("PeakProcessMemoryUsed", ctypes.c_size_t),
        ("PeakJobMemoryUsed", ctypes.c_size_t),
    ]


class JobObject:
    """An owned job-object handle; :meth:`close` ends every process still in the job."""

    def __init__(self, handle: int) -> None:
        self.handle = handle

    def close(self) -> None:
        if self.handle:
            ctypes.windll.kernel32.CloseHandle(self.handle)
            self.handle = 0


def kill_with_parent(process: subprocess.Popen) -> JobObject | None:
    """Put ``process`` into a kill-on-close job owned by this process; None if Windows refused (logged)."""
    kernel32 = ctypes.windll.kernel32
    kernel32.CreateJobObjectW.restype = wintypes.HANDLE
    handle = kernel32.CreateJobObjectW(None, None)
    if not handle:
        log.warning("could not create a job object for the sidecar (error %d)", kernel32.GetLastError())
        return None
    limits = _ExtendedLimits()
    limits.BasicLimitInformation.LimitFlags = JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE
    job = JobObject(handle)
    ok = kernel32.SetInformationJobObject(
        wintypes.HANDLE(handle), JOB_OBJECT_EXTENDED_LIMIT_INFORMATION_CLASS, ctypes.byref(limits), ctypes.sizeof(limits))
    if ok:
        ok = kernel32.AssignProcessToJobObject(wintypes.HANDLE(handle), wintypes.HANDLE(int(process._handle)))
    if not ok:
        log.warning("could not put the sidecar in a job object (error %d); it still stops with its stdin", kernel32.GetLastError())
        job.close()
        return None
    return job
