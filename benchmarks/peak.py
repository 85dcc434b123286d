"""The machine's FP32 FMA peak as nnfast's kernels reach it (independent FMA chains in vector
registers on every kernel thread: _core.fma_peak, the copy of the kernels nnfast runs), and each
SGEMM case of benchmarks/gemm.py (square sizes and the products small networks run) as GFLOP/s
and as a fraction of that peak, for nnfast, NumPy and PyTorch (when importable) in one process.

    python benchmarks/peak.py [--quick] [--threads N]

Writes benchmarks/results/peak.json.
"""
import argparse
import json
import os
import time

import numpy as np

import nnfast as nf
from nnfast import _core
from gemm import NETWORK, RESULTS, SQUARE, best_time, operands
from machine import cpu_model


def fma_peak(seconds=0.3, repeats=5):
    """Best GFLOP/s of the FMA loop over ``repeats`` runs of about ``seconds`` each."""
    iterations = 1 << 16
    while True:   # grow the run until it lasts long enough to time
        start = time.perf_counter()
        _core.fma_peak(iterations)
        if time.perf_counter() - start > seconds / 4:
            break
        iterations *= 2
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        flops, _ = _core.fma_peak(iterations)
        best = max(best, flops / (time.perf_counter() - start) / 1e9)
    return best


def engines(threads):
    """name -> (array conversion, product(a, b, ta, tb)) for each library at hand."""
    same = np.asarray
    found = {"nnfast": (same, lambda a, b, ta, tb: _core.sgemm(a, b, ta, tb)),
             "numpy": (same, lambda a, b, ta, tb: (a.T if ta else a) @ (b.T if tb else b))}
    try:
        import torch
    except ImportError:
        return found
    torch.set_num_threads(threads)
    found["torch"] = (torch.from_numpy,
                      lambda a, b, ta, tb: torch.mm(a.T if ta else a, b.T if tb else b))
    return found


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    args = parser.parse_args(argv)
    nf.set_num_threads(args.threads)
    peak = fma_peak()
    libraries = engines(args.threads)
    cpu = cpu_model()
    print(f"{cpu}, {args.threads} threads, kernels {nf.config()['isa']}: FP32 FMA peak "
          f"{peak:.0f} GFLOP/s ({_core.fma_peak_chains()} chains per thread)")
    head = f"{'case':<26}" + "".join(f"{name + ' GF/s':>13}{'%peak':>7}" for name in libraries)
    print(head + "\n" + "-" * len(head))
    rows, rng = [], np.random.default_rng(0)
    for label, m, n, k, ta, tb in SQUARE + NETWORK:
        a, b = operands(m, n, k, ta, tb, rng)
        row = {"case": label, "m": m, "n": n, "k": k}
        for name, (convert, product) in libraries.items():
            x, y = convert(a), convert(b)
            seconds = best_time(lambda: product(x, y, ta, tb), 3 if args.quick else 7)
            row[name] = 2.0 * m * n * k / seconds / 1e9
        rows.append(row)
        print(f"{label:<26}" + "".join(f"{row[name]:>13.1f}{row[name] / peak:>7.0%}"
                                       for name in libraries))
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, "peak.json"), "w") as f:
        json.dump({"cpu": cpu, "threads": args.threads, "isa": nf.config()["isa"],
                   "date": time.strftime("%Y-%m-%d"), "peak_gflops": peak, "cases": rows}, f,
                  indent=1)


if __name__ == "__main__":
    main()
