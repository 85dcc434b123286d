"""Optimizers over Parameters with PyTorch's defaults, update rules and ``param_groups``; each
step a fused in-place update by the parameters' backend: SGD (momentum, dampening, nesterov,
weight decay), Adam, AdamW, RMSprop (momentum, centered), Adagrad and Adadelta."""
import math

import numpy as np

from .. import backend as backends
from ..nn.module import Parameter


class Optimizer:
    """Base class: ``param_groups`` (a list of dicts: "params" and this optimizer's options, each
    group's own, the constructor's as defaults), per-parameter state arrays and the step count.

    ``params`` is an iterable of Parameters, a Module (its parameters), or a list of dicts as
    PyTorch takes them (``[{"params": ..., "lr": 0.1}, {"params": ...}]``). The options read and
    write as attributes (``optimizer.lr = 0.01`` sets every group's; Keras's ``learning_rate``
    is the same)."""

    state_names = ()   # the per-parameter state arrays this optimizer keeps (zeros at first)

    def __init__(self, params, defaults):
        object.__setattr__(self, "defaults", dict(defaults))
        if hasattr(params, "parameters"):
            params = params.parameters()
        params = list(params)
        groups = [dict(g) for g in params] if params and isinstance(params[0], dict) else [
            {"params": params}]
        self.param_groups, self.params = [], []
        self.steps = 0
        self.state = {name: [] for name in self.state_names}
        self._moves_seen = Parameter.moves
        for group in groups:
            self.add_param_group(group)

    def add_param_group(self, group):
        """Add a group ({"params": [...], options...}; options it lacks take the defaults)."""
        params = group.get("params")
        params = list(params.parameters() if hasattr(params, "parameters") else
                      [params] if isinstance(params, Parameter) else params or [])
        if not params:
            raise ValueError(f"{type(self).__name__} got an empty parameter list (a model whose "
                             "Dense layers are not built yet has no parameters: pass an optimizer "
                             "name to compile, or call the model on a batch first)")
        for p in params:
            if not isinstance(p, Parameter):
                raise TypeError(f"{type(self).__name__} expects Parameters, got {type(p).__name__}")
            if any(p is q for q in self.params):
                raise ValueError("a parameter appears in more than one parameter group")
        unknown = set(group) - set(self.defaults) - {"params"}
        if unknown:
            raise ValueError(f"{type(self).__name__} has no option(s) {sorted(unknown)}")
        group = {**self.defaults, **group, "params": params}
        self.check_options(group)
        self.param_groups.append(group)
        self.params.extend(params)
        for arrays in self.state.values():
            arrays.extend([None] * len(params))

    def check_options(self, group):
        """ValueError for an option out of range (numbers: finite and >= 0)."""
        for name, value in group.items():
            if name != "params" and isinstance(value, (int, float)) and not isinstance(value, bool):
                if not math.isfinite(value) or value < 0:
                    raise ValueError(f"{type(self).__name__}: {name} must be a finite number "
                                     f">= 0, got {value}")

    def __getattr__(self, name):
        name = "lr" if name == "learning_rate" else name
        defaults = self.__dict__.get("defaults", {})
        if name in defaults and self.__dict__.get("param_groups"):
            return self.__dict__["param_groups"][0][name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __setattr__(self, name, value):
        name = "lr" if name == "learning_rate" else name
        if name in self.defaults:
            for group in self.param_groups:
                self.check_options({**group, name: value})
                group[name] = value
        else:
            object.__setattr__(self, name, value)

    def groups(self):
        """(group, index of its first parameter) for each parameter group."""
        start = 0
        for group in self.param_groups:
            yield group, start
            start += len(group["params"])

    def _state(self, name, i):
        """Parameter i's state array `name`, in the parameter's storage layout."""
        arrays = self.state[name]
        if arrays[i] is None:
            p = self.params[i]
            arrays[i] = p.backend.zeros(p.storage.shape)
        return arrays[i]

    def follow_parameters(self):
        """Move each state array to its parameter's device, where ``to`` moved the parameter
        since the last step (checked by one comparison when none moved)."""
        if self._moves_seen == Parameter.moves:
            return
        for arrays in self.state.values():
            for i, a in enumerate(arrays):
                backend = self.params[i].backend
                if a is not None and not backend.is_array(a):
                    arrays[i] = backends.move(a, backend)
        self._moves_seen = Parameter.moves

    def zero_grad(self):
        for p in self.params:
            p.zero_grad()

    def step(self):
        self.follow_parameters()
        for group, start in self.groups():
            self.update(group, start)
        self.steps += 1

    def update(self, group, start):
        """Update the group's parameters (the first has index ``start`` in ``self.params``)."""
        raise NotImplementedError

    def get_config(self):
        """The constructor's options (JSON-able)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.defaults.items()}

    def state_dict(self):
        """{"type", "config", "steps", "state": {name: [array or None per parameter]},
        "param_groups": [each group's options and "params": its parameters' indices]}."""
        self.follow_parameters()   # state arrays where their parameters are now
        groups = [{**{k: list(v) if isinstance(v, tuple) else v
                      for k, v in group.items() if k != "params"},
                   "params": list(range(start, start + len(group["params"])))}
                  for group, start in self.groups()]
        return {"type": type(self).__name__, "config": self.get_config(), "steps": self.steps,
                "state": {k: [None if a is None else p.host_view(a).copy()
                              for a, p in zip(v, self.params)]
                          for k, v in self.state.items()},
                "param_groups": groups}

    def load_state_dict(self, state):
        if state.get("type") != type(self).__name__:
            raise ValueError(f"state_dict is for {state.get('type')}, not {type(self).__name__}")
        groups = state.get("param_groups")
        if groups is not None and [len(g["params"]) for g in groups] != [
                len(g["params"]) for g in self.param_groups]:
            raise ValueError("state_dict's parameter groups do not match this optimizer's")
        for name in self.state_names:
            arrays = state["state"][name]
            if len(arrays) != len(self.params):
                raise ValueError(f"state_dict has {len(arrays)} '{name}' arrays for "
                                 f"{len(self.params)} parameters")
            for i, a in enumerate(arrays):
                if a is not None and np.shape(a) != self.params[i].shape:
                    raise ValueError(f"state_dict '{name}' {i} has shape {np.shape(a)}, "
                                     f"expected {self.params[i].shape}")
        for name in self.state_names:
            self.state[name] = [None if a is None else p.backend.to_device(p.stored(a))
                                for a, p in zip(state["state"][name], self.params)]
        options = groups or [state["config"]] * len(self.param_groups)
        for group, saved in zip(self.param_groups, options):
            group.update(self.options_from(saved))
        self.steps = int(state["steps"])

    def options_from(self, saved):
        """This optimizer's options from a saved config or group (lists back to tuples)."""
        return {k: tuple(v) if isinstance(self.defaults[k], tuple) else v
                for k, v in saved.items() if k in self.defaults}


class SGD(Optimizer):
    """p -= lr * g with g = grad + weight_decay * p, optional (nesterov) momentum. Each group's
    parameters in one kernel call."""

    state_names = ("momentum_buffer",)

    def __init__(self, params, lr=0.01, momentum=0.0, dampening=0.0, weight_decay=0.0,
                 nesterov=False):
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=bool(nesterov)))

    def check_options(self, group):
        super().check_options(group)
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError("nesterov momentum requires momentum > 0 and dampening = 0")

    def update(self, group, start):
        params = group["params"]
        bufs = ([self._state("momentum_buffer", start + i) for i in range(len(params))]
                if group["momentum"] else None)
        params[0].backend.sgd_step([p.storage for p in params], [p.grad_storage for p in params],
                                   bufs, group["lr"], group["momentum"], group["dampening"],
                                   group["weight_decay"], group["nesterov"], self.steps == 0)


