#!/bin/bash
# Everything issue 11 needs measured on a lent GPU, in one run of about 8 minutes (a session's
# 15 minutes of device time then leave room to rerun it once). The GPU machine has torch,
# OpenCV, click, rich, safetensors and huggingface_hub, but not PyAV or OpenEXR: carry them.
# Once, in the repository root:
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#       --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
#       -d .whl av==18.1.0 openexr==3.5.3          # 37.5 MB, under the 64 MiB that travels
# Then the device tool: run(command="bash benchmarks/gpu_check.sh", carry=[".whl"],
# timeout_s=590). Each table lands in $OUT (here: ./gpu-check), one file per step.
set -uo pipefail
out=${OUT:-gpu-check}
mkdir -p "$out"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site:$PWD
fi

step() {  # step NAME SECONDS COMMAND...: run it, at most SECONDS, its output into $out/NAME.txt
    local name=$1 seconds=$2
    shift 2
    echo "== $*"
    timeout "$seconds" "$@" 2>&1 | tee "$out/$name.txt"
}

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$out/gpu.txt"
# the GPU computes what the CPU does; what fp16 and bf16 cost in PSNR-T (budget 0.05 dB)
step agree 120 python3 benchmarks/devices_agree.py --device cuda --frames 8
# engines alone: hdrflow >= 300 fps at 1080p and >= 80 at 4K, lan-hdr >= 25 at 1080p
step engines 150 python3 benchmarks/models.py --device cuda --models hdrflow,lan-hdr \
    --sizes 1920x1080,3840x2160 --precisions fp32,fp16,bf16 --runs 5
# end to end to half/PIZ EXR: hdrflow >= 120 fps at 1080p, with the bottleneck stage named
step speed-1080p 120 python3 benchmarks/speed.py --device cuda --frames 96 --sizes 1920x1080 \
    --models hdrflow,merge
step speed-1080p-yuv-host 60 python3 benchmarks/speed.py --device cuda --frames 96 \
    --sizes 1920x1080 --models hdrflow --yuv-on host
step speed-4k 90 python3 benchmarks/speed.py --device cuda --frames 24 --sizes 3840x2160 \
    --models hdrflow
