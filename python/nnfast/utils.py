"""Keras's ``utils`` spellings: ``to_categorical`` (from ``nnfast.data``)."""
from .data import to_categorical  # noqa: F401
