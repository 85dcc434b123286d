"""The LeNet-like CNN on MNIST, with a confusion matrix and a per-class report."""
import numpy as np

import nnfast as nf
from nnfast import nn, optim
from _common import load, parse_args

args = parse_args(__doc__, epochs=10)
(x_train, y_train), (x_test, y_test) = load(quick=args.quick, flat=False)
model = nn.Sequential(
    nn.Conv2d(1, 16, kernel_size=5), nn.ReLU(), nn.MaxPool2d(2),
    nn.Conv2d(16, 32, 5), nn.ReLU(), nn.MaxPool2d(2),
    nn.Flatten(), nn.Linear(512, 100), nn.Sigmoid(), nn.Linear(100, 10))
model.summary(input_shape=(1, 28, 28))
model.compile(optim.SGD(model.parameters(), lr=0.1, momentum=0.9), nn.CrossEntropyLoss(),
              ["accuracy"])
model.fit(x_train, y_train, epochs=args.epochs, batch_size=100,
          validation_data=(x_test, y_test), verbose=2)
pred = model.predict(x_test, batch_size=500).argmax(axis=1)
np.set_printoptions(linewidth=120)
print("confusion matrix (rows: true digit, columns: predicted)")
print(nf.metrics.confusion_matrix(y_test, pred, num_classes=10))
print(nf.metrics.classification_report(y_test, pred, digits=4, num_classes=10))
