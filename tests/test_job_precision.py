"""`--precision` through the job layer: the option reaches SadTalker's networks on every route.

The networks' own precision gates (PSNR, coefficient tolerances) are tested in
tests/test_precision*.py; here a bf16 job must differ from fp32 only within the documented
coefficient tolerance, and fp16 on a CPU must be refused before any output is made.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.io

from talkbridge.api import run_job
from talkbridge.core.errors import InputError
from talkbridge.core.jobs import JobOptions, JobRequest
from talkbridge.core.jobs.cache import EngineCache
from talkbridge.core.sadtalker.precision import COEFF_TOLERANCE
from talkbridge.exporters.job_files import OutputPlan


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_bf16_runs_within_tolerance_and_fp16_on_cpu_is_refused_up_front(tmp_path):
    from tests.render_helpers import portrait_job_inputs, tiny_recipe_models

    made = portrait_job_inputs(tmp_path, 0.6, seed=3, render=False)
    portrait, landmarks, speech = made.portrait, made.landmarks, made.speech
    cache = EngineCache(made.checkpoints)
    results = {}
    for precision in ("fp32", "bf16"):
        cache.sadtalker("cpu", precision).provide_renderer(256, "crop", tiny_recipe_models(seed=2))
        options = JobOptions(engine="sadtalker", landmarks=landmarks, device="cpu", precision=precision, seed=1)
        results[precision] = run_job(JobRequest(speech, portrait, options), OutputPlan(tmp_path / precision, "clip"), cache=cache)
    fp32, bf16 = (scipy.io.loadmat(results[k].coefficients)["coeff_3dmm"] for k in ("fp32", "bf16"))
    tolerance = COEFF_TOLERANCE["bf16"]
    assert not np.array_equal(fp32, bf16)  # the half-precision networks really ran
    assert np.abs(fp32[:, :64] - bf16[:, :64]).max() <= tolerance["expression"]
    assert np.abs(fp32[:, 64:] - bf16[:, 64:]).max() <= tolerance["pose"]
    summary = json.loads(results["bf16"].summary.read_text())
    assert summary["metadata"]["options"]["precision"] == "bf16"

    with pytest.raises(InputError, match="fp16 .*needs a CUDA GPU"):
        run_job(JobRequest(speech, portrait, JobOptions(engine="sadtalker", landmarks=landmarks, device="cpu", precision="fp16")),
                OutputPlan(tmp_path / "fp16", "clip"), cache=cache)
    assert not any((tmp_path / "fp16").iterdir())


def test_a_servers_precision_is_the_default_a_job_may_override(tmp_path):
    from talkbridge.bridge.jobs import EngineRunner, JobSpec, build_request

    audio = np.zeros(1600, np.float32)
    plain = build_request(JobSpec("a", "sadtalker", audio_pcm=audio), tmp_path, "cpu", EngineRunner(precision="bf16").precision)
    chosen = build_request(JobSpec("b", "sadtalker", audio_pcm=audio, options={"precision": "fp32"}), tmp_path, "cpu", "bf16")
    assert (plain.options.precision, chosen.options.precision) == ("bf16", "fp32")
    with pytest.raises(InputError, match="'precision'"):
        EngineRunner(precision="fp8")
