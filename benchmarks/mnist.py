"""The main job: train softmax regression, the MLPs 784-100(sigmoid)-10 and 784-256-128-10 (ReLU),
the LeNet-like CNN and PyTorch's MNIST example network (Conv2d 1-32 and 32-64 3x3, MaxPool,
Linear 9216-128-10, Adam, batch 64) on the genuine MNIST, on raw pixels (0..1) and on
standardised inputs (PyTorch's example: mean 0.1307, std 0.3081, so no pixel is zero), with
nnfast, nnfast in bf16 (nnfast.set_precision("bf16"), where the CPU has AVX512_BF16), the NumPy
reference (nnfast.reference) and PyTorch (when it is importable), from
identical initial weights and identical batches, each
(model, engine) in a fresh process, the engines' epochs taken in turns (so that a slow spell of
a shared machine falls on all of them alike), and report time per epoch, samples/s, test
accuracy, prediction time, peak memory and the ratios between engines.

    python benchmarks/mnist.py             # full run (the epoch counts below)
    python benchmarks/mnist.py --quick     # a subset (10,000 training images), 1 epoch
    python benchmarks/mnist.py --profile   # also where nnfast's time goes, layer by layer, and
                                           # a step on a just-gathered batch against a reused one
    python benchmarks/mnist.py --markdown README.md   # also the results table, written into
                                           # README.md between its results markers

Writes benchmarks/results/mnist.json (and mnist.png with matplotlib). Peak memory is the highest
resident set size during an engine's training run (the kernel's high-water mark, reset before
each run), minus the resident size just before it: the memory that engine's training added.
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np

import nnfast as nf
from nnfast import nn, optim
from nnfast import reference as ref
from machine import cpu_model
from peak import fma_peak

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")

# Each model: layer list (kind, args...), SGD settings, batch size, full-run epochs.
MODELS = {
    "softmax": {"title": "softmax regression 784-10",
                "layers": [("linear", 784, 10)],
                "lr": 0.1, "momentum": 0.0, "batch": 100, "epochs": 20, "image": False},
    "mlp": {"title": "MLP 784-100(sigmoid)-10",
            "layers": [("linear", 784, 100), ("sigmoid",), ("linear", 100, 10)],
            "lr": 0.5, "momentum": 0.0, "batch": 100, "epochs": 30, "image": False},
    "mlp256": {"title": "MLP 784-256-128-10 (ReLU)",
               "layers": [("linear", 784, 256), ("relu",), ("linear", 256, 128), ("relu",),
                          ("linear", 128, 10)],
               "lr": 0.1, "momentum": 0.0, "batch": 100, "epochs": 10, "image": False},
    "cnn": {"title": "LeNet-like CNN",
            "layers": [("conv", 1, 16, 5), ("relu",), ("maxpool", 2), ("conv", 16, 32, 5),
                       ("relu",), ("maxpool", 2), ("flatten",), ("linear", 512, 100),
                       ("sigmoid",), ("linear", 100, 10)],
            "lr": 0.1, "momentum": 0.9, "batch": 100, "epochs": 10, "image": True},
    "torch_example": {"title": "PyTorch's MNIST example net",
                      "layers": [("conv", 1, 32, 3), ("relu",), ("conv", 32, 64, 3), ("relu",),
                                 ("maxpool", 2), ("flatten",), ("linear", 9216, 128), ("relu",),
                                 ("linear", 128, 10)],
                      "optimizer": "adam", "lr": 1e-3, "batch": 64, "epochs": 2, "image": True,
                      "reference_steps": 10},
}
# The input kinds: raw pixels scaled to [0, 1] (81 % zeros), and standardised as PyTorch's MNIST
# example does it (no zeros at all).
INPUTS = {"raw": lambda x: x, "standardised": lambda x: ((x - 0.1307) / 0.3081).astype(np.float32)}


def training_flops(spec):
    """Floating-point operations of one sample's training step on dense inputs: each Linear and
    Conv2d's forward product, its weight-gradient product, and its input-gradient product (all
    but the first layer's, which training skips), 2 per multiply-add."""
    shape, products = (1, 28, 28) if spec["image"] else (784,), []
    for kind, *args in spec["layers"]:
        if kind == "linear":
            products.append(2 * args[0] * args[1])
            shape = (args[1],)
        elif kind == "conv":
            c, oc, k = args
            oh, ow = shape[1] - k + 1, shape[2] - k + 1
            products.append(2 * c * k * k * oc * oh * ow)
            shape = (oc, oh, ow)
        elif kind == "maxpool":
            shape = (shape[0], shape[1] // args[0], shape[2] // args[0])
        elif kind == "flatten":
            shape = (int(np.prod(shape)),)
    return 3 * sum(products) - products[0]


# ---------------------------------------------------------------------------------- engines
def nnfast_model(layers):
    make = {"linear": nn.Linear, "conv": nn.Conv2d, "maxpool": nn.MaxPool2d, "relu": nn.ReLU,
            "sigmoid": nn.Sigmoid, "flatten": nn.Flatten}
    return nn.Sequential([make[kind](*args) for kind, *args in layers])


class NnfastEngine:
    """The Python layer with a hand-written loop (the same loop as the other engines)."""
    name = "nnfast"

    @staticmethod
    def gather(x, y, idx):
        """The batch x[idx], y[idx], as nnfast's own batching (data.batches, fit) gathers it."""
        return nf.data.take_rows(x, idx), y[idx]

    precision = "float32"

    def __init__(self, spec, weights, threads):
        nf.set_num_threads(threads)
        nf.set_precision(self.precision)
        self.model = nnfast_model(spec["layers"])
        self.model.set_weights(weights)
        self.loss_fn = nn.CrossEntropyLoss()
        if spec.get("optimizer") == "adam":
            self.opt = optim.Adam(self.model.parameters(), lr=spec["lr"])
        else:
            self.opt = optim.SGD(self.model.parameters(), lr=spec["lr"],
                                 momentum=spec["momentum"])

    def train_step(self, x, y):
        loss = self.loss_fn(self.model(x), y)
        self.model.backward_parameters(self.loss_fn.backward())
        self.opt.step()
        self.opt.zero_grad()
        return loss

    def predict(self, x):
        return self.model.predict(x, batch_size=1000)


class NnfastBf16Engine(NnfastEngine):
    """nnfast with Linear's dense products in bf16 (float32 weights, sums and the rest)."""
    name = "nnfast-bf16"
    precision = "bf16"


class NumpyEngine:
    """The same network on nnfast.reference (pure NumPy): only glue here, no kernels."""
    name = "numpy"

    @staticmethod
    def gather(x, y, idx):
        return np.take(x, idx, axis=0), y[idx]   # as fast as x[idx] or faster (--profile)

    def __init__(self, spec, weights, threads):
        self.layers, self.params, it = [], [], iter(weights)
        for kind, *args in spec["layers"]:
            p = [next(it).copy(), next(it).copy()] if kind in ("linear", "conv") else []
            if kind == "linear":   # the reference's Linear takes the weight transposed (in, out)
                p[0] = np.ascontiguousarray(p[0].T)
            self.layers.append((kind, args, p))
            self.params += p
        self.spec = spec
        self.buffers = [np.zeros_like(p) for p in self.params]
        self.second = [np.zeros_like(p) for p in self.params]   # Adam's second moments
        self.steps = 0

    def _forward(self, x, cache):
        for kind, args, p in self.layers:
            cache.append(x)
            if kind == "linear":
                x = ref.linear_forward(x, *p)
            elif kind == "conv":
                x = ref.conv2d_forward(x, *p)
            elif kind == "maxpool":
                x, argmax = ref.maxpool2d_forward(x, args[0])
                cache[-1] = (cache[-1].shape, argmax)
            elif kind == "relu":
                x = ref.relu_forward(x)
            elif kind == "sigmoid":
                x = ref.sigmoid_forward(x)
                cache[-1] = x
            elif kind == "flatten":
                x = x.reshape(len(x), -1)
        return x

    def train_step(self, x, y):
        cache = []
        loss, probs = ref.cross_entropy_forward(self._forward(x, cache), y)
        g = ref.cross_entropy_backward(probs, y)
        grads = []
        for i in range(len(self.layers) - 1, -1, -1):
            (kind, args, p), saved = self.layers[i], cache[i]
            if kind == "linear":
                g, dw, db = ref.linear_backward(g, saved, p[0], need_dx=i > 0)
                grads[:0] = [dw, db]
            elif kind == "conv":
                g, dw, db = ref.conv2d_backward(g, saved, p[0], need_dx=i > 0)
                grads[:0] = [dw, db]
            elif kind == "maxpool":
                g = ref.maxpool2d_backward(g, saved[1], saved[0], args[0])
            elif kind == "relu":
                g = ref.relu_backward(g, saved)
            elif kind == "sigmoid":
                g = ref.sigmoid_backward(g, saved)
            elif kind == "flatten":
                g = g.reshape(saved.shape)
        self.steps += 1
        for p, dp, buf, second in zip(self.params, grads, self.buffers, self.second):
            if self.spec.get("optimizer") == "adam":
                ref.adam_step(p, dp, buf, second, lr=self.spec["lr"], step=self.steps)
            else:
                ref.sgd_step(p, dp, buf, lr=self.spec["lr"], momentum=self.spec["momentum"],
                             first_step=self.steps == 1)
        return loss

    def predict(self, x):
        return np.concatenate([self._forward(x[i:i + 1000], []) for i in range(0, len(x), 1000)])


class DeviceCopies:
    """Each array's copy made by ``upload`` (onto a device), made once per array; the array is
    kept beside its copy, so that its id stays its own."""

    def __init__(self, upload):
        self.upload, self.copies = upload, {}

    def __call__(self, a):
        if id(a) not in self.copies:
            self.copies[id(a)] = (a, self.upload(a))
        return self.copies[id(a)][1]


class TorchEngine:
    """PyTorch with the same weights, batches and loop, on the CPU (or ``device``: "cuda" for
    benchmarks/gpu.py, the training set then uploaded once and the batches gathered there)."""
    name = "torch"

    def __init__(self, spec, weights, threads, device="cpu"):
        import torch
        self.torch, self.device = torch, torch.device(device)
        # x and y as tensors on the device: on the CPU, tensors sharing the arrays' memory
        self.on_device = DeviceCopies(lambda a: torch.from_numpy(a).to(self.device))
        torch.set_num_threads(threads)
        make = {"linear": torch.nn.Linear, "conv": torch.nn.Conv2d, "maxpool": torch.nn.MaxPool2d,
                "relu": torch.nn.ReLU, "sigmoid": torch.nn.Sigmoid, "flatten": torch.nn.Flatten}
        self.model = torch.nn.Sequential(*[make[kind](*args) for kind, *args in spec["layers"]])
        with torch.no_grad():
            for p, w in zip(self.model.parameters(), weights):
                p.copy_(torch.from_numpy(w))
        self.model.to(self.device)
        if spec.get("optimizer") == "adam":
            self.opt = torch.optim.Adam(self.model.parameters(), lr=spec["lr"])
        else:
            self.opt = torch.optim.SGD(self.model.parameters(), lr=spec["lr"],
                                       momentum=spec["momentum"])
        self.loss_fn = torch.nn.CrossEntropyLoss()

    def gather(self, x, y, idx):
        """The batch as tensors, by torch.index_select on x's and y's tensors (on 2 threads the
        fastest gather PyTorch has here, ahead of indexing the tensor and of NumPy's gathers:
        --profile times them)."""
        torch, rows = self.torch, self.torch.from_numpy(idx).to(self.device)
        return (torch.index_select(self.on_device(x), 0, rows),
                torch.index_select(self.on_device(y), 0, rows))

    def train_step(self, x, y):
        loss = self.loss_fn(self.model(x), y)
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        return loss.item()

    def predict(self, x):
        with self.torch.no_grad():
            return np.concatenate([self.model(self.on_device(x)[i:i + 1000]).cpu().numpy()
                                   for i in range(0, len(x), 1000)])


ENGINES = {"nnfast": NnfastEngine, "nnfast-bf16": NnfastBf16Engine, "numpy": NumpyEngine,
           "torch": TorchEngine}


def torch_available():
    try:
        import torch  # noqa: F401
        return True
    except ImportError:
        return False


# ---------------------------------------------------------------------------------- measuring
class PeakRSS:
    """Highest resident set size while the block runs, above the size when it started (bytes;
    None where /proc is missing). It is the kernel's own high-water mark (VmHWM), reset on entry
    through /proc/self/clear_refs, so no sampling thread competes with the engine for the GIL or
    a core."""

    def __enter__(self):
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            self.base = self._status("VmRSS")
        except OSError:
            self.base = None
        return self

    @staticmethod
    def _status(key):
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
        raise OSError(f"no {key} in /proc/self/status")

    def __exit__(self, *exc):
        self.added = None if self.base is None else self._status("VmHWM") - self.base


def batch_orders(n, batch, epochs, seed):
    """The batches of every epoch, shared by all engines."""
    rng = np.random.default_rng(seed)
    return [[order[i:i + batch] for i in range(0, n, batch)]
            for order in (rng.permutation(n) for _ in range(epochs))]


def train_epoch(engine, x, y, x_test, y_test, batches):
    """One epoch over ``batches``: (seconds, mean loss, test accuracy after it, samples)."""
    start, total = time.perf_counter(), 0.0
    for idx in batches:
        total += engine.train_step(*engine.gather(x, y, idx))
    seconds = time.perf_counter() - start
    accuracy = float(np.mean(engine.predict(x_test).argmax(axis=1) == y_test))
    return seconds, total / len(batches), accuracy, sum(len(b) for b in batches)


def best_predict_time(engine, x_test):
    """Best of 3: one pass over the test set is short enough for a stall of a shared machine to
    dominate a single timing."""
    times = []
    for _ in range(3):
        start = time.perf_counter()
        engine.predict(x_test)
        times.append(time.perf_counter() - start)
    return min(times)


def train_and_time(engine, x, y, x_test, y_test, orders, max_steps):
    """Train over ``orders`` (at most ``max_steps`` batches an epoch); per-epoch times, losses,
    test accuracy after each epoch, and the prediction time on the test set."""
    run = {"epoch_times": [], "loss": [], "test_accuracy": []}
    for batches in orders:
        seconds, loss, accuracy, samples = train_epoch(engine, x, y, x_test, y_test,
                                                       batches[:max_steps])
        run["epoch_times"].append(seconds)
        run["loss"].append(loss)
        run["test_accuracy"].append(accuracy)
        run["samples_per_epoch"] = samples
    run["predict_time"] = best_predict_time(engine, x_test)
    return run


def profile_nnfast(spec, weights, x, y, batches, threads):
    """Seconds spent in each layer's forward and backward, the loss, the optimizer and the batch
    gathers over ``batches``; what the total leaves is Python and the bindings' overhead."""
    engine = NnfastEngine(spec, weights, threads)
    timings = {}

    def timed(key, fn):
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            out = fn(*args, **kwargs)
            timings[key] = timings.get(key, 0.0) + time.perf_counter() - start
            return out
        return wrapper

    for i, step in enumerate(engine.model.plan().steps):   # each step: a layer or a fused group
        name = f"{i}:{step.name}"
        step.forward = timed((name, "forward"), step.forward)
        step.backward = timed((name, "backward"), step.backward)
    engine.loss_fn.forward = timed(("loss", "forward"), engine.loss_fn.forward)
    engine.loss_fn.backward = timed(("loss", "backward"), engine.loss_fn.backward)
    engine.opt.step = timed(("optimizer", "step"), engine.opt.step)
    gather = timed(("batch", "gather"), engine.gather)
    start = time.perf_counter()
    for idx in batches:
        engine.train_step(*gather(x, y, idx))
    total = time.perf_counter() - start
    return total, {f"{k[0]} {k[1]}": v for k, v in timings.items()}


def fresh_versus_reused_batch(spec, weights, x, y, batches, threads):
    """Mean seconds of an nnfast training step (the gather itself not timed) on a batch that
    was just gathered, and on one batch reused step after step. The difference is what
    reading just-written data costs the kernels (on 2 cores: the other core's cache)."""
    engine = NnfastEngine(spec, weights, threads)
    for idx in batches[:20]:
        engine.train_step(*engine.gather(x, y, idx))
    fresh = 0.0
    for idx in batches:
        xb, yb = engine.gather(x, y, idx)
        start = time.perf_counter()
        engine.train_step(xb, yb)
        fresh += time.perf_counter() - start
    xb, yb = engine.gather(x, y, batches[0])
    start = time.perf_counter()
    for _ in batches:
        engine.train_step(xb, yb)
    return fresh / len(batches), (time.perf_counter() - start) / len(batches)


def gather_times(x, y, batches, threads):
    """Mean microseconds per batch of the ways each engine could gather a batch of x (the row
    gathers; labels not included): the benchmark uses the fastest for each engine."""
    ways = {"numpy x[idx]": lambda idx: x[idx],
            "numpy np.take(x, idx, axis=0)": lambda idx: np.take(x, idx, axis=0),
            "nnfast data.take_rows(x, idx)": lambda idx: nf.data.take_rows(x, idx)}
    if torch_available():
        import torch
        torch.set_num_threads(threads)
        xt = torch.from_numpy(x)
        ways["torch index_select(xt, 0, idx)"] = lambda idx: torch.index_select(
            xt, 0, torch.from_numpy(idx))
        ways["torch xt[idx]"] = lambda idx: xt[torch.from_numpy(idx)]
    times = {}
    for name, way in ways.items():
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            for idx in batches:
                way(idx)
            best = min(best, time.perf_counter() - start)
        times[name] = 1e6 * best / len(batches)
    return times


# ---------------------------------------------------------------------------------- main
def torch_version():
    if not torch_available():
        return None
    import torch
    return torch.__version__


def machine_description(threads):
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "threads": threads,
            "isa": nf.config()["isa"], "native_build": nf.config()["native"],
            "python": platform.python_version(), "nnfast": nf.__version__,
            "numpy": np.__version__, "torch": torch_version(),
            "date": time.strftime("%Y-%m-%d")}


