"""The model-file reader under hostile input: 10,000 byte-level mutations and truncations of real
model files, and structure-aware ones (valid zips whose JSON header or .npy headers lie), each
either loads or raises ModelFileError, and a file claiming arrays or layers larger than itself is
refused before anything that large is allocated."""
import io
import json
import tracemalloc
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import nnfast as nf
from nnfast import nn

MUTATIONS = 10_000


def small_models():
    nf.seed(0)
    mlp = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Dropout(0.2), nn.Linear(5, 3))
    mlp.compile(nf.optim.Adam(mlp.parameters()), nn.CrossEntropyLoss(), ["accuracy"])
    cnn = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Flatten(), nn.Dense(3, activation="softmax"))
    cnn.compile("sgd", "sparse_categorical_crossentropy")
    cnn.predict(np.zeros((1, 1, 8, 8), np.float32))   # builds the Dense
    return mlp, cnn


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    folder = tmp_path_factory.mktemp("files")
    paths = []
    for i, model in enumerate(small_models()):
        paths.append(folder / f"model{i}.nnf")
        model.save(paths[-1])
    weights = folder / "weights.nnf"
    small_models()[0].save_weights(weights)
    return [p.read_bytes() for p in paths + [weights]], folder


def load_or_model_file_error(path):
    """'loaded' or 'refused'; any other exception fails the test."""
    try:
        nf.load(path)
        return "loaded"
    except nf.ModelFileError:
        return "refused"


def mutate(data, rng):
    data = bytearray(data)
    kind = rng.integers(4)
    if kind == 0:                                   # truncated anywhere
        return bytes(data[:rng.integers(len(data))])
    if kind == 1:                                   # a few random bytes
        for _ in range(rng.integers(1, 5)):
            data[rng.integers(len(data))] = rng.integers(256)
    elif kind == 2:                                 # a flipped bit in the zip structures
        hot = [i for i in range(len(data) - 4) if data[i:i + 2] == b"PK"] or [0]
        at = min(len(data) - 1, rng.choice(hot) + rng.integers(46))
        data[at] ^= 1 << rng.integers(8)
    else:                                           # a spliced run of bytes from elsewhere
        a, b = sorted(rng.integers(len(data), size=2))
        at = rng.integers(len(data))
        data[at:at + (b - a)] = data[a:b]
    return bytes(data)


def test_ten_thousand_mutated_files_load_or_raise_model_file_error(saved):
    files, folder = saved
    rng = np.random.default_rng(1234)
    path = folder / "mutated.nnf"
    outcomes = {"loaded": 0, "refused": 0}
    for i in range(MUTATIONS):
        path.write_bytes(mutate(files[i % len(files)], rng))
        outcomes[load_or_model_file_error(path)] += 1
    assert outcomes["refused"] > MUTATIONS // 2, outcomes


def rezip(members):
    """A stored (uncompressed) zip with correct CRCs of {name: bytes}."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def members_of(data):
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {info.filename: archive.read(info) for info in archive.infolist()}


def npy(array):
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**70) | st.floats(allow_nan=True)
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                  max_size=4),
    max_leaves=12)


def replace_somewhere(document, rng_draw, value):
    """``document`` with one of its values (found by walking with rng_draw) replaced by value."""
    if isinstance(document, dict) and document:
        key = rng_draw(st.sampled_from(sorted(document)))
        if rng_draw(st.booleans()):
            return {**document, key: value}
        return {**document, key: replace_somewhere(document[key], rng_draw, value)}
    if isinstance(document, list) and document:
        i = rng_draw(st.integers(0, len(document) - 1))
        return document[:i] + [replace_somewhere(document[i], rng_draw, value)] + document[i + 1:]
    return value


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_lying_json_headers_load_or_raise_model_file_error(saved, data):
    files, folder = saved
    members = members_of(files[data.draw(st.integers(0, len(files) - 1))])
    header = json.loads(np.load(io.BytesIO(members["header.npy"])).tobytes())
    header = replace_somewhere(header, data.draw, data.draw(json_values))
    members["header.npy"] = npy(np.frombuffer(json.dumps(header).encode(), np.uint8))
    path = folder / "lying_header.nnf"
    path.write_bytes(rezip(members))
    load_or_model_file_error(path)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_lying_array_headers_load_or_raise_model_file_error(saved, data):
    files, folder = saved
    members = members_of(files[0])
    name = data.draw(st.sampled_from(sorted(members)))
    shape = tuple(data.draw(st.lists(st.integers(0, 2**40), max_size=3)))
    dtype = data.draw(st.sampled_from(["<f4", "<f8", "|u1", "<i8", "|O", "<U3", "|V8", ">f4"]))
    fortran = data.draw(st.booleans())
    head = repr({"descr": dtype, "fortran_order": fortran, "shape": shape}).encode()
    head += b" " * (-(len(head) + 11) % 64) + b"\n"
    raw = members[name]
    body = raw[raw.index(b"\n") + 1:]
    members[name] = b"\x93NUMPY\x01\x00" + len(head).to_bytes(2, "little") + head + body
    path = folder / "lying_array.nnf"
    path.write_bytes(rezip(members))
    load_or_model_file_error(path)


def refused_with_little_memory(path, message):
    """nf.load(path) raises ModelFileError matching message, having allocated under 4 MB."""
    tracemalloc.start()
    try:
        with pytest.raises(nf.ModelFileError, match=message):
            nf.load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20


def test_a_huge_claimed_array_is_refused_before_allocating(saved, tmp_path):
    files, _ = saved
    members = members_of(files[0])
    raw = members["weight_0.npy"]
    head = repr({"descr": "<f4", "fortran_order": False, "shape": (2**40,)}).encode()
    head += b" " * (-(len(head) + 11) % 64) + b"\n"
    members["weight_0.npy"] = (b"\x93NUMPY\x01\x00" + len(head).to_bytes(2, "little") + head
                               + raw[raw.index(b"\n") + 1:])
    path = tmp_path / "huge.nnf"
    path.write_bytes(rezip(members))
    refused_with_little_memory(path, "do not hold")


def test_a_huge_claimed_layer_is_refused_before_allocating(saved, tmp_path):
    files, _ = saved
    members = members_of(files[0])
    header = json.loads(np.load(io.BytesIO(members["header.npy"])).tobytes())
    first = header["architecture"]["config"]["layers"][0]["config"]
    first["in_features"] = first["out_features"] = 200_000            # 160 GB of weights
    members["header.npy"] = npy(np.frombuffer(json.dumps(header).encode(), np.uint8))
    path = tmp_path / "huge_layer.nnf"
    path.write_bytes(rezip(members))
    refused_with_little_memory(path, "allocation budget")


def test_compressed_members_are_refused(saved, tmp_path):
    files, _ = saved
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members_of(files[0]).items():
            archive.writestr(name, data)
    path = tmp_path / "deflated.nnf"
    path.write_bytes(buffer.getvalue())
    with pytest.raises(nf.ModelFileError, match="unexpected member|claim more bytes"):
        nf.load(path)
