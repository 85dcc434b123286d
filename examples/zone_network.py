"""The three-band network of a published MNIST study, with Keras's functional API: each image,
padded to 30 rows, is cut into three horizontal bands (rows 0-10, 10-20, 20-30); each band runs
through its own Conv2d(1,6,5) -> ReLU -> Conv2d(6,12,5) -> MaxPool2d(2) -> ReLU -> Linear(120,64)
-> ReLU -> Dropout -> Linear(64,k) -> Threshold branch (k = 8, 10, 8); the three are
concatenated, then Linear(26,10) -> LogSoftmax. The model returns the log-probabilities and the
per-band outputs; only the first output has a loss. ZoneNet is the same network written as
PyTorch users do (a forward, no backward: traced); tests and benchmarks import both."""
import nnfast as nf
from nnfast import nn

BANDS = (((0, 10), 8), ((10, 20), 10), ((20, 30), 8))   # (rows, outputs) of each band


def band_layers(k):
    return [nn.Conv2d(1, 6, 5), nn.ReLU(), nn.Conv2d(6, 12, 5), nn.MaxPool2d(2), nn.ReLU(),
            nn.Flatten(), nn.Linear(120, 64), nn.ReLU(), nn.Dropout(0.2), nn.Linear(64, k),
            nn.Threshold(0.0, 0.0)]


def zone_network():
    """The functional-API model: image (1, 28, 28) -> [log-probabilities, band 1, 2, 3]."""
    image = nn.Input(shape=(1, 28, 28))
    padded = nn.ZeroPad2d((0, 0, 1, 1))(image)                  # 30 rows, 28 columns
    bands = []
    for (top, bottom), k in BANDS:
        h = padded[:, :, top:bottom]
        for layer in band_layers(k):
            h = layer(h)
        bands.append(h)
    log_probs = nn.LogSoftmax(dim=1)(nn.Linear(26, 10)(nn.Concatenate()(bands)))
    return nf.Model(inputs=image, outputs=[log_probs, *bands])


class ZoneNet(nf.Model):
    """The same network, PyTorch style."""

    def __init__(self):
        super().__init__()
        self.pad = nn.ZeroPad2d((0, 0, 1, 1))
        self.bands = [nn.Sequential(*band_layers(k)) for _, k in BANDS]
        self.head = nn.Linear(26, 10)
        self.log_softmax = nn.LogSoftmax(dim=1)

    def forward(self, x):
        padded = self.pad(x)
        bands = [branch(padded[:, :, top:bottom])
                 for branch, ((top, bottom), _) in zip(self.bands, BANDS)]
        return [self.log_softmax(self.head(nn.Concatenate()(bands))), *bands]


if __name__ == "__main__":
    from _common import load, parse_args

    args = parse_args(__doc__, epochs=3)
    (x_train, y_train), (x_test, y_test) = load(quick=args.quick, flat=False)
    model = zone_network()
    model.summary()
    model.compile(nf.optim.Adam(model.parameters(), lr=1e-3),
                  loss=[nn.NLLLoss(), None, None, None], metrics=["accuracy"])
    model.fit(x_train, [y_train, None, None, None], epochs=args.epochs, batch_size=64,
              validation_data=(x_test, [y_test, None, None, None]), verbose=2)
    log_probs, *band_outputs = model.predict(x_test)
    print("test accuracy", nf.metrics.accuracy(y_test, log_probs),
          "band outputs", [b.shape for b in band_outputs])
