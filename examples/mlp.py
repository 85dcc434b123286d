"""The MLP 784-100(sigmoid)-10 on MNIST with plain SGD."""
from nnfast import nn, optim
from _common import load, parse_args

args = parse_args(__doc__, epochs=30)
(x_train, y_train), (x_test, y_test) = load(quick=args.quick)
model = nn.Sequential(nn.Linear(784, 100), nn.Sigmoid(), nn.Linear(100, 10))
model.summary(input_shape=(784,))
model.compile(optim.SGD(model.parameters(), lr=0.5), nn.CrossEntropyLoss(), ["accuracy"])
model.fit(x_train, y_train, epochs=args.epochs, batch_size=100,
          validation_data=(x_test, y_test), verbose=2)
print("test", model.evaluate(x_test, y_test))
