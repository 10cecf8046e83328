"""The job layer: one definition of a job and one way to run it, whatever the route.

A :class:`JobRequest` (inputs and checked :class:`JobOptions`) becomes a :class:`JobStream`: the
job's facts (:class:`JobInfo`) and its :class:`Step` s, each one motion chunk with the official
coefficients plus the frames rendered for it. In-process sources live here; the sidecar route is
:mod:`talkbridge.bridge.remote_job`; every output file is written by
:mod:`talkbridge.exporters.job_files`. Importing this package loads neither torch nor any engine.
"""

from talkbridge.core.jobs.options import OPTIONS, JobOptions, OptionSpec
from talkbridge.core.jobs.request import JobRequest, read_transcript
from talkbridge.core.jobs.steps import JobInfo, JobStream, Step

__all__ = ["OPTIONS", "JobInfo", "JobOptions", "JobRequest", "JobStream", "OptionSpec", "Step", "read_transcript"]
