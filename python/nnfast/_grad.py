"""Whether forward passes keep what backward needs: on by default, off inside ``no_grad``."""

_grad_enabled = True


class no_grad:
    """``with nnfast.no_grad(): ...``: forward passes inside keep nothing for backward, so each
    layer's input and output can be freed as soon as the next layer has run (``predict`` and
    ``evaluate`` run this way). Calling backward after such a forward raises RuntimeError.
    The switch is process-wide, like PyTorch's per-thread one in a single-threaded program."""

    def __enter__(self):
        global _grad_enabled
        self._previous, _grad_enabled = _grad_enabled, False
        return self

    def __exit__(self, *exc):
        global _grad_enabled
        _grad_enabled = self._previous


def saved_for_backward(value):
    """``value`` when gradients are tracked, else None (nothing is kept under ``no_grad``)."""
    return value if _grad_enabled else None
