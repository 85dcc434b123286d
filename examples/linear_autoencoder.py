"""A linear autoencoder 784 -> k -> 784 trained with MSE learns the same subspace as PCA's first k
components: compare the variance each explains (k = 2 and k = 64)."""
import numpy as np

from nnfast import nn, optim
from _common import load, parse_args, pyplot, save_figure

args = parse_args(__doc__, epochs=15)
(x_train, _), (x_test, y_test) = load(quick=args.quick)
mean = x_train.mean(axis=0)
centred, centred_test = x_train - mean, x_test - mean
total_var = np.sum(centred_test ** 2)
_, _, components = np.linalg.svd(centred, full_matrices=False)

for k in (2, 64):
    pca = components[:k]
    pca_explained = 1 - np.sum((centred_test - centred_test @ pca.T @ pca) ** 2) / total_var
    model = nn.Sequential(nn.Linear(784, k, bias=False), nn.Linear(k, 784, bias=False))
    model.compile(optim.Adam(model.parameters(), lr=1e-3), nn.MSELoss())
    model.fit(centred, centred, epochs=args.epochs, batch_size=128, verbose=0)
    recon = model.predict(centred_test)
    ae_explained = 1 - np.sum((centred_test - recon) ** 2) / total_var
    print(f"k={k:2d}: explained variance  PCA {pca_explained:.4f}  autoencoder {ae_explained:.4f}")
    if k == 2 and (plt := pyplot()):
        code = model[:1].predict(centred_test)        # the 2-unit code, by slicing the model
        fig, axes = plt.subplots(1, 2, figsize=(10, 4))
        for ax, pts, title in ((axes[0], centred_test @ pca.T, "PCA"),
                               (axes[1], code, "linear autoencoder")):
            ax.scatter(pts[:, 0], pts[:, 1], c=y_test, cmap="tab10", s=2)
            ax.set_title(title)
        save_figure(fig, args, "linear_autoencoder.png")
