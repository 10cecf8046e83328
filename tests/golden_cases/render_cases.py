"""Runners for the render-side golden cases (MappingNet, face-vid2vid, recon net, alignment).

Each runner builds OUR module, makes the case's recipe weights from that module's own state-dict
layout, loads them strictly, and runs the same computation the official code ran. Shapes, options and
configuration come from the case, so unseen cases made the same way run unchanged. Modules and
input tensors go to :func:`~tests.golden_cases.golden_device`; outputs come back to the CPU.
"""

from __future__ import annotations

import numpy as np
import torch

from talkbridge.core.sadtalker.checkpoints import load_strict
from talkbridge.core.sadtalker.render.config import MappingConfig
from tests.golden_cases import GoldenCase, RunnerEntry, golden_device, kind_startswith


def _load_recipe(module: torch.nn.Module, case: GoldenCase, network: str) -> torch.nn.Module:
    shapes = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    weights = case.recipe_weights(shapes, network=network)
    load_strict(module, {k: torch.from_numpy(np.array(v, copy=True)) for k, v in weights.items()}, case.folder)
    return module.to(golden_device()).eval()


def _tensor(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(array, copy=True)).to(golden_device())


def _numpy(out: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    return {k: v.detach().cpu().numpy() for k, v in out.items()}


def _mapping_for(case: GoldenCase, channels: int):
    from talkbridge.core.sadtalker.render.mapping import MappingNet

    network = "mapping_still" if channels == 73 else "mapping"
    return _load_recipe(MappingNet(MappingConfig(coeff_nc=channels)), case, network)


def run_mapping(case: GoldenCase) -> dict[str, np.ndarray]:
    from talkbridge.core.sadtalker.render.windows import semantic_window

    inputs = case.inputs
    radius = int(case.meta.get("config", {}).get("semantic_radius", 13))
    out: dict[str, np.ndarray] = {}
    if "coeff_seq" in inputs and "frame_idx" in inputs:
        window = np.stack([semantic_window(inputs["coeff_seq"], int(i), radius) for i in inputs["frame_idx"]])
        out["window"] = window.astype(np.float32)
    else:
        window = inputs["window"]
    net = _mapping_for(case, window.shape[1])
    with torch.inference_mode():
        out.update(_numpy(net(_tensor(window.astype(np.float32)))))
    return out


def run_kp_detector(case: GoldenCase) -> dict[str, np.ndarray]:
    from talkbridge.core.sadtalker.render.kp_detector import KPDetector

    net = _load_recipe(KPDetector(), case, "kp_extractor")
    with torch.inference_mode():
        return _numpy({"kp_canonical": net(_tensor(case.inputs["source_image"]))})


def run_he_estimator(case: GoldenCase) -> dict[str, np.ndarray]:
    from talkbridge.core.sadtalker.render.he_estimator import HEEstimator

    net = _load_recipe(HEEstimator(), case, "he_estimator")
    with torch.inference_mode():
        return _numpy(net(_tensor(case.inputs["source_image"])))


def run_keypoint_transformation(case: GoldenCase) -> dict[str, np.ndarray]:
    from talkbridge.core.sadtalker.render.keypoints import keypoint_transformation

    inputs = {k: _tensor(v) for k, v in case.inputs.items()}
    he = {k: inputs[k] for k in ("yaw", "pitch", "roll", "t", "exp")}
    plain = keypoint_transformation(inputs["kp_canonical"], he)
    out = {
        "yaw_deg": plain["yaw"], "pitch_deg": plain["pitch"], "roll_deg": plain["roll"],
        "rot_mat": plain["rot_mat"], "kp": plain["kp"],
    }
    if any(f"{axis}_in" in inputs for axis in ("yaw", "pitch", "roll")):
        free = keypoint_transformation(
            inputs["kp_canonical"], he, inputs.get("yaw_in"), inputs.get("pitch_in"), inputs.get("roll_in")
        )
        out.update({"rot_mat_free": free["rot_mat"], "kp_free": free["kp"]})
    return _numpy(out)


def _generator_for(case: GoldenCase):
    from talkbridge.core.sadtalker.render.generator import OcclusionAwareSPADEGenerator

    return _load_recipe(OcclusionAwareSPADEGenerator(), case, "generator")


def run_generator(case: GoldenCase) -> dict[str, np.ndarray]:
    net = _generator_for(case)
    inputs = {k: _tensor(v) for k, v in case.inputs.items()}
    with torch.inference_mode():
        out = net(inputs["source_image"], inputs["kp_driving"], inputs["kp_source"])
    return _numpy(out)


def run_make_animation(case: GoldenCase) -> dict[str, np.ndarray]:
    from talkbridge.core.sadtalker.render.animate import make_animation
    from talkbridge.core.sadtalker.render.kp_detector import KPDetector

    inputs = case.inputs
    target = inputs["target_semantics"]
    mapping = _mapping_for(case, target.shape[2])
    kp_detector = _load_recipe(KPDetector(), case, "kp_extractor")
    generator = _generator_for(case)
    seqs = {name: _tensor(inputs[name]) if name in inputs else None for name in ("yaw_c_seq", "pitch_c_seq", "roll_c_seq")}
    out = make_animation(
        _tensor(inputs["source_image"]), _tensor(inputs["source_semantics"]), _tensor(target),
        kp_detector, mapping, generator, **seqs,
    )
    result = _numpy(out)
    # The case stores driving keypoints one row per generator input, in call order: step by step,
    # each step holding the batch (for batch 1 that is simply one row per frame).
    driving = result["kp_driving"]
    result["kp_driving"] = driving.transpose(1, 0, 2, 3).reshape(-1, *driving.shape[2:])
    return result


def run_get_facerender_data(case: GoldenCase) -> dict[str, np.ndarray]:
    from talkbridge.core.sadtalker.render.windows import prepare_facerender_batch

    config = dict(case.meta.get("config", {}))
    inputs = case.inputs
    batch = prepare_facerender_batch(
        inputs["source_png_u8"], inputs["first_coeff_3dmm"], inputs["coeff_3dmm"],
        preprocess=config.get("preprocess", "crop"),
        still=bool(config.get("still", False)),
        batch_size=int(config.get("batch_size", 1)),
        expression_scale=float(config.get("expression_scale", 1.0)),
        input_yaw_list=config.get("input_yaw_list"),
        input_pitch_list=config.get("input_pitch_list"),
        input_roll_list=config.get("input_roll_list"),
        size=int(config.get("size", 256)),
        radius=int(config.get("semantic_radius", 13)),
    )
    out = {
        "source_image": batch.source_image,
        "source_semantics": batch.source_semantics,
        "target_semantics_list": batch.target_semantics,
        "frame_num": np.asarray(batch.frame_num, dtype=np.int64),
    }
    for name in ("yaw_c_seq", "pitch_c_seq", "roll_c_seq"):
        if getattr(batch, name) is not None:
            out[name] = getattr(batch, name)
    return out


RUNNERS: list[RunnerEntry] = [
    RunnerEntry(kind_startswith("mapping"), run=run_mapping),
    RunnerEntry(kind_startswith("kp_extractor"), run=run_kp_detector),
    RunnerEntry(kind_startswith("he_estimator"), run=run_he_estimator),
    RunnerEntry(kind_startswith("keypoint_transformation"), run=run_keypoint_transformation),
    RunnerEntry(kind_startswith("generator"), run=run_generator),
    RunnerEntry(kind_startswith("make_animation"), run=run_make_animation),
    RunnerEntry(kind_startswith("get_facerender_data"), run=run_get_facerender_data),
]


def run_net_recon(case: GoldenCase) -> dict[str, np.ndarray]:
    from talkbridge.core.face.recon_net import ReconNet, first_frame_row, split_coefficients

    net = _load_recipe(ReconNet(), case, "net_recon")
    with torch.inference_mode():
        coeffs = net(_tensor(case.inputs["image"]))
        out = {"coeff_257": coeffs, **split_coefficients(coeffs)}
        if "trans_params_f32" in case.inputs:
            out["coeff_3dmm_73"] = first_frame_row(coeffs, _tensor(case.inputs["trans_params_f32"]))
    return _numpy(out)


def run_align_img(case: GoldenCase) -> dict[str, np.ndarray]:
    from talkbridge.core.face.align import align_img

    inputs = case.inputs
    image = next(v for k, v in inputs.items() if v.dtype == np.uint8 and v.ndim == 3)
    template = next((v for k, v in inputs.items() if k.startswith("lm3d")), None)
    landmarks = next(v for k, v in inputs.items() if k.startswith("lm") and not k.startswith("lm3d"))
    kwargs = {} if template is None else {"template": template}
    aligned = align_img(image, landmarks, **kwargs)
    return {
        "lm5p": aligned.lm5p,
        "pos_t": aligned.fit_translation,
        "pos_s": np.array([aligned.fit_scale]),
        "trans_params": aligned.trans_params,
        "trans_params_f32": aligned.trans_params.astype(np.float32),
        "aligned_u8": aligned.image,
        "lm_new": aligned.landmarks,
    }


RUNNERS += [
    RunnerEntry(kind_startswith("net_recon"), run=run_net_recon),
    RunnerEntry(kind_startswith("align_img"), run=run_align_img),
]
