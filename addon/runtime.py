"""The running job inside Blender: the timer that drains it, the headless loop, and clean cancels.

Only this module's tick (called by ``bpy.app.timers`` or by the headless loop, both on the main
thread) touches bpy while a job runs. Each tick takes the job's new events, turns chunks into curve
buffers (numpy), hands frames to the PNG thread and writes dirty curves until its time budget is
spent, so Blender stays interactive however fast the sidecar streams.
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bpy

from talkbridge.bridge.remote_job import RemoteJob
from talkbridge.core.errors import TalkbridgeError
from talkbridge.core.jobs.steps import Step
from talkbridge.core.motion import scale_expression

from . import apply, sequencer
from .frames import FrameSequenceWriter
from .job import CANCELLED, DONE, FAILED
from .sidecar import LocalSidecar

log = logging.getLogger(__name__)

TICK_INTERVAL_S = 0.05
DEFAULT_TICK_BUDGET_S = 0.008
MAX_EVENTS_PER_TICK = 32


@dataclass
class TakePlan:
    """What to build in Blender from the job's output (resolved on the main thread at Generate)."""

    take_name: str
    scene_name: str
    shape_keys_names: list[str]  # the character's shape-key blocks (one per animated mesh); empty: none
    rig_name: str | None
    bone: str | None
    start_frame: int
    frame_step: float
    pose_reference: str = "first"
    head_movement: float = 0.0  # scene units per 3DMM translation unit; 0 keeps the head in place
    name_map: dict[str, tuple[str | None, float]] = field(default_factory=dict)
    mouth_source: str = "auto"  # auto, arkit, visemes or vrm: the one set that drives the mouth
    preset_binds: dict[str, dict[str, list[tuple[str, float, bool]]]] = field(default_factory=dict)  # VRM presets by block
    frames_folder: str | None = None
    sequencer_audio: str | None = None  # None: the audio already sits on the sequencer (or not wanted)
    metadata: dict[str, Any] = field(default_factory=dict)


