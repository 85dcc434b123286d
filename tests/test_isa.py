"""The copies of the kernels, one per instruction set: NNFAST_ISA chooses among them, config()
says which runs, every copy the CPU supports passes the kernel property tests, and all give the
same results within float rounding.

Each forced copy runs in a subprocess (the choice is made at import). Run as a script,
``python tests/test_isa.py OUT.npz`` saves a fixed set of kernel outputs from the copy in use.
"""
import os
import platform
import shutil
import subprocess
import sys

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))


def run_python(args, isa=None, **kwargs):
    env = dict(os.environ)
    env.pop("NNFAST_ISA", None)
    if isa is not None:
        env["NNFAST_ISA"] = isa
    return subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True,
                          **kwargs)


def supported_copies():
    import nnfast._core as core
    return [name for name, ok in core.kernel_copies() if ok]


# ------------------------------------------------------------------------------ the choice
def test_config_names_the_copy_in_use_and_the_build():
    import nnfast
    cfg = nnfast.config()
    assert cfg["isa"] in cfg["compiled"] and cfg["compiled"][cfg["isa"]]
    assert cfg["isa"] == supported_copies()[0]  # the best the CPU runs, without NNFAST_ISA
    assert set(cfg["flags"]) == set(cfg["compiled"])
    assert cfg["num_threads"] == nnfast.get_num_threads() >= 1
    assert cfg["compiler"] and cfg["build_type"] and cfg["version"] == nnfast.__version__
    if not cfg["native"]:
        assert "native" not in " ".join(cfg["flags"].values())


@pytest.mark.parametrize("isa", ["avx512", "avx2", "baseline"])
def test_nnfast_isa_forces_a_supported_copy(isa):
    if isa not in supported_copies():
        pytest.skip(f"this CPU or build does not run the {isa} copy")
    r = run_python(["-c", "import nnfast; c = nnfast.config(); print(c['isa'], c['vector_isa'])"],
                   isa=isa)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [isa, isa]


def test_nnfast_isa_rejects_an_unknown_name():
    r = run_python(["-c", "import nnfast"], isa="sse9")
    assert r.returncode != 0
    assert "NNFAST_ISA='sse9': must be one of avx512, avx2, baseline, native" in r.stderr


def test_nnfast_isa_warns_and_keeps_the_best_for_a_copy_it_cannot_run():
    import nnfast._core as core
    unusable = [name for name in ("avx512", "avx2", "native")
                if name not in dict(core.kernel_copies()) or not dict(core.kernel_copies())[name]]
    if not unusable:
        pytest.skip("every copy runs here")
    r = run_python(["-W", "error::RuntimeWarning", "-c", "import nnfast"], isa=unusable[0])
    assert r.returncode != 0 and "RuntimeWarning" in r.stderr and unusable[0] in r.stderr
    r = run_python(["-c", "import nnfast; print(nnfast.config()['isa'])"], isa=unusable[0])
    assert r.returncode == 0 and r.stdout.strip() == supported_copies()[0]


def test_select_isa_refuses_what_the_cpu_lacks():
    import nnfast._core as core
    before = core.isa()
    for name, ok in core.kernel_copies():
        assert core.select_isa(name) == ok
    assert not core.select_isa("no-such-copy")
    assert core.select_isa(before) and core.isa() == before


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64") or not shutil.which("objdump"),
                    reason="needs an x86-64 extension and objdump")
def test_only_the_avx_copies_hold_avx_instructions():
    """scripts/check_isa_symbols.py on the extension in use: no function the copies share (and
    no static initialiser) holds an AVX instruction, so the baseline path runs on any x86-64."""
    import nnfast._core as core
    script = os.path.join(os.path.dirname(HERE), "scripts", "check_isa_symbols.py")
    r = run_python([script, core.__file__])
    if r.returncode == 2:
        pytest.skip(r.stdout.strip())  # an installed, stripped extension
    assert r.returncode == 0, r.stdout[-3000:]