def max_steps_of(args, spec, engine_name):
    """The NumPy reference is slow on the CNNs: in a quick run it trains on 20 batches of the
    LeNet-like CNN; on PyTorch's example network always on its "reference_steps" batches."""
    if engine_name != "numpy" or not spec["image"]:
        return None
    return spec.get("reference_steps", 20 if args.quick else None)


def finish_record(run, key, inputs, engine_name, epochs, peak_bytes):
    """The result record of one (model, inputs, engine) run from its epochs."""
    spec = MODELS[key]
    run.update(model=key, inputs=inputs, engine=engine_name, title=spec["title"], epochs=epochs,
               batch=spec["batch"], peak_memory_bytes=peak_bytes,
               epoch_time=float(np.median(run["epoch_times"])))
    run["samples_per_s"] = run["samples_per_epoch"] / run["epoch_time"]
    run["gflops"] = training_flops(spec) * run["samples_per_s"] / 1e9
    # Time of one full epoch (60,000 samples), scaled from the batches actually run.
    run["epoch_time_60k"] = run["epoch_time"] * 60000 / run["samples_per_epoch"]
    return run


def run_engine(args, key, engine_name, x, y, x_test, y_test, weights, orders):
    """Train one engine on one model in this process; its result record."""
    spec = MODELS[key]
    engine = ENGINES[engine_name](spec, weights, args.threads)
    # The previous engine's thread pools (OpenBLAS, PyTorch's OpenMP) keep spinning for a while
    # after their last call, taking a core from whoever runs next. Let them go idle.
    time.sleep(1.0)
    with PeakRSS() as mem:
        run = train_and_time(engine, x, y, x_test, y_test, orders,
                             max_steps_of(args, spec, engine_name))
    return finish_record(run, key, args.inputs, engine_name, len(orders), mem.added)