class Adam(Optimizer):
    """Adam with bias correction; weight_decay as L2 added to the gradient (PyTorch's Adam)."""

    state_names = ("m", "v")
    decoupled = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps,
                                      weight_decay=weight_decay))

    def check_options(self, group):
        super().check_options(group)
        betas = tuple(group["betas"])
        if len(betas) != 2 or not all(0 <= b < 1 for b in betas):
            raise ValueError(f"betas must be two numbers in [0, 1), got {group['betas']}")

    def update(self, group, start):
        (beta1, beta2), step = group["betas"], self.steps + 1
        for i, p in enumerate(group["params"], start):
            p.backend.adam_step(p.storage, p.grad_storage, self._state("m", i),
                                self._state("v", i), group["lr"], beta1, beta2, group["eps"],
                                group["weight_decay"], step, self.decoupled)


class AdamW(Adam):
    """Adam with decoupled weight decay (p *= 1 - lr * weight_decay before the Adam step)."""

    decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2):
        super().__init__(params, lr, betas, eps, weight_decay)


class RMSprop(Optimizer):
    """RMSprop: g / (sqrt(mean of g^2) + eps), the mean over time with weight ``alpha``;
    ``centered`` subtracts the squared mean gradient; optional momentum (PyTorch's rule)."""

    state_names = ("square_avg", "momentum_buffer", "grad_avg")

    def __init__(self, params, lr=0.01, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0,
                 centered=False):
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                                      momentum=momentum, centered=bool(centered)))

    def check_options(self, group):
        super().check_options(group)
        if group["alpha"] > 1:
            raise ValueError(f"RMSprop: alpha must be in [0, 1], got {group['alpha']}")

    def update(self, group, start):
        for i, p in enumerate(group["params"], start):
            p.backend.rmsprop_step(
                p.storage, p.grad_storage, self._state("square_avg", i),
                self._state("momentum_buffer", i) if group["momentum"] > 0 else None,
                self._state("grad_avg", i) if group["centered"] else None, group["lr"],
                group["alpha"], group["eps"], group["weight_decay"], group["momentum"],
                group["centered"])


