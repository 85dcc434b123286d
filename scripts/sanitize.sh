#!/usr/bin/env bash
# The C++ kernel tests (tests/cpp/test_kernels.cpp, one program per copy of the kernels) built
# and run under AddressSanitizer + UndefinedBehaviorSanitizer, then the bindings' smoke test (an
# MLP and a CNN training step through nnfast._core) under valgrind's memcheck. A program whose
# copy this CPU cannot run exits 77 (skipped); scripts/check_isa_symbols.py checks that build's
# extension. Exits non-zero on any report.
set -euo pipefail
cd "$(dirname "$0")/.."
pybind11_dir="$(python -c 'import pybind11; print(pybind11.get_cmake_dir())')"

echo "== ASan + UBSan: C++ kernel tests"
cmake -S . -B build/sanitize -G Ninja -DCMAKE_BUILD_TYPE=Debug -DNNFAST_SANITIZE=ON \
  -DNNFAST_BUILD_TESTS=ON -Dpybind11_DIR="$pybind11_dir" >/dev/null
cmake --build build/sanitize
# each per-copy test program, 77 (skipped) counting as a pass
run_each_copy() {
  for program in "$1"/nnfast_kernel_tests_*; do
    "${@:2}" "$program" || { rc=$?; [ "$rc" -eq 77 ] || exit "$rc"; }
  done
}
ASAN_OPTIONS=detect_leaks=1:halt_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
  run_each_copy build/sanitize env

echo "== valgrind: the same program, and the bindings' smoke test"
cmake -S . -B build/valgrind -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DNNFAST_BUILD_TESTS=ON -Dpybind11_DIR="$pybind11_dir" >/dev/null
cmake --build build/valgrind
python scripts/check_isa_symbols.py build/valgrind/_core*.so
# (valgrind does not emulate AVX-512: under it the CPU reports none, and that copy skips)
run_each_copy build/valgrind valgrind --error-exitcode=1 --leak-check=full \
  --errors-for-leak-kinds=definite -q
mkdir -p build/valgrind/pkg/nnfast
cp -r python/nnfast/. build/valgrind/pkg/nnfast/
rm -f build/valgrind/pkg/nnfast/_core*.so
cp build/valgrind/_core*.so build/valgrind/pkg/nnfast/
PYTHONMALLOC=malloc PYTHONPATH=build/valgrind/pkg valgrind --error-exitcode=1 -q \
  --leak-check=no python tests/cpp/bindings_smoke.py
echo "sanitizers and valgrind: clean"
