"""The MLP 784-100(sigmoid)-10 on MNIST with plain SGD; its training curves, confusion matrix
and the first test images with their predicted labels."""
import nnfast as nf
from nnfast import nn, optim
from _common import figure_path, load, parse_args

args = parse_args(__doc__, epochs=30)
(x_train, y_train), (x_test, y_test) = load(quick=args.quick)
model = nn.Sequential(nn.Linear(784, 100), nn.Sigmoid(), nn.Linear(100, 10))
model.summary(input_shape=(784,))
model.compile(optim.SGD(model.parameters(), lr=0.5), nn.CrossEntropyLoss(), ["accuracy"])
history = model.fit(x_train, y_train, epochs=args.epochs, batch_size=100,
                    validation_data=(x_test, y_test), verbose=2)
print("test", model.evaluate(x_test, y_test))
predicted = model.predict(x_test)
if path := figure_path(args, "mlp_curves.png"):
    nf.plot.history(history, path)
if path := figure_path(args, "mlp_confusion.png"):
    nf.plot.confusion_matrix(y_test, predicted, path)
if path := figure_path(args, "mlp_predictions.png"):
    nf.plot.images(x_test, y_test, predicted, path, max_images=32)
