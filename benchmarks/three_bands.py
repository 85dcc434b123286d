"""The three-band network (examples/zone_network.py) trained one epoch on MNIST by nnfast, in
both styles (functional API and a traced PyTorch-style forward), by the same graph on the NumPy
reference backend (its first REFERENCE_BATCHES batches, the epoch time scaled from them), and by
the same network in PyTorch, from the same initial weights and the same batches (Adam, batch
64): epoch time and test accuracy (the reference's after its partial epoch), engines taking
turns.

    python benchmarks/three_bands.py [--quick] [--rounds 2]

Writes benchmarks/results/three_bands.json.
"""
import argparse
import json
import os
import sys
import time

import numpy as np

import nnfast as nf
from nnfast import nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples"))
from zone_network import BANDS, ZoneNet, zone_network  # noqa: E402  (the example's models)
from machine import cpu_model  # noqa: E402

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
BATCH = 64
REFERENCE_BATCHES = 50


def torch_network():
    import torch

    class TorchZoneNet(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.bands = torch.nn.ModuleList(torch.nn.Sequential(
                torch.nn.Conv2d(1, 6, 5), torch.nn.ReLU(), torch.nn.Conv2d(6, 12, 5),
                torch.nn.MaxPool2d(2), torch.nn.ReLU(), torch.nn.Flatten(),
                torch.nn.Linear(120, 64), torch.nn.ReLU(), torch.nn.Dropout(0.2),
                torch.nn.Linear(64, k), torch.nn.Threshold(0.0, 0.0)) for _, k in BANDS)
            self.head = torch.nn.Linear(26, 10)

        def forward(self, x):
            padded = torch.nn.functional.pad(x, (0, 0, 1, 1))
            bands = [branch(padded[:, :, top:bottom])
                     for branch, ((top, bottom), _) in zip(self.bands, BANDS)]
            return torch.log_softmax(self.head(torch.cat(bands, dim=1)), dim=1), bands

    return TorchZoneNet()


def train_nnfast(build, weights, data, orders, device="cpu", batches=None):
    """(epoch seconds, test accuracy) of nnfast on ``device``; with ``batches``, only the first
    that many batches of each epoch run and the time is scaled to the whole epoch."""
    (x, y), (x_test, y_test) = data
    model = build()
    model.set_weights(weights)
    model.to(device)
    model.compile(nf.optim.Adam(model.parameters(), lr=1e-3), [nn.NLLLoss(), None, None, None])
    model.train()
    start, run, total = time.perf_counter(), 0, 0
    for order in orders:
        starts = range(0, len(order), BATCH)
        total += len(starts)
        for i in list(starts)[:batches]:
            idx = order[i:i + BATCH]
            model.train_on_batch(x[idx], [y[idx], None, None, None])
            run += 1
    seconds = (time.perf_counter() - start) * total / run
    return seconds, nf.metrics.accuracy(y_test, model.predict(x_test, batch_size=500)[0])


def train_torch(weights, data, orders, threads):
    import torch
    torch.set_num_threads(threads)
    (x, y), (x_test, y_test) = data
    model = torch_network()
    with torch.no_grad():
        for p, w in zip(model.parameters(), weights):
            p.copy_(torch.from_numpy(w))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    tx, ty = torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))
    model.train()
    start = time.perf_counter()
    for order in orders:
        for i in range(0, len(order), BATCH):
            idx = torch.from_numpy(order[i:i + BATCH])
            opt.zero_grad()
            torch.nn.functional.nll_loss(model(tx[idx])[0], ty[idx]).backward()
            opt.step()
    seconds = time.perf_counter() - start
    model.eval()
    with torch.no_grad():
        predicted = model(torch.from_numpy(x_test))[0].argmax(1).numpy()
    return seconds, float(np.mean(predicted == y_test))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10,000 training images")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    (x, y), (x_test, y_test) = nf.data.load_mnist()
    scale = lambda a: (a / np.float32(255)).reshape(-1, 1, 28, 28).astype(np.float32)  # noqa
    n = 10000 if args.quick else len(x)
    data = ((scale(x[:n]), y[:n].astype(np.int64)), (scale(x_test), y_test.astype(np.int64)))
    nf.seed(0)
    weights = zone_network().get_weights()
    orders = [np.random.default_rng(0).permutation(n)]
    engines = {"nnfast functional": lambda: train_nnfast(zone_network, weights, data,
                                                          orders),
               "nnfast traced": lambda: train_nnfast(ZoneNet, weights, data, orders),
               "NumPy reference": lambda: train_nnfast(zone_network, weights, data, orders,
                                                       "reference", REFERENCE_BATCHES)}
    try:
        import torch  # noqa: F401
        engines["PyTorch"] = lambda: train_torch(weights, data, orders, nf.get_num_threads())
    except ImportError:
        pass
    runs = {name: [] for name in engines}
    for _ in range(args.rounds):
        for name, run in engines.items():
            runs[name].append(run())
    cpu = cpu_model()
    print(f"three-band network, {n} training images, 1 epoch, Adam, batch {BATCH}; {cpu}, "
          f"{os.cpu_count()} cores, {nf.get_num_threads()} threads; best of {args.rounds}")
    best = {name: min(s for s, _ in results) for name, results in runs.items()}
    print(f"(the NumPy reference on its first {REFERENCE_BATCHES} batches, time scaled; ratios: "
          "nnfast functional's epoch time over each engine's)")
    for name, results in runs.items():
        print(f"{name:20s} epoch {best[name]:7.2f} s  nnfast functional / this: "
              f"{best['nnfast functional'] / best[name]:.2f}x  test accuracy "
              f"{results[-1][1]:.4f}")
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, "three_bands.json"), "w") as f:
        json.dump({"cpu": cpu, "date": time.strftime("%Y-%m-%d"), "images": n, "runs": runs}, f,
                  indent=1)


if __name__ == "__main__":
    main()
