#!/usr/bin/env bash
# Developer build: compiles nnfast._core (and nnfast._cuda, configured with -DNNFAST_CUDA=ON) into
# build/dev and drops it into python/nnfast/, so that
# `PYTHONPATH=python python -c "import nnfast"` uses the working tree without reinstalling.
# Serialised with flock so that several builds at once do not trample each other.
# Extra arguments are passed to cmake's configure step (e.g. -DNNFAST_SANITIZE=ON).
# NNFAST_JOBS: parallel compile jobs (default 2).
set -euo pipefail
cd "$(dirname "$0")/.."
exec 9>/tmp/nnfast-dev-build.lock
flock 9
build=${NNFAST_BUILD_DIR:-build/dev}
if [ ! -f "$build/build.ninja" ] || [ $# -gt 0 ]; then
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -Dpybind11_DIR="$(python -c 'import pybind11; print(pybind11.get_cmake_dir())')" "$@" >/dev/null
fi
cmake --build "$build" -- -j"${NNFAST_JOBS:-2}"
# Copy, then rename into place: a new inode, so Python processes that loaded the old module keep
# a valid mapping instead of having their code overwritten underneath them.
shopt -s nullglob
for so in "$build"/_core*.so "$build"/_cuda*.so; do
  cp "$so" "python/nnfast/.$(basename "$so").tmp"
  mv "python/nnfast/.$(basename "$so").tmp" "python/nnfast/$(basename "$so")"
done
# A build without CUDA leaves no _cuda extension behind from an earlier one that had it.
cuda_built=("$build"/_cuda*.so)
if [ ${#cuda_built[@]} -eq 0 ]; then
  rm -f python/nnfast/_cuda*.so
fi
