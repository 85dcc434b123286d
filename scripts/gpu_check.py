"""Each CUDA kernel against the CPU kernel on random inputs (tests/cuda_cases.py, a few fixed
seeds, relative tolerance 1e-4), printed as a pass/fail table, one row per kernel family; exits 1
if any check fails. Needs a CUDA build and a device (scripts/gpu-check.sh runs it)."""
import os
import sys
import traceback

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
import cuda_cases  # noqa: E402
import nnfast  # noqa: E402

SEEDS = range(5)


def check(name):
    """(checks run, failures as lines) of one case over SEEDS; an exception is one failure."""
    count, failures = 0, []
    for seed in SEEDS:
        try:
            results = cuda_cases.CASES[name](np.random.default_rng(seed))
        except Exception:  # noqa: BLE001  (reported in the table, not raised)
            failures.append(f"seed {seed}: {traceback.format_exc().strip().splitlines()[-1]}")
            continue
        for what, got, want, exact in results:
            count += 1
            problem = cuda_cases.close(got, want, exact)
            if problem:
                failures.append(f"seed {seed}: {what}: {problem}")
    return count, failures


def main():
    if not nnfast.cuda.is_available():
        sys.exit("gpu_check: " + nnfast.cuda.unavailable_reason())
    print(f"{'kernel family':<16} {'checks':>7}  result")
    failed = False
    for name in sorted(cuda_cases.CASES):
        count, failures = check(name)
        failed |= bool(failures)
        print(f"{name:<16} {count:>7}  {'FAIL' if failures else 'pass'}")
        for line in failures[:10]:
            print(f"    {line}")
    print("all pass" if not failed else "FAILURES above")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