# ---------------------------------------------------------------- every copy, same results
def kernel_outputs():
    """A fixed set of kernel results: odd sizes (partial vectors at every width), the GEMM's
    paths (strided, dot rows, packed, K split), the zero-skipping Linear, convolutions and
    pooling, the exp-based activations and losses, the optimizers."""
    import nnfast._core as core
    rng = np.random.default_rng(2024)

    def f(*shape):
        return rng.standard_normal(shape).astype(np.float32)

    out = {}
    for m, n, k in [(1, 1, 1), (7, 5, 3), (33, 17, 29), (100, 10, 100), (64, 300, 784),
                    (300, 200, 130), (16, 25, 9000)]:
        for ta in (False, True):
            for tb in (False, True):
                a = f(k, m) if ta else f(m, k)
                b = f(n, k) if tb else f(k, n)
                out[f"sgemm_{m}_{n}_{k}_{ta:d}{tb:d}"] = core.sgemm(a, b, ta, tb)
    for density in (1.0, 0.15):
        x = f(100, 784) * (rng.random((100, 784)) < density)
        x = x.astype(np.float32)
        wt, b, dy = f(784, 64), f(64), f(100, 64)
        out[f"linear_fwd_{density}"] = core.linear_forward(x, wt, b, activation="relu")
        for i, g in enumerate(core.linear_backward(dy, x, wt)):
            out[f"linear_bwd_{density}_{i}"] = g
    x = f(4, 3, 28, 28)
    for ks, stride, pad in [(5, 1, 0), (3, 1, 1), (3, 2, 1)]:
        w, b = f(6, 3, ks, ks), f(6)
        y = core.conv2d_forward(x, w, b, stride=stride, padding=pad)
        out[f"conv_fwd_{ks}{stride}{pad}"] = y
        for i, g in enumerate(core.conv2d_backward(f(*y.shape), x, w, stride=stride, padding=pad)):
            out[f"conv_bwd_{ks}{stride}{pad}_{i}"] = g
    # conv -> ReLU -> max pool, LeNet's two layers among them (their zero-skipping backward)
    for xs, ws in [((4, 3, 28, 28), (8, 3, 5, 5)), ((4, 1, 28, 28), (6, 1, 5, 5)),
                   ((4, 6, 12, 12), (16, 6, 5, 5))]:
        xc, w, b = f(*xs), f(*ws) * 0.3, f(ws[0])
        y, am = core.conv2d_relu_maxpool_forward(xc, w, b)
        key = f"crm_{xs[1]}_{xs[2]}"
        out[f"{key}_fwd"] = y
        for i, g in enumerate(core.conv2d_relu_maxpool_backward(f(*y.shape), y, am, xc, w)):
            out[f"{key}_bwd_{i}"] = g
    for h in (28, 13):
        xp = f(2, 3, h, h)
        yp, ap = core.maxpool2d_forward(xp, 2)
        out[f"maxpool_{h}"], out[f"maxpool_argmax_{h}"] = yp, ap
        out[f"maxpool_bwd_{h}"] = core.maxpool2d_backward(f(*yp.shape), ap, xp.shape, 2)
    z = f(37, 10) * 5
    labels = rng.integers(0, 10, 37)
    out["softmax"] = core.softmax_forward(z)
    out["log_softmax"] = core.log_softmax_forward(z)
    loss, probs = core.cross_entropy_forward(z, labels)
    out["ce_loss"], out["ce_probs"] = np.float64(loss), probs
    out["sigmoid"] = core.sigmoid_forward(f(1003) * 10)
    p, g, m, v = f(1001), f(1001), np.zeros(1001, np.float32), np.zeros(1001, np.float32)
    core.adam_step(p, g, m, v, step=1)
    out["adam"] = p
    return out


def test_every_copy_passes_the_kernel_tests():
    """tests/test_kernels.py, once per copy other than the default (which the suite itself runs
    through), each in its own process."""
    others = supported_copies()[1:]
    if not others:
        pytest.skip("only one copy runs here")
    for isa in others:
        r = run_python(["-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                        os.path.join(HERE, "test_kernels.py")], isa=isa,
                       cwd=os.path.dirname(HERE))
        assert r.returncode == 0, f"NNFAST_ISA={isa}:\n{r.stdout[-3000:]}\n{r.stderr[-2000:]}"


def test_every_copy_gives_the_same_results(tmp_path):
    copies = supported_copies()
    if len(copies) < 2:
        pytest.skip("only one copy runs here")
    results = {}
    for isa in copies:
        path = tmp_path / f"{isa}.npz"
        r = run_python([os.path.abspath(__file__), str(path)], isa=isa)
        assert r.returncode == 0, f"NNFAST_ISA={isa}: {r.stderr[-2000:]}"
        results[isa] = dict(np.load(path))
    best = results[copies[0]]
    for isa in copies[1:]:
        assert results[isa].keys() == best.keys()
        for key, want in best.items():
            got = results[isa][key]
            if want.dtype.kind in "iu":  # argmax positions: exact
                np.testing.assert_array_equal(got, want, err_msg=f"{isa} {key}")
                continue
            # the copies sum in different orders (vector widths) and the baseline rounds
            # a * b + c twice: float32 rounding relative to the size of the values
            scale = max(1.0, float(np.max(np.abs(want)))) if want.size else 1.0
            np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-4 * scale,
                                       err_msg=f"{isa} against {copies[0]}: {key}")


if __name__ == "__main__":
    np.savez(sys.argv[1], **kernel_outputs())
