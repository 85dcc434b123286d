"""A denoising autoencoder: inputs corrupted by Gaussian noise (std 0.4), ReLU encoder, sigmoid
decoder, binary cross-entropy against the clean images."""
import numpy as np

import nnfast as nf
from nnfast import nn, optim
from _common import load, parse_args, pyplot, save_figure

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
if plt := pyplot():
    fig, axes = plt.subplots(3, 8, figsize=(12, 5))
    for i in range(8):
        for row, img in enumerate((x_test[i], test_noisy[i], denoised[i])):
            axes[row, i].imshow(img.reshape(28, 28), cmap="gray")
            axes[row, i].axis("off")
    save_figure(fig, args, "denoising_autoencoder.png")
