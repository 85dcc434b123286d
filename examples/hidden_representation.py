"""Train an MLP, then read its hidden layer: slice the model (model[:2]) or pop the output layer
off a copy, and plot the first two principal components of the 100-unit representation."""
import numpy as np

import nnfast as nf
from nnfast import nn, optim
from _common import figure_path, load, parse_args

args = parse_args(__doc__, epochs=5)
(x_train, y_train), (x_test, y_test) = load(quick=args.quick)
model = nn.Sequential(nn.Linear(784, 100), nn.Sigmoid(), nn.Linear(100, 10))
model.compile(optim.SGD(model.parameters(), lr=0.5), nn.CrossEntropyLoss(), ["accuracy"])
model.fit(x_train, y_train, epochs=args.epochs, batch_size=100, verbose=2)

encoder = model[:2]                               # Linear + Sigmoid, sharing the trained weights
hidden = encoder.predict(x_test)
print("hidden representation", hidden.shape)
headless = nn.Sequential(*model)                  # the same layers in a new container ...
headless.pop()                                    # ... without the output layer
np.testing.assert_array_equal(headless.predict(x_test), hidden)
centred = hidden - hidden.mean(axis=0)
_, _, components = np.linalg.svd(centred, full_matrices=False)
projected = centred @ components[:2].T
print("accuracy of the full model", nf.metrics.accuracy(y_test, model.predict(x_test)))
if path := figure_path(args, "hidden_representation.png"):
    nf.plot.embedding(projected, y_test, path, title="hidden layer, first two principal components")
