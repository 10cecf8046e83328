#!/usr/bin/env bash
# The one prepared run for a lent GPU machine (issue 16). Device time is short: everything in one call.
#
#   1. prepare, here:   ./scripts/dev gpu-carry        (= bash bench/gpu_session.sh --prepare)
#   2. run (device tool): command "bash bench/gpu_session.sh", carry [".gpu_carry"], timeout_s 590
#   here, to check it:  OUT=/tmp/gpu_out bash bench/gpu_session.sh --smoke
#
# --prepare fills ./.gpu_carry (git-ignored; it travels only because `carry` names it, ~46 MiB with the
# ~1.5 MiB tree, under the 64 MiB limit): golden/ is a copy of $TALKBRIDGE_GOLDEN_DIR (default
# ../shared/reference/sadtalker, ~16 MiB), wheels/ the Python 3.12 x86-64 wheels generate_long needs
# and the machine lacks (librosa, soundfile, soxr, audioread, pooch, platformdirs, cffi, pycparser,
# decorator at this .venv's versions; imageio-ffmpeg 0.5.1, 27 MB, because 0.8's wheel is 68 MB).
# The machine has its own python3 with torch, numpy, OpenCV, SciPy, scikit-image, safetensors and
# pytest (none needed here), and no network. This prints what it has, installs carried wheels for
# missing packages (into /tmp/site) and this checkout without dependencies, then:
#   1. bench/gpu.py: fps at batch 1/8/32 for 256 and 512, first-frame latency, peak VRAM, fp32 vs
#      fp16/bf16 speed and PSNR, 1/4/16 concurrent jobs, an official-style loop beside ours;
#   2. bench/generate_long.py --device cuda: official-size networks, 10 s and 600 s, overlap on and off;
#   3. bench/golden_device.py --device cuda: every golden case on the GPU (fp32, TF32 off) against the
#      official outputs, from .gpu_carry/golden or $TALKBRIDGE_GOLDEN_DIR.
# Each step gets what is left of a ${GPU_SESSION_BUDGET:-570} s budget (step 3 keeps 120 s for itself),
# so a slow step is cut rather than the whole call. Every table goes to $OUT.
set -uo pipefail
cd "$(dirname "$0")/.."
carry=.gpu_carry
python=${PYTHON:-}
if [ -z "$python" ]; then
    if [ -x .venv/bin/python ]; then python=.venv/bin/python; else python=python3; fi
fi

prepare() {
    # Here (with network): copy the golden cases and download the wheels into ./.gpu_carry.
    local golden=${TALKBRIDGE_GOLDEN_DIR:-../shared/reference/sadtalker} pins
    [ -f "$golden/recipe.py" ] || { echo "no golden cases at $golden (set TALKBRIDGE_GOLDEN_DIR)" >&2; return 1; }
    rm -rf "$carry/golden" "$carry/wheels"
    mkdir -p "$carry/wheels"
    cp -r "$golden" "$carry/golden"
    pins=$("$python" - <<'PY'
from importlib.metadata import version
names = ("librosa", "soundfile", "soxr", "audioread", "pooch", "platformdirs", "cffi", "pycparser", "decorator")
print(" ".join(f"{n}=={version(n)}" for n in names), "imageio-ffmpeg==0.5.1")
PY
) || return 1
    # shellcheck disable=SC2086  # one word per pin
    "$python" -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
        --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux2010_x86_64 \
        -d "$carry/wheels" $pins 2> >(grep -v "^WARNING: Location" >&2) || return 1
    local mib
    mib=$(du -sm "$carry" | cut -f1)
    echo "$carry: golden $(du -sh "$carry/golden" | cut -f1), wheels $(du -sh "$carry/wheels" | cut -f1), $mib MiB in all"
    [ "$mib" -le 60 ] || { echo "$carry is $mib MiB: over the 60 MiB it may take of the 64 MiB limit" >&2; return 1; }
    echo "ready: carry [\"$carry\"] with command \"bash bench/gpu_session.sh\""
}

if [ "${1:-}" = "--prepare" ]; then
    prepare
    exit $?