# Seconds between two engines' epochs, so that the one before has its idle thread pools asleep
# (see run_engine).
PAUSE = 0.25


def worker(args, x, y, x_test, y_test, weights, orders):
    """--worker: one (model, engine) in this process, an epoch at a time on the parent's word.
    Reads "epoch" or "finish" lines on stdin and answers each with a JSON line on stdout: the
    epoch's seconds; at "finish", the whole record (every epoch's time, loss and test accuracy,
    the prediction time, the peak memory). Anything else the engines print goes to stderr."""
    protocol = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    sys.stdout = sys.stderr
    key, engine_name = args.models, args.engines
    spec = MODELS[key]
    engine = ENGINES[engine_name](spec, weights, args.threads)
    max_steps = max_steps_of(args, spec, engine_name)
    run = {"epoch_times": [], "loss": [], "test_accuracy": []}

    def answer(message):
        protocol.write(json.dumps(message) + "\n")
        protocol.flush()

    answer({"ready": True})
    mem = PeakRSS().__enter__()   # spans the epochs, whatever the parent does in between
    for line in sys.stdin:
        if line.strip() == "epoch":
            seconds, loss, accuracy, samples = train_epoch(
                engine, x, y, x_test, y_test, orders[len(run["epoch_times"])][:max_steps])
            run["epoch_times"].append(seconds)
            run["loss"].append(loss)
            run["test_accuracy"].append(accuracy)
            run["samples_per_epoch"] = samples
            answer({"seconds": seconds})
        else:
            mem.__exit__(None, None, None)
            run["predict_time"] = best_predict_time(engine, x_test)
            answer(finish_record(run, key, args.inputs, engine_name, len(orders), mem.added))
            return


