"""Data: the IDX reader, MNIST / Fashion-MNIST loaders, one-hot labels, standardisation,
seeded mini-batches and the classic augmentations (one-pixel shifts, small rotations, zooms).

Loaders look for the four IDX files (gzip or raw) in ``$NNFAST_DATA/<name>/``, then
``~/.cache/nnfast/<name>/``, then the ``data/<name>/`` folder of the nnfast checkout they run from
(MNIST is shipped there; its files' MD5s are verified), then (Fashion-MNIST) Debian's
``/usr/share/datasets/fashion-mnist``; otherwise they download them into
``~/.cache/nnfast/<name>/`` and verify each file's MD5.
"""
import gzip
import hashlib
import os
import re
import shutil
import sys
import urllib.request

import numpy as np

from . import _core, _rng
from .backend.host import check_labels

# IDX type codes -> big-endian NumPy dtypes.
_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}

FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
         "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")

DATASETS = {
    "mnist": {
        "mirrors": ["https://ossci-datasets.s3.amazonaws.com/mnist/",
                    "https://storage.googleapis.com/cvdf-datasets/mnist/"],
        "md5": {"train-images-idx3-ubyte": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
                "train-labels-idx1-ubyte": "d53e105ee54ea40749a09fcbcd1e9432",
                "t10k-images-idx3-ubyte": "9fb629c4189551a2d022fa330f9573f3",
                "t10k-labels-idx1-ubyte": "ec29112dd5afa0611ce80d1b7f02629c"},
        "system": [],
        "get": "",
    },
    "fashion-mnist": {
        "mirrors": ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"],
        "md5": {"train-images-idx3-ubyte": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                "train-labels-idx1-ubyte": "25c81989df183df01b3e8a0aad5dffbe",
                "t10k-images-idx3-ubyte": "bef4ecab320f06d8554ea6380940ec79",
                "t10k-labels-idx1-ubyte": "bb300cfdad3c16e7a12a480ee83cd310"},
        "system": ["/usr/share/datasets/fashion-mnist"],
        "get": " On Debian or Ubuntu, `apt install dataset-fashion-mnist` puts them in "
               "/usr/share/datasets/fashion-mnist.",
    },
}


# ---------------------------------------------------------------------------------- IDX files
def read_idx(path):
    """The array stored in an IDX file (gzip-compressed or raw), validated: magic number, type
    code, dimension count and a payload of exactly the announced size."""
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as e:
            raise ValueError(f"{path}: corrupted gzip data ({e})") from e
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"{path}: not an IDX file (bad magic number)")
    type_code, ndim = raw[2], raw[3]
    if type_code not in _IDX_TYPES:
        raise ValueError(f"{path}: unknown IDX type code 0x{type_code:02x}")
    if ndim < 1 or len(raw) < 4 + 4 * ndim:
        raise ValueError(f"{path}: truncated IDX header")
    shape = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_TYPES[type_code])
    offset = 4 + 4 * ndim
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - offset != expected:
        raise ValueError(f"{path}: IDX payload is {len(raw) - offset} bytes, the header "
                         f"announces {expected} for shape {shape}")
    return np.frombuffer(raw, dtype=dtype, offset=offset).reshape(shape).astype(dtype.newbyteorder("="))


def _find(folder, stem):
    for name in (stem + ".gz", stem):
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            return path
    return None


def _md5(path):
    h = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _download(name, stem, folder):
    """Fetch ``stem``.gz from the dataset's mirrors into ``folder``; verify its MD5."""
    info = DATASETS[name]
    os.makedirs(folder, exist_ok=True)
    target = os.path.join(folder, stem + ".gz")
    errors = []
    for mirror in info["mirrors"]:
        tmp = target + ".part"
        try:
            with urllib.request.urlopen(mirror + stem + ".gz", timeout=30) as r, \
                    open(tmp, "wb") as f:
                shutil.copyfileobj(r, f)
        except OSError as e:
            errors.append(f"{mirror}: {e}")
            continue
        if _md5(tmp) != info["md5"][stem]:
            os.unlink(tmp)
            errors.append(f"{mirror}: checksum mismatch")
            continue
        os.replace(tmp, target)
        return target
    raise RuntimeError(f"could not download {stem}.gz ({'; '.join(errors)})")


def _cache_folder(name):
    return os.path.join(os.path.expanduser("~"), ".cache", "nnfast", name)


def _is_checkout(folder):
    """Whether folder is the root of an nnfast source tree (its pyproject.toml names nnfast)."""
    try:
        with open(os.path.join(folder, "pyproject.toml")) as f:
            return re.search(r'^name\s*=\s*"nnfast"', f.read(), re.MULTILINE) is not None
    except OSError:
        return False


