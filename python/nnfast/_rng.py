"""The global random generator behind ``nnfast.seed``: weight initialisation, shuffling and
dropout masks all draw from it, so one seed reproduces a whole training run."""
import numpy as np

_generator = np.random.default_rng()


def seed(n):
    """Reseed nnfast's generator: the same ``n`` gives the same weights, batches and masks."""
    global _generator
    _generator = np.random.default_rng(n)


def generator():
    """The current generator (replaced, not mutated, by ``seed``)."""
    return _generator
