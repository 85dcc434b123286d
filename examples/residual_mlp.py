"""A residual MLP on MNIST: 784 -> 128, then three blocks x + Dense(ReLU(Dense(x))) (each block's
skip connection an Add merge), then 10 logits, written with the functional API; prints the
summary with each node's inbound layers and the test accuracy."""
import nnfast as nf
from nnfast import nn
from _common import load, parse_args

args = parse_args(__doc__, epochs=5)
(x_train, y_train), (x_test, y_test) = load(quick=args.quick)

inputs = nn.Input(shape=(784,))
x = nn.Dense(128, activation="relu")(inputs)
for _ in range(3):
    residual = nn.Dense(128)(nn.Dense(128, activation="relu")(x))
    x = nn.ReLU()(nn.Add()([x, residual]))
model = nf.Model(inputs, nn.Dense(10)(x))
model.summary()
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(x_train, y_train, epochs=args.epochs, batch_size=128, validation_split=0.1, verbose=2)
print("test", model.evaluate(x_test, y_test))