class Worker:
    """The parent's end of one --worker process: a fresh Python process per (model, engine)
    (the same data, weights and batches: they follow from the seed), so that no engine inherits
    another's heap, and the memory each adds is measured from the same starting point."""

    def __init__(self, args, key, engine_name):
        self.name = engine_name
        self.log = tempfile.TemporaryFile(mode="w+")
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", "--models", key,
               "--inputs", args.inputs, "--engines", engine_name, "--threads",
               str(args.threads), "--seed", str(args.seed)]
        cmd += ["--quick"] if args.quick else []
        cmd += ["--epochs", str(args.epochs)] if args.epochs else []
        self.process = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=self.log, text=True)
        self.receive()   # ready

    def ask(self, word):
        self.process.stdin.write(word + "\n")
        self.process.stdin.flush()
        return self.receive()

    def receive(self):
        line = self.process.stdout.readline()
        if not line:
            self.process.wait()
            self.log.seek(0)
            raise RuntimeError(f"{self.name} failed:\n{self.log.read()[-2000:]}")
        return json.loads(line)

    def finish(self):
        record = self.ask("finish")
        self.process.wait()
        self.log.close()
        return record


def run_interleaved(args, key, engines, epochs):
    """Every engine of one model in a worker process of its own, their epochs taken in turns
    (the engines' order rotating from epoch to epoch), so that a slow spell of the shared VM,
    which lasts seconds to minutes, falls on every engine's epochs alike instead of on one
    engine's whole run; then each one's prediction time and peak memory. Records in the order
    of ``engines``."""
    workers = [Worker(args, key, name) for name in engines]
    try:
        for epoch in range(epochs):
            turn = epoch % len(workers)
            for w in workers[turn:] + workers[:turn]:
                time.sleep(PAUSE)
                w.ask("epoch")
        records = []
        for w in workers:
            time.sleep(PAUSE)
            records.append(w.finish())
        return records
    finally:
        for w in workers:
            if w.process.poll() is None:
                w.process.kill()


