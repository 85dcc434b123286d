"""Smoke test of the bindings for valgrind (scripts/sanitize.sh): one training step of an MLP and
a CNN, every loss, dropout, pooling and the optimizers, through nnfast's Python layer."""
import numpy as np

import nnfast as nf
from nnfast import nn, optim

nf.seed(0)
x = np.random.default_rng(0).random((8, 1, 12, 12)).astype(np.float32)
y = np.arange(8) % 3
cnn = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Dropout(0.3),
                    nn.Conv2d(4, 4, 3, stride=2), nn.Tanh(), nn.AvgPool2d(2, padding=1),
                    nn.Flatten(), nn.Linear(16, 3))
cnn.compile(optim.Adam(cnn.parameters(), lr=1e-3), nn.CrossEntropyLoss(), ["accuracy"])
cnn.fit(x, y, epochs=1, batch_size=4, verbose=0)
mlp = nn.Sequential(nn.Flatten(), nn.Linear(144, 5), nn.Sigmoid(), nn.Linear(5, 3),
                    nn.LogSoftmax())
mlp.compile(optim.SGD(mlp.parameters(), lr=0.1, momentum=0.9, nesterov=True), nn.NLLLoss())
mlp.fit(x, y, epochs=1, batch_size=4, verbose=0)
out = np.random.default_rng(1).random((8, 3)).astype(np.float32)
for loss in (nn.MSELoss(), nn.L1Loss(), nn.BCELoss(), nn.BCEWithLogitsLoss()):
    loss(out, out[::-1].copy())
    loss.backward()
nn.CrossEntropyLoss()(out, nf.data.to_categorical(y, 3))
print("bindings smoke test passed:", cnn.evaluate(x, y))
