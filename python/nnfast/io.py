"""Saving and loading models without pickle.

A model file is an uncompressed ``.npz`` (a zip of ``.npy`` arrays, read with
``allow_pickle=False``) holding:
  ``header``      uint8 bytes of a JSON document: format name and version, the architecture
                  (each layer's class name and constructor config), the compile state (loss name or
                  class, optimizer class, config and step count) and the names of the arrays;
  ``weight_<i>``  the parameters, in ``model.parameters()`` order;
  ``opt_<name>_<i>`` the optimizer's state arrays.
Saving writes a temporary file in the destination folder and renames it over the target, so a
crash mid-save leaves the previous file intact.
"""
import json
import os
import tempfile
import zipfile

import numpy as np

from . import _rng, distributed
from .optim import optimizers as optim
from .nn.init import allocation_budget
from .nn.losses import Loss
from .nn.module import describe, rebuild

FORMAT = "nnfast-model"
VERSION = 1


class ModelFileError(ValueError):
    """A file that is not a valid nnfast model (truncated, corrupted, wrong version, hostile)."""


# what building a model from a damaged or hostile header may raise; each becomes ModelFileError
_BUILD_ERRORS = (KeyError, TypeError, ValueError, IndexError, AttributeError, OverflowError,
                 RecursionError)


# ---------------------------------------------------------------------------------- architecture
def architecture(model):
    """JSON-able description that ``build`` turns back into an equivalent, untrained model."""
    return describe(model)


def build(arch):
    """The model an ``architecture`` dict describes (fresh weights); ModelFileError for one that
    does not describe nnfast's own layers."""
    if isinstance(arch, dict) and "layers" in arch and "config" not in arch:
        arch = {"class": arch.get("class"), "config": {"layers": arch["layers"]}}   # version 1
    try:
        return rebuild(arch)
    except (TypeError, ValueError, KeyError, AttributeError, RecursionError) as e:
        raise ModelFileError(f"invalid architecture in model file ({e})") from e


# ---------------------------------------------------------------------------------- files
def _write_atomically(path, arrays):
    """np.savez into a temporary file beside ``path``, then rename it over ``path``. Under several
    ranks (nnfast.distributed) only rank 0 writes; the others hold the same model."""
    if not distributed.is_root():
        return
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".nnfast-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _header_array(header):
    return np.frombuffer(json.dumps(header).encode("utf-8"), dtype=np.uint8)


# dtypes a model file may hold: float32 parameters and state, integer counters, the header's bytes
_DTYPES = {np.dtype(t) for t in (np.float32, np.float64, np.int64, np.int32, np.uint8, np.bool_)}


def _read_member(archive, info, path):
    """One .npy member of the zip, checked before anything is allocated: stored uncompressed, a
    plain dtype, and a header whose shape accounts for exactly the member's bytes."""
    if not info.filename.endswith(".npy") or info.compress_type != zipfile.ZIP_STORED:
        raise ModelFileError(f"{path}: unexpected member {info.filename!r}")
    with archive.open(info) as f:
        version = np.lib.format.read_magic(f)
        if version not in ((1, 0), (2, 0)):
            raise ModelFileError(f"{path}: {info.filename} is a .npy of version {version}")
        read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0) else
                       np.lib.format.read_array_header_2_0)
        shape, fortran, dtype = read_header(f, max_header_size=10000)
        if dtype not in _DTYPES:
            raise ModelFileError(f"{path}: {info.filename} has dtype {dtype}")
        count = int(np.prod(shape, dtype=object))
        if count * dtype.itemsize != info.file_size - f.tell():
            raise ModelFileError(f"{path}: {info.filename} claims shape {shape}, which its "
                                 f"{info.file_size} bytes do not hold")
        data = f.read(count * dtype.itemsize)
    array = np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran else "C")
    return info.filename[:-4], array.copy()


