"""nnfast.distributed: two ranks under mpirun train to the parameters one rank reaches on the same
global batches, stay identical after every step, and a failing rank stops the others."""
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import nnfast as nf

WORKER = os.path.join(os.path.dirname(__file__), "distributed_worker.py")
ROOT_ENV = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
            "OMPI_MCA_rmaps_base_oversubscribe": "1"}


def needs_mpi():
    pytest.importorskip("mpi4py")
    if shutil.which("mpirun") is None:
        pytest.skip("mpirun is not on PATH")


def run(mode, out, ranks):
    command = [sys.executable, WORKER, mode, str(out)]
    if ranks > 1:
        command = ["mpirun", "-n", str(ranks)] + command
    env = {**os.environ, **ROOT_ENV, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    needs_mpi()
    results = {}
    for ranks in (1, 2):
        out = tmp_path_factory.mktemp(f"ranks{ranks}")
        done = run("train", out, ranks)
        assert done.returncode == 0, done.stdout + done.stderr
        results[ranks] = out
    return results


def test_two_ranks_reach_one_ranks_parameters(runs):
    one = np.load(runs[1] / "rank0.npz")
    two = [np.load(runs[2] / f"rank{r}.npz") for r in (0, 1)]
    assert int(one["world"]) == 1 and int(two[0]["world"]) == 2
    assert int(two[0]["threads"]) >= 1
    assert len(one["steps"]) == len(two[0]["steps"]) == 6      # 2 epochs x 3 global batches
    np.testing.assert_allclose(two[0]["steps"], one["steps"], rtol=0, atol=1e-5)


def test_parameters_are_identical_across_ranks_after_every_step(runs):
    steps = [np.load(runs[2] / f"rank{r}.npz")["steps"] for r in (0, 1)]
    np.testing.assert_array_equal(steps[0], steps[1])


def test_loss_metrics_and_predictions_are_over_all_ranks(runs):
    one = np.load(runs[1] / "rank0.npz")
    for r in (0, 1):
        two = np.load(runs[2] / f"rank{r}.npz")
        for key in ("loss", "accuracy", "scores"):
            np.testing.assert_allclose(two[key], one[key], rtol=1e-5, atol=1e-6)
        assert two["predictions"].shape == (237, 3)
        np.testing.assert_allclose(two["predictions"], one["predictions"], atol=1e-5)


def test_only_rank_0_writes_the_model(runs):
    assert os.listdir(runs[2]).count("model.nnf") == 1
    loaded = nf.load(runs[2] / "model.nnf")
    two = np.load(runs[2] / "rank0.npz")
    x = np.random.default_rng(0).normal(size=(237, 20)).astype(np.float32)
    np.testing.assert_allclose(loaded.predict(x), two["predictions"], atol=1e-5)


def test_a_failing_rank_stops_the_others(tmp_path):
    needs_mpi()
    done = run("fail", tmp_path, 2)
    assert done.returncode != 0
    assert "rank 1 fails on purpose" in done.stderr


def test_a_lone_process_is_a_world_of_one():
    needs_mpi()
    code = ("import nnfast as nf; nf.distributed.init(); nf.distributed.init(); "
            "print(nf.distributed.world_size(), nf.distributed.rank())")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1", "0"]


def test_helpers_in_a_world_of_one():
    d = nf.distributed
    assert d.world_size() == 1 and d.rank() == 0 and d.is_root()
    assert d.shard(10) == slice(0, 10)
    assert d.allreduce(3.5) == 3.5
    np.testing.assert_array_equal(d.allreduce(np.array([1.0, 2.0]), op="max"), [1.0, 2.0])
    np.testing.assert_array_equal(d.gather([np.ones(2), np.zeros(1)]), [1, 1, 0])
    with pytest.raises(ValueError, match="op must be one of"):
        d.allreduce(1.0, op="prod")


def test_several_ranks_without_mpi4py_is_an_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "2")
    monkeypatch.setattr(nf.distributed, "_comm", None)
    with pytest.raises(RuntimeError, match="mpi4py is not installed"):
        nf.distributed.init()
