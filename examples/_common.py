"""What the examples share: command-line flags, data loading and optional plotting."""
import argparse
import os
import sys

import numpy as np

import nnfast as nf


def parse_args(description, epochs):
    """--quick (a small subset and one epoch, for smoke tests), --epochs, --seed, --out."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="tiny subset, 1 epoch")
    parser.add_argument("--epochs", type=int, default=epochs)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=".", help="folder for plots (default: here)")
    args = parser.parse_args()
    if args.quick:
        args.epochs = 1
    nf.seed(args.seed)
    return args


def load(name="mnist", quick=False, flat=True):
    """Images scaled to [0, 1] as float32 ((n, 784) or (n, 1, 28, 28)) and integer labels."""
    loader = nf.data.load_mnist if name == "mnist" else nf.data.load_fashion_mnist
    try:
        (x_train, y_train), (x_test, y_test) = loader()
    except FileNotFoundError as e:  # Fashion-MNIST is not shipped: say how to get it
        sys.exit(str(e))
    if quick:
        x_train, y_train, x_test, y_test = x_train[:2000], y_train[:2000], x_test[:500], y_test[:500]
    shape = (-1, 784) if flat else (-1, 1, 28, 28)
    scale = lambda x: (x / 255.0).astype(np.float32).reshape(shape)  # noqa: E731
    return (scale(x_train), y_train.astype(np.int64)), (scale(x_test), y_test.astype(np.int64))


def figure_path(args, name):
    """Where the example saves plot `name` (in --out), or None when matplotlib is not installed
    (the example then skips its plots)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print(f"matplotlib is not installed: {name} not drawn")
        return None
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, name)
    print(f"saving {path}")
    return path
