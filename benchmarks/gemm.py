"""SGEMM throughput of nnfast's kernel against numpy.matmul (OpenBLAS), in one process, on square
sizes and on the shapes small networks actually multiply (forward and backward).

    python benchmarks/gemm.py [--quick] [--threads N] [--json PATH]

Each case is timed as the best of several repeats; GFLOP/s = 2*M*N*K / seconds. The ratio is
nnfast's GFLOP/s over NumPy's (above 1: nnfast is faster). Writes benchmarks/results/gemm.json.
A line after the table gives the cost of one call of each (a 1 x 1 x 1 product), which is most of
the time of the smallest network shapes.

A second table times the Linear kernels on inputs with zeros (a batch of genuine MNIST images,
about 19% nonzero, when the data can be loaded; random inputs at set densities), where nnfast
skips the zeros (cpp/src/linear.cpp): forward y = x @ Wt + b and backward dWt = x^T @ dy (Wt the
weight stored transposed, as nnfast's Linear keeps it), against
numpy's dense products on the same arrays; "GF/s" there counts the dense product's FLOPs.

A third times a Linear layer's training step on dense inputs, the three calls in a loop as
training makes them: forward y = x @ Wt + b, the weight gradient dWt = x^T @ dy and the SGD
update Wt -= lr dWt, against the same three in NumPy and in PyTorch (where importable): the
weight written by the update is read by the next forward, as from one step to the next.
"""
import argparse
import json
import os
import time

import numpy as np

import nnfast as nf
from nnfast import _core

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")

# (label, M, N, K, trans_a, trans_b): C (M, N) = op(A) op(B).
SQUARE = [(f"square {n}", n, n, n, False, False) for n in (128, 256, 512, 1024)]
NETWORK = [   # the products the layers run (Linear keeps its weight transposed: Wt (in, out))
    ("MLP fwd x@Wt1 b100", 100, 100, 784, False, False),
    ("MLP fwd x@Wt1 b32", 32, 100, 784, False, False),
    ("MLP fwd h@Wt2 b100", 100, 10, 100, False, False),
    ("MLP bwd dWt1=x^T@dy b100", 784, 100, 100, True, False),
    ("MLP bwd dx=dy@Wt2^T b100", 100, 100, 10, False, True),
    ("MLP bwd dWt2=h^T@dy b100", 100, 10, 100, True, False),
    ("MLP 256 fwd b100", 100, 256, 784, False, False),
    ("MLP 256 bwd dWt b100", 784, 256, 100, True, False),
    ("conv1 fwd W@col b100", 16, 57600, 25, False, False),
    ("conv1 bwd dW b100", 16, 25, 57600, False, True),
    ("conv2 fwd W@col b100", 32, 6400, 400, False, False),
    ("conv2 bwd dW b100", 32, 400, 6400, False, True),
    ("conv2 bwd dcol b100", 400, 6400, 32, True, False),
    # PyTorch's MNIST example network at batch 64: its 3x3 Conv2d 32-64 (24 x 24 outputs) and
    # its Linear 9216-128.
    ("example conv 3x3 fwd b64", 64, 36864, 288, False, False),
    ("example conv 3x3 bwd dW b64", 64, 288, 36864, False, True),
    ("example conv 3x3 bwd dcol b64", 288, 36864, 64, True, False),
    ("example fc 9216 fwd b64", 64, 128, 9216, False, False),
    ("example fc 9216 bwd dWt b64", 9216, 128, 64, True, False),
]


# (OUT, density or "mnist"): a batch of 100 inputs of 784 features into OUT outputs.
SPARSE = [(100, "mnist"), (256, "mnist"), (10, "mnist")] + [(100, d) for d in (0.1, 0.2, 0.25, 0.3, 0.5)]


def operands(m, n, k, ta, tb, rng):
    a = rng.standard_normal((k, m) if ta else (m, k)).astype(np.float32)
    b = rng.standard_normal((n, k) if tb else (k, n)).astype(np.float32)
    return a, b


# After a call, each library's idle worker threads keep spinning for a while, taking a core from
# whichever library is timed next on a machine with few cores. Every timing starts after this
# pause (seconds), long enough for them to go idle.
PAUSE = 0.25


