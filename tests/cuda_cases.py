"""Each CUDA kernel against the CPU kernel: one case per kernel family, shared by
tests/test_cuda.py (shapes drawn from a hypothesis-drawn seed) and scripts/gpu_check.py (a fixed
seed, a pass/fail table).

A case takes a NumPy generator, draws its shapes and inputs from it, runs the CPU backend and the
CUDA backend on them, and returns [(what, cuda result, cpu result, exact)]: the results compared
with a relative tolerance of 1e-4 (``close``), or bit for bit where ``exact`` (indices, masks).
Needs a CUDA device (the cases move arrays to it).
"""
import numpy as np

from nnfast.backend import cpu
from nnfast.backend import cuda as gpu

RTOL = 1e-4


def close(got, want, exact=False):
    """None when got matches want (relative 1e-4, with an absolute floor of 1e-4 times the
    largest |want|, for sums that cancel), else a line saying by how much it does not."""
    got, want = np.asarray(got), np.asarray(want)
    if got.shape != want.shape:
        return f"shape {got.shape} != {want.shape}"
    nan = np.isnan(want) if want.dtype.kind == "f" else np.zeros(want.shape, bool)
    if not np.array_equal(np.isnan(got) if got.dtype.kind == "f" else nan, nan):
        return "NaN in other places"
    got, want = got[~nan], want[~nan]   # NaN where NaN is expected; the rest compared
    if exact:
        bad = int(np.sum(got != want))
        return None if bad == 0 else f"{bad} of {want.size} entries differ"
    floor = RTOL * max(1.0, float(np.max(np.abs(want))) if want.size else 1.0)
    err = np.abs(got.astype(np.float64) - want) - RTOL * np.abs(want)
    worst = float(np.max(err)) if err.size else 0.0
    return None if worst <= floor else f"off by {worst:.3g} past the tolerance"


