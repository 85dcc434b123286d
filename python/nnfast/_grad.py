"""Whether forward passes keep what backward needs: on by default, off inside ``no_grad``.
The switch is per thread, as in PyTorch, so ``predict`` in one thread never affects training in
another."""
import threading


class _State(threading.local):
    enabled = True   # each thread starts with gradients on (a class default: a plain lookup)


_state = _State()


def grad_enabled():
    """True unless the calling thread is inside a ``no_grad`` block."""
    return _state.enabled


class no_grad:
    """``with nnfast.no_grad(): ...``: forward passes inside keep nothing for backward, so each
    layer's input and output can be freed as soon as the next layer has run (``predict`` and
    ``evaluate`` run this way). Calling backward after such a forward raises RuntimeError."""

    def __enter__(self):
        self._previous = grad_enabled()
        _state.enabled = False
        return self

    def __exit__(self, *exc):
        _state.enabled = self._previous


def saved_for_backward(value):
    """``value`` when gradients are tracked, else None (nothing is kept under ``no_grad``)."""
    return value if _state.enabled else None