def best_time(fn, repeats, min_time=0.05):
    """Best of ``repeats`` timings, each of enough calls to last ``min_time`` seconds, after
    the other library's threads have gone idle (PAUSE)."""
    time.sleep(PAUSE)
    fn()
    calls, start = 1, time.perf_counter()
    while time.perf_counter() - start < min_time:
        fn()
        calls += 1
    calls = max(1, calls)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter() - start) / calls)
    return best


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--json", default=os.path.join(RESULTS, "gemm.json"))
    args = parser.parse_args(argv)
    nf.set_num_threads(args.threads)
    repeats = 3 if args.quick else 7
    rng = np.random.default_rng(0)
    rows = []
    cfg = nf.config()
    build = "native build" if cfg["native"] else "portable build"
    print(f"SGEMM, {args.threads} threads, nnfast {build}, kernels {cfg['isa']}, "
          f"NumPy {np.__version__}")
    head = f"{'case':<26} {'M':>6} {'N':>6} {'K':>6} {'nnfast GF/s':>12} {'numpy GF/s':>11} {'ratio':>6}"
    print(head + "\n" + "-" * len(head))
    for label, m, n, k, ta, tb in SQUARE + NETWORK:
        a, b = operands(m, n, k, ta, tb, rng)
        a_op, b_op = (a.T if ta else a), (b.T if tb else b)
        ours = best_time(lambda: _core.sgemm(a, b, ta, tb), repeats)
        theirs = best_time(lambda: np.matmul(a_op, b_op), repeats)
        np.testing.assert_allclose(_core.sgemm(a, b, ta, tb), a_op @ b_op, rtol=1e-3, atol=1e-2)
        flops = 2.0 * m * n * k
        row = {"case": label, "M": m, "N": n, "K": k, "trans_a": ta, "trans_b": tb,
               "nnfast_gflops": flops / ours / 1e9, "numpy_gflops": flops / theirs / 1e9}
        row["ratio"] = row["nnfast_gflops"] / row["numpy_gflops"]
        rows.append(row)
        print(f"{label:<26} {m:>6} {n:>6} {k:>6} {row['nnfast_gflops']:>12.1f} "
              f"{row['numpy_gflops']:>11.1f} {row['ratio']:>6.2f}")
    call_cost = fixed_call_cost(repeats)
    print(f"cost of one call (1 x 1 x 1, new output): nnfast {call_cost['nnfast_us']:.2f} us, "
          f"numpy.matmul {call_cost['numpy_us']:.2f} us")
    sparse_rows = sparse_linear_table(rng, repeats)
    step_rows = linear_step_table(rng, repeats, args.threads)
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump({"threads": args.threads, "isa": cfg["isa"], "config": cfg, "results": rows,
                   "call_cost": call_cost, "sparse_linear": sparse_rows,
                   "linear_step": step_rows}, f, indent=1)


def fixed_call_cost(repeats):
    """Microseconds of a 1 x 1 x 1 product through each library: what a call costs besides its
    arithmetic (argument checks, the output array), which decides the smallest network shapes."""
    a = np.ones((1, 1), np.float32)
    return {"nnfast_us": 1e6 * best_time(lambda: _core.sgemm(a, a, False, False), repeats),
            "numpy_us": 1e6 * best_time(lambda: np.matmul(a, a), repeats)}


def mnist_batch(rng):
    """100 genuine MNIST training images scaled to [0, 1], or None when the data is missing."""
    try:
        (x, _), _ = nf.data.load_mnist()
    except Exception as err:  # no local copy and no network: the random rows still run
        print(f"(MNIST not available: {err})")
        return None
    pick = rng.choice(len(x), 100, replace=False)
    return (x[pick].reshape(100, -1) / 255.0).astype(np.float32)


