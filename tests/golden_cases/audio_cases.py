"""Runners for the audio-side golden cases: mel front-end, blinks, ExpNet, PoseVAE, audio->coeff.

The networks run on :func:`~tests.golden_cases.golden_device`; the mel and blink cases are numpy only.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from talkbridge.core.audio.mel import MelWindows, log_mel, mel_filterbank
from talkbridge.core.motion import EXPRESSION_DIM, POSE_DIM
from talkbridge.core.sadtalker.audio2coeff import Audio2Coeff, CoeffRequest, PoseSequence, predict_expression
from talkbridge.core.sadtalker.audio_models import SAFETENSORS_PATTERN, AudioCheckpoints, load_audio2coeff
from talkbridge.core.sadtalker.blink import random_blinks
from talkbridge.core.sadtalker.nets.expnet import ExpNet
from talkbridge.core.sadtalker.nets.posevae import PoseVAE
from tests.golden_cases import GoldenCase, RunnerEntry, golden_device, kind_startswith


def recipe_model(case: GoldenCase, model: torch.nn.Module, network: str) -> torch.nn.Module:
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    weights = case.recipe_weights(shapes, network)
    model.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in weights.items()})
    return model.eval()


def write_recipe_safetensors(case: GoldenCase, folder: Path) -> Path:
    """A combined checkpoint file holding the case's recipe weights under the official prefixes."""
    from safetensors.torch import save_file

    tensors = {}
    for prefix, model in (("audio2exp", ExpNet()), ("audio2pose", PoseVAE())):
        recipe_model(case, model, prefix)
        tensors.update({f"{prefix}.{k}": v.contiguous() for k, v in model.state_dict().items()})
    path = folder / SAFETENSORS_PATTERN.format(size=256)
    save_file(tensors, str(path))
    return path


def run_mel_chunks(case: GoldenCase) -> dict[str, np.ndarray]:
    wav = case.inputs["wav"]
    source = MelWindows(wav)
    return {
        "wav_cropped": source.samples,
        "num_frames": np.array(source.n_frames),
        "mel": log_mel(wav),
        "indiv_mels": source.windows(0, source.n_frames),
        "mel_basis": mel_filterbank(),
        "mel_reflect_pad_variant": log_mel(wav, pad_mode="reflect"),
    }


def run_blink_random(case: GoldenCase) -> dict[str, np.ndarray]:
    outputs = {}
    for seed, frames in zip(case.inputs["seeds"], case.inputs["T"]):
        outputs[f"ratio_seed{int(seed)}_T{int(frames)}"] = random_blinks(int(frames), int(seed))
    return outputs


def run_audio2exp(case: GoldenCase) -> dict[str, np.ndarray]:
    pipeline = Audio2Coeff(recipe_model(case, ExpNet(), "audio2exp"), PoseVAE(), device=golden_device())
    mels = case.inputs["indiv_mels"][0, :, 0]
    ref = case.inputs["ref"][0, :, :EXPRESSION_DIM]
    ratio = case.inputs["ratio_gt"][0]
    unfused = predict_expression(pipeline.expnet, mels[:10], ref[:10], ratio[:10], pipeline.device, batch=10)
    fused = pipeline.expression(mels, ref, ratio)  # the production path (batch norm folded)
    assert np.allclose(fused[:10], unfused, atol=1e-5)
    return {"exp_coeff_pred": fused[None]}


def run_audio2pose(case: GoldenCase) -> dict[str, np.ndarray]:
    model = recipe_model(case, PoseVAE(), "audio2pose")
    pipeline = Audio2Coeff(ExpNet(), model, device=golden_device())  # moves ``model`` there too
    mels = case.inputs["indiv_mels"][0, :, 0]
    frames = int(case.inputs["num_frames"])
    first_pose = case.inputs["ref"][0, 0, EXPRESSION_DIM : EXPRESSION_DIM + POSE_DIM]
    latents = iter(torch.from_numpy(case.inputs["z"].reshape(-1, model.config.latent).copy()))
    trace: list = []
    pose = PoseSequence(
        model, lambda a, b: mels[a:b], frames, first_pose, int(case.inputs["class"][0]), lambda: next(latents),
        device=pipeline.device, trace=trace, encoder=pipeline.posevae_encoder,
    )
    pose.ensure(frames)
    return {
        "pose_pred": pose.raw[None],
        "pose_motion_pred": (pose.raw - pose.raw[:1])[None],
        "chunk_audio_emb": np.stack([emb for emb, _ in trace])[:, None],
        "chunk_decoder_pose_motion": np.stack([motion for _, motion in trace])[:, None],
    }


def run_audio2coeff(case: GoldenCase) -> dict[str, np.ndarray]:
    import tempfile

    inputs = case.inputs
    with tempfile.TemporaryDirectory() as folder:
        write_recipe_safetensors(case, Path(folder))
        pipeline: Audio2Coeff = load_audio2coeff(AudioCheckpoints.find(folder, 256), golden_device())
    request = CoeffRequest(
        audio=case.folder / "speech.wav",
        first_frame=inputs["first_coeff_3dmm"],
        pose_style=int(inputs["pose_style"]),
        ref_eyeblink=inputs.get("ref_eyeblink_coeff_3dmm"),
        ref_pose=inputs.get("ref_pose_coeff_3dmm"),
        blink=inputs["blink_ratio"],
        latents=inputs["z"],
    )
    job = pipeline.prepare(request)
    chunks = list(job.chunks(chunk_frames=64))  # several chunks: streaming must equal the whole
    coeff = np.concatenate([c.coefficients() for c in chunks], axis=0)
    n = job.n_frames
    ref_used = np.concatenate(
        [job.ref_expression(0, n), np.repeat(job.first_frame[None, EXPRESSION_DIM : EXPRESSION_DIM + POSE_DIM], n, 0)], axis=1
    )
    return {
        "coeff_3dmm": coeff,
        "exp_pred": coeff[None, :, :EXPRESSION_DIM],
        "pose_pred_raw": job.pose.raw[None],
        "ratio_gt_used": job.blink[None],
        "ref_used": ref_used[None],
    }


RUNNERS: list[RunnerEntry] = [
    RunnerEntry(kind_startswith("generate_batch.get_data (audio part)"), run_mel_chunks),
    RunnerEntry(kind_startswith("generate_batch.generate_blink_seq_randomly"), run_blink_random),
    RunnerEntry(kind_startswith("audio2exp"), run_audio2exp),
    RunnerEntry(kind_startswith("audio2pose"), run_audio2pose),
    RunnerEntry(kind_startswith("inference.py audio->coeff step"), run_audio2coeff),
]
