"""Optimizers over Parameters, each step a fused in-place update by the parameters' backend
(PyTorch semantics): SGD (momentum, dampening, nesterov, weight decay), Adam and AdamW."""
import numpy as np

from .nn._arrays import aligned_zeros
from .nn.module import Parameter


class Optimizer:
    """Base class: holds the parameters, their per-parameter state arrays and the step count."""

    # Names of the per-parameter state arrays this optimizer keeps (created lazily as zeros).
    state_names = ()

    def __init__(self, params, **hyper):
        params = list(params.parameters() if hasattr(params, "parameters") else params)
        if not params:
            raise ValueError(f"{type(self).__name__} got an empty parameter list (a model whose "
                             "Dense layers are not built yet has no parameters: pass an optimizer "
                             "name to compile, or call the model on a batch first)")
        for p in params:
            if not isinstance(p, Parameter):
                raise TypeError(f"{type(self).__name__} expects Parameters, got {type(p).__name__}")
        for name, value in hyper.items():
            if not np.isfinite(value) or value < 0:
                raise ValueError(f"{type(self).__name__}: {name} must be a finite number >= 0, "
                                 f"got {value}")
        self.params = params
        self.hyper = hyper
        self.steps = 0
        self.state = {name: [None] * len(params) for name in self.state_names}

    def __getattr__(self, name):
        hyper = self.__dict__.get("hyper", {})
        if name in hyper:
            return hyper[name]
        raise AttributeError(name)

    def _state(self, name, i):
        """Parameter i's state array `name`, in the parameter's storage layout."""
        arrays = self.state[name]
        if arrays[i] is None:
            arrays[i] = aligned_zeros(self.params[i].storage.shape)
        return arrays[i]

    def zero_grad(self):
        for p in self.params:
            p.zero_grad()

    def step(self):
        for i, p in enumerate(self.params):
            self._update(i, p)
        self.steps += 1

    def _update(self, i, p):
        raise NotImplementedError

    def get_config(self):
        return dict(self.hyper)

    def state_dict(self):
        """{"type", "config", "steps", "state": {name: [array or None per parameter]}}."""
        return {"type": type(self).__name__, "config": self.get_config(), "steps": self.steps,
                "state": {k: [None if a is None else p.public(a).copy()
                              for a, p in zip(v, self.params)]
                          for k, v in self.state.items()}}

    def load_state_dict(self, state):
        if state.get("type") != type(self).__name__:
            raise ValueError(f"state_dict is for {state.get('type')}, not {type(self).__name__}")
        for name in self.state_names:
            arrays = state["state"][name]
            if len(arrays) != len(self.params):
                raise ValueError(f"state_dict has {len(arrays)} '{name}' arrays for "
                                 f"{len(self.params)} parameters")
            for i, a in enumerate(arrays):
                if a is not None and np.shape(a) != self.params[i].shape:
                    raise ValueError(f"state_dict '{name}' {i} has shape {np.shape(a)}, "
                                     f"expected {self.params[i].shape}")
            self.state[name] = [None if a is None else p.stored(a)
                                for a, p in zip(arrays, self.params)]
        self.hyper.update(state["config"])
        self.steps = int(state["steps"])


class SGD(Optimizer):
    """p -= lr * g with g = grad + weight_decay * p, optional (nesterov) momentum."""

    state_names = ("momentum_buffer",)

    def __init__(self, params, lr=0.01, momentum=0.0, dampening=0.0, weight_decay=0.0,
                 nesterov=False):
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("nesterov momentum requires momentum > 0 and dampening = 0")
        super().__init__(params, lr=lr, momentum=momentum, dampening=dampening,
                         weight_decay=weight_decay)
        self.nesterov = bool(nesterov)

    def step(self):
        """All parameters in one kernel call."""
        h, n = self.hyper, len(self.params)
        bufs = [self._state("momentum_buffer", i) for i in range(n)] if h["momentum"] else None
        params = self.params
        params[0].backend.sgd_step([p.storage for p in params], [p.grad_storage for p in params],
                                   bufs, h["lr"], h["momentum"], h["dampening"],
                                   h["weight_decay"], self.nesterov, self.steps == 0)
        self.steps += 1

    def get_config(self):
        return {**self.hyper, "nesterov": self.nesterov}

    def load_state_dict(self, state):
        config = dict(state["config"])
        self.nesterov = bool(config.pop("nesterov", self.nesterov))
        super().load_state_dict({**state, "config": config})


class Adam(Optimizer):
    """Adam with bias correction; weight_decay as L2 added to the gradient (PyTorch's Adam)."""

    state_names = ("m", "v")
    decoupled = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        if not (0 <= betas[0] < 1 and 0 <= betas[1] < 1):
            raise ValueError(f"betas must be in [0, 1), got {betas}")
        super().__init__(params, lr=lr, beta1=betas[0], beta2=betas[1], eps=eps,
                         weight_decay=weight_decay)

    def _update(self, i, p):
        h = self.hyper
        p.backend.adam_step(p.storage, p.grad_storage, self._state("m", i), self._state("v", i),
                        h["lr"], h["beta1"], h["beta2"], h["eps"], h["weight_decay"], self.steps + 1,
                        self.decoupled)

    def get_config(self):
        h = dict(self.hyper)
        return {"lr": h["lr"], "betas": [h["beta1"], h["beta2"]], "eps": h["eps"],
                "weight_decay": h["weight_decay"]}

    def load_state_dict(self, state):
        config = dict(state["config"])
        config["beta1"], config["beta2"] = config.pop("betas", (self.beta1, self.beta2))
        super().load_state_dict({**state, "config": config})


class AdamW(Adam):
    """Adam with decoupled weight decay (p *= 1 - lr * weight_decay before the Adam step)."""

    decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2):
        super().__init__(params, lr, betas, eps, weight_decay)


OPTIMIZERS = {"SGD": SGD, "Adam": Adam, "AdamW": AdamW}


def optimizer_from_config(name, params, config):
    """Rebuild an optimizer from its class name and ``get_config()``."""
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}")
    return OPTIMIZERS[name](params, **config)
