"""Overfitting and two cures: a wide MLP on 5,000 MNIST images overfits; dropout narrows the gap
between training and validation accuracy, and early stopping keeps the best epoch's weights."""
import nnfast as nf
from nnfast import nn, optim
from _common import load, parse_args

args = parse_args(__doc__, epochs=40)
(x_train, y_train), (x_test, y_test) = load(quick=args.quick)
x_small, y_small = x_train[:5000], y_train[:5000]

for dropout in (0.0, 0.5):
    nf.seed(args.seed)
    layers = [nn.Linear(784, 512), nn.ReLU()] + ([nn.Dropout(dropout)] if dropout else [])
    model = nn.Sequential(*layers, nn.Linear(512, 10))
    model.compile(optim.Adam(model.parameters(), lr=1e-3), nn.CrossEntropyLoss(), ["accuracy"])
    stopper = nf.EarlyStopping(monitor="val_loss", patience=3, restore_best_weights=True)
    history = model.fit(x_small, y_small, epochs=args.epochs, batch_size=64,
                        validation_data=(x_test, y_test), callbacks=[stopper], verbose=0)
    h = history.history
    print(f"dropout {dropout}: ran {len(h['loss'])} epochs; at the end train accuracy "
          f"{h['accuracy'][-1]:.4f}, val accuracy {h['val_accuracy'][-1]:.4f}; restored best "
          f"val_loss {min(h['val_loss']):.4f} -> test {model.evaluate(x_test, y_test)}")
