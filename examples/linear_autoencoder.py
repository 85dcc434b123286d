"""A linear autoencoder 784 -> k -> 784 trained with MSE learns the same subspace as PCA's first k
components: compare the variance each explains (k = 2 and k = 64)."""
import numpy as np

import nnfast as nf
from nnfast import nn, optim
from _common import figure_path, load, parse_args

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
    if k == 2 and (path := figure_path(args, "linear_autoencoder_pca.png")):
        nf.plot.embedding(centred_test @ pca.T, y_test, path, title="PCA, 2 components")
    if k == 2 and (path := figure_path(args, "linear_autoencoder_code.png")):
        code = model[:1].predict(centred_test)        # the 2-unit code, by slicing the model
        nf.plot.embedding(code, y_test, path, title="linear autoencoder, 2-unit code")