def checkout_folder(name):
    """``data/<name>`` of the nnfast checkout this runs from, or None: the first source tree
    found walking up from the running script's folder, the current folder, then this package's
    folder (a checkout's python/nnfast, when nnfast is not installed)."""
    script = sys.argv[0] if sys.argv and sys.argv[0] not in ("", "-c", "-m") else None
    starts = [os.path.dirname(os.path.abspath(script))] if script else []
    starts += [os.getcwd(), os.path.dirname(os.path.abspath(__file__))]
    for folder in starts:
        while True:
            if _is_checkout(folder) and os.path.isdir(os.path.join(folder, "data", name)):
                return os.path.join(folder, "data", name)
            parent = os.path.dirname(folder)
            if parent == folder:
                break
            folder = parent
    return None


def data_folders(name):
    """Where ``load_dataset(name)`` looks, in order."""
    folders = []
    if os.environ.get("NNFAST_DATA"):
        folders.append(os.path.join(os.environ["NNFAST_DATA"], name))
    folders.append(_cache_folder(name))
    checkout = checkout_folder(name)
    if checkout:
        folders.append(checkout)
    return folders + DATASETS[name]["system"]


def _not_found(name, stem, folders, why=""):
    """The FileNotFoundError for a missing ``stem``: where it was looked for and how to get it."""
    info = DATASETS[name]
    return FileNotFoundError(
        f"{name}: {stem}(.gz) was not found in {folders}{why}. Download the four IDX files "
        f"({', '.join(f + '.gz' for f in FILES)}) from {info['mirrors'][0]} into one of those "
        f"folders, or set NNFAST_DATA to a folder holding {name}/.{info['get']}")


def _check_shipped(name, stem, path):
    """A file of the checkout's data/ is one of the originals: its MD5 must match."""
    want = DATASETS[name]["md5"][stem]
    if path.endswith(".gz") and _md5(path) != want:
        raise ValueError(f"{path}: MD5 {_md5(path)} is not the original file's {want} "
                         f"(a damaged or partial copy: restore it with git)")


def load_dataset(name, download=True):
    """(x_train, y_train), (x_test, y_test) of "mnist" or "fashion-mnist" as uint8 arrays shaped
    like Keras's: images (n, 28, 28), labels (n,)."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {sorted(DATASETS)}")
    folders = data_folders(name)
    checkout = checkout_folder(name)
    arrays = []
    for stem in FILES:
        path = next((p for p in (_find(f, stem) for f in folders) if p), None)
        if path is None and download:
            try:
                path = _download(name, stem, _cache_folder(name))
            except RuntimeError as e:
                raise _not_found(name, stem, folders, f" and could not be downloaded ({e})") from e
        if path is None:
            raise _not_found(name, stem, folders)
        if checkout and os.path.dirname(path) == checkout:
            _check_shipped(name, stem, path)
        arrays.append(read_idx(path))
    x_train, y_train, x_test, y_test = arrays
    if len(x_train) != len(y_train) or len(x_test) != len(y_test):
        raise ValueError(f"{name}: images and labels have different counts")
    return (x_train, y_train), (x_test, y_test)


def load_mnist(download=True):
    """MNIST: (x_train (60000, 28, 28), y_train (60000,)), (x_test, y_test), uint8."""
    return load_dataset("mnist", download)


def load_fashion_mnist(download=True):
    """Fashion-MNIST, shaped and typed as ``load_mnist``."""
    return load_dataset("fashion-mnist", download)


# ---------------------------------------------------------------------------------- transforms
def to_categorical(y, num_classes=None):
    """One-hot float32 rows (n, num_classes) for integer labels y (n,), like Keras."""
    y = np.asarray(y)
    if y.ndim != 1 or y.dtype.kind not in "iub":
        raise ValueError(f"to_categorical expects 1-D integer labels, got {y.dtype} {y.shape}")
    num_classes = int(y.max()) + 1 if num_classes is None else int(num_classes)
    check_labels(y, num_classes)
    return np.eye(num_classes, dtype=np.float32)[y]


class Standardizer:
    """Zero mean, unit variance, with statistics fitted on training data only.
    ``per_feature=True`` keeps one mean/std per feature (column), else one for all values."""

    def __init__(self, per_feature=True, eps=1e-7):
        self.per_feature, self.eps = per_feature, eps
        self.mean = self.std = None

    def fit(self, x):
        x = np.asarray(x, dtype=np.float64)
        axis = 0 if self.per_feature else None
        self.mean = x.mean(axis=axis)
        self.std = x.std(axis=axis)
        return self

    def transform(self, x):
        if self.mean is None:
            raise RuntimeError("Standardizer.transform called before fit")
        return ((np.asarray(x, dtype=np.float64) - self.mean) / (self.std + self.eps)).astype(np.float32)

    def fit_transform(self, x):
        return self.fit(x).transform(x)


def take_rows(x, indices):
    """``x[indices]`` for a 1-D integer array of row indices: shape
    ``(len(indices),) + x.shape[1:]``, x's dtype, a new C-contiguous array. Where x is a
    C-contiguous float32 array (a data set ready for training) the kernels' threads copy the rows;
    otherwise it is NumPy's indexing. As in NumPy, negative indices count from the end and
    out-of-range ones raise IndexError; a slice gives NumPy's ``x[indices]`` (a view)."""
    if isinstance(indices, slice):
        return x[indices]
    idx = np.asarray(indices)
    if idx.size == 0:
        idx = idx.astype(np.int64)   # [] is a float array to NumPy, but no rows to x[[]]
    fast = (isinstance(x, np.ndarray) and x.dtype == np.float32 and x.ndim >= 1
            and x.flags.c_contiguous and idx.ndim == 1
            and (idx.dtype.kind == "i" or (idx.dtype.kind == "u" and idx.dtype.itemsize < 8)))
    if fast:
        return _core.gather_rows(x, np.ascontiguousarray(idx, dtype=np.int64))
    return np.ascontiguousarray(x[idx])


