"""Models: Modules that train. ``Model`` holds the training state and runs the Keras-style loop
(compile / fit / evaluate / predict / train_on_batch / summary / save) over any ``forward`` and
``backward``; ``Sequential`` is the chain of layers, run by a fusion plan (nn/fusion.py)."""
import math
import re
import signal
import sys
import threading

import numpy as np

from . import _rng, distributed, graph, io, optim
from .backend import as_host, device_of
from ._grad import no_grad
from .callbacks import History, ProgressBar
from .data import batch_slices, take_rows
from .metrics import Scores, correct_predictions
from .nn import losses
from .nn.activations import Sigmoid, Softmax
from .nn.fusion import Plan
from .nn.keras import Input
from .nn.module import Module, describe, rebuild


def _each(data, fn):
    """fn(array) for an array; for a list (a model of several inputs or outputs), fn of each of
    its arrays, None (the target of an output without a loss) kept as None."""
    if isinstance(data, (list, tuple)):
        return [None if a is None else fn(a) for a in data]
    return fn(data)


def _numeric(a, who):
    where = device_of(a)
    if where != "cpu":
        raise TypeError(f"{who} takes host arrays (NumPy) and moves them to the model's device "
                        f"itself; got x on {where} (call the model on it directly instead)")
    a = np.asarray(a)
    if a.dtype.kind not in "biuf":
        raise TypeError(f"{who}: x must be numeric, got dtype {a.dtype}")
    return a


def _check_inputs(x, y, who):
    """x and y as NumPy arrays, or lists of them for a model of several inputs / outputs, all
    with one number of samples."""
    if isinstance(x, (list, tuple)) and any(a is None for a in x):
        raise TypeError(f"{who}: an input of x is None")
    x = _each(x, lambda a: _numeric(a, who))
    n = _count(x)
    if n == 0:
        raise ValueError(f"{who}: x is empty")
    if isinstance(x, list) and any(len(a) != n for a in x):
        raise ValueError(f"{who}: the inputs have different numbers of samples "
                         f"{[len(a) for a in x]}")
    if y is not None:
        y = _each(y, as_host)   # targets on a device come back: batches are cut on the host
        for t in y if isinstance(y, list) else [y]:
            if t is not None and len(t) != n:
                raise ValueError(f"{who}: x has {n} samples but y has {len(t)}")
    return x, y


def _check_finite(loss, finite_only):
    if finite_only and not math.isfinite(loss):
        raise FloatingPointError(
            f"the loss became {loss}: training diverged (lower the learning rate, check the "
            "inputs for NaN / inf, or scale them, e.g. divide images by 255)")


def _count(data):
    """The number of samples of an array, or of the first array of a list."""
    return len(next(a for a in data if a is not None)) if isinstance(data, list) else len(data)


def _rows(data, index):
    """data[index] for an array or each array of a list."""
    return _each(data, lambda a: a[index])


def _as_batch(x):
    return _each(x, lambda a: np.ascontiguousarray(a, dtype=np.float32))


def _gathered(x, index):
    """The rows ``index`` of x (an array or a list of them) as float32 batches."""
    return _each(x, lambda a: np.ascontiguousarray(take_rows(a, index), dtype=np.float32))


def _index_array(index):
    """Row indices as an int64 array (a batch slice as the range it covers)."""
    if isinstance(index, slice):
        return np.arange(index.start, index.stop, dtype=np.int64)
    return np.asarray(index, dtype=np.int64)


def _first(data):
    """The first output / target of a list (what metrics read), or data itself."""
    return data[0] if isinstance(data, list) else data


_METRIC_NAMES = {"accuracy": "accuracy", "acc": "accuracy"}
# optimizer names compile knows: (class, Keras's default learning rate)
_OPTIMIZERS = {"sgd": (optim.SGD, 0.01), "adam": (optim.Adam, 1e-3),
               "adamw": (optim.AdamW, 1e-3)}


class TrainingState:
    """What ``compile`` sets and ``fit`` uses, in one place (``nnfast.io`` saves it with the model):
    ``loss`` (a Loss) and ``loss_name`` (the Keras name it was given by, or None), ``optimizer``
    (None while a named one waits for the model's parameters to exist) and ``optimizer_name``,
    ``metrics`` (["accuracy"] or [])."""

    def __init__(self, loss, loss_name, optimizer, optimizer_name, metrics):
        self.loss, self.loss_name = loss, loss_name
        self.optimizer, self.optimizer_name = optimizer, optimizer_name
        self.metrics = metrics


