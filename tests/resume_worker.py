"""Run by tests/test_resume.py: trains a small model with BackupAndRestore (every 5 batches) and
writes the final weights and History; started again after a SIGKILL, it resumes from the backup.

    python resume_worker.py BACKUP_DIR RESULT.npz SECONDS_PER_BATCH
"""
import sys
import time

import numpy as np

import nnfast as nf
from nnfast import nn, optim

backup_dir, result, pause = sys.argv[1], sys.argv[2], float(sys.argv[3])
rng = np.random.default_rng(0)
x = rng.normal(size=(1200, 12)).astype(np.float32)
y = (x[:, :3].sum(axis=1) > 0).astype(np.int64) + (x[:, 3] > 1)

nf.seed(1)
model = nn.Sequential(nn.Linear(12, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Dropout(0.3),
                      nn.Linear(32, 3))
model.compile(optim.Adam(model.parameters(), lr=0.01), nn.CrossEntropyLoss(), ["accuracy"])


class Slow(nf.Callback):
    """A pause after each batch, so that a kill lands at a random point of training."""

    def on_train_batch_end(self, batch, logs=None):
        time.sleep(pause)


class SayWhereResumed(nf.BackupAndRestore):
    def resume_point(self, callbacks):
        progress = super().resume_point(callbacks)
        if progress is not None:
            print(f"resumed at epoch {progress.epoch} batch {progress.step}", flush=True)
        return progress


callbacks = [SayWhereResumed(backup_dir, save_freq=5),
             nf.ReduceLROnPlateau("val_loss", factor=0.5, patience=1),
             nf.EarlyStopping("val_loss", patience=10, restore_best_weights=True), Slow()]
history = model.fit(x, y, epochs=4, batch_size=32, validation_split=0.2, callbacks=callbacks,
                    verbose=0)
np.savez(result, *model.get_weights(), loss=history.history["loss"],
         val_loss=history.history["val_loss"], epochs=history.epoch, lr=model.optimizer.lr)
