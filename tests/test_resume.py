"""Training that survives being killed, stops cleanly on Ctrl-C and never hides a NaN loss."""
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import nnfast as nf
from nnfast import nn, optim

WORKER = os.path.join(os.path.dirname(__file__), "resume_worker.py")
PAUSE = 0.01   # seconds per batch in the worker: 4 epochs of 30 batches take over a second


def start(backup, result):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.Popen([sys.executable, WORKER, str(backup), str(result), str(PAUSE)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def test_a_run_killed_at_random_moments_resumes_to_the_same_weights_bit_for_bit(tmp_path):
    reference = tmp_path / "reference.npz"
    done = start(tmp_path / "backup-reference", reference)
    assert done.wait(timeout=120) == 0, done.stderr.read()
    rng = np.random.default_rng(7)
    backup, result = tmp_path / "backup", tmp_path / "result.npz"
    kills, resumed = 0, []
    while True:
        run = start(backup, result)
        if kills < 4:
            # wait until the run has a backup (or has finished), then kill it a little later
            deadline = time.monotonic() + 60
            while not (backup / "backup.nnf").exists() and run.poll() is None:
                assert time.monotonic() < deadline, "no backup appeared"
                time.sleep(0.01)
            time.sleep(rng.uniform(0.0, 0.4))
            if run.poll() is None:
                run.send_signal(signal.SIGKILL)
                run.wait(timeout=60)
                kills += 1
                resumed += [line for line in run.stdout.read().splitlines() if "resumed" in line]
                continue
        assert run.wait(timeout=120) == 0, run.stderr.read()
        resumed += [line for line in run.stdout.read().splitlines() if "resumed" in line]
        break
    assert kills >= 2 and resumed, (kills, resumed)
    want, got = np.load(reference), np.load(result)
    assert sorted(want.files) == sorted(got.files)
    for name in want.files:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)
    assert not (backup / "backup.nnf").exists()         # deleted once fit finished


INTERRUPTED = """
import os, signal, sys
import numpy as np
import nnfast as nf
from nnfast import nn

class CtrlC(nf.Callback):
    def on_train_batch_end(self, batch, logs=None):
        if len(self.model.history.epoch) == 1 and batch == 4:
            os.kill(os.getpid(), signal.SIGINT)

x = np.random.default_rng(0).normal(size=(320, 4)).astype(np.float32)
y = (x[:, 0] > 0).astype(np.int64)
model = nf.Sequential(nn.Linear(4, 2))
model.compile("sgd", "sparse_categorical_crossentropy")
history = model.fit(x, y, epochs=5, batch_size=32, callbacks=[CtrlC()], verbose=0)
print(len(history.history["loss"]), model.predict(x).shape, model.training)
"""


def test_ctrl_c_stops_after_the_batch_and_keeps_the_history():
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, "-c", INTERRUPTED], capture_output=True, text=True,
                          timeout=60, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1", "(320,", "2)", "False"]
    assert "stopping after this batch" in done.stderr


def nan_data():
    x = np.random.default_rng(0).normal(size=(64, 3)).astype(np.float32)
    x[40, 1] = np.nan                       # in the second batch of 32
    return x, (x[:, 0] > 0).astype(np.int64)


def small_model():
    nf.seed(0)
    model = nf.Sequential(nn.Linear(3, 2))
    model.compile(optim.SGD(model.parameters(), lr=0.1), nn.CrossEntropyLoss())
    return model


def test_a_non_finite_loss_stops_fit_naming_epoch_and_batch():
    model = small_model()
    before = model.get_weights()
    with pytest.raises(FloatingPointError, match=r"epoch 1, batch 2: the loss became nan"):
        model.fit(*nan_data(), epochs=2, batch_size=32, shuffle=False, verbose=0)
    after = model.get_weights()
    assert all(np.isfinite(w).all() for w in after)    # the bad batch made no update
    assert any(not np.array_equal(a, b) for a, b in zip(before, after))


def test_terminate_on_nan_off_trains_on_and_the_callback_stops_quietly():
    history = small_model().fit(*nan_data(), epochs=2, batch_size=32, shuffle=False, verbose=0,
                                terminate_on_nan=False)
    assert len(history.history["loss"]) == 2 and np.isnan(history.history["loss"]).all()
    history = small_model().fit(*nan_data(), epochs=3, batch_size=32, shuffle=False, verbose=0,
                                terminate_on_nan=False, callbacks=[nf.TerminateOnNaN()])
    assert len(history.history["loss"]) == 1


def test_save_without_the_optimizer_state(tmp_path):
    model = small_model()
    x, y = nan_data()
    model.fit(np.nan_to_num(x), y, epochs=1, batch_size=32, verbose=0)
    model.save(tmp_path / "with.nnf")
    model.save(tmp_path / "without.nnf", include_optimizer=False)
    assert nf.load(tmp_path / "with.nnf").optimizer.steps == 2
    assert nf.load(tmp_path / "without.nnf").optimizer.steps == 0
    with pytest.raises(nf.ModelFileError, match="not a checkpoint written during fit"):
        small_model().restore_checkpoint(tmp_path / "with.nnf")


def test_backup_and_restore_checks_save_freq():
    for bad in (0, -1, 1.5, True, "batch"):
        with pytest.raises(ValueError, match="save_freq"):
            nf.BackupAndRestore("somewhere", save_freq=bad)
