"""Optimizer parameter groups and options, and the learning-rate schedulers against PyTorch's
(the same rate sequence for the same arguments, where torch is installed)."""
import numpy as np
import pytest

import nnfast as nf
from nnfast import nn, optim
from nnfast.optim import lr_scheduler


def test_param_groups_take_their_own_options_and_the_defaults():
    a, b = nn.Linear(3, 2), nn.Linear(2, 2)
    opt = optim.SGD([{"params": a.parameters()}, {"params": b.parameters(), "lr": 0.5}], lr=0.1,
                    momentum=0.9)
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.5]
    assert all(g["momentum"] == 0.9 for g in opt.param_groups)
    for layer in (a, b):
        layer.weight.grad = np.ones(layer.weight.shape, np.float32)
    before = [layer.weight.data.copy() for layer in (a, b)]
    opt.step()
    np.testing.assert_allclose(before[0] - a.weight.data, 0.1, rtol=1e-6)
    np.testing.assert_allclose(before[1] - b.weight.data, 0.5, rtol=1e-6)
    opt.lr = 0.01                                   # every group's, as Keras users set it
    assert opt.learning_rate == 0.01 and [g["lr"] for g in opt.param_groups] == [0.01, 0.01]
    with pytest.raises(ValueError, match="lr must be a finite number"):
        opt.lr = -1.0
    with pytest.raises(ValueError, match="no option"):
        opt.add_param_group({"params": nn.Linear(1, 1).parameters(), "betas": (0.9, 0.99)})
    with pytest.raises(ValueError, match="more than one parameter group"):
        opt.add_param_group({"params": a.parameters()})


def test_group_state_round_trips_through_state_dict_and_files(tmp_path):
    nf.seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    opt = optim.Adam([{"params": model[0].parameters(), "lr": 0.05},
                      {"params": model[2].parameters(), "betas": (0.8, 0.99)}], lr=0.01)
    model.compile(opt, nn.CrossEntropyLoss())
    x = np.random.default_rng(0).random((8, 4)).astype(np.float32)
    model.fit(x, np.arange(8) % 2, epochs=2, batch_size=4, verbose=0)
    model.save(tmp_path / "m.nnf")
    loaded = nf.load(tmp_path / "m.nnf")
    state, saved = loaded.optimizer.state_dict(), opt.state_dict()
    assert state["param_groups"] == saved["param_groups"]
    assert loaded.optimizer.param_groups[1]["betas"] == (0.8, 0.99)
    nf.seed(3)
    model.fit(x, np.arange(8) % 2, epochs=1, batch_size=4, verbose=0)
    nf.seed(3)
    loaded.fit(x, np.arange(8) % 2, epochs=1, batch_size=4, verbose=0)
    for w, v in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(w, v)


SCHEDULERS = [
    ("StepLR", dict(step_size=3, gamma=0.5)),
    ("MultiStepLR", dict(milestones=[2, 5, 5, 9], gamma=0.3)),
    ("ExponentialLR", dict(gamma=0.9)),
    ("CosineAnnealingLR", dict(T_max=5, eta_min=0.001)),
    ("LambdaLR", dict(lr_lambda=lambda epoch: 0.95 ** epoch / (1 + epoch))),
    ("OneCycleLR", dict(max_lr=0.5, total_steps=20)),
    ("OneCycleLR", dict(max_lr=[0.5, 0.2], epochs=3, steps_per_epoch=4, anneal_strategy="linear",
                        three_phase=True)),
]


@pytest.mark.parametrize("kind", ["SGD", "Adam"])
@pytest.mark.parametrize("name, kwargs", SCHEDULERS, ids=lambda v: v if isinstance(v, str) else "")
def test_schedulers_give_torchs_sequence(name, kwargs, kind):
    torch = pytest.importorskip("torch")
    options = {"SGD": dict(lr=0.1, momentum=0.9), "Adam": dict(lr=0.1)}[kind]
    ours_params = [nn.Parameter(np.zeros(1, np.float32)), nn.Parameter(np.zeros(1, np.float32))]
    theirs_params = [torch.zeros(1, requires_grad=True), torch.zeros(1, requires_grad=True)]
    ours = getattr(optim, kind)([{"params": [ours_params[0]]},
                                 {"params": [ours_params[1]], "lr": 0.03}], **options)
    theirs = getattr(torch.optim, kind)([{"params": [theirs_params[0]]},
                                         {"params": [theirs_params[1]], "lr": 0.03}], **options)
    a = getattr(lr_scheduler, name)(ours, **kwargs)
    b = getattr(torch.optim.lr_scheduler, name)(theirs, **kwargs)
    momentum = "betas" if kind == "Adam" else "momentum"
    steps = kwargs.get("total_steps") or (kwargs.get("epochs", 0) * kwargs.get("steps_per_epoch", 0)) or 15
    for _ in range(steps - 1):
        assert a.get_last_lr() == b.get_last_lr()
        assert [tuple(np.atleast_1d(g[momentum])) for g in ours.param_groups] == [
            tuple(np.atleast_1d(g[momentum])) for g in theirs.param_groups]
        theirs.step()
        ours.step()
        a.step()
        b.step()


