"""Keras's spelling of the data sets: ``nnfast.datasets.mnist.load_data()`` and
``nnfast.datasets.fashion_mnist.load_data()`` (the loaders of ``nnfast.data``)."""
from types import SimpleNamespace

from .data import load_fashion_mnist, load_mnist

mnist = SimpleNamespace(load_data=load_mnist)
fashion_mnist = SimpleNamespace(load_data=load_fashion_mnist)
