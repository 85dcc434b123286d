#!/usr/bin/env bash
# The CUDA path on a machine with an NVIDIA GPU and the CUDA toolkit (nvcc on the PATH), run from
# anywhere in the checkout: `bash scripts/gpu-check.sh`.
#   1. builds nnfast with NNFAST_CUDA=ON into build/gpu-check (no virtual environment, no install:
#      dev-build.sh copies _core and _cuda next to python/nnfast, replacing the ones there);
#   2. runs tests/test_cuda.py (every CUDA kernel family against the CPU backend, hypothesis;
#      the DLPack exchange with PyTorch), tests/test_devices.py (models moved to the GPU
#      train, predict and evaluate as on the CPU) and tests/test_graphs.py (steps replayed from
#      a CUDA graph train as eager ones);
#   3. runs scripts/gpu_check.py: each CUDA kernel against the CPU kernel on random inputs
#      (relative tolerance 1e-4), a pass/fail table;
#   4. runs benchmarks/gpu.py: epoch time and accuracy of the MLPs and the LeNet-like CNN for
#      nnfast CUDA (steps replayed from a CUDA graph, and eager), PyTorch CUDA (where installed)
#      and nnfast CPU, and GEMM TFLOP/s against torch.matmul, written to
#      benchmarks/results/gpu.json.
# Exits non-zero when the build, a test, a check or a benchmark engine fails, or when no GPU is
# found.
# NNFAST_CUDA_ARCHITECTURES overrides the architectures compiled (default 80;90); NNFAST_JOBS the
# compile jobs (default: the cores).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v nvcc >/dev/null || { echo "gpu-check: nvcc is not on the PATH" >&2; exit 2; }
command -v nvidia-smi >/dev/null && nvidia-smi -L || true

export NNFAST_BUILD_DIR=${NNFAST_BUILD_DIR:-build/gpu-check}
export NNFAST_JOBS=${NNFAST_JOBS:-$(nproc)}
args=(-DNNFAST_CUDA=ON)
if [ -n "${NNFAST_CUDA_ARCHITECTURES:-}" ]; then
  args+=("-DCMAKE_CUDA_ARCHITECTURES=$NNFAST_CUDA_ARCHITECTURES")
fi
echo "== build ($NNFAST_BUILD_DIR)"
timeout 420 scripts/dev-build.sh "${args[@]}"

export PYTHONPATH=python
python -c "import nnfast, sys; nnfast.cuda.is_available() or sys.exit('gpu-check: ' + nnfast.cuda.unavailable_reason())"

status=0
echo "== tests/test_cuda.py tests/test_devices.py tests/test_graphs.py"
timeout 240 python -m pytest -q -p no:cacheprovider -rs tests/test_cuda.py tests/test_devices.py \
  tests/test_graphs.py || status=1
echo "== CUDA kernels against the CPU kernels"
timeout 120 python scripts/gpu_check.py || status=1
echo "== benchmarks/gpu.py"
timeout 180 python benchmarks/gpu.py || status=1
exit $status