def sparse_linear_table(rng, repeats):
    print(f"\nLinear on inputs with zeros, batch 100 x 784 (GF/s of the dense product)")
    head = (f"{'input':<14} {'OUT':>4} {'nonzero':>8} {'fwd GF/s':>9} {'numpy':>7} {'ratio':>6}"
            f" {'dW GF/s':>8} {'numpy':>7} {'ratio':>6}")
    print(head + "\n" + "-" * len(head))
    images, rows = mnist_batch(rng), []
    for out, density in SPARSE:
        if density == "mnist":
            if images is None:
                continue
            x = images
        else:
            x = np.where(rng.random((100, 784)) < density, rng.random((100, 784)), 0).astype(np.float32)
        wt = rng.standard_normal((784, out)).astype(np.float32)   # the weight, transposed
        b = rng.standard_normal(out).astype(np.float32)
        dy = rng.standard_normal((100, out)).astype(np.float32)
        dwt = np.zeros_like(wt)
        fwd = best_time(lambda: _core.linear_forward(x, wt, b), repeats)
        fwd_np = best_time(lambda: x @ wt + b, repeats)
        bwd = best_time(lambda: _core.linear_backward(dy, x, wt, dwt=dwt, need_dx=False,
                                                      need_db=False, accumulate=False), repeats)
        bwd_np = best_time(lambda: x.T @ dy, repeats)
        np.testing.assert_allclose(_core.linear_forward(x, wt, b), x @ wt + b, rtol=1e-3, atol=1e-3)
        flops = 2.0 * 100 * 784 * out
        row = {"input": "MNIST batch" if density == "mnist" else f"random {density:.0%}", "OUT": out,
               "nonzero": float(np.mean(x != 0)), "fwd_gflops": flops / fwd / 1e9,
               "fwd_numpy_gflops": flops / fwd_np / 1e9, "dw_gflops": flops / bwd / 1e9,
               "dw_numpy_gflops": flops / bwd_np / 1e9}
        rows.append(row)
        print(f"{row['input']:<14} {out:>4} {row['nonzero']:>8.1%} {row['fwd_gflops']:>9.1f} "
              f"{row['fwd_numpy_gflops']:>7.1f} {row['fwd_gflops'] / row['fwd_numpy_gflops']:>6.2f}"
              f" {row['dw_gflops']:>8.1f} {row['dw_numpy_gflops']:>7.1f}"
              f" {row['dw_gflops'] / row['dw_numpy_gflops']:>6.2f}")
    return rows


STEP_SHAPES = [(100, 784, 100), (100, 784, 256), (100, 256, 128), (64, 9216, 128)]  # B, IN, OUT


def linear_step_table(rng, repeats, threads):
    """GF/s of the Linear step loop (forward, dWt, SGD; 4 B IN OUT flops) for each engine, and
    for nnfast in bf16 (nnfast.set_precision) where the CPU runs it."""
    try:
        import torch
        torch.set_num_threads(threads)
    except ImportError:
        torch = None
    print("\nLinear training step on dense inputs: forward, dWt, SGD update (GF/s of the products)")
    names = ["nnfast"] + (["nnfast_bf16"] if _core.bf16_available() else []) + ["numpy", "torch"]
    head = f"{'B x IN -> OUT':<18}" + "".join(f" {n.replace('_', ' '):>11}" for n in names)
    print(head + "\n" + "-" * len(head))
    rows = []
    for B, IN, OUT in STEP_SHAPES:
        x, dy = rng.standard_normal((B, IN), np.float32), rng.standard_normal((B, OUT), np.float32)
        wt, b = 0.01 * rng.standard_normal((IN, OUT), np.float32), np.zeros(OUT, np.float32)
        dwt = np.zeros_like(wt)

        def nnfast_step():
            _core.linear_forward(x, wt, b)
            _core.linear_backward(dy, x, wt, dwt=dwt, need_dx=False, need_db=False,
                                  accumulate=False)
            _core.sgd_step(wt, dwt, lr=1e-6)

        def numpy_step():
            x @ wt + b
            np.matmul(x.T, dy, out=dwt)
            wt.__isub__(1e-6 * dwt)

        def nnfast_bf16_step():
            _core.set_precision("bf16")
            try:
                nnfast_step()
            finally:
                _core.set_precision("float32")

        steps = {"nnfast": nnfast_step, "numpy": numpy_step}
        if "nnfast_bf16" in names:
            steps["nnfast_bf16"] = nnfast_bf16_step
        if torch is not None:
            tx, tdy, tw, tb = (torch.from_numpy(a) for a in (x, dy, wt.copy(), b))
            tdw = torch.zeros_like(tw)

            def torch_step():
                torch.addmm(tb, tx, tw)
                torch.mm(tx.T, tdy, out=tdw)
                tw.sub_(tdw, alpha=1e-6)

            steps["torch"] = torch_step
        row = {"B": B, "IN": IN, "OUT": OUT}
        for name, step in steps.items():
            row[name + "_gflops"] = 4.0 * B * IN * OUT / best_time(step, repeats) / 1e9
        rows.append(row)
        cells = "".join(f"{row[n + '_gflops']:>12.1f}" if n + "_gflops" in row else f"{'-':>12}"
                        for n in names)
        print(f"{f'{B} x {IN} -> {OUT}':<18}{cells}")
    return rows


if __name__ == "__main__":
    main()