def _read(path):
    """(header dict, arrays dict) of a model or weights file, validated. Any damage to the file
    is a ModelFileError; no array larger than the file is ever allocated (members are stored
    uncompressed, so their sizes add up to at most the file's)."""
    path = os.fspath(path)
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            if sum(info.file_size for info in members) > os.path.getsize(path):
                raise ModelFileError(f"{path}: its members claim more bytes than the file has")
            arrays = dict(_read_member(archive, info, path) for info in members)
    except (FileNotFoundError, ModelFileError):
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError, KeyError,
            NotImplementedError, RuntimeError, TypeError, OverflowError, SyntaxError) as e:
        raise ModelFileError(f"{path}: not a readable nnfast model file ({e!r})") from e
    if "header" not in arrays or arrays["header"].dtype != np.uint8:
        raise ModelFileError(f"{path}: not an nnfast model file (no header)")
    try:
        header = json.loads(arrays.pop("header").tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise ModelFileError(f"{path}: corrupted header ({e})") from e
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ModelFileError(f"{path}: not an nnfast model file")
    if header.get("version") != VERSION:
        raise ModelFileError(f"{path}: file format version {header.get('version')!r} is not "
                             f"supported (this nnfast reads version {VERSION})")
    if not isinstance(header.get("count"), int) or header["count"] < 0:
        raise ModelFileError(f"{path}: corrupted header (count {header.get('count')!r})")
    return header, arrays


def _weights_from(arrays, count, path):
    try:
        weights = [arrays[f"weight_{i}"] for i in range(count)]
    except KeyError as e:
        raise ModelFileError(f"{path}: missing array {e}") from e
    return weights


def save_weights(model, path):
    """The parameters alone (no architecture)."""
    weights = model.get_weights()
    header = {"format": FORMAT, "version": VERSION, "kind": "weights", "count": len(weights)}
    _write_atomically(path, {"header": _header_array(header),
                             **{f"weight_{i}": w for i, w in enumerate(weights)}})


def load_weights(model, path):
    """Parameters from ``save_weights`` or ``save`` into an existing model of the same shape."""
    header, arrays = _read(path)
    count, expected = header.get("count"), len(model.get_weights())
    if count != expected:
        raise ValueError(f"{path} holds {count} weight arrays, the model has {expected}")
    model.set_weights(_weights_from(arrays, count, path))


def _loss_description(loss):
    """nnfast's own Loss with its configuration; a user's loss class by name only (loading then
    asks to compile it again)."""
    try:
        return describe(loss)
    except TypeError:
        return type(loss).__name__


def _optimizer_header(optimizer, arrays):
    """The optimizer's state_dict as JSON, its state arrays put into ``arrays``."""
    state = optimizer.state_dict()
    for name, per_param in state["state"].items():
        for i, a in enumerate(per_param):
            if a is not None:
                arrays[f"opt_{name}_{i}"] = a
    return {"type": state["type"], "config": state["config"], "steps": state["steps"],
            "param_groups": state["param_groups"],
            "state": {k: [a is not None for a in v] for k, v in state["state"].items()}}


def _load_optimizer_state(optimizer, saved, arrays):
    state = {name: [arrays.get(f"opt_{name}_{i}") if present else None
                    for i, present in enumerate(flags)]
             for name, flags in saved["state"].items()}
    optimizer.load_state_dict({**saved, "state": state})


def _progress_header(progress, callbacks, arrays):
    """Where fit is (a FitProgress), nnfast's RNG state and each callback's state_dict, as JSON;
    the epoch's order and callbacks' arrays (lists of arrays, as best weights) put into
    ``arrays``."""
    header = progress.to_json()
    if progress.order is not None:
        arrays["progress_order"] = progress.order
    header["rng"] = _rng.generator().bit_generator.state
    header["callbacks"] = []
    for i, cb in enumerate(callbacks):
        state = {}
        for key, value in cb.state_dict().items():
            if isinstance(value, list) and any(isinstance(v, np.ndarray) for v in value):
                for j, v in enumerate(value):
                    arrays[f"callback{i}_{key}_{j}"] = v
                value = {"arrays": len(value)}
            state[key] = value
        header["callbacks"].append(state)
    return header


def save_model(model, path, include_optimizer=True, progress=None, callbacks=()):
    """Architecture, weights and compile state (see the module docstring); the optimizer's state
    unless ``include_optimizer`` is False; with ``progress`` (fit's FitProgress), also where
    training is, the RNG state and the callbacks' states: a checkpoint ``restore_checkpoint``
    resumes exactly."""
    weights = model.get_weights()
    header = {"format": FORMAT, "version": VERSION, "kind": "model", "count": len(weights),
              "architecture": architecture(model)}
    arrays = {f"weight_{i}": w for i, w in enumerate(weights)}
    state = model.compiled
    if state is not None:
        compiled = {"loss": state.loss_name or _loss_description(state.loss),
                    "metrics": list(state.metrics), "optimizer_name": state.optimizer_name}
        if state.optimizer is not None and include_optimizer:
            compiled["optimizer"] = _optimizer_header(state.optimizer, arrays)
        header["compile"] = compiled
    if progress is not None:
        header["progress"] = _progress_header(progress, callbacks, arrays)
    _write_atomically(path, {"header": _header_array(header), **arrays})


def restore_checkpoint(model, path, callbacks=()):
    """Put a checkpoint written during fit back into the compiled ``model`` that wrote it: the
    weights and buffers, the optimizer's state, nnfast's RNG state and each callback's state.
    Returns the checkpoint's progress: (the JSON of a FitProgress, the epoch's order or None)."""
    header, arrays = _read(path)
    progress = header.get("progress")
    if header.get("kind") != "model" or progress is None:
        raise ModelFileError(f"{path} is not a checkpoint written during fit")
    try:
        model.set_weights(_weights_from(arrays, header["count"], path))
        saved = header.get("compile", {}).get("optimizer")
        if saved is not None:
            _load_optimizer_state(model.optimizer, saved, arrays)
        _rng.generator().bit_generator.state = progress["rng"]
        for i, (cb, state) in enumerate(zip(callbacks, progress["callbacks"])):
            cb.load_state_dict({key: [arrays[f"callback{i}_{key}_{j}"] for j in
                                      range(value["arrays"])]
                                if isinstance(value, dict) and "arrays" in value else value
                                for key, value in state.items()})
    except _BUILD_ERRORS as e:
        raise ModelFileError(f"{path}: invalid checkpoint ({e!r})") from e
    return progress, arrays.get("progress_order")


def load(path):
    """The model saved by ``model.save(path)``: same architecture, weights, compile state. A file
    that is not one, damaged or hostile, raises ModelFileError; building its architecture may
    allocate no more parameter values than the file holds."""
    header, arrays = _read(path)
    if header.get("kind") != "model" or "architecture" not in header:
        raise ModelFileError(f"{path} holds weights only; build the model and use load_weights")
    weights = _weights_from(arrays, header["count"], path)
    try:
        with allocation_budget(sum(a.size for a in arrays.values())):
            model = build(header["architecture"])
        expected = len(model.get_weights())
        if len(weights) != expected:
            raise ModelFileError(f"{path}: {len(weights)} weight arrays for a model with "
                                 f"{expected}")
        model.set_weights(weights)
    except _BUILD_ERRORS as e:
        raise ModelFileError(f"{path}: invalid architecture or weights ({e!r})") from e
    compiled = header.get("compile")
    if compiled:
        try:
            _restore_compile_state(model, compiled, arrays)
        except _BUILD_ERRORS as e:
            raise ModelFileError(f"{path}: invalid compile state ({e!r})") from e
    return model


def _restore_compile_state(model, compiled, arrays):
    """compile the loaded model as it was saved, and put back the optimizer's state."""
    loss = compiled["loss"]
    if isinstance(loss, dict):   # a Loss described with its configuration
        loss = rebuild(loss, base=Loss)
    else:
        try:   # a Loss class by name, or a Keras name that compile knows
            loss = rebuild({"class": loss}, base=Loss)
        except ValueError:
            pass
    optimizer = compiled.get("optimizer_name") or "sgd"
    saved = compiled.get("optimizer")
    if saved is not None:
        optimizer = optim.optimizer_from_config(saved["type"], model.parameters(),
                                                saved["config"], saved.get("param_groups"))
    model.compile(optimizer=optimizer, loss=loss, metrics=compiled.get("metrics"))
    if saved is not None:
        _load_optimizer_state(model.optimizer, saved, arrays)
