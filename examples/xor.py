"""XOR with a 2-2-1 network: the classic proof that a hidden layer is needed."""
import numpy as np

import nnfast as nf
from nnfast import nn, optim
from _common import parse_args

args = parse_args(__doc__, epochs=2000)
x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32)
y = np.array([0, 1, 1, 0], np.float32)

model = nn.Sequential(nn.Linear(2, 2), nn.Tanh(), nn.Linear(2, 1), nn.Sigmoid())
loss_fn = nn.BCELoss()
opt = optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
steps = 50 if args.quick else args.epochs
for step in range(steps):                       # the hand-written loop, PyTorch style
    loss = loss_fn(model(x), y)
    model.backward(loss_fn.backward())
    opt.step()
    opt.zero_grad()
    if step % 500 == 0:
        print(f"step {step:5d}  loss {loss:.4f}")
pred = model.predict(x)[:, 0]
for inputs, p in zip(x, pred):
    print(f"{inputs.astype(int)} -> {p:.3f}")
print("accuracy", nf.metrics.accuracy(y.astype(int), (pred > 0.5).astype(int)))