def test_reduce_lr_on_plateau_follows_torch():
    torch = pytest.importorskip("torch")
    ours = optim.SGD([nn.Parameter(np.zeros(1, np.float32))], lr=1.0)
    theirs = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    kwargs = dict(factor=0.5, patience=1, cooldown=1, min_lr=0.1, threshold=0.01)
    a = lr_scheduler.ReduceLROnPlateau(ours, **kwargs)
    b = torch.optim.lr_scheduler.ReduceLROnPlateau(theirs, **kwargs)
    for metric in [5, 4, 4, 4, 4.1, 3, 3, 3, 3, 3, 3, 3, 2.99, 3]:
        a.step(metric)
        b.step(metric)
        assert a.get_last_lr() == b.get_last_lr()
    assert a.get_last_lr() == [0.1]              # reduced down to min_lr


OPTIMIZERS = [
    ("RMSprop", dict(lr=0.01)),
    ("RMSprop", dict(lr=0.01, alpha=0.9, momentum=0.8, centered=True, weight_decay=0.01)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.01, weight_decay=0.01, initial_accumulator_value=0.1)),
    ("Adadelta", dict()),
    ("Adadelta", dict(lr=0.5, rho=0.8, weight_decay=0.01)),
    ("SGD", dict(lr=0.1, momentum=0.9, dampening=0.1, weight_decay=0.01)),
    ("Adam", dict(lr=0.01, weight_decay=0.01)),
    ("AdamW", dict(lr=0.01)),
]


@pytest.mark.parametrize("name, kwargs", OPTIMIZERS, ids=lambda v: v if isinstance(v, str) else "")
def test_optimizers_on_cpu_equal_the_reference_and_torch(name, kwargs):
    """Five steps on a Linear's (padded, transposed) weight and its bias: the CPU kernels, the
    NumPy reference backend and torch.optim (where installed) agree."""
    torch = None
    try:
        import torch
    except ImportError:
        pass
    rng = np.random.default_rng(0)
    w0, b0 = rng.standard_normal((5, 3)).astype(np.float32), rng.standard_normal(5).astype(np.float32)
    grads = [(rng.standard_normal((5, 3)).astype(np.float32),
              rng.standard_normal(5).astype(np.float32)) for _ in range(5)]
    results = []
    for device in ("cpu", "reference"):
        layer = nn.Linear(3, 5).to(device)
        layer.set_weights([w0, b0])
        opt = getattr(optim, name)(layer.parameters(), **kwargs)
        for gw, gb in grads:
            layer.weight.grad, layer.bias.grad = gw, gb
            opt.step()
        results.append(layer.get_weights())
        assert not layer.weight.storage[:, 5:].any()          # the padding stays zero
    if torch is not None:
        w, b = torch.tensor(w0, requires_grad=True), torch.tensor(b0, requires_grad=True)
        opt = getattr(torch.optim, name)([w, b], **kwargs)
        for gw, gb in grads:
            w.grad, b.grad = torch.tensor(gw), torch.tensor(gb)
            opt.step()
        results.append([w.detach().numpy(), b.detach().numpy()])
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert not np.allclose(results[0][0], w0)                  # it did move


def test_optimizer_kernels_refuse_bad_state():
    from nnfast import _core
    p = np.zeros(4, np.float32)
    with pytest.raises(ValueError, match="momentum_buf is required"):
        _core.rmsprop_step(p, p.copy(), np.zeros(4, np.float32), momentum=0.9)
    with pytest.raises(ValueError, match="grad_avg is required"):
        _core.rmsprop_step(p, p.copy(), np.zeros(4, np.float32), centered=True)
    with pytest.raises(ValueError, match="acc_delta must have shape"):
        _core.adadelta_step(p, p.copy(), np.zeros(4, np.float32), np.zeros(3, np.float32))
    with pytest.raises(ValueError, match="step must be >= 1"):
        _core.adagrad_step(p, p.copy(), np.zeros(4, np.float32), step=0)
    with pytest.raises(ValueError, match="lr must be finite"):
        _core.adadelta_step(p, p.copy(), p.copy(), p.copy(), lr=float("nan"))
