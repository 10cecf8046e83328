#!/usr/bin/env bash
# The one prepared run for a lent GPU machine (issue 16). Device time is short: everything in one call.
#
#   run (device tool):  bash bench/gpu_session.sh            timeout_s ~ 540
#   here, to check it:  OUT=/tmp/gpu_out bash bench/gpu_session.sh --smoke
#
# The machine has its own python3 with torch, numpy, OpenCV, SciPy, scikit-image and safetensors,
# and no network. It prints what it has, installs this checkout without dependencies, then:
#   1. bench/gpu.py: fps at batch 1/8/32 for 256 and 512, first-frame latency, peak VRAM, fp32 vs
#      fp16/bf16 speed and PSNR, 1/4/16 concurrent jobs, an official-style loop beside ours;
#   2. bench/generate_long.py --device cuda: official-size networks, 600 s, overlap on and off
#      (needs librosa, soundfile, imageio-ffmpeg: carried wheels in ./wheels/ are installed first);
# and writes every table to $OUT. Golden cases have no CUDA runner yet (docs/plan.md).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-/tmp/talkbridge-gpu}
mkdir -p "$out"
smoke=""
[ "${1:-}" = "--smoke" ] && smoke="--smoke"
python=${PYTHON:-python3}

{
    echo "== machine"; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || echo "no nvidia-smi"
    "$python" -c 'import sys, torch; print("python", sys.version.split()[0], "torch", torch.__version__, "cuda", torch.cuda.is_available())'
} | tee "$out/machine.txt"

if ! "$python" -c 'import talkbridge.core' 2>/dev/null; then
    if [ -d wheels ]; then "$python" -m pip install -q --no-index --find-links wheels wheels/*.whl 2>&1 | tail -2; fi
    "$python" -m pip install -q --no-deps --no-build-isolation -e . 2>&1 | tail -2
fi

echo "== bench/gpu.py $smoke"
timeout 420 "$python" bench/gpu.py $smoke 2>&1 | tee "$out/gpu.txt" | tail -60

missing=$("$python" - <<'PY'
import importlib.util
print(" ".join(n for n in ("librosa", "soundfile", "imageio_ffmpeg", "cv2", "scipy", "safetensors") if importlib.util.find_spec(n) is None))
PY
)
if [ -n "$missing" ]; then
    echo "== generate_long skipped: missing $missing (carry their wheels in ./wheels/)" | tee "$out/generate_long.txt"
elif [ -n "$smoke" ]; then
    timeout 300 "$python" bench/generate_long.py --seconds 2 --renderer slim --overlap both --threads 1 2>&1 | grep -v "frame/s" | tee "$out/generate_long.txt"
else
    echo "== bench/generate_long.py --device cuda (official size, 10 s and 600 s, overlap on and off)"
    timeout 480 "$python" bench/generate_long.py --device cuda --seconds 10 600 --batch-size 16 --overlap both 2>&1 \
        | grep -v "frame/s" | tee "$out/generate_long.txt"
fi
echo "tables in $out"
