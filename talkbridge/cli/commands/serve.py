"""`talkbridge serve`: run the ZeroMQ sidecar that the Blender add-on and batch scripts talk to."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from pathlib import Path

from talkbridge.cli.engine_flags import add_engine_flags, engine_options_from_args
from talkbridge.core.audio.loading import DEFAULT_MAX_AUDIO_SECONDS
from talkbridge.core.errors import InputError
from talkbridge.core.jobs.options import OPTIONS

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="run the sidecar (streams motion and frames to clients over ZeroMQ)",
        description=(
            "Serve jobs over ZeroMQ. Loopback and ipc:// need no keys; any other address needs "
            "--curve-secret and --allow, or the server refuses to start."
        ),
    )
    parser.add_argument("--bind", default="tcp://127.0.0.1:5555", help="address to listen on (default: %(default)s; ipc://PATH works too)")
    parser.add_argument("--devices", default="cpu", help="comma-separated devices, one worker each (e.g. cuda:0,cuda:1; default: cpu)")
    parser.add_argument("--curve-secret", type=Path, help="the server's CURVE key pair (NAME.key_secret from `talkbridge keys generate`)")
    parser.add_argument("--allow", type=Path, help="folder of client public keys (.key) allowed to connect")
    parser.add_argument("--signing-key", type=Path, help="shared HMAC key file; clients must sign with the same key")
    parser.add_argument("--checkpoints", type=Path, help="folder with the SadTalker checkpoints (needed for sadtalker jobs)")
    parser.add_argument("--engine-config", type=Path, help="JSON object: engine name -> constructor options (overrides --checkpoints)")
    add_engine_flags(parser)
    parser.add_argument("--preload", default="", help="comma-separated engines to load on every device before serving (e.g. lite,sadtalker)")
    parser.add_argument("--client-timeout", type=float, default=10.0, help="seconds of client silence before its jobs are cancelled (default: %(default)s)")
    parser.add_argument("--precision", choices=OPTIONS["precision"].choices, default=OPTIONS["precision"].default,
                        help="number format of SadTalker's networks for jobs that do not choose one (default: %(default)s)")
    parser.add_argument("--max-input-mb", type=int, default=256, help="largest audio or image file accepted, in MiB (default: %(default)s)")
    parser.add_argument("--max-audio-seconds", type=float, default=DEFAULT_MAX_AUDIO_SECONDS,
                        help="longest decoded audio a job may send, in seconds (default: %(default)s; see docs/inputs.md)")
    parser.add_argument("--jobs-per-device", type=int, metavar="K",
                        help="jobs each device's worker process runs at once, so their frames can share render passes "
                        "(default: 4 when every device is a GPU, else 1; not with --ray)")
    parser.add_argument("--batch-frames", type=int, metavar="N",
                        help="SadTalker frames per shared render pass across concurrent jobs; 0 renders each job on its own "
                        "(default: 8 when jobs share a device, else 0)")
    parser.add_argument("--batch-wait-ms", type=float, metavar="T",
                        help="longest wait in ms for more jobs' frames before a part-full pass starts (default: 5)")
    parser.add_argument("--ray", metavar="ADDRESS", help="run jobs on this Ray cluster's actors (HOST:PORT, auto, or 'local'); this process is the gateway")
    parser.add_argument("--ray-actors", type=int, help="job actors on the cluster (default: one per GPU, else one per node)")
    parser.add_argument("--exit-on-stdin-close", action="store_true",
                        help="stop when standard input reaches end of file: a parent that starts the server with a pipe "
                             "(the Blender add-on) takes it down with it on every platform, even when it crashes")
    parser.set_defaults(func=run)


def stop_when_stdin_closes(stop: threading.Event) -> threading.Thread:
    """Set ``stop`` once stdin hits end of file (the parent closed the pipe or died).

    Why a pipe: it is the one parent-death signal every OS delivers (Windows has no SIGHUP or
    PR_SET_PDEATHSIG), so a sidecar started by Blender never outlives it.
    """

    def watch() -> None:
        stream = sys.stdin.buffer if sys.stdin is not None else None
        try:
            while stream is not None and stream.read(4096):
                pass
        except (OSError, ValueError):
            pass
        log.info("standard input closed: stopping the server")
        stop.set()

    thread = threading.Thread(target=watch, name="talkbridge-stdin-watch", daemon=True)
    thread.start()
    return thread


def _engine_config(path: Path | None) -> dict:
    if path is None:
        return {}
    try:
        config = json.loads(path.read_text())
    except OSError as error:
        raise InputError(f"cannot read the engine config ({error.strerror})", path) from None
    except ValueError as error:
        raise InputError(f"not valid JSON ({error})", path) from None
    if not isinstance(config, dict) or not all(isinstance(v, dict) for v in config.values()):
        raise InputError("the engine config must map engine names to objects of options", path)
    return config


def run(args: argparse.Namespace) -> int:
    from talkbridge.bridge.protocol import Limits
    from talkbridge.bridge.security import CurveServerKeys, SecurityConfigError, check_bind_is_safe, load_signing_key
    from talkbridge.bridge.server import Server, ServerConfig
    from talkbridge.bridge.workers import DEVICE_PLACEHOLDER, ProcessRunner, WorkerSpec

    from talkbridge.bridge.jobs import SADTALKER_SETTINGS, sharing_defaults

    if args.jobs_per_device is not None and args.jobs_per_device < 1:
        raise InputError(f"--jobs-per-device must be at least 1, not {args.jobs_per_device}")
    if args.ray and args.jobs_per_device not in (None, 1):
        raise InputError("--jobs-per-device is for local worker processes; with --ray each cluster actor runs one job at a time (drop one of the two)")
    devices = tuple(d.strip() for d in args.devices.split(",") if d.strip())
    args.jobs_per_device, batch_frames = sharing_defaults(devices, 1 if args.ray else args.jobs_per_device, args.batch_frames)
    if (args.curve_secret is None) != (args.allow is None):
        raise SecurityConfigError("CURVE needs both --curve-secret (the server's key pair) and --allow (client keys folder)")
    curve = CurveServerKeys.load(args.curve_secret, args.allow) if args.curve_secret else None
    check_bind_is_safe(args.bind, curve)
    config = ServerConfig(
        bind=args.bind,
        devices=devices,
        curve=curve,
        signing_key=load_signing_key(args.signing_key) if args.signing_key else None,
        limits=Limits.for_server(args.max_input_mb * 1024 * 1024),
        client_timeout_s=args.client_timeout,
        jobs_per_device=args.jobs_per_device,
    )
    engine_config = _engine_config(args.engine_config)
    for engine, flags in engine_options_from_args(args).items():  # an explicit flag wins over the engine config
        engine_config.setdefault(engine, {}).update(flags)
    if args.checkpoints is not None:
        engine_config.setdefault("sadtalker", {}).setdefault("checkpoint_dir", str(args.checkpoints))
    if "checkpoint_dir" not in engine_config.get("sadtalker", {}):
        from talkbridge.core.sadtalker.files import default_checkpoint_dir, has_sadtalker_weights

        found = default_checkpoint_dir()  # the model store, as `generate` uses it (found without torch)
        if has_sadtalker_weights(found):
            engine_config.setdefault("sadtalker", {})["checkpoint_dir"] = str(found)
            log.info("sadtalker checkpoints: %s (model store)", found)
        else:
            log.warning("no SadTalker checkpoints (--checkpoints or `talkbridge models download`): sadtalker jobs will be refused")
    sharing = engine_config.setdefault("sadtalker", {})  # explicit flags win over the engine config
    if args.batch_frames is not None or "batch_frames" not in sharing:
        sharing["batch_frames"] = batch_frames
    if args.batch_wait_ms is not None or "batch_wait_ms" not in sharing:
        sharing["batch_wait_ms"] = SADTALKER_SETTINGS["batch_wait_ms"].default if args.batch_wait_ms is None else args.batch_wait_ms
    for name in ("batch_frames", "batch_wait_ms"):  # here, before any worker starts
        sharing[name] = SADTALKER_SETTINGS[name].check(sharing[name])
    preload = tuple(("engine", (name, DEVICE_PLACEHOLDER)) for name in (n.strip() for n in args.preload.split(",")) if name)
    if not args.max_audio_seconds > 0:
        raise InputError(f"--max-audio-seconds must be positive, not {args.max_audio_seconds}")
    spec = WorkerSpec(
        "talkbridge.bridge.jobs:EngineRunner",
        {"engine_kwargs": engine_config, "precision": args.precision, "max_audio_seconds": args.max_audio_seconds}, preload,
    )
    # The engines run in one process per device, so none can stall the server's socket; a worker's
    # start-up errors (missing weights, unknown engine) stop the server here.
    if args.ray:
        from dataclasses import replace

        from talkbridge.cluster.runner import RayRunner

        runner = RayRunner(args.ray, spec, args.ray_actors)  # one device per cluster actor
        config = replace(config, devices=runner.devices)
    else:
        runner = ProcessRunner(spec, devices, jobs_per_worker=args.jobs_per_device).start()
    stop = threading.Event()
    if args.exit_on_stdin_close:
        stop_when_stdin_closes(stop)
    signum = Server(runner, config).serve_forever(stop)
    if not signum:
        return 0
    log.info("stopped by %s", signal.Signals(signum).name)
    return 128 + signum  # 130 for Ctrl-C, 143 for SIGTERM, as every command exits
