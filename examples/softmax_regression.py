"""Softmax regression (784 -> 10) on MNIST, with L2 weight decay."""
from nnfast import nn, optim
from _common import load, parse_args

args = parse_args(__doc__, epochs=20)
(x_train, y_train), (x_test, y_test) = load(quick=args.quick)
model = nn.Sequential(nn.Linear(784, 10))
model.summary(input_shape=(784,))
model.compile(optim.SGD(model.parameters(), lr=0.1, weight_decay=1e-4),
              nn.CrossEntropyLoss(), metrics=["accuracy"])
model.fit(x_train, y_train, epochs=args.epochs, batch_size=100,
          validation_data=(x_test, y_test), verbose=2)
print("test", model.evaluate(x_test, y_test))
