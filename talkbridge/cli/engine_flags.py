"""Command-line flags that configure an engine's constructor rather than a job (``--force-cpu-diffusion``).

Job options travel with each job; these do not: an engine is built once per process by
:class:`~talkbridge.core.jobs.cache.EngineCache` from its ``engine_options`` (engine name -> keyword
arguments), so every command that builds a cache (``generate``, ``coeffs``, ``batch`` here or on Ray,
``serve``) turns the same flags into the same keywords with :func:`engine_options_from_args`.
"""

from __future__ import annotations

import argparse
from typing import Any

FORCE_CPU_DIFFUSION = "--force-cpu-diffusion"
FORCE_CPU_DIFFUSION_HELP = "run Audio2Face-3D v3.0 diffusion on the CPU although its noise is ~64 MB a call"


def add_engine_flags(parser: argparse.ArgumentParser) -> None:
    """Add the engine-construction flags (off by default: the engine's own default then holds)."""
    parser.add_argument(FORCE_CPU_DIFFUSION, action="store_true", default=False, dest="force_cpu_diffusion",
                        help=FORCE_CPU_DIFFUSION_HELP)


def engine_options_from_args(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """``EngineCache`` engine options for the flags given: ``{"audio2face": {"force_cpu_diffusion": True}}``
    with ``--force-cpu-diffusion``, else empty (the engine's own default, or its environment variable)."""
    if getattr(args, "force_cpu_diffusion", False):
        return {"audio2face": {"force_cpu_diffusion": True}}
    return {}


def refuse_engine_flags_for_remote(args: argparse.Namespace, where: str) -> None:
    """A sidecar builds its engines from its own flags: say so instead of silently ignoring ours."""
    from talkbridge.core.errors import InputError

    if getattr(args, "force_cpu_diffusion", False):
        raise InputError(f"{FORCE_CPU_DIFFUSION} sets up engines built here, but {where} runs them on the sidecar: "
                         f"start the sidecar with `talkbridge serve {FORCE_CPU_DIFFUSION}` instead")
