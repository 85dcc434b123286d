"""PyTorch's classic MNIST example (examples/mnist/main.py) ported line by line: the same
network as an nn.Sequential with nnfast's explicit backward, Adadelta(lr=1.0), StepLR(step_size=1,
gamma=0.7), inputs normalised with mean 0.1307 and std 0.3081, and the state_dict saved at the
end under PyTorch's keys (loadable by torch)."""
import os

import numpy as np

import nnfast as nf
from nnfast import nn, optim
from nnfast.optim.lr_scheduler import StepLR
from _common import parse_args

args = parse_args(__doc__, epochs=14)
batch_size, test_batch_size, log_interval = 64, 1000, 100
nf.seed(1)                                                  # torch.manual_seed(1)

(x_train, y_train), (x_test, y_test) = nf.datasets.mnist.load_data()
if args.quick:
    x_train, y_train, x_test, y_test = x_train[:2000], y_train[:2000], x_test[:500], y_test[:500]


def transform(images):
    """ToTensor() then Normalize((0.1307,), (0.3081,)): (N, 1, 28, 28) float32."""
    return ((images.astype(np.float32) / 255 - 0.1307) / 0.3081).reshape(-1, 1, 28, 28)


x_train, x_test = transform(x_train), transform(x_test)
y_train, y_test = y_train.astype(np.int64), y_test.astype(np.int64)

model = nn.Sequential(                                      # Net: conv1, conv2, fc1, fc2
    nn.Conv2d(1, 32, 3, 1), nn.ReLU(),
    nn.Conv2d(32, 64, 3, 1), nn.ReLU(),
    nn.MaxPool2d(2), nn.Dropout(0.25), nn.Flatten(),
    nn.Linear(9216, 128), nn.ReLU(), nn.Dropout(0.5),
    nn.Linear(128, 10), nn.LogSoftmax(dim=1))
loss_fn = nn.NLLLoss()                                      # F.nll_loss
optimizer = optim.Adadelta(model.parameters(), lr=1.0)
scheduler = StepLR(optimizer, step_size=1, gamma=0.7)


def train(epoch):
    model.train()
    for batch_idx, (data, target) in enumerate(nf.data.batches(x_train, y_train, batch_size)):
        optimizer.zero_grad()
        output = model(data)
        loss = loss_fn(output, target)
        model.backward_parameters(loss_fn.backward())       # loss.backward()
        optimizer.step()
        if batch_idx % log_interval == 0:
            print(f"Train Epoch: {epoch} [{batch_idx * len(data)}/{len(x_train)} "
                  f"({100.0 * batch_idx * batch_size / len(x_train):.0f}%)]\tLoss: {loss:.6f}")


def test():
    model.eval()
    test_loss, correct = 0.0, 0
    with nf.no_grad():
        for data, target in nf.data.batches(x_test, y_test, test_batch_size, shuffle=False):
            output = model(data)
            test_loss += loss_fn(output, target) * len(data)   # reduction="sum"
            correct += int((output.argmax(axis=1) == target).sum())
    test_loss /= len(x_test)
    print(f"\nTest set: Average loss: {test_loss:.4f}, Accuracy: {correct}/{len(x_test)} "
          f"({100.0 * correct / len(x_test):.0f}%)\n")
    return correct / len(x_test)


for epoch in range(1, args.epochs + 1):
    train(epoch)
    test()
    scheduler.step()

os.makedirs(args.out, exist_ok=True)
path = os.path.join(args.out, "mnist_cnn.npz")              # torch.save(model.state_dict(), ...)
np.savez(path, **model.state_dict())
print(f"saved {path}: {', '.join(model.state_dict())}")
