"""The export files a job can ask for besides its video and motion: one entry point for every caller.

``talkbridge batch`` rows (``exports`` column) and the job writer (``OutputPlan.exports``) name export
kinds; :func:`write_exports` writes them from a finished :class:`Motion` with the same exporters as
``talkbridge export``, each file atomically. Kinds and file names:

* ``glb``: ``<name>.glb``, the ``head`` glTF with the motion added as an animation (needs ``head``);
* ``livelink``: ``<name>.livelink.csv``, Unreal Live Link Face CSV;
* ``curves``: ``<name>.curves.csv``; ``curves_json``: ``<name>.curves.json`` (plain per-frame curves);
* ``preview``: ``<name>.preview.mp4``, the ``head`` with the motion rendered from the front by Blender,
  with the speech (:mod:`talkbridge.exporters.preview`; needs ``head`` and the ``preview`` extra).

SadTalker motion carries 3DMM expression but no ARKit curves; for ``glb`` and ``livelink`` its mouth
shapes come from the viseme engine's motion for the job's audio (``viseme_motion``, made by the job layer), as in
``talkbridge export --audio``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Iterable

from talkbridge.core.errors import InputError
from talkbridge.core.motion import Motion

log = logging.getLogger(__name__)

EXPORT_SUFFIXES = {
    "glb": ".glb",
    "livelink": ".livelink.csv",
    "curves": ".curves.csv",
    "curves_json": ".curves.json",
    "preview": ".preview.mp4",
}
EXPORT_KINDS = tuple(EXPORT_SUFFIXES)
_ALIASES = {"gltf": "glb", "live_link": "livelink", "csv": "curves", "json": "curves_json", "curves_csv": "curves"}
"""Other names people use (``talkbridge export --format`` says ``csv`` and ``json`` for the curves)."""
_NEEDS_ARKIT = ("glb", "livelink", "preview")
NEEDS_HEAD = ("glb", "preview")
"""Exports made on the user's glTF head."""


def parse_export_kinds(text: str | Iterable[str]) -> tuple[str, ...]:
    """``"glb,livelink curves"`` (comma or space separated; ``-`` or ``_``) as known kinds, in order, once each."""
    items = text.replace(",", " ").split() if isinstance(text, str) else list(text)
    kinds: list[str] = []
    for item in items:
        kind = item.strip().lower().replace("-", "_")
        kind = _ALIASES.get(kind, kind)
        if kind not in EXPORT_SUFFIXES:
            raise InputError(f"unknown export {item!r}; choose from {', '.join(EXPORT_KINDS)}")
        if kind not in kinds:
            kinds.append(kind)
    return tuple(kinds)


def export_targets(kinds: Iterable[str], output_dir: Path, name: str) -> dict[str, Path]:
    """The file each export kind writes: known before any work, so plans can check them up front."""
    return {kind: Path(output_dir) / f"{name}{EXPORT_SUFFIXES[kind]}" for kind in parse_export_kinds(kinds)}


def check_export_request(kinds: Iterable[str], head: Path | None) -> None:
    """Fail before any work when a GLB or a preview is asked for without a readable head file."""
    kinds = parse_export_kinds(kinds)
    on_head = [kind for kind in kinds if kind in NEEDS_HEAD]
    if on_head:
        if head is None:
            raise InputError(f"the {on_head[0]} export needs a head: a glTF 2.0 file (.glb or .gltf) to animate")
        if not Path(head).is_file():
            raise InputError("head file not found", head)
    elif head is not None:
        log.warning("a head was given but no glb or preview export was asked for: %s is not used", head)


def exports_need_arkit(kinds: Iterable[str]) -> bool:
    """Whether any of these export kinds drives blend shapes (and so needs ARKit curves)."""
    return any(kind in _NEEDS_ARKIT for kind in parse_export_kinds(kinds))


def with_arkit(motion: Motion, model: Any = None, viseme_motion: Motion | None = None) -> Motion:
    """``motion`` with ARKit curves: unchanged when it has them, else retargeted geometrically with the
    BFM ``model`` or, without one, with the mouth shapes of ``viseme_motion`` (the viseme engine's motion for
    the same audio, made by the job layer: :func:`talkbridge.core.jobs.viseme_mouth.viseme_motion_for`)."""
    if motion.arkit is not None or (model is None and viseme_motion is None):
        return motion
    from talkbridge.exporters.retarget import retarget_motion

    motion = retarget_motion(motion, model, viseme_motion if model is None else None)
    log.info("ARKit curves from %s", motion.metadata["expression_source"])
    return motion


def write_exports(
    motion: Motion,
    kinds: Iterable[str],
    head: Path | None,
    output_dir: Path,
    name: str,
    overwrite: bool = False,
    viseme_motion: Motion | None = None,
    mouth: str | None = None,
    audio: Path | None = None,
) -> dict[str, Path]:
    """Write each requested export of ``motion`` to ``output_dir`` (see :func:`export_targets`); returns kind -> path.

    ``mouth`` picks the head's mouth set for the glb export (``arkit``, ``visemes``, ``vrm``; None
    for the default), as ``talkbridge export --mouth`` does. ``audio`` is the speech the preview is
    rendered with.

    Every file is written atomically; a failure leaves the files already written and raises.
    """
    targets = export_targets(kinds, output_dir, name)
    if not targets:
        return {}
    check_export_request(targets, head)
    if any(kind in targets for kind in _NEEDS_ARKIT):
        motion = with_arkit(motion, viseme_motion=viseme_motion)
        if motion.arkit is None:
            raise InputError("glb and livelink exports of motion without ARKit curves need mouth shapes from the job's audio")
    written: dict[str, Path] = {}
    for kind, path in targets.items():
        if kind == "glb":
            from talkbridge.exporters.gltf import ExportOptions, add_animation

            add_animation(head, motion, path, ExportOptions(mouth=mouth), overwrite=overwrite)
        elif kind == "preview":
            from talkbridge.exporters.gltf import ExportOptions
            from talkbridge.exporters.preview import render_preview

            render_preview(head, motion, path, audio=audio, overwrite=overwrite, options=ExportOptions(mouth=mouth))
        elif kind == "livelink":
            from talkbridge.exporters.livelink import write_livelink_csv

            write_livelink_csv(motion, path, overwrite=overwrite)
        else:
            from talkbridge.exporters.curves import write_curves_csv, write_curves_json

            (write_curves_json if kind == "curves_json" else write_curves_csv)(motion, path, overwrite=overwrite)
        written[kind] = path
        log.info("wrote %s", path)
    return written
