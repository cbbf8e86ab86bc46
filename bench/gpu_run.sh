#!/usr/bin/env bash
# The device command for bench.gpu_suite (issue 17), run from the repository root on the lent
# machine after bench/gpu_prepare.sh made .gpu/ here. Two calls, each under the 64 MiB a call
# carries (the machine stays warm between them: make the second at once):
#   run(command="bash bench/gpu_run.sh 1 2 3 4", carry=[".gpu/wheels", ".gpu/wheels-hf",
#       ".gpu/smollm2"], timeout_s=480)
#   run(command="bash bench/gpu_run.sh 5", carry=[".gpu/wheels", ".gpu/minilm"], timeout_s=240)
# Output: the table on stdout, $OUT/gpu_suite.json and $OUT/gpu_suite-rows-*.log.
set -uo pipefail
out="${OUT:-out}"
mkdir -p "$out"
log="$out/gpu_suite-rows-$(IFS=-; echo "$*").log"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .gpu/wheels*/*.whl || exit 1
# DeepSpeed's op builder misreads an unset arch list on this image ('0a'): name Hopper.
export PYTHONPATH="/tmp/site:$PWD" PYTHONUNBUFFERED=1 TORCH_CUDA_ARCH_LIST=9.0
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$log"
args=(--rows "$@" --out "$out")
[ -d .gpu/smollm2 ] && args+=(--smollm2 .gpu/smollm2)
[ -d .gpu/minilm ] && args+=(--minilm .gpu/minilm)
python3 -m bench.gpu_suite "${args[@]}" 2>&1 | tee -a "$log"
