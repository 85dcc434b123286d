#!/usr/bin/env bash
# The C++ kernel tests (tests/cpp/test_kernels.cpp, one program per copy of the kernels) built
# and run under AddressSanitizer + UndefinedBehaviorSanitizer, then the Python test suite against
# that build's extension (the sanitizer runtimes preloaded into Python), then the bindings' smoke
# test (an MLP and a CNN training step through nnfast._core) under valgrind's memcheck. A program
# whose copy this CPU cannot run exits 77 (skipped); scripts/check_isa_symbols.py checks that
# build's extension. Exits non-zero on any report. Extra arguments go to pytest (e.g. -x, -k).
set -euo pipefail
cd "$(dirname "$0")/.."
pybind11_dir="$(python -c 'import pybind11; print(pybind11.get_cmake_dir())')"

echo "== ASan + UBSan: C++ kernel tests"
cmake -S . -B build/sanitize -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DNNFAST_SANITIZE=ON \
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

# a package folder holding the working tree's Python code and a given build's extension
package_with() {
  rm -rf "$1/pkg" && mkdir -p "$1/pkg/nnfast"
  cp -r python/nnfast/. "$1/pkg/nnfast/"
  rm -f "$1"/pkg/nnfast/_core*.so
  cp "$1"/_core*.so "$1/pkg/nnfast/"
}

echo "== ASan + UBSan: the Python test suite"
package_with build/sanitize
# Python itself is not instrumented: its own leaks are not ours (detect_leaks=0); any error in
# the extension's code stops the run. Subprocesses (examples, workers) inherit the preload.
LD_PRELOAD="$(g++ -print-file-name=libasan.so):$(g++ -print-file-name=libubsan.so)" \
  ASAN_OPTIONS=detect_leaks=0:halt_on_error=1:abort_on_error=1 \
  UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 PYTHONMALLOC=malloc \
  NNFAST_DATA="${NNFAST_DATA:-$PWD/data}" PYTHONPATH="$PWD/build/sanitize/pkg" python -m pytest -q -p no:cacheprovider "$@" tests

echo "== valgrind: the same program, and the bindings' smoke test"
cmake -S . -B build/valgrind -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DNNFAST_BUILD_TESTS=ON -Dpybind11_DIR="$pybind11_dir" >/dev/null
cmake --build build/valgrind
python scripts/check_isa_symbols.py build/valgrind/_core*.so
# (valgrind does not emulate AVX-512: under it the CPU reports none, and that copy skips)
run_each_copy build/valgrind valgrind --error-exitcode=1 --leak-check=full \
  --errors-for-leak-kinds=definite -q
package_with build/valgrind
PYTHONMALLOC=malloc PYTHONPATH=build/valgrind/pkg valgrind --error-exitcode=1 -q \
  --leak-check=no python tests/cpp/bindings_smoke.py
echo "sanitizers and valgrind: clean"