def _randn(rng, *shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def _up(*arrays):
    return [gpu.to_device(a) for a in arrays]


def _host(results):
    return [gpu.to_host(r) if r is not None else None for r in results]


def case_matmul(rng):
    M, N, K = (int(v) for v in rng.integers(1, 80, 3))
    out = []
    for ta in (False, True):
        for tb in (False, True):
            a = _randn(rng, *((K, M) if ta else (M, K)))
            b = _randn(rng, *((N, K) if tb else (K, N)))
            dc = _randn(rng, M, N)
            want = [cpu.matmul_forward(a, b, ta, tb), *cpu.matmul_backward(dc, a, b, ta, tb)]
            ga, gb, gdc = _up(a, b, dc)
            got = _host([gpu.matmul_forward(ga, gb, ta, tb), *gpu.matmul_backward(gdc, ga, gb,
                                                                                    ta, tb)])
            for name, g, w in zip(("c", "da", "db"), got, want):
                out.append((f"{name} trans=({ta:d},{tb:d}) M,N,K={M},{N},{K}", g, w, False))
    return out


def case_linear(rng):
    B, IN, OUT = (int(v) for v in rng.integers(1, 70, 3))
    ld = -(-OUT // 16) * 16
    x, b, dy = _randn(rng, B, IN), _randn(rng, OUT), _randn(rng, B, OUT)
    wt = np.zeros((IN, ld), np.float32)
    wt[:, :OUT] = _randn(rng, IN, OUT)
    out = []
    for act in ("none", "relu", "sigmoid"):
        want = cpu.linear_forward(x, wt, b, OUT, act)
        got = gpu.to_host(gpu.linear_forward(*_up(x, wt, b), OUT, act))
        out.append((f"forward {act} B,IN,OUT={B},{IN},{OUT}", got, want, False))
    for dx_act in ("none", "relu", "sigmoid"):
        xa = cpu.sigmoid_forward(x) if dx_act == "sigmoid" else cpu.relu_forward(x)
        dwt0, db0 = _randn(rng, IN, ld), _randn(rng, OUT)
        dwt0[:, OUT:] = 0
        want = cpu.linear_backward(dy, xa, wt, dwt0.copy(), db0.copy(), out_features=OUT,
                                   dx_activation=dx_act)
        gdy, gx, gwt, gdwt, gdb = _up(dy, xa, wt, dwt0, db0)
        got = _host(gpu.linear_backward(gdy, gx, gwt, gdwt, gdb, out_features=OUT,
                                        dx_activation=dx_act))
        for name, g, w in zip(("dx", "dwt", "db"), got, want):
            out.append((f"backward {name} {dx_act} (accumulating)", g, w, False))
    return out


def case_activations(rng):
    n = int(rng.integers(1, 5000))
    x, dy = _randn(rng, n, scale=3.0), _randn(rng, n)
    gx, gdy = _up(x, dy)
    out = []
    for name in ("relu", "sigmoid", "tanh", "leaky_relu"):
        extra = (0.1,) if name == "leaky_relu" else ()
        y = getattr(cpu, name + "_forward")(x, *extra)
        saved, gsaved = (x, gx) if name in ("relu", "leaky_relu") else (y, gpu.to_device(y))
        gy = getattr(gpu, name + "_forward")(gx, *extra)
        out.append((f"{name}_forward n={n}", gpu.to_host(gy), y, False))
        want = getattr(cpu, name + "_backward")(dy, saved, *extra)
        got = gpu.to_host(getattr(gpu, name + "_backward")(gdy, gsaved, *extra))
        out.append((f"{name}_backward n={n}", got, want, False))
    out.append((f"add n={n}", gpu.to_host(gpu.add(gx, gdy)), cpu.add(x, dy), True))
    out.append((f"mul n={n}", gpu.to_host(gpu.mul(gx, gdy)), cpu.mul(x, dy), True))
    out.append((f"scale n={n}", gpu.to_host(gpu.scale(gx, -0.3)), cpu.scale(x, -0.3), True))
    x[::7] = np.nan   # NaN kept by relu as on the CPU
    want = cpu.relu_forward(x)
    out.append(("relu_forward with NaN", gpu.to_host(gpu.relu_forward(gpu.to_device(x))), want,
                False))
    y = cpu.threshold_forward(x, 0.5, -2.0)
    out.append(("threshold_forward", gpu.to_host(gpu.threshold_forward(gpu.to_device(x), 0.5,
                                                                       -2.0)), y, False))
    out.append(("threshold_backward", gpu.to_host(gpu.threshold_backward(gdy, gpu.to_device(x),
                                                                         0.5)),
                cpu.threshold_backward(dy, x, 0.5), False))
    return out


def case_row_activations(rng):
    N, C = int(rng.integers(1, 100)), int(rng.integers(1, 700))
    x, dy = _randn(rng, N, C, scale=4.0), _randn(rng, N, C)
    gx, gdy = _up(x, dy)
    out = []
    for name in ("softmax", "log_softmax"):
        y = getattr(cpu, name + "_forward")(x)
        gy = getattr(gpu, name + "_forward")(gx)
        out.append((f"{name}_forward N,C={N},{C}", gpu.to_host(gy), y, False))
        want = getattr(cpu, name + "_backward")(dy, y)
        got = gpu.to_host(getattr(gpu, name + "_backward")(gdy, gpu.to_device(y)))
        out.append((f"{name}_backward N,C={N},{C}", got, want, False))
    return out


def case_losses(rng):
    N, C = int(rng.integers(1, 200)), int(rng.integers(2, 300))
    logits, labels = _randn(rng, N, C, scale=4.0), rng.integers(0, C, N).astype(np.int64)
    loss, probs = cpu.cross_entropy_forward(logits, labels)
    gloss, gprobs = gpu.cross_entropy_forward(*_up(logits, labels))
    glabels = gpu.to_device(labels)
    out = [("cross_entropy loss", np.float64(gloss), np.float64(loss), False),
           ("cross_entropy probs", gpu.to_host(gprobs), probs, False),
           ("cross_entropy_backward", gpu.to_host(gpu.cross_entropy_backward(gprobs, glabels, 0.5)),
            cpu.cross_entropy_backward(probs, labels, 0.5), False)]
    p, t = _randn(rng, N, C), _randn(rng, N, C)
    gp, gt = _up(p, t)
    out += [("mse loss", np.float64(gpu.mse_forward(gp, gt)), np.float64(cpu.mse_forward(p, t)),
             False),
            ("mse_backward", gpu.to_host(gpu.mse_backward(gp, gt, 2.0)),
             cpu.mse_backward(p, t, 2.0), False)]
    prob = rng.uniform(0.01, 0.99, (N, C)).astype(np.float32)
    target = rng.uniform(0, 1, (N, C)).astype(np.float32)
    for name, pred in (("l1", p), ("bce", prob), ("bce_with_logits", p)):
        gpred, gtarget = _up(pred, target)
        out += [(f"{name} loss", np.float64(getattr(gpu, name + "_forward")(gpred, gtarget)),
                 np.float64(getattr(cpu, name + "_forward")(pred, target)), False),
                (f"{name}_backward", gpu.to_host(getattr(gpu, name + "_backward")(gpred, gtarget,
                                                                                  0.5)),
                 getattr(cpu, name + "_backward")(pred, target, 0.5), False)]
    soft = target / target.sum(axis=1, keepdims=True)
    loss, probs = cpu.cross_entropy_soft_forward(logits, soft)
    gloss, gprobs = gpu.cross_entropy_soft_forward(*_up(logits, soft))
    out += [("cross_entropy_soft loss", np.float64(gloss), np.float64(loss), False),
            ("cross_entropy_soft probs", gpu.to_host(gprobs), probs, False),
            ("cross_entropy_soft_backward",
             gpu.to_host(gpu.cross_entropy_soft_backward(gprobs, gpu.to_device(soft), 0.5)),
             cpu.cross_entropy_soft_backward(probs, soft, 0.5), False)]
    logp = cpu.log_softmax_forward(logits)
    out += [("nll loss", np.float64(gpu.nll_forward(gpu.to_device(logp), glabels)),
             np.float64(cpu.nll_forward(logp, labels)), False),
            ("nll_backward", gpu.to_host(gpu.nll_backward(glabels, C, 0.5)),
             cpu.nll_backward(labels, C, 0.5), False)]
    return out


def _image(rng, k):
    N, C = int(rng.integers(1, 5)), int(rng.integers(1, 6))
    H, W = (int(v) for v in rng.integers(k, k + 14, 2))
    return _randn(rng, N, C, H, W)


def case_pooling(rng):
    k = int(rng.integers(1, 4))
    s, pad = int(rng.integers(1, 4)), int(rng.integers(0, k // 2 + 1))
    x = _image(rng, k)
    x.reshape(-1)[::5] = np.nan   # NaN windows: the last NaN's index, as on the CPU
    y, am = cpu.maxpool2d_forward(x, k, s, pad)
    gx = gpu.to_device(x)
    gy, gam = gpu.maxpool2d_forward(gx, k, s, pad)
    dy = _randn(rng, *y.shape)
    gdy = gpu.to_device(dy)
    tag = f"x={x.shape} k={k} s={s} p={pad}"
    return [(f"maxpool y {tag}", gpu.to_host(gy), y, True),
            ("maxpool argmax", gpu.to_host(gam), am, True),
            ("maxpool_backward", gpu.to_host(gpu.maxpool2d_backward(gdy, gam, x.shape, k, s, pad)),
             cpu.maxpool2d_backward(dy, am, x.shape, k, s, pad), False),
            ("avgpool y", gpu.to_host(gpu.avgpool2d_forward(gx, k, s, pad)),
             cpu.avgpool2d_forward(x, k, s, pad), False),
            ("avgpool_backward", gpu.to_host(gpu.avgpool2d_backward(gdy, x.shape, k, s, pad)),
             cpu.avgpool2d_backward(dy, x.shape, k, s, pad), False)]


def case_conv2d_relu_maxpool(rng):
    k, pk = int(rng.integers(1, 4)), int(rng.integers(1, 3))
    s, pad = int(rng.integers(1, 3)), int(rng.integers(0, 2))
    # small integers: every convolution sum is exact in float32 whatever its order, so the
    # windows' maxima and their argmax (ties: the first) are the same on both devices
    x = np.round(_image(rng, k + pk) * 2)
    oc = int(rng.integers(1, 6))
    w, b = np.round(_randn(rng, oc, x.shape[1], k, k) * 2), np.round(_randn(rng, oc))
    y, am = cpu.conv2d_relu_maxpool_forward(x, w, b, s, pad, pk)
    g = _randn(rng, *y.shape)
    want = cpu.conv2d_relu_maxpool_backward(g, y, am, x, w, s, pad, pk)
    gx, gw, gb, gg = _up(x, w, b, g)
    gy, gam = gpu.conv2d_relu_maxpool_forward(gx, gw, gb, s, pad, pk)
    got = _host(gpu.conv2d_relu_maxpool_backward(gg, gy, gam, gx, gw, s, pad, pk))
    tag = f"x={x.shape} k={k} s={s} p={pad} pool={pk}"
    out = [(f"conv_relu_pool y {tag}", gpu.to_host(gy), y, False),
           ("conv_relu_pool argmax", gpu.to_host(gam), am, True)]
    return out + [(f"conv_relu_pool_backward {name}", got_i, want_i, False)
                  for name, got_i, want_i in zip(("dx", "dw", "db"), got, want)]


def case_batchnorm(rng):
    shape = (int(rng.integers(2, 9)), int(rng.integers(1, 6))) + tuple(
        int(v) for v in rng.integers(1, 9, int(rng.integers(0, 3))))
    C = shape[1]
    x, dy = _randn(rng, *shape, scale=2.0), _randn(rng, *shape)
    gamma, beta = _randn(rng, C), _randn(rng, C)
    out = []
    for training in (True, False):
        rm, rv = _randn(rng, C), np.abs(_randn(rng, C)) + 0.5
        dev = _up(x, gamma, beta, rm, rv)
        y, mean, invstd = cpu.batchnorm_forward(x, gamma, beta, rm, rv, training, 0.1, 1e-5)
        gy, gmean, ginvstd = gpu.batchnorm_forward(*dev, training, 0.1, 1e-5)
        tag = f"training={training} x={shape}"
        out += [(f"batchnorm y {tag}", gpu.to_host(gy), y, False),
                ("batchnorm running_mean", gpu.to_host(dev[3]), rm, False),
                ("batchnorm running_var", gpu.to_host(dev[4]), rv, False)]
        dg0, db0 = _randn(rng, C), _randn(rng, C)
        want = cpu.batchnorm_backward(dy, x, gamma, mean, invstd, dg0.copy(), db0.copy(),
                                      training, True, True, True)
        got = _host(gpu.batchnorm_backward(gpu.to_device(dy), dev[0], dev[1], gmean, ginvstd,
                                           *_up(dg0, db0), training, True, True, True))
        out += [(f"batchnorm_backward {name} {tag}", g, w, False)
                for name, g, w in zip(("dx", "dgamma", "dbeta"), got, want)]
    return out


def case_conv2d(rng):
    k = int(rng.integers(1, 6))
    s, pad = int(rng.integers(1, 3)), int(rng.integers(0, 3))
    x = _image(rng, k)
    oc = int(rng.integers(1, 9))
    w, b = _randn(rng, oc, x.shape[1], k, k), _randn(rng, oc)
    y = cpu.conv2d_forward(x, w, b, s, pad)
    dy = _randn(rng, *y.shape)
    want = cpu.conv2d_backward(dy, x, w, s, pad)
    gx, gw, gb, gdy = _up(x, w, b, dy)
    got = _host(gpu.conv2d_backward(gdy, gx, gw, s, pad))
    tag = f"x={x.shape} w={w.shape} s={s} p={pad}"
    out = [(f"conv2d y {tag}", gpu.to_host(gpu.conv2d_forward(gx, gw, gb, s, pad)), y, False)]
    return out + [(f"conv2d_backward {n}", g, wv, False) for n, g, wv in zip(("dx", "dw", "db"),
                                                                             got, want)]


def case_dropout(rng):
    n, p, seed = int(rng.integers(1, 10000)), float(rng.uniform(0, 0.9)), int(rng.integers(2**63))
    x, dy = _randn(rng, n), _randn(rng, n)
    y, mask = cpu.dropout_forward(x, p, seed)
    gy, gmask = gpu.dropout_forward(gpu.to_device(x), p, seed)
    return [(f"dropout mask n={n} p={p:.2f}", gpu.to_host(gmask), mask, True),
            ("dropout y", gpu.to_host(gy), y, False),
            ("dropout_backward", gpu.to_host(gpu.dropout_backward(gpu.to_device(dy), gmask, p)),
             cpu.dropout_backward(dy, mask, p), False)]


def case_optimizers(rng):
    sizes = [int(v) for v in rng.integers(1, 3000, int(rng.integers(1, 5)))]
    out = []
    for momentum, nesterov in ((0.0, False), (0.9, False), (0.9, True)):
        ps, gs, bs = ([_randn(rng, n) for n in sizes] for _ in range(3))
        gps, ggs, gbs = ([gpu.to_device(a) for a in arrs] for arrs in (ps, gs, bs))
        kw = dict(lr=0.1, momentum=momentum, dampening=0.0, weight_decay=0.01,
                  nesterov=nesterov, first_step=False)
        cpu.sgd_step(ps, gs, bs if momentum else None, **kw)
        gpu.sgd_step(gps, ggs, gbs if momentum else None, **kw)
        out += [(f"sgd m={momentum} nesterov={nesterov} param {i}", gpu.to_host(g), p, False)
                for i, (g, p) in enumerate(zip(gps, ps))]
    for decoupled in (False, True):
        ps, gs, ms = ([_randn(rng, n) for n in sizes] for _ in range(3))
        vs = [np.abs(_randn(rng, n)) for n in sizes]
        dev = [[gpu.to_device(a) for a in arrs] for arrs in (ps, gs, ms, vs)]
        for i in range(len(sizes)):
            cpu.adam_step(ps[i], gs[i], ms[i], vs[i], lr=0.01, weight_decay=0.1, step=3,
                          decoupled=decoupled)
        gpu.adam_step(*dev, lr=0.01, weight_decay=0.1, step=3, decoupled=decoupled)
        out += [(f"adam decoupled={decoupled} param {i}", gpu.to_host(g), p, False)
                for i, (g, p) in enumerate(zip(dev[0], ps))]
    n = sizes[0]
    for momentum, centered in ((0.0, False), (0.9, True)):
        p, g, buf = _randn(rng, n), _randn(rng, n), _randn(rng, n)
        ga = (0.1 * _randn(rng, n)).astype(np.float32)
        sq = (np.abs(_randn(rng, n)) + 0.1 + ga * ga).astype(np.float32)   # sq > ga^2 after
        dev = _up(p, g, sq, buf, ga)
        kw = dict(lr=0.01, alpha=0.9, eps=1e-8, weight_decay=0.1, momentum=momentum,
                  centered=centered)
        cpu.rmsprop_step(p, g, sq, buf, ga, **kw)
        gpu.rmsprop_step(*dev, **kw)
        out.append((f"rmsprop momentum={momentum} centered={centered}", gpu.to_host(dev[0]), p,
                    False))
    p, g, acc = _randn(rng, n), _randn(rng, n), np.abs(_randn(rng, n))
    dev = _up(p, g, acc)
    cpu.adagrad_step(p, g, acc, lr=0.1, lr_decay=0.01, weight_decay=0.1, step=3)
    gpu.adagrad_step(*dev, lr=0.1, lr_decay=0.01, weight_decay=0.1, step=3)
    out.append(("adagrad", gpu.to_host(dev[0]), p, False))
    p, g, sq, acc = _randn(rng, n), _randn(rng, n), np.abs(_randn(rng, n)), np.abs(_randn(rng, n))
    dev = _up(p, g, sq, acc)
    cpu.adadelta_step(p, g, sq, acc, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0.1)
    gpu.adadelta_step(*dev, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0.1)
    out.append(("adadelta", gpu.to_host(dev[0]), p, False))
    return out


def case_gather_rows(rng):
    n, width, B = int(rng.integers(1, 300)), int(rng.integers(1, 800)), int(rng.integers(0, 200))
    src, rows = _randn(rng, n, width), rng.integers(0, n, B).astype(np.int64)
    got = gpu.to_host(gpu.gather_rows(gpu.to_device(src), rows))
    return [(f"gather_rows n={n} width={width} B={B}", got, cpu.gather_rows(src, rows), True)]


def case_copy_columns(rng):
    rows, dst_cols, src_cols = (int(v) for v in rng.integers(1, 60, 3))
    cols = int(rng.integers(0, min(dst_cols, src_cols) + 1))
    dst_col = int(rng.integers(0, dst_cols - cols + 1))
    src_col = int(rng.integers(0, src_cols - cols + 1))
    dst, src = _randn(rng, rows, dst_cols), _randn(rng, rows, src_cols)
    gdst = gpu.to_device(dst)
    gpu.copy_columns(gdst, gpu.to_device(src), dst_col, src_col, cols)
    cpu.copy_columns(dst, src, dst_col, src_col, cols)
    return [(f"copy_columns {rows}x{dst_cols} <- {rows}x{src_cols}", gpu.to_host(gdst), dst, True)]


def case_device_array(rng):
    a = _randn(rng, 3, 5)
    d = gpu.to_device(a)
    iface = d.__cuda_array_interface__
    ok = iface["version"] == 3 and iface["shape"] == (3, 5) and iface["typestr"] == "<f4"
    return [("round trip", d.numpy(), a, True),
            ("__cuda_array_interface__", np.array(ok), np.array(True), True),
            ("reshape view", d.reshape([5, -1]).numpy(), a.reshape(5, 3), True),
            ("view of a foreign GPU array", gpu.to_device(_Foreign(d)).numpy(), a, True),
            ("fill(0)", _filled(gpu.to_device(a)), np.zeros_like(a), True),
            ("__dlpack_device__", np.array(d.__dlpack_device__()[0]), np.array(2), True)]


def _filled(d):
    d.fill(0.0)
    return d.numpy()


class _Foreign:
    """Another library's GPU array, as nnfast sees it: only __cuda_array_interface__."""

    def __init__(self, array):
        self.__cuda_array_interface__ = array.__cuda_array_interface__
        self.keep = array


CASES = {name[5:]: fn for name, fn in sorted(globals().items()) if name.startswith("case_")}