class FitProgress:
    """Where ``fit`` is: ``epoch`` (from 0), ``step`` (its batches done), the epoch's sample
    ``order`` (None unshuffled), the epoch's running ``totals`` (loss sum, correct, seen) and the
    ``history`` of the epochs finished. With nnfast's RNG state, what a checkpoint written during
    fit holds so that training resumes exactly where it stopped."""

    def __init__(self, epoch=0, step=0, order=None, totals=(0.0, 0, 0), history=None,
                 epochs_run=None):
        self.epoch, self.step, self.order = epoch, step, order
        self.totals = list(totals)
        self.history = history if history is not None else {}
        self.epochs_run = epochs_run if epochs_run is not None else []   # History.epoch
        self.callbacks, self.bar = [], None   # fit's, for checkpoints; the epoch's progress bar

    def start_epoch(self, epoch, order):
        self.epoch, self.step, self.order, self.totals = epoch, 0, order, [0.0, 0, 0]

    def add(self, step, loss_sum, correct, seen):
        self.step = step
        self.totals = [self.totals[0] + loss_sum, self.totals[1] + correct, self.totals[2] + seen]

    def to_json(self):
        return {"epoch": self.epoch, "step": self.step, "totals": self.totals,
                "history": self.history, "epochs_run": self.epochs_run}

    @classmethod
    def from_json(cls, state, order):
        return cls(int(state["epoch"]), int(state["step"]), order, state["totals"],
                   {k: list(v) for k, v in state["history"].items()}, list(state["epochs_run"]))


class _Interrupt:
    """Ctrl-C during fit: the first SIGINT asks fit to stop after the current batch, a second
    one interrupts at once. Only in the main thread (elsewhere signals cannot be caught)."""

    def __enter__(self):
        self.requested, self.previous = False, None
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\nfit: stopping after this batch (Ctrl-C again to interrupt now)", file=sys.stderr)

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
        return False


def layer_names(layers):
    """Keras-style names, one per layer: the class name in snake case, numbered from its
    second occurrence ("dense", "dense_1", ...)."""
    names, counts = [], {}
    for layer in layers:
        kind = type(layer).__name__
        counts[kind] = counts.get(kind, 0) + 1
        names.append(re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", kind).lower()
                     + ("" if counts[kind] == 1 else f"_{counts[kind] - 1}"))
    return names


