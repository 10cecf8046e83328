"""`talkbridge preview HEAD.glb MOTION.npz -o preview.mp4`: see a take on your own head, with the speech.

    talkbridge preview character.glb clip.motion.npz -o clip_preview.mp4
    talkbridge preview character.glb clip.motion.npz -o clip_preview.mp4 --audio clip.wav --size 512

The motion goes onto the head exactly as `talkbridge export` puts it there; Blender (as a Python
module: `pip install 'talkbridge[preview]'`) renders the animated head from the front.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "preview",
        help="render a motion file on a glTF head to a short video with the speech (needs the preview extra: bpy)",
        description="Put MOTION on HEAD as `talkbridge export` does, render the animated head from the front in "
        "Blender (Workbench: studio light, the head's textures) and write an H.264 video with the speech: the "
        "--audio file, else the audio the motion file records.",
    )
    parser.add_argument("head", type=Path, help="the glTF 2.0 head (.glb or .gltf)")
    parser.add_argument("motion", type=Path, help="the .motion.npz to play on it")
    parser.add_argument("-o", "--output", type=Path, required=True, help="the video to write (.mp4)")
    parser.add_argument("--audio", type=Path, help="the speech to mux (default: the motion file's recorded audio)")
    parser.add_argument("--size", type=int, default=256, help="video width and height in pixels (even; default 256)")
    parser.add_argument("--map", type=Path, help="JSON name map {target: channel | null} overriding automatic matching")
    parser.add_argument("--head-node", help="node/joint that head pose drives (default: found by name)")
    parser.add_argument("--no-pose", action="store_true", help="do not turn the head")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing video")
    parser.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    from talkbridge.exporters.atomic import check_writable_target
    from talkbridge.exporters.gltf import ExportOptions
    from talkbridge.exporters.job_exports import with_arkit
    from talkbridge.exporters.motion_file import load_motion
    from talkbridge.exporters.naming import load_name_map
    from talkbridge.exporters.preview import render_preview, speech_for

    options = ExportOptions(
        head_node=args.head_node,
        animate_pose=not args.no_pose,
        name_map=load_name_map(args.map) if args.map else None,
    )
    check_writable_target(args.output, args.overwrite)  # before any work
    motion = load_motion(args.motion)
    speech = speech_for(motion, args.audio)
    if motion.arkit is None and speech is not None:  # SadTalker motion: mouth shapes from the speech, as `export --audio`
        from talkbridge.core.jobs.viseme_mouth import viseme_motion_for

        motion = with_arkit(motion, viseme_motion=viseme_motion_for(speech))
    from tqdm import tqdm

    with tqdm(total=motion.n_frames, unit="frame", desc="preview", disable=True if args.quiet else None, leave=False) as bar:
        result = render_preview(args.head, motion, args.output, audio=speech, size=args.size,
                                overwrite=args.overwrite, options=options, progress=bar.update)
    print(result.path)
    return 0
