"""The CUDA path against PyTorch CUDA and nnfast's CPU path, on one machine in one process:

- epoch time and test accuracy of the MLP 784-100-10, the MLP 784-256-128-10 and the LeNet-like
  CNN (benchmarks/mnist.py's models, standardised MNIST, batch 100, SGD) for nnfast CUDA
  (``model.to("cuda")``, the training set uploaded once and the batches gathered on the GPU;
  ``nnfast-cuda`` steps by train_on_batch, which replays a recorded step (nnfast.graph: a CUDA
  graph), ``nnfast-cuda-eager`` the same with every step launched kernel by kernel),
  PyTorch CUDA in eager mode (the same weights and batches, its training set uploaded once too)
  and nnfast on the CPU; the engines' epochs alternate, the last epoch is the one timed (the
  first includes each engine's warm-up);
- FP32 GEMM TFLOP/s of nnfast's CUDA sgemm against torch.matmul for 1024^3 and 4096^3, TF32 off
  in PyTorch (nnfast's sgemm is FP32 throughout).

    python benchmarks/gpu.py            # run by scripts/gpu-check.sh
    python benchmarks/gpu.py --epochs 3 --models mlp,cnn

An engine this machine cannot run (no GPU, no CUDA build, no PyTorch CUDA) is reported as
skipped with the reason; one that is there and fails is reported with its error and makes the
exit status 1. Writes benchmarks/results/gpu.json.
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

import nnfast as nf
from mnist import (INPUTS, MODELS, RESULTS, DeviceCopies, NnfastEngine, TorchEngine,
                   load_data, machine_description, model_setup, train_epoch)

GPU_MODELS = ("mlp", "mlp256", "cnn")
GEMM_SIZES = (1024, 4096)


class NnfastCudaEngine(NnfastEngine):
    """nnfast with the model on the GPU: the training images uploaded once, batches gathered
    there (the labels stay on the host: they are range-checked as they are uploaded), each step
    a train_on_batch (recorded once and replayed where ``graphs``), predictions returned as
    NumPy."""
    name = "nnfast-cuda"
    graphs = True

    def __init__(self, spec, weights, threads):
        super().__init__(spec, weights, threads)
        self.cuda = nf.backend.get("cuda")
        self.model.to("cuda")
        self.model.compile(optimizer=self.opt, loss=self.loss_fn)
        self.on_device = DeviceCopies(self.cuda.to_device)

    def gather(self, x, y, idx):
        return self.cuda.gather_rows(self.on_device(x), idx), y[idx]

    def train_step(self, x, y):
        nf.graph.enabled = self.graphs
        return self.model.train_on_batch(x, y)[0]

    def replays(self):
        """(steps replayed, why none are when none are) of this engine's model."""
        recording = nf.graph.graph_of(self.model)
        return recording.replays, recording.reason


class NnfastCudaEagerEngine(NnfastCudaEngine):
    """nnfast-cuda with every step run eagerly, kernel by kernel."""
    name = "nnfast-cuda-eager"
    graphs = False


def torch_cuda():
    """torch when it is importable and sees a GPU; else the reason it cannot be used."""
    try:
        import torch
    except ImportError:
        return None, "PyTorch is not installed"
    if not torch.cuda.is_available():
        return None, f"PyTorch {torch.__version__} finds no CUDA device"
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    return torch, ""


def engines(threads):
    """(name, factory or None, reason it is skipped) for each engine."""
    torch, torch_missing = torch_cuda()
    gpu = nf.cuda.is_available()
    return [("nnfast-cuda", NnfastCudaEngine if gpu else None, nf.cuda.unavailable_reason()),
            ("nnfast-cuda-eager", NnfastCudaEagerEngine if gpu else None,
             nf.cuda.unavailable_reason()),
            ("torch-cuda", (lambda spec, w, t: TorchEngine(spec, w, t, device="cuda"))
             if torch else None, torch_missing),
            ("nnfast-cpu", NnfastEngine, "")]


