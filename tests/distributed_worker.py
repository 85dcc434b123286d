"""Run by tests/test_distributed.py, under `mpirun -n 2` or alone: trains a small model with
nnfast.distributed and writes what the test compares into the folder given as argv[2].

    python distributed_worker.py MODE OUT     MODE: train | fail
"""
import os
import sys

import numpy as np

import nnfast as nf
from nnfast import nn, optim

mode, out = sys.argv[1], sys.argv[2]
nf.distributed.init()
rank = nf.distributed.rank()
rng = np.random.default_rng(0)
x = rng.normal(size=(237, 20)).astype(np.float32)     # 237: a last global batch of 37 (19 + 18)
y = rng.integers(0, 3, len(x))


class ParameterLog(nf.Callback):
    """Every parameter after every step, to check the ranks never differ."""

    def __init__(self):
        self.steps = []

    def on_train_batch_end(self, batch, logs=None):
        self.steps.append(np.concatenate([p.data.ravel() for p in self.model.parameters()]))


if mode == "fail":   # rank 1 fails before its first collective; rank 0 would wait in it forever
    if rank == 1:
        raise ValueError("rank 1 fails on purpose")
nf.seed(rank)        # different local seeds: fit must still start every rank from rank 0's weights
model = nn.Sequential(nn.Linear(20, 16), nn.ReLU(), nn.Linear(16, 3))
model.compile(optim.Adam(model.parameters(), lr=0.01), nn.CrossEntropyLoss(), ["accuracy"])
log = ParameterLog()
history = model.fit(x, y, epochs=2, batch_size=100, callbacks=[log], verbose=0)
scores = model.evaluate(x, y, batch_size=50, return_dict=True)
predictions = model.predict(x, batch_size=50)
model.save(os.path.join(out, "model.nnf"))
np.savez(os.path.join(out, f"rank{rank}.npz"), steps=np.array(log.steps),
         loss=history.history["loss"], accuracy=history.history["accuracy"],
         scores=[scores["loss"], scores["accuracy"]], predictions=predictions,
         world=nf.distributed.world_size(), threads=nf.get_num_threads())
