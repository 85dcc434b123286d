"""The three-band network of a published MNIST study, with Keras's functional API: each image,
padded to 30 rows, is cut into three horizontal bands (rows 0-10, 10-20, 20-30); each band runs
through its own Conv2d(1,6,5) -> ReLU -> Conv2d(6,12,5) -> MaxPool2d(2) -> ReLU -> Linear(120,64)
-> ReLU -> Dropout -> Linear(64,k) -> Threshold branch (k = 8, 10, 8); the three are
concatenated, then Linear(26,10) -> LogSoftmax. The model returns the log-probabilities and the
per-band outputs; only the first output has a loss."""
import nnfast as nf
from nnfast import nn, optim
from _common import load, parse_args

args = parse_args(__doc__, epochs=3)
(x_train, y_train), (x_test, y_test) = load(quick=args.quick, flat=False)


def band(x, rows, k):
    """One band's branch, reading rows rows[0]:rows[1] of the padded image."""
    h = x[:, :, rows[0]:rows[1]]
    for layer in (nn.Conv2d(1, 6, 5), nn.ReLU(), nn.Conv2d(6, 12, 5), nn.MaxPool2d(2),
                  nn.ReLU(), nn.Flatten(), nn.Linear(120, 64), nn.ReLU(), nn.Dropout(0.2),
                  nn.Linear(64, k), nn.Threshold(0.0, 0.0)):
        h = layer(h)
    return h


image = nn.Input(shape=(1, 28, 28))
padded = nn.ZeroPad2d((0, 0, 1, 1))(image)                  # 30 rows, 28 columns
bands = [band(padded, rows, k) for rows, k in (((0, 10), 8), ((10, 20), 10), ((20, 30), 8))]
log_probs = nn.LogSoftmax(dim=1)(nn.Linear(26, 10)(nn.Concatenate()(bands)))
model = nf.Model(inputs=image, outputs=[log_probs, *bands])
model.summary()
model.compile(optim.Adam(model.parameters(), lr=1e-3), loss=[nn.NLLLoss(), None, None, None],
              metrics=["accuracy"])
model.fit(x_train, [y_train, None, None, None], epochs=args.epochs, batch_size=64,
          validation_data=(x_test, [y_test, None, None, None]), verbose=2)
log_probs, *band_outputs = model.predict(x_test)
print("test accuracy", nf.metrics.accuracy(y_test, log_probs),
      "band outputs", [b.shape for b in band_outputs])