class Model(Module):
    """A Module that trains: Keras's ``compile`` / ``fit`` / ``evaluate`` / ``predict`` /
    ``train_on_batch`` / ``summary`` / ``save`` over its ``forward`` and ``backward``.

    Subclass it for a network of your own: assign its layers as attributes and write
    ``forward(x)`` and ``backward(grad_out)`` (calling the layers' own), as with a PyTorch
    ``nn.Module``. The training state lives in ``self.compiled`` (a TrainingState, None before
    ``compile``), never among the model's children."""

    compiled = None
    stop_training = False
    history = None
    fit_progress = None   # a FitProgress while fit runs, else None
    graph_model = None    # the class nf.Model(inputs, outputs) makes (nnfast/functional.py)

    def __init_subclass__(cls, **kwargs):
        """A subclass with a ``forward`` and no ``backward`` of its own is traced: on the first
        batch, forward runs on symbolic tensors (nn.Input) into a graph model, which then runs
        forward and backward (see nnfast/functional.py for what tracing captures)."""
        super().__init_subclass__(**kwargs)
        if "forward" in vars(cls) and cls.backward in (Module.backward, Model._backward_traced):
            cls.traced_forward = cls.forward
            cls.forward, cls.backward = Model._run_traced, Model._backward_traced
            cls.backward_parameters = Model._backward_traced

    def _traced_graph(self, xs):
        """The graph ``traced_forward`` makes for inputs of these sample shapes (traced again
        when they change), kept out of the model's children."""
        shapes = tuple(np.shape(x)[1:] for x in xs)
        trace = self.__dict__.get("_trace")
        if trace is None or trace[0] != shapes:
            inputs = [Input(shape) for shape in shapes]
            try:
                outputs = self.traced_forward(*inputs)
            except (TypeError, AttributeError) as e:
                raise TypeError(f"{type(self).__name__}.forward could not be traced into a graph "
                                f"({e}); tracing follows calls of nnfast layers, merges (+, -, *) "
                                "and slices, not NumPy code or control flow on values; write a "
                                "backward, or use those") from e
            graph = Model.graph_model(inputs if len(inputs) > 1 else inputs[0], outputs)
            if graph.backend is not self.backend:   # traced after a move: plans for its kernels
                graph.to(self.backend)
            trace = self.__dict__["_trace"] = (shapes, graph)
        graph = trace[1]
        if graph.training != self.training:
            graph.train(self.training)
        return graph

    def _run_traced(self, *xs):
        xs = list(xs[0]) if len(xs) == 1 and isinstance(xs[0], (list, tuple)) else list(xs)
        self._ran = graph = self._traced_graph(xs)
        return graph.forward(*xs)

    def _backward_traced(self, grad_out):
        return self._ran.backward(grad_out)

    @classmethod
    def from_config(cls, config):
        """As Module's; ``Model.from_config`` of a graph model's config rebuilds the graph."""
        if cls is Model:
            return Model.graph_model.from_config(config)
        return super().from_config(config)

    def __new__(cls, *args, **kwargs):
        """``Model(inputs, outputs)``: a graph model (Keras's functional API); a subclass, or
        Model(), is constructed as written."""
        if cls is Model and (args or kwargs):
            return super().__new__(Model.graph_model)
        return super().__new__(cls)

    @property
    def loss_fn(self):
        """The compiled loss (None before compile)."""
        return self.compiled.loss if self.compiled else None

    @property
    def loss_name(self):
        return self.compiled.loss_name if self.compiled else None

    @property
    def optimizer(self):
        """The compiled optimizer (None before compile, or until a named one is built)."""
        return self.compiled.optimizer if self.compiled else None

    @property
    def optimizer_name(self):
        return self.compiled.optimizer_name if self.compiled else None

    @property
    def metrics(self):
        return self.compiled.metrics if self.compiled else []

    def to(self, device):
        """Module.to, the compiled loss included."""
        super().to(device)
        if self.compiled:
            self.compiled.loss.to(device)
        return self

    # ------------------------------------------------------------------ compile
    def compile(self, optimizer="sgd", loss=None, metrics=None, loss_weights=None):
        """Set the optimizer (object or "sgd" / "adam" / "adamw"), the loss (object or a Keras
        name: "categorical_crossentropy", "sparse_categorical_crossentropy", "mse", "mae",
        "binary_crossentropy") and metrics (["accuracy"]).

        Keras names follow Keras's meaning: after a final Softmax (Sigmoid) layer the
        cross-entropies take probabilities; without one they take logits and use the fused,
        stable kernels. A model of several outputs takes a list of losses, one per output
        (or one loss for all), weighted by ``loss_weights``; its metrics read the first
        output."""
        if loss is None:
            raise ValueError("compile needs a loss")
        self._build_if_known()
        loss_fn = self._loss_of(self.by_output(loss, "loss"),
                                self.by_output(loss_weights, "loss_weights"))
        names = []
        for m in metrics or []:
            if m not in _METRIC_NAMES:
                raise ValueError(f"unknown metric {m!r}; nnfast knows {sorted(_METRIC_NAMES)}")
            names.append(_METRIC_NAMES[m])
        optimizer_name = optimizer if isinstance(optimizer, str) else None
        if optimizer_name is not None and optimizer_name.lower() not in _OPTIMIZERS:
            raise ValueError(f"unknown optimizer {optimizer!r}; use 'sgd', 'adam', 'adamw' or an "
                             "nnfast.optim object")
        if optimizer_name is None and not self.is_built():
            raise ValueError("the model has Dense layers whose input size is not known yet, so "
                             "an optimizer made now would miss their weights: pass an optimizer "
                             "name (e.g. 'adam'), give Dense an input_dim, or call "
                             "model.summary(input_shape=...) before creating the optimizer")
        loss_fn.to(self.backend)
        self.compiled = TrainingState(loss_fn, loss if isinstance(loss, str) and
                                      not isinstance(loss_fn, losses.MultiLoss) else None,
                                      None if optimizer_name else optimizer, optimizer_name, names)
        if optimizer_name and self.is_built() and self.parameters():
            self._build_optimizer()   # else fit builds it after a first batch
        return self

    output_names = None   # a graph model's outputs, by the names of the layers that make them

    def by_output(self, value, who):
        """A dict keyed by output name (Keras's way for targets, losses, loss weights) as the
        list in output order, None where a name is missing; anything else as it is."""
        if not isinstance(value, dict):
            return value
        if self.output_names is None:
            raise TypeError(f"{who}: a dict by output name needs a graph model "
                            "(nf.Model(inputs, outputs))")
        unknown = sorted(set(value) - set(self.output_names))
        if unknown:
            raise ValueError(f"{who}: no outputs named {unknown}; the outputs are "
                             f"{self.output_names}")
        return [value.get(name) for name in self.output_names]

    def _loss_of(self, loss, loss_weights):
        """The Loss compile was given (an object, a name, or a list of them per output)."""
        known = getattr(self, "outputs", None)   # a graph's; a traced model's come later
        outputs = len(known) if known else len(loss) if isinstance(loss, (list, tuple)) else 1
        if isinstance(loss, losses.MultiLoss):
            return loss
        if isinstance(loss, (list, tuple)) or outputs > 1 or loss_weights is not None:
            parts = list(loss) if isinstance(loss, (list, tuple)) else [loss] * outputs
            if len(parts) != outputs:
                raise ValueError(f"compile: {len(parts)} losses for a model of {outputs} outputs")
            parts = [p if p is None or isinstance(p, losses.Loss) else self._loss_from_name(p)
                     for p in parts]
            return losses.MultiLoss(parts, loss_weights)
        return loss if isinstance(loss, losses.Loss) else self._loss_from_name(loss)

    def _last_layer(self):
        layers = getattr(self, "layers", None)
        if not layers:
            return None
        last = layers[-1]
        return getattr(last, "activation", last)   # Dense(..., activation=...) counts too

    def _loss_from_name(self, name):
        last = self._last_layer()
        table = {
            "categorical_crossentropy": losses.ProbabilityCrossEntropy
            if isinstance(last, Softmax) else losses.CrossEntropyLoss,
            "binary_crossentropy": losses.BCELoss
            if isinstance(last, Sigmoid) else losses.BCEWithLogitsLoss,
            "mse": losses.MSELoss, "mean_squared_error": losses.MSELoss,
            "mae": losses.L1Loss, "mean_absolute_error": losses.L1Loss,
        }
        table["sparse_categorical_crossentropy"] = table["categorical_crossentropy"]
        if name not in table:
            raise ValueError(f"unknown loss {name!r}; use an nnfast.nn loss or one of "
                             f"{sorted(table)}")
        return table[name]()

    def _build_optimizer(self):
        cls, lr = _OPTIMIZERS[self.compiled.optimizer_name.lower()]
        self.compiled.optimizer = cls(self.parameters(), lr=lr)

    def _require_compiled(self, who):
        if self.compiled is None:
            raise RuntimeError(f"{who}: call model.compile(optimizer, loss) first")

    def _binary_threshold(self):
        return 0.0 if isinstance(self.compiled.loss, losses.BCEWithLogitsLoss) else 0.5

    # ------------------------------------------------------------------ training
    def train_on_batch(self, x, y):
        """One optimizer step on (x, y); returns (loss, correct predictions). A non-finite loss
        raises FloatingPointError before the step. Under several ranks (nnfast.distributed)
        each passes its own batch and the gradients are averaged."""
        return self._train_step(x, y, None, True)

    def _train_step(self, x, y, weight, finite_only):
        """train_on_batch, with ``weight`` this rank's share of the global batch (None: an equal
        share); ``finite_only`` False trains on through a non-finite loss. A rank whose share is
        empty contributes zero gradients. Forward, loss and backward are replayed from a
        recording where the model's device has graphs (nnfast.graph)."""
        state = self.compiled
        loss = correct = 0
        if len(x):
            replayed = graph.graph_of(self).step(x, y) if self.backend.graphs else None
            if replayed is None:
                out, loss = self.forward_loss(self._on_device(x), y)
                _check_finite(loss, finite_only)
                self.backward_loss()
            else:
                out, loss = replayed
                _check_finite(loss, finite_only)
            if state.metrics:
                correct = correct_predictions(_first(out), _first(y), self._binary_threshold())
        optimizer = state.optimizer
        if isinstance(optimizer, distributed.DistributedOptimizer):
            optimizer.step(weight)
        else:
            distributed.average_gradients(optimizer.params, weight)
            optimizer.step()
        optimizer.zero_grad()
        return loss, correct

    def forward_loss(self, x, y):
        """The first part of a training step: (output, loss) on a batch x on the model's device
        and its targets y."""
        out = self.forward(x)
        return out, self.compiled.loss(out, y)

    def backward_loss(self):
        """The second part: the parameters' gradients of the loss forward_loss computed."""
        self.backward_parameters(self.compiled.loss.backward())

    def fit(self, x, y, epochs=1, batch_size=32, shuffle=True, validation_data=None,
            validation_split=0.0, callbacks=None, verbose=1, initial_epoch=0,
            terminate_on_nan=True):
        """Train the epochs ``initial_epoch`` ... ``epochs - 1`` over (x, y) in mini-batches;
        returns a History.

        ``validation_split`` holds out the last fraction of the samples (before shuffling, as
        Keras does); ``validation_data`` is an (x_val, y_val) pair. Images are used as given:
        divide uint8 pixels by 255 yourself. A float32 C-contiguous x has its batches gathered by
        the kernels' threads (data.take_rows); other dtypes are converted batch by batch.

        A non-finite loss stops training with FloatingPointError naming the epoch and batch
        (``terminate_on_nan=False`` trains on). Ctrl-C stops after the current batch and returns
        the History of the epochs finished. A ``callbacks.BackupAndRestore`` resumes a run that
        was killed exactly where its last backup was written.

        Under several ranks (nnfast.distributed.init() in a program started by mpirun), every
        rank passes the same (x, y): each epoch's shuffled order comes from rank 0, each global
        batch of ``batch_size`` is split evenly across the ranks, the loss and metrics are
        averaged over all of them, and only rank 0 prints and writes files."""
        self._require_compiled("fit")
        x, y = _check_inputs(x, self.by_output(y, "fit"), "fit")
        if batch_size < 1 or epochs < 0 or initial_epoch < 0:
            raise ValueError("fit needs batch_size >= 1, epochs >= 0 and initial_epoch >= 0")
        x, y, validation_data = self._split_validation(x, y, validation_data, validation_split)
        if validation_data is not None:
            validation_data = (validation_data[0], self.by_output(validation_data[1], "fit"))
        if not self.is_built():   # Dense layers learn their input size
            self._build_from_shape([a.shape[1:] for a in x] if isinstance(x, list)
                                   else x.shape[1:])
        if self.optimizer is None:
            self._build_optimizer()
        x = self._uploaded(x)
        callbacks = list(callbacks or [])
        for cb in callbacks:
            cb.model = self
        self.history, self.stop_training = History(), False
        if distributed.world_size() > 1:
            distributed.broadcast_parameters(self)
            verbose = verbose if distributed.is_root() else 0
        for cb in callbacks:
            cb.on_train_begin()
        resumed = [p for cb in callbacks if (p := cb.resume_point(callbacks)) is not None]
        progress = resumed[0] if resumed else FitProgress(epoch=initial_epoch)
        self.history.history, self.history.epoch = progress.history, progress.epochs_run
        progress.callbacks, self.fit_progress = callbacks, progress
        self.zero_grad()
        run = dict(x=x, y=y, epochs=epochs, batch_size=batch_size, shuffle=shuffle,
                   callbacks=callbacks, verbose=verbose, finite_only=terminate_on_nan)
        try:
            with _Interrupt() as interrupt:
                for epoch in range(progress.epoch, epochs):
                    logs = self._fit_epoch(epoch, progress, interrupt, **run)
                    if logs is None:   # interrupted
                        break
                    if validation_data is not None:
                        val = self.evaluate(*validation_data, batch_size=max(batch_size, 256))
                        logs.update({"val_" + k: v for k, v in val.items()})
                    self._end_epoch(epoch, logs, callbacks, progress.bar)
                    if self.stop_training:
                        break
                for cb in callbacks:
                    cb.on_train_end()
        finally:
            self.fit_progress = None
            self.eval()
        return self.history

    def _split_validation(self, x, y, validation_data, validation_split):
        if not 0.0 <= validation_split < 1.0:
            raise ValueError(f"validation_split must be in [0, 1), got {validation_split}")
        if validation_split and validation_data is None:
            n = _count(x)
            split = n - int(n * validation_split)
            if split < 1 or split == n:
                raise ValueError("validation_split leaves no training or no validation samples")
            head, tail = slice(0, split), slice(split, n)
            return _rows(x, head), _rows(y, head), (_rows(x, tail), _rows(y, tail))
        return x, y, validation_data

    def _fit_epoch(self, epoch, progress, interrupt, x, y, epochs, batch_size, shuffle,
                   callbacks, verbose, finite_only):
        """One epoch's batches, from ``progress.step`` when resuming inside it. Returns the
        epoch's logs (over all ranks), or None when Ctrl-C stopped it."""
        self.train()
        n, world = _count(x), distributed.world_size()
        if progress.epoch != epoch or progress.step == 0:
            progress.start_epoch(epoch, None)
            for cb in callbacks:
                cb.on_epoch_begin(epoch)
            order = _rng.generator().permutation(n) if shuffle else None
            if world > 1:   # rank 0's order, and every batch an index array to split
                order = distributed.broadcast(np.arange(n) if order is None else order)
            progress.order = order
        progress.bar = bar = ProgressBar(epoch, epochs, math.ceil(n / batch_size), verbose)
        logs = {}
        for step, idx in enumerate(batch_slices(n, batch_size, progress.order), 1):
            if step <= progress.step:
                continue
            share, weight = idx, None
            if world > 1:
                share = idx[distributed.shard(len(idx))]
                weight = len(share) / len(idx)
            xb, yb = self._batch(x, share), _rows(y, share)
            try:
                loss, correct = self._train_step(xb, yb, weight, finite_only)
            except FloatingPointError as e:
                raise FloatingPointError(f"fit, epoch {epoch + 1}, batch {step}: {e}; "
                                         "fit(terminate_on_nan=False) trains on") from None
            progress.add(step, loss * _count(xb), correct, _count(xb))
            if progress.totals[2]:
                logs = self._logs(*progress.totals)
                bar.update(step, logs)
            for cb in callbacks:
                cb.on_train_batch_end(step - 1, logs)
            if interrupt.requested:
                return None
        return self._logs(*distributed.allreduce(progress.totals, "sum"))

    def _on_device(self, x):
        """A batch (an array or a list of them) on the model's device: NumPy batches are copied
        there (nothing to do on the CPU); arrays already there are used as they are."""
        backend = self.backend
        return x if backend.host else _each(x, lambda a: backend.to_device(a, np.float32))

    def _uploaded(self, x):
        """The training inputs on the model's device, copied once, where that is a GPU and they
        fit in its memory (fit then gathers each batch there); else x as it is."""
        if self.backend.host or isinstance(x, list):
            return x
        try:
            return self.backend.to_device(x, np.float32)
        except (MemoryError, RuntimeError):   # too large for the device: batch by batch
            return x

    def _batch(self, x, index):
        """The float32 rows ``index`` of x: gathered by the kernels where x is already on the
        model's device, else from the host."""
        if not self.backend.host and self.backend.is_array(x):
            return self.backend.gather_rows(x, _index_array(index))
        return _gathered(x, index)

    def _end_epoch(self, epoch, logs, callbacks, bar):
        bar.finish(logs)
        for cb in callbacks:
            cb.on_epoch_end(epoch, logs)
        self.history.record(epoch, logs)

    def _logs(self, total_loss, total_correct, seen):
        logs = {"loss": float(total_loss / seen)}
        if "accuracy" in self.metrics:
            logs["accuracy"] = float(total_correct / seen)
        return logs

    # ------------------------------------------------------------------ inference
    def _eval_batches(self, x, batch_size):
        """Outputs of each mini-batch in eval mode (the training mode is put back after)."""
        was_training = self.training
        self.eval()
        try:
            for idx in batch_slices(_count(x), batch_size):
                with no_grad():
                    out = self.forward(self._on_device(_as_batch(_rows(x, idx))))
                yield idx, out
        finally:
            self.train(was_training)

    def evaluate(self, x, y, batch_size=32, verbose=0, return_dict=False):
        """The mean loss and metrics over (x, y): Scores, ``(loss, accuracy)`` as Keras's list
        that also reads by name (``["accuracy"]``); a plain dict with ``return_dict``."""
        self._require_compiled("evaluate")
        x, y = _check_inputs(x, self.by_output(y, "evaluate"), "evaluate")
        share = distributed.shard(_count(x))         # all of x on a lone rank
        x, y = _rows(x, share), _rows(y, share)
        total_loss, total_correct = 0.0, 0
        for idx, out in self._eval_batches(x, batch_size):
            yb = _rows(y, idx)
            total_loss += self.compiled.loss(out, yb) * _count(yb)
            if self.metrics:
                total_correct += correct_predictions(_first(out), _first(yb),
                                                     self._binary_threshold())
        result = self._logs(*distributed.allreduce([total_loss, total_correct, _count(x)],
                                                   "sum"))
        if verbose:
            print(" - ".join(f"{k}: {v:.4f}" for k, v in result.items()), file=sys.stderr)
        return result if return_dict else Scores(result)

    def predict(self, x, batch_size=32):
        """The model's outputs for x (eval mode), as one float32 NumPy array (a list of them for
        a model of several outputs)."""
        x, _ = _check_inputs(x, None, "predict")
        x = _rows(x, distributed.shard(_count(x)))   # all of x on a lone rank
        pieces = [_each(out, self.backend.to_host) for _, out in self._eval_batches(x, batch_size)]
        if pieces and isinstance(pieces[0], list):
            return [distributed.gather([p[i] for p in pieces]) for i in range(len(pieces[0]))]
        return distributed.gather(pieces)

    # ------------------------------------------------------------------ summary
    def summary_layers(self):
        """The rows of ``summary``: this model's layers (its children, for a subclass)."""
        return list(self.children()) or [self]

    def step_of(self, layer):
        """The fusion step that runs ``layer`` (Sequential's plan), or None."""
        return None

    def known_input_shape(self):
        """One sample's input shape when the model knows it before seeing data (an ``Input``
        or an ``input_shape`` first layer), else None."""
        return None

    summary_column = "Fused as"   # the table's last column (a graph model: "Connected to")

    def summary_rows(self, input_shape):
        """(name (type), output shape or None, parameters, last column) per layer, the shapes
        followed from one sample's ``input_shape`` (None: unknown)."""
        layers = [layer for layer in self.summary_layers() if not isinstance(layer, Input)]
        rows, shape = [], input_shape
        for name, layer in zip(layer_names(layers), layers):
            if shape is not None:
                shape = (None, *layer.output_shape(shape[1:]))
            step = self.step_of(layer)
            fused = step.name if step is not None and step.fused else ""
            count = layer.count_params() + layer.count_non_trainable()
            rows.append((f"{name} ({type(layer).__name__})", shape, count, fused))
        return rows

    def summary(self, input_shape=None, print_fn=print):
        """Print (and return) a Keras-style table: layer, output shape, parameter count, and the
        fused step that runs the layer, if any (for a graph model, the layers it reads).

        ``input_shape`` is one sample's shape, e.g. (784,) or (1, 28, 28); it is needed for output
        shapes and to build Dense layers whose input size is not known yet; without it, the
        model's own (``known_input_shape``) is used."""
        if input_shape is None:
            input_shape = self.known_input_shape()
        if input_shape is not None:
            self._build_from_shape(tuple(input_shape))
        rows = self.summary_rows(None if input_shape is None else (None, *input_shape))
        rows = [(a, "?" if b is None else "(" + ", ".join(map(str, b)) + ")", f"{c:,}", d)
                for a, b, c, d in rows]
        total, frozen = self.count_params(), self.count_non_trainable()
        width = (max([30] + [len(row[0]) + 2 for row in rows]), 22, 10, 26)
        line = "=" * sum(width)
        text = [f'Model: "{type(self).__name__.lower()}"', "_" * sum(width),
                f"{'Layer (type)':<{width[0]}}{'Output Shape':<{width[1]}}"
                f"{'Param #':>{width[2]}}  {self.summary_column}", line]
        text += [f"{a:<{width[0]}}{b:<{width[1]}}{c:>{width[2]}}  {d}".rstrip()
                 for a, b, c, d in rows]
        text += [line, f"Total params: {total + frozen:,}", f"Trainable params: {total:,}",
                 f"Non-trainable params: {frozen:,}", "_" * sum(width)]
        table = "\n".join(text)
        if print_fn is not None:
            print_fn(table)
        return table

    def _build_from_shape(self, input_shape):
        """Run one zero sample through the model in eval mode (builds lazy layers);
        ``input_shape`` is one sample's shape, or a list of them for several inputs."""
        was_training = self.training
        self.eval()
        several = isinstance(input_shape, list)
        zeros = [np.zeros((1, *s), dtype=np.float32) for s in
                 (input_shape if several else [input_shape])]
        try:
            with no_grad():
                self.forward(self._on_device(zeros if several else zeros[0]))
        finally:
            self.train(was_training)

    def _build_if_known(self):
        """Build the lazy layers when the model knows its input shape (``known_input_shape``)."""
        if not self.is_built() and self.known_input_shape() is not None:
            self._build_from_shape(self.known_input_shape())

    # ------------------------------------------------------------------ persistence
    def save(self, path, include_optimizer=True):
        """Architecture, weights and compile state in one file (see ``nnfast.load``); the
        optimizer's state too unless ``include_optimizer`` is False. Saved during fit (by
        ModelCheckpoint, BackupAndRestore), the file also holds where training is."""
        self._build_if_known()
        if not self.is_built():
            raise ValueError("save: the model has layers whose input size is not known yet "
                             "(their weights do not exist): call it on a batch, or give its "
                             "first layer input_shape / an nn.Input")
        progress = self.fit_progress
        io.save_model(self, path, include_optimizer, progress,
                      progress.callbacks if progress else ())

    def restore_checkpoint(self, path, callbacks=()):
        """Put back a checkpoint written during fit into this compiled model: weights and
        buffers, optimizer state, nnfast's RNG state and ``callbacks``' states (the same
        callbacks, in the same order, as the run that wrote it). Returns its FitProgress."""
        progress, order = io.restore_checkpoint(self, path, callbacks)
        try:
            return FitProgress.from_json(progress, order)
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise io.ModelFileError(f"{path}: invalid training progress ({e!r})") from e

    def save_weights(self, path):
        io.save_weights(self, path)

    def load_weights(self, path):
        io.load_weights(self, path)