fi

out=${OUT:-/tmp/talkbridge-gpu}
mkdir -p "$out"
smoke=""
[ "${1:-}" = "--smoke" ] && smoke="--smoke"
budget=${GPU_SESSION_BUDGET:-570}
golden_reserve=120
left() { echo $(( budget - SECONDS - ${1:-0} )); }  # seconds left, less a reserve

{
    echo "== machine"; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || echo "no nvidia-smi"
    "$python" -c 'import sys, torch; print("python", sys.version.split()[0], "torch", torch.__version__, "cuda", torch.cuda.is_available())'
} | tee "$out/machine.txt"

missing_modules() {
    "$python" - <<'PY'
import importlib.util
print(" ".join(n for n in ("librosa", "soundfile", "imageio_ffmpeg", "cv2", "scipy", "safetensors") if importlib.util.find_spec(n) is None))
PY
}
if [ -n "$(missing_modules)" ] && compgen -G "$carry/wheels/*.whl" >/dev/null; then
    echo "== installing carried wheels into /tmp/site"
    "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$carry"/wheels/*.whl 2>&1 | tail -2
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
if ! "$python" -c 'import talkbridge.core' 2>/dev/null; then
    "$python" -m pip install -q --no-deps --no-build-isolation -e . 2>&1 | tail -2
fi

echo "== 1. bench/gpu.py $smoke"
timeout "$(( $(left $golden_reserve) < 420 ? $(left $golden_reserve) : 420 ))" "$python" -m bench.gpu $smoke 2>&1 \
    | tee "$out/gpu.txt" | tail -60

missing=$(missing_modules)
long_limit=$(( $(left $golden_reserve) < 480 ? $(left $golden_reserve) : 480 ))
if [ -n "$missing" ]; then
    echo "== 2. generate_long skipped: missing $missing (run ./scripts/dev gpu-carry here and carry $carry)" | tee "$out/generate_long.txt"
elif [ "$long_limit" -le 10 ]; then
    echo "== 2. generate_long skipped: ${long_limit} s left before the golden step" | tee "$out/generate_long.txt"
elif [ -n "$smoke" ]; then
    echo "== 2. bench/generate_long.py (smoke: 2 s, slim renderer, CPU)"
    timeout "$long_limit" "$python" -m bench.generate_long --seconds 2 --renderer slim --overlap both --threads 1 2>&1 | grep -v "frame/s" | tee "$out/generate_long.txt"
else
    echo "== 2. bench/generate_long.py --device cuda (official size, 10 s and 600 s, overlap on and off; ${long_limit} s at most)"
    timeout "$long_limit" "$python" -m bench.generate_long --device cuda --seconds 10 600 --batch-size 16 --overlap both 2>&1 \
        | grep -v "frame/s" | tee "$out/generate_long.txt"
fi

golden=${TALKBRIDGE_GOLDEN_DIR:-}
if [ -z "$golden" ]; then
    for candidate in "$carry/golden" ../shared/reference/sadtalker; do
        if [ -f "$candidate/recipe.py" ]; then golden=$candidate; break; fi
    done
fi
golden_limit=$(( $(left) > 30 ? $(left) : 30 ))
if [ -z "$golden" ]; then
    echo "== 3. golden cases skipped: no $carry/golden (run ./scripts/dev gpu-carry here and carry $carry)" | tee "$out/golden.txt"
elif [ -n "$smoke" ]; then
    echo "== 3. bench/golden_device.py --device cpu on a few cases ($golden)"
    timeout "$golden_limit" "$python" -m bench.golden_device --device cpu --root "$golden" --threads 1 \
        --cases blink_random mel_chunks audio2exp a_mapping b_kp_detector d_keypoint_transformation 2>&1 | tee "$out/golden.txt"
else
    echo "== 3. bench/golden_device.py --device cuda, every case ($golden; ${golden_limit} s at most)"
    timeout "$golden_limit" "$python" -m bench.golden_device --device cuda --root "$golden" 2>&1 | tee "$out/golden.txt"
fi
echo "tables in $out ($SECONDS s)"