class ActiveJob:
    """A job plus the Blender objects it writes; :meth:`tick` advances it by a bounded amount of work."""

    def __init__(self, controller: RemoteJob, plan: TakePlan) -> None:
        self.controller = controller
        self.plan = plan
        self.writer: apply.TakeWriter | None = None
        self.frames = FrameSequenceWriter(plan.frames_folder) if plan.frames_folder else None
        self.placed: sequencer.PlacedStrips | None = None
        self.error: str | None = None
        self.finished = False
        self.ticks = 0
        self.longest_tick_s = 0.0
        self._finishing = False

    # ------------------------------------------------------------------------------ helpers

    @property
    def scene(self) -> "bpy.types.Scene":
        scene = bpy.data.scenes.get(self.plan.scene_name)
        if scene is None:
            raise TalkbridgeError(f"the scene {self.plan.scene_name!r} is gone")
        return scene

    def _make_writer(self) -> apply.TakeWriter:
        plan = self.plan
        shape_keys = []
        for name in plan.shape_keys_names:
            block = bpy.data.shape_keys.get(name)
            if block is None:
                raise TalkbridgeError(f"the shape keys {name!r} were deleted while the job ran")
            shape_keys.append(block)
        target = None
        if plan.rig_name:
            rig = bpy.data.objects.get(plan.rig_name)
            if rig is None:
                raise TalkbridgeError(f"the head object {plan.rig_name!r} was deleted while the job ran")
            target = apply.PoseTarget(rig, plan.bone or None)
        return apply.TakeWriter(
            plan.take_name,
            shape_keys=shape_keys,
            pose_target=target,
            start_frame=plan.start_frame,
            frame_step=plan.frame_step,
            pose_reference=plan.pose_reference,
            name_map=plan.name_map,
            metadata=plan.metadata,
            head_movement=plan.head_movement,
            mouth=plan.mouth_source,
            preset_binds=plan.preset_binds,
        )

    # ------------------------------------------------------------------------------ the tick

    def tick(self, budget_s: float | None = DEFAULT_TICK_BUDGET_S) -> bool:
        """Advance the job; True while there is more to do. Never raises (errors end the job)."""
        began = time.perf_counter()
        try:
            self._tick(began, budget_s)
        except Exception as error:  # noqa: BLE001 - a timer must not raise; the panel shows it
            if isinstance(error, ReferenceError):
                self.error = (
                    "the rig or the take's action changed under the job (undo, or deleted data); it was stopped, "
                    "and the keys written so far are kept"
                )
            else:
                if not isinstance(error, TalkbridgeError):
                    log.exception("the talkbridge job failed")
                self.error = str(error)
            self.controller.close()
            self.controller.state, self.controller.status, self.controller.error = FAILED, "failed", self.error
            self._abort_frames()
            self.finished = True
        elapsed = time.perf_counter() - began
        self.ticks += 1
        self.longest_tick_s = max(self.longest_tick_s, elapsed)
        publish_status(self)
        return not self.finished

    def _tick(self, began: float, budget_s: float | None) -> None:
        if not self._finishing:
            for step in self.controller.updates(MAX_EVENTS_PER_TICK):
                self._take_step(step)
                if budget_s is not None and time.perf_counter() - began > budget_s * 0.5:
                    break
        if self.writer is not None:
            remaining = None if budget_s is None else max(0.0, budget_s - (time.perf_counter() - began))
            flushed = self.writer.flush(remaining, final=self.controller.finished)
        else:
            flushed = True
        if self.frames is not None and self.frames.error:
            raise TalkbridgeError(self.frames.error)
        if self.controller.finished:
            self._finishing = True
            if self.frames is not None:
                self.frames.close()
            if flushed and (self.frames is None or self.frames.done):
                self._complete()

    def _take_step(self, step: Step) -> None:
        if self.writer is None:
            self.writer = self._make_writer()
        # The wire carries SadTalker's official rows; the take shows them as rendered: with the scale.
        info = self.controller.info
        chunk = scale_expression(step.chunk, 1.0 if info is None else info.expression_scale)
        self.writer.add_chunk(chunk)
        if step.frames is not None and self.frames is not None:
            self.frames.put(chunk.start, step.frames)

    def _complete(self) -> None:
        """Place the video/audio strips for what arrived (also after a cancel or a lost sidecar) and end."""
        scene = self.scene
        frames_written = self.frames.files() if self.frames is not None else []
        if frames_written or (self.plan.sequencer_audio and self.controller.state == DONE):
            self.placed = sequencer.place_take(
                scene,
                self.plan.take_name,
                self.plan.start_frame,
                self.plan.frames_folder if frames_written else None,
                frames_written,
                self.plan.sequencer_audio,
            )
        if self.writer is not None and self.writer.frames:
            last = self.plan.start_frame + int(round((self.writer.frames - 1) * self.plan.frame_step))
            if scene.frame_end < last:
                scene.frame_end = last  # only ever extended, so the whole take can play
        self.controller.close()
        self.finished = True

    def _abort_frames(self) -> None:
        if self.frames is not None:
            self.frames.abort()

    def cancel(self) -> None:
        self.controller.cancel()

    def abandon(self, reason: str) -> None:
        """Stop at once without touching bpy (the file is closing or the add-on is going away)."""
        self.controller.close()
        self._abort_frames()
        self.controller.state, self.controller.status = CANCELLED, reason
        self.writer = None
        self.finished = True

    def summary(self) -> str:
        c = self.controller
        if c.state == FAILED:
            return f"talkbridge: {c.error or self.error}"
        parts = [f"talkbridge: {c.status}"]
        if self.writer is not None:
            s = self.writer.summary
            meshes = f" on {len(s.meshes)} meshes" if len(s.meshes) > 1 else ""
            parts.append(f"action {s.action!r}: {len(s.shape_keys)} shape keys{meshes}" + (f", {s.pose_target}" if s.pose_target else ""))
            if s.left_at_rest:
                parts.append(f"mouth from {s.mouth_source}; {len(s.left_at_rest)} shapes of the other mouth/blink sets left at rest")
            if s.joint_bones:
                parts.append(f"jaw/eye bones {', '.join(s.joint_bones)}")
        if self.placed is not None and self.placed.warning:
            parts.append(self.placed.warning)
        return "; ".join(parts)


# ---------------------------------------------------------------------------------- module state

_active: ActiveJob | None = None
_last: ActiveJob | None = None
_sidecar: LocalSidecar | None = None
tick_budget_s: float = DEFAULT_TICK_BUDGET_S


