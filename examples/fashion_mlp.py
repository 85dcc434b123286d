"""Fashion-MNIST with an MLP 784-256-128-10: standardised inputs (statistics from the training
set only), validation_split=0.2, and loss / accuracy curves."""
import nnfast as nf
from nnfast import nn
from _common import figure_path, load, parse_args

args = parse_args(__doc__, epochs=20)
(x_train, y_train), (x_test, y_test) = load("fashion-mnist", quick=args.quick)
scaler = nf.data.Standardizer(per_feature=False).fit(x_train)
x_train, x_test = scaler.transform(x_train), scaler.transform(x_test)

model = nn.Sequential(nn.Dense(256, activation="relu", init="he_uniform"),
                      nn.Dense(128, activation="relu", init="he_uniform"), nn.Dense(10))
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
history = model.fit(x_train, y_train, epochs=args.epochs, batch_size=128,
                    validation_split=0.2, verbose=2)
model.summary(input_shape=(784,))
print("test", model.evaluate(x_test, y_test))
if path := figure_path(args, "fashion_mlp_curves.png"):
    nf.plot.history(history, path)
if path := figure_path(args, "fashion_mlp_confusion.png"):
    nf.plot.confusion_matrix(y_test, model.predict(x_test), path, normalize=True,
                             class_names=["T-shirt", "Trouser", "Pullover", "Dress", "Coat",
                                          "Sandal", "Shirt", "Sneaker", "Bag", "Boot"])
