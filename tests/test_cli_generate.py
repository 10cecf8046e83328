"""`talkbridge generate`, `demo` and `head`: the main job end to end on the lite engine."""

from __future__ import annotations

import json
import subprocess

import imageio_ffmpeg
import numpy as np
import pytest

from talkbridge.cli import main
from talkbridge.core.lite.articulation import lip_aperture
from talkbridge.core.lite.samples import synthesize_speech, write_portrait
from talkbridge.core.motion import ARKIT_52
from talkbridge.exporters.motion_file import load_motion
from talkbridge.exporters.video import ffmpeg_executable

SIZE = 128


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("inputs")
    speech = synthesize_speech("Papa made me a map. Ma, open wide: ah.", folder / "speech.wav")
    transcript = folder / "speech.txt"
    transcript.write_text("Papa made me a map. Ma, open wide: ah.\n")
    return write_portrait(folder / "portrait.png"), speech, transcript


def read_video(path):
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    width, height = meta["size"]
    return meta, np.stack([np.frombuffer(f, np.uint8).reshape(height, width, 3) for f in reader])


@pytest.fixture(scope="module")
def generated(inputs, tmp_path_factory):
    image, speech, transcript = inputs
    out = tmp_path_factory.mktemp("out")
    code = main(["-q", "generate", str(image), str(speech), "-o", str(out), "--transcript", str(transcript),
                 "--still", "--size", str(SIZE), "--seed", "4"])
    assert code == 0
    return out


def test_generate_writes_video_and_motion_files(generated, inputs):
    video, motion_path, summary_path = (generated / n for n in ("speech.mp4", "speech.motion.npz", "speech.motion.json"))
    motion = load_motion(motion_path)
    assert motion.engine == "lite" and motion.expression is None
    assert motion.arkit.shape == (motion.n_frames, len(ARKIT_52)) and motion.visemes.shape[1] == 15
    assert motion.metadata["phone_source"] == "alignment" and motion.metadata["seed"] == 4
    summary = json.loads(summary_path.read_text())
    assert summary["frames"] == motion.n_frames and summary["engine"] == "lite"
    meta, frames = read_video(video)
    assert meta["fps"] == 25 and meta["size"] == (SIZE, SIZE)
    assert len(frames) == motion.n_frames
    info = subprocess.run([ffmpeg_executable(), "-hide_banner", "-i", str(video)], capture_output=True, text=True).stderr
    assert "Audio: aac" in info
    assert not np.any(motion.pose)  # --still


def test_the_video_mouth_follows_the_motion(generated):
    from talkbridge.core.lite.mannequin import MOUTH_Y, build_mannequin
    from talkbridge.core.lite.preview import PreviewRenderer

    motion = load_motion(generated / "speech.motion.npz")
    _, frames = read_video(generated / "speech.mp4")
    (left, right), (top, bottom), _ = PreviewRenderer(build_mannequin(), SIZE).project(
        np.array([[-0.03, MOUTH_Y + 0.01, 0.09], [0.03, MOUTH_Y - 0.02, 0.09]])
    )
    mouth = frames[:, int(top) : int(bottom) + 1, int(left) : int(right) + 1].astype(int)
    dark = (mouth.sum(axis=3) < 150).sum(axis=(1, 2))
    aperture = lip_aperture(motion.arkit)
    assert aperture.max() > 0.3 and dark.max() > 10

    def correlation(lag: int) -> float:
        a = dark[max(0, lag) : len(dark) + min(0, lag)]
        b = aperture[max(0, -lag) : len(aperture) - max(0, lag)]
        return float(np.corrcoef(a, b)[0, 1])

    # The open mouth in the picture tracks the motion, in sync: best with no lag.
    assert correlation(0) > 0.8
    assert correlation(0) > max(correlation(-3), correlation(3)) + 0.1


def test_existing_outputs_are_kept_and_bad_input_is_named(generated, inputs, caplog):
    image, speech, _ = inputs
    fresh = generated / "fresh"

    def fails_with(arguments: list[str], message: str) -> None:
        caplog.clear()
        assert main(["-q", "generate", *arguments]) == 1
        assert message in caplog.text

    before = (generated / "speech.motion.npz").read_bytes()
    fails_with([str(image), str(speech), "-o", str(generated), "--size", str(SIZE)], "speech.mp4: already exists")
    assert (generated / "speech.motion.npz").read_bytes() == before
    fails_with([str(speech), str(speech), "-o", str(fresh)], "speech.wav: cannot read the portrait")
    fails_with([str(image), str(speech), "-o", str(fresh), "--engine", "sadtalker", "--checkpoints", str(generated)],
               "no SadTalker checkpoints in")
    fails_with([str(image), str(generated / "nope.wav"), "-o", str(fresh)], "nope.wav: audio file not found")
    fails_with([str(image), str(speech), "-o", str(fresh), "--transcript", str(generated / "gone.txt")], "gone.txt")
    assert not fresh.exists()


@pytest.mark.slow
def test_demo_makes_its_inputs_and_keeps_earlier_runs(tmp_path, capsys):
    assert main(["-q", "demo", "-o", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert str(tmp_path / "demo.mp4") in printed
    for name in ("demo.mp4", "demo.motion.npz", "demo.motion.json", "inputs/speech.wav", "inputs/portrait.png"):
        assert (tmp_path / name).is_file(), name
    motion = load_motion(tmp_path / "demo.motion.npz")
    assert motion.metadata["phone_source"] == "alignment"
    assert lip_aperture(motion.arkit).max() > 0.3
    # A second run would not touch these outputs: it takes the next free name.
    from talkbridge.cli.commands.demo import free_name

    assert free_name(tmp_path, "demo") == "demo-2"


def test_head_mannequin_writes_a_glb_with_all_targets(tmp_path):
    from talkbridge.exporters.gltf import read_head

    out = tmp_path / "head.glb"
    assert main(["-q", "head", "mannequin", "-o", str(out)]) == 0
    head = read_head(out)
    assert set(ARKIT_52) <= set(head.morph_targets)
    assert main(["-q", "head", "mannequin", "-o", str(out)]) == 1  # kept without --overwrite
