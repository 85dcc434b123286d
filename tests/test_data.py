"""nnfast.data: the IDX reader's validation, the loaders on the genuine files, one-hot labels,
standardisation, batching and augmentation."""
import gzip
import os

import numpy as np
import pytest

import nnfast as nf
from nnfast import data

from conftest import fashion_mnist_or_skip


def write_idx(path, array, type_code=0x08, compress=False):
    header = bytes([0, 0, type_code, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape)
    payload = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    path.write_bytes(gzip.compress(payload) if compress else payload)


def test_read_idx_raw_and_gzip(tmp_path):
    a = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "a", a)
    write_idx(tmp_path / "a.gz", a, compress=True)
    np.testing.assert_array_equal(data.read_idx(tmp_path / "a"), a)
    np.testing.assert_array_equal(data.read_idx(tmp_path / "a.gz"), a)
    f = np.linspace(0, 1, 6, dtype=np.float32).reshape(2, 3)
    write_idx(tmp_path / "f", f, type_code=0x0D)
    np.testing.assert_array_equal(data.read_idx(tmp_path / "f"), f)


@pytest.mark.parametrize("raw,message", [
    (b"\x01\x00\x08\x01\x00\x00\x00\x01\x00", "magic"),
    (b"\x00\x00\x07\x01\x00\x00\x00\x01\x00", "type code"),
    (b"\x00\x00\x08\x02\x00\x00", "truncated"),
    (b"\x00\x00\x08\x01\x00\x00\x00\x05\x00", "payload"),
    (b"\x1f\x8b\x08garbage", "gzip"),
])
def test_read_idx_rejects_bad_files(tmp_path, raw, message):
    (tmp_path / "bad").write_bytes(raw)
    with pytest.raises(ValueError, match=message):
        data.read_idx(tmp_path / "bad")


def test_load_mnist_shapes_like_keras(mnist):
    (x_train, y_train), (x_test, y_test) = mnist
    assert x_train.shape == (60000, 28, 28) and x_train.dtype == np.uint8
    assert y_train.shape == (60000,) and x_test.shape == (10000, 28, 28)
    assert y_train[:5].tolist() == [5, 0, 4, 1, 9]
    assert np.bincount(y_test).tolist()[:3] == [980, 1135, 1032]


def test_load_fashion_mnist():
    (x, y), (xt, yt) = fashion_mnist_or_skip()
    assert x.shape == (60000, 28, 28) and yt.shape == (10000,) and y.max() == 9