def batch_slices(n, batch_size, order=None, drop_last=False):
    """Index arrays (or, without ``order``, slices) of consecutive mini-batches over n samples in
    ``order``; with ``drop_last``, a last batch shorter than ``batch_size`` is left out. The one
    batching loop of ``batches`` and ``fit``."""
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        if order is None:
            yield slice(start, min(start + batch_size, n))
        else:
            yield order[start:start + batch_size]


def batches(x, y=None, batch_size=32, shuffle=True, rng=None, drop_last=False):
    """Mini-batches (x_batch, y_batch) (or x_batch alone when y is None); shuffled with ``rng``
    (default: nnfast's seeded generator). The rows are gathered with take_rows."""
    n = len(x)
    # unshuffled, the batches are still index arrays: copies of the rows, never views of x
    order = (rng or _rng.generator()).permutation(n) if shuffle else np.arange(n)
    for idx in batch_slices(n, batch_size, order, drop_last):
        yield (take_rows(x, idx), take_rows(y, idx)) if y is not None else take_rows(x, idx)


def shift(images, dy, dx):
    """Images (n, H, W) moved by (dy, dx) pixels, zeros shifted in."""
    out = np.zeros_like(images)
    h, w = images.shape[-2:]
    out[..., max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
        images[..., max(-dy, 0):h - max(dy, 0), max(-dx, 0):w - max(dx, 0)]
    return out


def expand_with_shifts(x, y):
    """The classic MNIST trick: the data plus copies moved one pixel up, down, left, right."""
    moved = [x] + [shift(x, dy, dx) for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1))]
    return np.concatenate(moved), np.concatenate([y] * 5)


def affine(images, angle_deg, scale):
    """Images (n, H, W) rotated by ``angle_deg`` and zoomed by ``scale`` about their centre, by
    inverse-mapped bilinear sampling (zeros outside); per-image angles/scales as arrays (n,)."""
    images = np.asarray(images, dtype=np.float32)
    n, h, w = images.shape
    theta = np.deg2rad(np.broadcast_to(angle_deg, (n,)))[:, None, None]
    scale = np.broadcast_to(scale, (n,))[:, None, None]
    cy, cx = (h - 1) / 2, (w - 1) / 2
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    yy, xx = yy - cy, xx - cx
    src_y = (np.cos(theta) * yy - np.sin(theta) * xx) / scale + cy   # inverse rotation + zoom
    src_x = (np.sin(theta) * yy + np.cos(theta) * xx) / scale + cx
    y0, x0 = np.floor(src_y).astype(int), np.floor(src_x).astype(int)
    fy, fx = src_y - y0, src_x - x0
    idx = np.arange(n)[:, None, None]

    def pixel(yi, xi):
        inside = (yi >= 0) & (yi < h) & (xi >= 0) & (xi < w)
        return np.where(inside, images[idx, np.clip(yi, 0, h - 1), np.clip(xi, 0, w - 1)], 0)

    return ((1 - fy) * (1 - fx) * pixel(y0, x0) + (1 - fy) * fx * pixel(y0, x0 + 1)
            + fy * (1 - fx) * pixel(y0 + 1, x0) + fy * fx * pixel(y0 + 1, x0 + 1)).astype(np.float32)


def augment(images, rng=None, max_shift=1, max_rotation=10.0, max_zoom=0.1):
    """Randomly shifted (up to ``max_shift`` pixels), rotated (up to ``max_rotation`` degrees)
    and zoomed (up to ``max_zoom``) copies of images (n, H, W), as float32."""
    rng = rng or _rng.generator()
    images = np.asarray(images, dtype=np.float32)
    n = len(images)
    out = affine(images, rng.uniform(-max_rotation, max_rotation, n),
                 rng.uniform(1 - max_zoom, 1 + max_zoom, n))
    if max_shift:
        dys, dxs = rng.integers(-max_shift, max_shift + 1, (2, n))
        out = np.stack([shift(img, int(dy), int(dx)) for img, dy, dx in zip(out, dys, dxs)])
    return out