class Adagrad(Optimizer):
    """Adagrad: lr / (1 + (step - 1) lr_decay) * g / (sqrt(sum of g^2) + eps), the sum starting
    at ``initial_accumulator_value`` (PyTorch's rule)."""

    state_names = ("sum",)

    def __init__(self, params, lr=0.01, lr_decay=0.0, weight_decay=0.0,
                 initial_accumulator_value=0.0, eps=1e-10):
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                                      initial_accumulator_value=initial_accumulator_value,
                                      eps=eps))

    def update(self, group, start):
        for i, p in enumerate(group["params"], start):
            if self.state["sum"][i] is None:
                initial = np.full(p.storage.shape, group["initial_accumulator_value"], np.float32)
                self.state["sum"][i] = backends.move(initial, p.backend)
            p.backend.adagrad_step(p.storage, p.grad_storage, self.state["sum"][i], group["lr"],
                                   group["lr_decay"], group["weight_decay"], group["eps"],
                                   self.steps + 1)


class Adadelta(Optimizer):
    """Adadelta: steps of sqrt(mean of delta^2 + eps) / sqrt(mean of g^2 + eps) * g, times lr
    (PyTorch's rule, whose default lr is 1.0)."""

    state_names = ("square_avg", "acc_delta")

    def __init__(self, params, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0.0):
        super().__init__(params, dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay))

    def check_options(self, group):
        super().check_options(group)
        if group["rho"] > 1:
            raise ValueError(f"Adadelta: rho must be in [0, 1], got {group['rho']}")

    def update(self, group, start):
        for i, p in enumerate(group["params"], start):
            p.backend.adadelta_step(p.storage, p.grad_storage, self._state("square_avg", i),
                                    self._state("acc_delta", i), group["lr"], group["rho"],
                                    group["eps"], group["weight_decay"])


OPTIMIZERS = {"SGD": SGD, "Adam": Adam, "AdamW": AdamW, "RMSprop": RMSprop, "Adagrad": Adagrad,
              "Adadelta": Adadelta}


def optimizer_from_config(name, params, config, param_groups=None):
    """Rebuild an optimizer from its class name, ``get_config()`` and (optionally) the
    ``param_groups`` of its ``state_dict`` (which parameters, by index, each group holds)."""
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}")
    if param_groups:
        params = [{**{k: v for k, v in g.items() if k != "params"},
                   "params": [params[i] for i in g["params"]]} for g in param_groups]
    return OPTIMIZERS[name](params, **config)
