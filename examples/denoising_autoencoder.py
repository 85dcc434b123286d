"""A denoising autoencoder: inputs corrupted by Gaussian noise (std 0.4), ReLU encoder, sigmoid
decoder, binary cross-entropy against the clean images."""
import numpy as np

import nnfast as nf
from nnfast import nn, optim
from _common import figure_path, load, parse_args

args = parse_args(__doc__, epochs=10)
(x_train, _), (x_test, _) = load(quick=args.quick)
rng = np.random.default_rng(args.seed)
noisy = lambda x: np.clip(x + rng.normal(0, 0.4, x.shape), 0, 1).astype(np.float32)  # noqa: E731

model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 64), nn.ReLU(),
                      nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 784), nn.Sigmoid())
model.compile(optim.Adam(model.parameters(), lr=1e-3), nn.BCELoss())
model.fit(noisy(x_train), x_train, epochs=args.epochs, batch_size=128, verbose=2)
test_noisy = noisy(x_test)
denoised = model.predict(test_noisy)
mse = lambda a, b: float(np.mean((a - b) ** 2))  # noqa: E731
print(f"MSE to the clean test images: noisy {mse(test_noisy, x_test):.4f}, "
      f"denoised {mse(denoised, x_test):.4f}")
if path := figure_path(args, "denoising_autoencoder.png"):   # rows: clean, noisy, denoised
    nf.plot.images(np.concatenate([x_test[:8], test_noisy[:8], denoised[:8]]), path=path)