def test_missing_files_give_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("NNFAST_DATA", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setattr(data, "checkout_folder", lambda name: None)
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte"):
        data.load_mnist(download=False)


def test_mnist_is_found_in_the_checkout_without_settings(tmp_path, monkeypatch):
    """No NNFAST_DATA, an empty HOME, run from elsewhere: the checkout's data/mnist (found from
    the package's own folder, or the script's), MD5-checked."""
    monkeypatch.delenv("NNFAST_DATA", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    monkeypatch.setattr(data.sys, "argv", [os.path.join(root, "benchmarks", "mnist.py")])
    assert data.checkout_folder("mnist") == os.path.join(root, "data", "mnist")
    assert data.data_folders("mnist")[-1] == os.path.join(root, "data", "mnist")
    (x, y), _ = data.load_mnist(download=False)
    assert x.shape == (60000, 28, 28) and y[:3].tolist() == [5, 0, 4]


def test_the_package_folder_leads_to_its_checkout(tmp_path, monkeypatch):
    """Run from source, nnfast finds the checkout's data/mnist from its own folder alone: neither
    the script nor the working directory lies in the checkout."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if not os.path.abspath(data.__file__).startswith(os.path.join(root, "python", "")):
        pytest.skip("nnfast is imported from an installation, not from this checkout's python/")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(data.sys, "argv", [str(tmp_path / "run.py")])
    assert data.checkout_folder("mnist") == os.path.join(root, "data", "mnist")


def fake_checkout(root, files):
    """A source tree at root whose data/mnist holds the given {name: bytes}."""
    root.mkdir(parents=True)
    (root / "pyproject.toml").write_text('[project]\nname = "nnfast"\n')
    folder = root / "data" / "mnist"
    folder.mkdir(parents=True)
    for name, raw in files.items():
        (folder / name).write_bytes(raw)
    return folder


def test_the_environment_folder_comes_before_the_checkout(tmp_path, monkeypatch):
    images = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
    mine = tmp_path / "mine" / "mnist"
    mine.mkdir(parents=True)
    for stem, array in zip(data.FILES, [images, np.array([3, 1], np.uint8)] * 2):
        write_idx(mine / stem, array)
    monkeypatch.setenv("NNFAST_DATA", str(tmp_path / "mine"))
    (x, y), (xt, yt) = data.load_mnist(download=False)
    assert y.tolist() == [3, 1] and x.shape == (2, 28, 28)


def test_a_damaged_shipped_file_is_refused(tmp_path, monkeypatch):
    folder = fake_checkout(tmp_path / "tree", {stem + ".gz": gzip.compress(b"\x00\x00\x08\x01"
                                                                           b"\x00\x00\x00\x00")
                                               for stem in data.FILES})
    (tmp_path / "tree" / "scripts").mkdir()
    monkeypatch.delenv("NNFAST_DATA", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path / "tree" / "scripts")
    monkeypatch.setattr(data.sys, "argv", [str(tmp_path / "tree" / "scripts" / "run.py")])
    assert data.checkout_folder("mnist") == str(folder)
    with pytest.raises(ValueError, match="MD5 .* is not the original file's"):
        data.load_mnist(download=False)


@pytest.mark.parametrize("download", [True, False])
def test_missing_fashion_mnist_says_how_to_get_it(tmp_path, monkeypatch, download):
    """Whether the download failed or was not asked for, the error says how to get the files."""
    monkeypatch.setenv("NNFAST_DATA", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setattr(data, "checkout_folder", lambda name: None)
    monkeypatch.setitem(data.DATASETS["fashion-mnist"], "system", [])

    def offline(name, stem, folder):
        raise RuntimeError("no network")
    monkeypatch.setattr(data, "_download", offline)
    with pytest.raises(FileNotFoundError) as e:
        data.load_fashion_mnist(download=download)
    message = str(e.value)
    assert "fashion-mnist.s3-website" in message and "apt install dataset-fashion-mnist" in message
    assert "NNFAST_DATA" in message


def test_to_categorical_and_standardizer():
    np.testing.assert_array_equal(data.to_categorical([0, 2, 1], 3),
                                  [[1, 0, 0], [0, 0, 1], [0, 1, 0]])
    with pytest.raises(ValueError):
        data.to_categorical([0, 3], 3)
    train = np.random.default_rng(0).normal(5, 2, (1000, 3))
    s = data.Standardizer().fit(train)
    z = s.transform(train)
    np.testing.assert_allclose(z.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(z.std(axis=0), 1, atol=1e-4)
    test = np.full((2, 3), 5.0)
    np.testing.assert_allclose(s.transform(test), (test - s.mean) / (s.std + s.eps), rtol=1e-5)


def test_batches_are_seeded_and_cover_everything():
    x, y = np.arange(10), np.arange(10) * 2
    first = [xb.tolist() for xb, _ in data.batches(x, y, 3, rng=np.random.default_rng(1))]
    again = [xb.tolist() for xb, _ in data.batches(x, y, 3, rng=np.random.default_rng(1))]
    assert first == again and sorted(sum(first, [])) == list(range(10))
    assert len(list(data.batches(x, None, 3, shuffle=False, drop_last=True))) == 3
    in_order = list(data.batches(x, y, 4, shuffle=False))
    assert [xb.tolist() for xb, _ in in_order] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    in_order[0][0][:] = -1                 # a batch is a copy, never a view of x
    assert x[:4].tolist() == [0, 1, 2, 3]


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_take_rows_is_numpy_indexing(threads):
    """The kernel's gather gives x[idx] exactly: any rank, repeated and negative indices, batches
    large enough for the threads to share out (and small ones), any thread count."""
    rng = np.random.default_rng(threads)
    before = nf.get_num_threads()
    nf.set_num_threads(threads)
    try:
        for shape, n in [((60, 784), 100), ((50, 1, 28, 28), 37), ((7, 3), 5), ((9,), 4),
                         ((5, 4), 0)]:
            x = rng.standard_normal(shape).astype(np.float32)
            idx = rng.integers(-len(x), len(x), n)
            got = data.take_rows(x, idx)
            np.testing.assert_array_equal(got, x[idx])
            assert got.dtype == np.float32 and got.flags.c_contiguous and got.shape == x[idx].shape
            np.testing.assert_array_equal(data.take_rows(x, list(idx)), x[idx])
            np.testing.assert_array_equal(data.take_rows(x, idx.astype(np.uint8) % len(x)),
                                          x[idx.astype(np.uint8) % len(x)])
    finally:
        nf.set_num_threads(before)


def test_take_rows_other_inputs_and_errors():
    x = np.arange(24, dtype=np.float32).reshape(6, 4)
    for other in (x.astype(np.int64), x.astype(np.float64), x[:, ::2], np.asfortranarray(x)):
        got = data.take_rows(other, [5, 0, 5])
        np.testing.assert_array_equal(got, other[[5, 0, 5]])
        assert got.dtype == other.dtype and got.flags.c_contiguous
    mask = np.array([True, False, True, False, False, True])
    np.testing.assert_array_equal(data.take_rows(x, mask), x[mask])   # NumPy's boolean indexing
    assert np.shares_memory(data.take_rows(x, slice(1, 3)), x)
    for bad in ([6], [-7], np.array([0, 2**40])):
        with pytest.raises(IndexError):
            data.take_rows(x, bad)
    with pytest.raises(IndexError):
        data.take_rows(x.astype(np.float64), [6])
    with pytest.raises(IndexError):
        data.take_rows(np.zeros((0, 3), np.float32), [0])


def test_gather_rows_checks_its_arguments():
    core, x = nf._core, np.arange(12, dtype=np.float32).reshape(4, 3)
    rows = np.array([3, 1], np.int64)
    out = np.empty((2, 3), np.float32)
    assert core.gather_rows(x, rows, out) is out
    np.testing.assert_array_equal(out, x[[3, 1]])
    with pytest.raises(TypeError, match="int64"):
        core.gather_rows(x, rows.astype(np.int32))
    with pytest.raises(TypeError, match="float32"):
        core.gather_rows(x.astype(np.float64), rows)
    with pytest.raises(ValueError, match="C-contiguous"):
        core.gather_rows(x[:, ::2], rows)
    with pytest.raises(ValueError, match="dimensions"):
        core.gather_rows(x, rows.reshape(1, 2))
    with pytest.raises(ValueError, match="shape"):
        core.gather_rows(x, rows, np.empty((3, 3), np.float32))
    out.setflags(write=False)
    with pytest.raises(ValueError, match="writeable"):
        core.gather_rows(x, rows, out)
    with pytest.raises(IndexError, match=r"rows\[1\] = 4 is out of range for 4 rows"):
        core.gather_rows(x, np.array([0, 4]))


def test_shifts_and_augmentation():
    img = np.zeros((1, 5, 5), np.float32)
    img[0, 2, 2] = 1
    assert data.shift(img, 1, 0)[0, 3, 2] == 1 and data.shift(img, 0, -1)[0, 2, 1] == 1
    x, y = data.expand_with_shifts(img, np.array([7]))
    assert x.shape == (5, 5, 5) and y.tolist() == [7] * 5
    same = data.affine(img, 0.0, 1.0)
    np.testing.assert_allclose(same, img, atol=1e-6)
    turned = data.affine(img, 90.0, 1.0)
    assert turned[0, 2, 2] == pytest.approx(1.0)            # the centre stays put
    bar = np.zeros((1, 5, 5), np.float32)
    bar[0, 2, :] = 1
    np.testing.assert_allclose(data.affine(bar, 90.0, 1.0)[0, :, 2], 1, atol=1e-5)
    out = data.augment(np.repeat(bar, 4, axis=0), rng=np.random.default_rng(0))
    assert out.shape == (4, 5, 5) and out.dtype == np.float32
