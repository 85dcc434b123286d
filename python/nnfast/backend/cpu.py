"""The CPU backend: nnfast's compiled kernels (``nnfast._core``, one copy per instruction set,
chosen at import), on float32 NumPy arrays. The functions are the extension's own; see
``nnfast.backend.INTERFACE`` for what each computes."""
from .._core import (  # noqa: F401  (the backend's functions)
    adam_step, avgpool2d_backward, avgpool2d_forward, bce_backward, bce_forward,
    bce_with_logits_backward, bce_with_logits_forward, conv2d_backward, conv2d_forward,
    conv2d_relu_maxpool_backward, conv2d_relu_maxpool_forward, cross_entropy_backward,
    cross_entropy_forward, cross_entropy_soft_backward, cross_entropy_soft_forward,
    dropout_backward, dropout_forward, gather_rows, l1_backward, l1_forward, leaky_relu_backward,
    leaky_relu_forward, linear_backward, linear_forward, log_softmax_backward,
    log_softmax_forward, matmul_backward, matmul_forward, maxpool2d_backward, maxpool2d_forward,
    mse_backward, mse_forward, nll_backward, nll_forward, relu_backward, relu_forward,
    sgd_step, sigmoid_backward, sigmoid_forward, softmax_backward, softmax_forward,
    tanh_backward, tanh_forward, threshold_backward, threshold_forward)