def load_data():
    """MNIST as the benchmarks train on it: ((x_train, y_train), (x_test, y_test)), pixels
    float32 in [0, 1] (raw), labels int64."""
    (x_train, y_train), (x_test, y_test) = nf.data.load_mnist()
    return (((x_train / 255.0).astype(np.float32), y_train.astype(np.int64)),
            ((x_test / 255.0).astype(np.float32), y_test.astype(np.int64)))


def model_setup(args, key, x_train, x_test):
    """What every engine of one model starts from: (epochs, x_train and x_test in the model's
    input shape, the initial weights, the batches of every epoch), all from the seed."""
    spec = MODELS[key]
    epochs = args.epochs or (1 if args.quick else spec["epochs"])
    shape = (-1, 1, 28, 28) if spec["image"] else (-1, 784)
    nf.seed(args.seed)
    weights = nnfast_model(spec["layers"]).get_weights()
    return (epochs, x_train.reshape(shape), x_test.reshape(shape), weights,
            batch_orders(len(x_train), spec["batch"], epochs, args.seed))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a subset and 1 epoch")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--inputs", default=",".join(INPUTS),
                        help="raw pixels (0..1), standardised inputs, or both")
    parser.add_argument("--engines", default=",".join(ENGINES),
                        help="nnfast-bf16 is left out where the CPU cannot run it")
    parser.add_argument("--epochs", type=int, help="override every model's epoch count")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--profile", action="store_true", help="per-layer time of nnfast")
    parser.add_argument("--json", default=os.path.join(RESULTS, "mnist.json"))
    parser.add_argument("--markdown", metavar="PATH",
                        help="also write the results table into PATH (e.g. README.md), "
                             f"replacing what stands between {MARK_BEGIN} and {MARK_END}")
    parser.add_argument("--in-process", action="store_true",
                        help="run every engine in this process, one after the other (default: "
                             "each in a fresh one, their epochs in turns)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.markdown and not args.worker:
        check_markers(args.markdown)   # before the run, not after it

    (x_train, y_train), (x_test, y_test) = load_data()
    if args.quick:
        x_train, y_train = x_train[:10000], y_train[:10000]

    engines = [e for e in args.engines.split(",") if e]
    if "torch" in engines and not torch_available():
        print("PyTorch is not installed: comparing nnfast with the NumPy reference only",
              file=sys.stderr)
        engines.remove("torch")
    if "nnfast-bf16" in engines and not nf.config()["bf16"]:
        print("this CPU (or the kernels' copy in use) has no bf16 products: nnfast-bf16 left out",
              file=sys.stderr)
        engines.remove("nnfast-bf16")
    kinds = [k for k in args.inputs.split(",") if k]
    unknown = ([k for k in kinds if k not in INPUTS] + [e for e in engines if e not in ENGINES]
               + [m for m in args.models.split(",") if m and m not in MODELS])
    if unknown:
        raise SystemExit(f"unknown model, input kind or engine {unknown}; models: "
                         f"{list(MODELS)}, inputs: {list(INPUTS)}, engines: {list(ENGINES)}")
    if args.worker:
        prepare = INPUTS[args.inputs]
        _, x, xt, weights, orders = model_setup(args, args.models, prepare(x_train),
                                                prepare(x_test))
        worker(args, x, y_train, xt, y_test, weights, orders)
        return None
    machine = machine_description(args.threads)
    print(f"MNIST on {machine['cpu']}, {args.threads} threads, nnfast ISA {machine['isa']}"
          + (f" (quick run: 10,000 training images, {args.epochs or 1} epoch(s))"
             if args.quick else ""))
    results = []
    for key, kind in [(m, k) for m in args.models.split(",") if m for k in kinds]:
        spec, args.inputs = MODELS[key], kind   # args.inputs: the kind the workers prepare
        epochs, x, xt, weights, orders = model_setup(args, key, INPUTS[kind](x_train),
                                                     INPUTS[kind](x_test))
        if args.in_process:
            runs = [run_engine(args, key, engine_name, x, y_train, xt, y_test, weights, orders)
                    for engine_name in engines]
        else:
            runs = run_interleaved(args, key, engines, epochs)
        for run in runs:
            results.append(run)
            print(f"  {spec['title']:<28} {kind:<12} {run['engine']:<11} "
                  f"{run['epoch_time']:7.3f} s/epoch test accuracy "
                  f"{run['test_accuracy'][-1]:.4f}", file=sys.stderr)
        if args.profile:
            batches = orders[0][:200]
            total, parts = profile_nnfast(spec, weights, x, y_train, batches, args.threads)
            print(f"\nprofile of nnfast, {spec['title']}, {len(batches)} batches "
                  f"({total:.3f} s):")
            for name, seconds in sorted(parts.items(), key=lambda kv: -kv[1]):
                print(f"  {name:<28} {seconds:8.4f} s  {100 * seconds / total:5.1f} %")
            glue = total - sum(parts.values())
            print(f"  {'Python and bindings':<28} {glue:8.4f} s  {100 * glue / total:5.1f} %")
            fresh, reused = fresh_versus_reused_batch(spec, weights, x, y_train, batches,
                                                      args.threads)
            print(f"  one step, gather not timed: {1e6 * fresh:.0f} us on a batch just "
                  f"gathered, {1e6 * reused:.0f} us on a batch reused from the step before")
            gathers = gather_times(x, y_train, batches, args.threads)
            ranked = sorted(gathers.items(), key=lambda kv: kv[1])
            print("  gathering a batch (best of 3 passes over the batches above): "
                  + ", ".join(f"{name} {us:.1f} us" for name, us in ranked))

    machine["fma_peak_gflops"] = fma_peak()
    print_table(results, machine["fma_peak_gflops"])
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump({"machine": machine, "quick": args.quick, "results": results}, f, indent=1)
    if not args.in_process:
        plot(results, os.path.splitext(args.json)[0] + ".png")
    if args.markdown:
        write_markdown(args.markdown, markdown_table(results, machine, args))
        print(f"results table written into {args.markdown}")
    return results


def case(r):
    """What a record ran: (model, input kind)."""
    return r["model"], r.get("inputs", "raw")


def ratio(results, r, other, key="epoch_time_60k"):
    """Record r's ``key`` over ``other`` engine's on the same model and inputs, as text ("-"
    when the other did not run)."""
    o = next((q for q in results if case(q) == case(r) and q["engine"] == other), None)
    return f"{r[key] / o[key]:.2f}x" if o else "-"


def print_table(results, peak):
    """One row per (model, inputs, engine): epoch time, throughput, GFLOP/s of the dense
    products and their share of the FMA peak (``peak`` GFLOP/s), accuracy, memory, ratios."""
    head = (f"{'model':<28} {'inputs':<12} {'engine':<11} {'epochs':>6} {'s/epoch':>9} "
            f"{'samples/s':>10} {'GFLOP/s':>8} {'%peak':>6} {'test acc':>9} {'predict s':>9} "
            f"{'peak MB':>8} {'vs numpy':>9} {'vs torch':>9} {'predict vs torch':>16}")
    print("\n" + head + "\n" + "-" * len(head))
    for r in results:
        memory = "-" if r["peak_memory_bytes"] is None else f"{r['peak_memory_bytes'] / 2**20:.1f}"
        print(f"{r['title']:<28} {case(r)[1]:<12} {r['engine']:<11} {r['epochs']:>6} "
              f"{r['epoch_time_60k']:>9.3f} {r['samples_per_s']:>10,.0f} {r['gflops']:>8.1f} "
              f"{r['gflops'] / peak:>6.0%} "
              f"{r['test_accuracy'][-1]:>9.4f} {r['predict_time']:>9.3f} {memory:>8} "
              f"{ratio(results, r, 'numpy'):>9} {ratio(results, r, 'torch'):>9} "
              f"{ratio(results, r, 'torch', 'predict_time'):>16}")
    print("s/epoch: median over epochs, scaled to 60,000 samples; ratios are epoch-time ratios "
          "(below 1 = nnfast faster); predict: the 10,000 test images in batches of 1,000, "
          f"best of 3; GFLOP/s: the dense products of a training step (raw pixels let nnfast "
          f"skip zeros, so its figure there is not all work done); %peak: of the {peak:.0f} "
          "GFLOP/s FMA peak (benchmarks/peak.py).")


MARK_BEGIN, MARK_END = "<!-- results:begin -->", "<!-- results:end -->"


def markdown_table(results, machine, args):
    """The results as Markdown: one row per model (nnfast's epoch time and test accuracy, its
    epoch-time ratios to the NumPy reference and to PyTorch, the same for nnfast in bf16 where it
    ran), then a line naming the machine, the date, the versions and the kernels' ISA."""
    peak = machine["fma_peak_gflops"]
    rows = ["| model | inputs | epochs | nnfast s/epoch | GFLOP/s (% peak) | test acc | vs NumPy "
            "| vs PyTorch | bf16 s/epoch (vs PyTorch) | bf16 test acc |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        if r["engine"] != "nnfast":
            continue
        half = next((q for q in results if case(q) == case(r) and q["engine"] == "nnfast-bf16"),
                    None)
        bf16 = (f"{half['epoch_time_60k']:.3f} ({ratio(results, half, 'torch')}) | "
                f"{100 * half['test_accuracy'][-1]:.2f} %" if half else "- | -")
        spec = MODELS[r["model"]]
        settings = (f"{spec.get('optimizer', 'sgd').upper()} lr {spec['lr']:g}"
                    + (f" momentum {spec['momentum']:g}" if spec.get("momentum") else "")
                    + f", batch {spec['batch']}")
        rows.append(f"| {r['title']}, {settings} | {case(r)[1]} | {r['epochs']} | "
                    f"{r['epoch_time_60k']:.3f} | {r['gflops']:.0f} ({r['gflops'] / peak:.0%}) | "
                    f"{100 * r['test_accuracy'][-1]:.2f} % | "
                    f"{ratio(results, r, 'numpy')} | {ratio(results, r, 'torch')} | {bf16} |")
    torch = f", PyTorch {machine['torch']}" if machine.get("torch") else ", without PyTorch"
    flags = (" --quick" if args.quick else "") + (f" --epochs {args.epochs}" if args.epochs else "")
    run = f"`python benchmarks/mnist.py{flags}`" + (" (10,000 training images)" if args.quick
                                                     else "")
    native = ", native build" if machine["native_build"] else ""
    machine_line = (f"{run} on {machine['cpu']}, {machine['cores']} cores, "
                    f"{machine['threads']} threads, {machine['date']}; nnfast {machine['nnfast']} "
                    f"({machine['isa']} kernels{native}), Python {machine['python']}, "
                    f"NumPy {machine['numpy']}{torch}. "
                    "s/epoch: median epoch time scaled to 60,000 images; GFLOP/s: the dense "
                    f"products of training, % of the {peak:.0f} GFLOP/s FMA peak "
                    "(benchmarks/peak.py); ratios: nnfast's epoch time over the other engine's "
                    "(below 1: nnfast is faster); bf16: nnfast.set_precision(\"bf16\").")
    return "\n".join(rows) + "\n\n" + machine_line + "\n"


def check_markers(path):
    """SystemExit unless ``path`` is missing (it will be created) or holds both markers in
    order."""
    if not os.path.exists(path):
        return
    with open(path) as f:
        text = f.read()
    begin, end = text.find(MARK_BEGIN), text.find(MARK_END)
    if begin < 0 or end < begin:
        raise SystemExit(f"--markdown {path}: it has no {MARK_BEGIN} ... {MARK_END} pair to "
                         "write the table between")


def write_markdown(path, table):
    """Put ``table`` between the results markers of ``path``, replacing what was there (a new
    file holds just the markers and the table)."""
    text = f"{MARK_BEGIN}\n{MARK_END}\n"
    if os.path.exists(path):
        check_markers(path)
        with open(path) as f:
            text = f.read()
    head, rest = text.split(MARK_BEGIN, 1)
    _, tail = rest.split(MARK_END, 1)
    with open(path, "w") as f:
        f.write(f"{head}{MARK_BEGIN}\n{table}{MARK_END}{tail}")


def plot(results, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    models = sorted({r["model"] for r in results}, key=list(MODELS).index)
    fig, axes = plt.subplots(1, len(models), figsize=(5 * len(models), 4), squeeze=False)
    for ax, model in zip(axes[0], models):
        for r in (r for r in results if r["model"] == model):
            ax.plot(range(1, r["epochs"] + 1), r["test_accuracy"], marker="o",
                    label=f"{r['engine']} {case(r)[1]}")
        ax.set_title(MODELS[model]["title"])
        ax.set_xlabel("epoch")
        ax.set_ylabel("test accuracy")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


if __name__ == "__main__":
    main()