def gpu_name():
    """The first GPU's name as nvidia-smi gives it (None without one)."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30).stdout.split("\n")[0]
    except (OSError, subprocess.SubprocessError):
        return None
    return out.strip() or None


def synchronize(name):
    if name == "nnfast-cuda":
        nf.cuda.synchronize()
    elif name == "torch-cuda":
        import torch
        torch.cuda.synchronize()


def train_models(args, data):
    """Every (model, engine) record: the engines of a model built from the same weights, their
    epochs taken in turns."""
    records = []
    for key in args.models.split(","):
        spec = MODELS[key]
        epochs, x, xt, weights, orders = model_setup(args, key, *data[0])
        live, model_records = [], []
        for name, factory, reason in engines(args.threads):
            record = {"model": key, "title": spec["title"], "engine": name, "batch": spec["batch"]}
            model_records.append(record)
            if factory is None:
                record["skipped"] = reason
                continue
            try:
                live.append((name, factory(spec, weights, args.threads), record))
            except Exception as e:  # an engine that is there but cannot train is a failure
                record["error"] = f"{type(e).__name__}: {e}"
        for batches in orders:
            for name, engine, record in live:
                if "error" in record:
                    continue
                try:
                    synchronize(name)
                    seconds, loss, accuracy, samples = train_epoch(engine, x, data[1], xt,
                                                                   data[2], batches)
                except Exception as e:
                    record["error"] = f"{type(e).__name__}: {e}"
                    continue
                record.update(epoch_time=seconds * 60000 / samples, loss=loss,
                              test_accuracy=accuracy)
                if hasattr(engine, "replays"):
                    record["replays"], reason = engine.replays()
                    if reason:
                        record["eager_because"] = reason
        records += model_records
        for record in model_records:
            print(f"  {record['title']:<28} {record['engine']:<12} "
                  + (f"{record['epoch_time']:8.3f} s/epoch  accuracy {record['test_accuracy']:.4f}"
                     if "epoch_time" in record else
                     record.get("error") or "skipped: " + record["skipped"]), file=sys.stderr)
    return records


def gemm_records(repeats):
    """TFLOP/s of C = A @ B (n x n, FP32) for nnfast's CUDA sgemm and torch.matmul."""
    torch, torch_missing = torch_cuda()
    records = []
    gemm_engines = [("nnfast-cuda", nf.cuda.is_available(), nf.cuda.unavailable_reason()),
                    ("torch-cuda", torch is not None, torch_missing)]
    for n in GEMM_SIZES:
        if any(ready for _, ready, _ in gemm_engines):
            a, b = (np.random.default_rng(n + i).standard_normal((n, n), dtype=np.float32)
                    for i in range(2))
            expected = a @ b
            scale = float(np.abs(expected).max())
        for name, ready, reason in gemm_engines:
            record = {"n": n, "engine": name}
            records.append(record)
            if not ready:
                record["skipped"] = reason
                continue
            try:
                record.update(time_gemm(name, torch, a, b, expected, scale, repeats))
            except Exception as e:
                record["error"] = f"{type(e).__name__}: {e}"
    return records


def time_gemm(name, torch, a, b, expected, scale, repeats):
    """{"max_error" (relative to the largest |entry| of a @ b), "seconds", "tflops"}."""
    if name == "nnfast-cuda":
        cuda = nf.backend.get("cuda")
        da, db = cuda.to_device(a), cuda.to_device(b)
        run = lambda: cuda.matmul_forward(da, db)  # noqa: E731
        c = run().numpy()
    else:
        ta, tb = torch.from_numpy(a).cuda(), torch.from_numpy(b).cuda()
        run = lambda: torch.matmul(ta, tb)  # noqa: E731
        c = run().cpu().numpy()
    run()
    synchronize(name)
    start = time.perf_counter()
    for _ in range(repeats):
        run()
    synchronize(name)
    seconds = (time.perf_counter() - start) / repeats
    n = a.shape[0]
    return {"max_error": float(np.abs(c - expected).max()) / scale, "seconds": seconds,
            "tflops": 2 * n ** 3 / seconds / 1e12}


def print_tables(models, gemms):
    by = {(r["model"], r["engine"]): r for r in models}
    print(f"\n{'model':<28} {'engine':<17} {'s/epoch':>8} {'accuracy':>9} {'vs torch-cuda':>14}")
    for r in models:
        base = by.get((r["model"], "torch-cuda"), {})
        if "epoch_time" not in r:
            print(f"{r['title']:<28} {r['engine']:<17} "
                  + (r.get("error") or "skipped: " + r["skipped"]))
            continue
        ratio = (f"{r['epoch_time'] / base['epoch_time']:.2f}x" if "epoch_time" in base else "-")
        print(f"{r['title']:<28} {r['engine']:<17} {r['epoch_time']:8.3f} "
              f"{r['test_accuracy']:9.4f} {ratio:>14}")
    print(f"\n{'GEMM FP32':<12} {'engine':<17} {'TFLOP/s':>8} {'vs torch.matmul':>16} "
          f"{'max rel. error':>15}")
    tflops = {(r["n"], r["engine"]): r.get("tflops") for r in gemms}
    for r in gemms:
        if "tflops" not in r:
            print(f"{r['n']:>4}^3{'':<6} {r['engine']:<17} "
                  + (r.get("error") or "skipped: " + r["skipped"]))
            continue
        base = tflops.get((r["n"], "torch-cuda"))
        ratio = f"{r['tflops'] / base:.2f}x" if base else "-"
        print(f"{r['n']:>4}^3{'':<6} {r['engine']:<17} {r['tflops']:8.2f} {ratio:>16} "
              f"{r['max_error']:15.1e}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(GPU_MODELS))
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--gemm-repeats", type=int, default=20)
    parser.add_argument("--json", default=os.path.join(RESULTS, "gpu.json"))
    args = parser.parse_args(argv)
    args.quick = False
    unknown = [m for m in args.models.split(",") if m not in MODELS]
    if unknown:
        raise SystemExit(f"unknown models {unknown}; models: {list(MODELS)}")
    (x_train, y_train), (x_test, y_test) = load_data()
    standardise = INPUTS["standardised"]
    data = ((standardise(x_train), standardise(x_test)), y_train, y_test)
    machine = machine_description(args.threads)
    machine["gpu"] = gpu_name()
    print(f"MNIST on the GPU: {machine['gpu'] or 'none'}; CPU {machine['cpu']}, "
          f"{args.threads} threads", file=sys.stderr)
    models = train_models(args, data)
    gemms = gemm_records(args.gemm_repeats)
    print_tables(models, gemms)
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump({"machine": machine, "epochs": args.epochs, "models": models, "gemm": gemms},
                  f, indent=1)
    failed = [f"{r.get('model', r.get('n'))} {r['engine']}: {r['error']}"
              for r in models + gemms if "error" in r]
    if failed:
        print("failed:\n  " + "\n  ".join(failed), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