def active_job() -> ActiveJob | None:
    return _active


def last_job() -> ActiveJob | None:
    """The running job, or the one that ended most recently (what the panel shows)."""
    return _active or _last


def local_sidecar(command: str) -> LocalSidecar:
    global _sidecar
    if _sidecar is None or _sidecar.command != command:
        if _sidecar is not None:
            _sidecar.stop()
        _sidecar = LocalSidecar(command)
    return _sidecar


def shutdown_local_sidecar() -> None:
    """Stop the local sidecar, if one runs (before its engine environment is replaced or removed)."""
    global _sidecar
    if _sidecar is not None:
        _sidecar.stop()
        _sidecar = None


def begin(job: ActiveJob, use_timer: bool) -> None:
    global _active, _last
    if _active is not None and not _active.finished:
        raise TalkbridgeError("a talkbridge job is already running; cancel it or wait for it to finish")
    _active, _last = job, job
    job.controller.start()
    publish_status(job)
    if use_timer and not bpy.app.timers.is_registered(timer_tick):
        bpy.app.timers.register(timer_tick, first_interval=0.0)


def timer_tick() -> float | None:
    """The ``bpy.app.timers`` callback: one bounded step of the active job; None unregisters it."""
    global _active
    job = _active
    if job is None:
        return None
    if job.tick(tick_budget_s):
        return TICK_INTERVAL_S
    _active = None
    return None


def run_blocking(job: ActiveJob, timeout_s: float | None = None) -> ActiveJob:
    """Headless path (``bpy`` as a module, ``blender -b``): the same ticks, in a loop, without a budget."""
    global _active
    begin(job, use_timer=False)
    deadline = None if not timeout_s else time.monotonic() + timeout_s
    cancelled_for_time = False
    try:
        while job.tick(None):
            if deadline is not None and time.monotonic() > deadline and not cancelled_for_time:
                job.cancel()
                cancelled_for_time = True
            time.sleep(0.005)
    finally:
        _active = None
    return job


def cancel_active() -> bool:
    job = _active
    if job is None or job.finished:
        return False
    job.cancel()
    return True


def abandon_active(reason: str) -> None:
    """Cancel without touching bpy data (file close, add-on disable)."""
    global _active
    job = _active
    _active = None
    if job is not None and not job.finished:
        job.abandon(reason)
    if bpy.app.timers.is_registered(timer_tick):
        bpy.app.timers.unregister(timer_tick)


def shutdown() -> None:
    """Add-on disable / Blender exit: cancel the job and stop the local sidecar."""
    global _sidecar, _last
    abandon_active("cancelled: the add-on was disabled")
    _last = None
    if _sidecar is not None:
        _sidecar.stop()
        _sidecar = None


def publish_status(job: ActiveJob) -> None:
    """Copy the job's state into the window manager's properties (the panel draws those)."""
    wm = bpy.context.window_manager if bpy.context else None
    status = getattr(wm, "talkbridge_status", None) if wm is not None else None
    if status is None:
        return
    c = job.controller
    status.running = not job.finished
    status.state = c.state
    status.progress = c.progress
    status.message = c.status
    status.error = (c.error or job.error or "") if c.state == FAILED else ""
    status.action = job.writer.action_name if job.writer is not None else ""
    if job.placed is not None and job.placed.warning:
        status.message = f"{c.status} ({job.placed.warning})"
    for window in getattr(wm, "windows", []):
        for area in window.screen.areas:
            if area.type == "VIEW_3D":
                area.tag_redraw()


def plan_folder(take_name: str, base: str | None = None) -> str:
    """A folder for a take's frames next to the .blend, or in the system temp folder for unsaved files.

    Not ``bpy.app.tempdir``: Blender deletes that on exit, and the sequencer strip would lose its frames.
    """
    if base is None:
        blend = bpy.data.filepath
        base = str(Path(blend).parent / "talkbridge_takes") if blend else str(Path(tempfile.gettempdir()) / "talkbridge_takes")
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in take_name)
    folder = Path(base) / safe
    n = 1
    while folder.exists():
        n += 1
        folder = Path(base) / f"{safe}_{n}"
    return str(folder)