class Sequential(Model):
    """``Sequential(layer1, layer2, ...)`` or ``Sequential([layers])``: the layers applied in order
    (PyTorch's container, Keras's model), run by a fusion plan (nn/fusion.py) that ``fuse=False``
    turns off. Indexing, slicing (a new Sequential sharing the same layer objects), ``len``,
    iteration, ``add`` and ``pop``."""

    def __init__(self, *layers, fuse=True):
        if len(layers) == 1 and isinstance(layers[0], (list, tuple)):
            layers = layers[0]
        self.layers = []
        self.fuse = bool(fuse)
        self._plan = self._ran = None
        for layer in layers:
            self.add(layer)

    def add(self, layer):
        if not isinstance(layer, Module):
            raise TypeError(f"Sequential.add expects a Module, got {type(layer).__name__}")
        self.layers.append(layer)
        return self

    def pop(self):
        """Remove and return the last layer."""
        if not self.layers:
            raise IndexError("pop from an empty Sequential")
        return self.layers.pop()

    def __getitem__(self, index):
        if isinstance(index, slice):
            return Sequential(self.layers[index], fuse=self.fuse)
        return self.layers[index]

    def __len__(self):
        return len(self.layers)

    def __iter__(self):
        return iter(self.layers)

    def named_children(self):
        """The layers named by their index, as PyTorch's Sequential ("0", "1", ...)."""
        return ((str(i), layer) for i, layer in enumerate(self.layers))

    def plan(self):
        """The fusion plan of the layers as they are now (made again when they change)."""
        plan = self._plan
        if plan is None or not plan.is_for(self.layers, self.fuse, self.backend):
            plan = self._plan = Plan(self.layers, self.fuse, self.backend)
        return plan

    def forward(self, x):
        self._ran = plan = self.plan()
        return plan.forward(x)

    def backward(self, grad_out):
        """The gradient at the input, through the plan the last forward ran."""
        return (self._ran or self.plan()).backward(grad_out, True)

    def backward_parameters(self, grad_out):
        """Backward for training: the parameter gradients only, without the input gradient
        nobody needs (which saves a product per step for a first Linear / Conv2d)."""
        (self._ran or self.plan()).backward(grad_out, False)

    def step_of(self, layer):
        return self.plan().step_of(layer)

    def summary_layers(self):
        return list(self.layers)

    def known_input_shape(self):
        return getattr(self.layers[0], "input_shape", None) if self.layers else None

    def output_shape(self, input_shape):
        for layer in self.layers:
            input_shape = layer.output_shape(input_shape)
        return input_shape

    def get_config(self):
        config = {"layers": [describe(layer) for layer in self.layers]}
        if not self.fuse:
            config["fuse"] = False
        return config

    @classmethod
    def from_config(cls, config):
        layers = config.get("layers")
        if not isinstance(layers, list):
            raise ValueError("a Sequential's config needs a list of layers")
        return cls([rebuild(entry) for entry in layers], fuse=config.get("fuse", True))

    def __repr__(self):
        inner = "".join(f"\n  ({i}): {layer!r}" for i, layer in enumerate(self.layers))
        return f"Sequential({inner}\n)"
