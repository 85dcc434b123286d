"""Keras-style training for any Module with forward/backward: compile, fit, evaluate, predict,
summary; History, callbacks (EarlyStopping) and the per-epoch progress bar."""
import math
import sys
import time

import numpy as np

from . import _rng
from .data import batch_slices, take_rows
from ._grad import no_grad


# ---------------------------------------------------------------------------------- callbacks
class History:
    """What ``fit`` returns: ``history`` maps "loss", "accuracy", "val_loss", ... to per-epoch
    lists; ``epoch`` lists the epoch indices run."""

    def __init__(self):
        self.history = {}
        self.epoch = []

    def record(self, epoch, logs):
        self.epoch.append(epoch)
        for key, value in logs.items():
            self.history.setdefault(key, []).append(value)


class Callback:
    """Base class: override any of the hooks; ``self.model`` is set by ``fit``."""

    model = None

    def on_train_begin(self, logs=None):
        pass

    def on_epoch_end(self, epoch, logs=None):
        pass

    def on_train_end(self, logs=None):
        pass


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for ``patience`` epochs;
    optionally put back the weights of the best epoch. ``mode`` "auto" minimises losses and
    maximises everything else (accuracy)."""

    def __init__(self, monitor="val_loss", patience=0, min_delta=0.0, mode="auto",
                 restore_best_weights=False, verbose=0):
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
        self.monitor, self.patience, self.min_delta = monitor, int(patience), abs(min_delta)
        self.restore_best_weights, self.verbose = restore_best_weights, verbose
        if mode == "auto":
            mode = "min" if "loss" in monitor else "max"
        self.sign = 1.0 if mode == "min" else -1.0
        self.stopped_epoch = None

    def on_train_begin(self, logs=None):
        self.best, self.best_weights, self.best_epoch, self.wait = math.inf, None, None, 0
        self.stopped_epoch = None

    def on_epoch_end(self, epoch, logs=None):
        if self.monitor not in logs:
            raise KeyError(f"EarlyStopping monitors {self.monitor!r}, which fit does not log "
                           f"(available: {sorted(logs)})")
        value = self.sign * logs[self.monitor]
        if value < self.best - self.min_delta:
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            return
        self.wait += 1
        if self.wait > self.patience:
            self.stopped_epoch = epoch
            self.model.stop_training = True
            if self.restore_best_weights and self.best_weights is not None:
                self.model.set_weights(self.best_weights)
            if self.verbose:
                print(f"Epoch {epoch + 1}: early stopping (best {self.monitor} at epoch "
                      f"{self.best_epoch + 1})", file=sys.stderr)


class ProgressBar:
    """One line per epoch on stderr: a bar while it runs, then loss, metrics and time."""

    def __init__(self, epoch, epochs, steps, verbose):
        self.steps, self.verbose, self.start, self.last = steps, verbose, time.perf_counter(), 0.0
        if verbose == 1:
            print(f"Epoch {epoch + 1}/{epochs}", file=sys.stderr)
        self.prefix = f"Epoch {epoch + 1}/{epochs} - " if verbose == 2 else ""

    @staticmethod
    def _format(logs):
        return " - ".join(f"{k}: {v:.4f}" for k, v in logs.items())

    def update(self, step, logs):
        now = time.perf_counter()
        if self.verbose != 1 or (now - self.last < 0.1 and step < self.steps):
            return
        self.last = now
        filled = int(30 * step / self.steps)
        bar = "=" * filled + (">" if filled < 30 else "") + "." * (29 - filled)
        sys.stderr.write(f"\r{step}/{self.steps} [{bar}] - {now - self.start:.1f}s - "
                         f"{self._format(logs)}")
        sys.stderr.flush()

    def finish(self, logs):
        elapsed = time.perf_counter() - self.start
        if self.verbose == 1:
            sys.stderr.write(f"\r{self.steps}/{self.steps} [{'=' * 30}] - {elapsed:.1f}s - "
                             f"{self._format(logs)}\n")
        elif self.verbose == 2:
            sys.stderr.write(f"{self.prefix}{elapsed:.1f}s - {self._format(logs)}\n")
        sys.stderr.flush()


# ---------------------------------------------------------------------------------- helpers
def correct_predictions(output, target, threshold):
    """How many rows of ``output`` predict ``target``: argmax for (N, C) outputs with C > 1
    (targets as labels or one-hot rows), ``output > threshold`` for binary outputs."""
    output, target = np.asarray(output), np.asarray(target)
    if output.ndim == 2 and output.shape[1] > 1:
        labels = target.argmax(axis=1) if target.ndim == 2 else target
        return int(np.sum(output.argmax(axis=1) == labels))
    predicted = output.reshape(len(output), -1) > threshold
    return int(np.sum(predicted == (target.reshape(len(target), -1) > 0.5)))


def _check_inputs(x, y, who):
    x = np.asarray(x)
    if x.dtype.kind not in "biuf":
        raise TypeError(f"{who}: x must be numeric, got dtype {x.dtype}")
    if len(x) == 0:
        raise ValueError(f"{who}: x is empty")
    if y is not None:
        y = np.asarray(y)
        if len(y) != len(x):
            raise ValueError(f"{who}: x has {len(x)} samples but y has {len(y)}")
    return x, y


def _as_batch(x):
    return np.ascontiguousarray(x, dtype=np.float32)


_METRIC_NAMES = {"accuracy": "accuracy", "acc": "accuracy"}


class TrainingMixin:
    """compile / fit / evaluate / predict / summary, mixed into Module."""

    # ------------------------------------------------------------------ compile
    def compile(self, optimizer="sgd", loss=None, metrics=None):
        """Set the optimizer (object or "sgd" / "adam" / "adamw"), the loss (object or a Keras
        name: "categorical_crossentropy", "sparse_categorical_crossentropy", "mse", "mae",
        "binary_crossentropy") and metrics (["accuracy"]).

        Keras names follow Keras's meaning: after a final Softmax (Sigmoid) layer the
        cross-entropies take probabilities; without one they take logits and use the fused,
        stable kernels."""
        from .nn.losses import Loss
        if loss is None:
            raise ValueError("compile needs a loss")
        self.loss_fn = loss if isinstance(loss, Loss) else self._loss_from_name(loss)
        self.loss_name = loss if isinstance(loss, str) else None
        self.metrics = []
        for m in metrics or []:
            if m not in _METRIC_NAMES:
                raise ValueError(f"unknown metric {m!r}; nnfast knows {sorted(_METRIC_NAMES)}")
            self.metrics.append(_METRIC_NAMES[m])
        self.optimizer_name = optimizer if isinstance(optimizer, str) else None
        self.optimizer = None if isinstance(optimizer, str) else optimizer
        if self.optimizer_name is not None:
            key = self.optimizer_name.lower()
            if key not in ("sgd", "adam", "adamw"):
                raise ValueError(f"unknown optimizer {optimizer!r}; use 'sgd', 'adam', 'adamw' "
                                 "or an nnfast.optim object")
            if self.is_built() and self.parameters():   # else fit builds it after a first batch
                self._build_optimizer()
        elif not self.is_built():
            raise ValueError("the model has Dense layers whose input size is not known yet, so "
                             "an optimizer made now would miss their weights: pass an optimizer "
                             "name (e.g. 'adam'), give Dense an input_dim, or call "
                             "model.summary(input_shape=...) before creating the optimizer")
        return self

    def _last_layer(self):
        layers = getattr(self, "layers", None)
        if not layers:
            return None
        last = layers[-1]
        return getattr(last, "activation", last)   # Dense(..., activation=...) counts too

    def _loss_from_name(self, name):
        from .nn import activations, losses
        last = self._last_layer()
        table = {
            "categorical_crossentropy": losses.ProbabilityCrossEntropy
            if isinstance(last, activations.Softmax) else losses.CrossEntropyLoss,
            "binary_crossentropy": losses.BCELoss
            if isinstance(last, activations.Sigmoid) else losses.BCEWithLogitsLoss,
            "mse": losses.MSELoss, "mean_squared_error": losses.MSELoss,
            "mae": losses.L1Loss, "mean_absolute_error": losses.L1Loss,
        }
        table["sparse_categorical_crossentropy"] = table["categorical_crossentropy"]
        if name not in table:
            raise ValueError(f"unknown loss {name!r}; use an nnfast.nn loss or one of "
                             f"{sorted(table)}")
        return table[name]()

    def _build_optimizer(self):
        from . import optim
        key = self.optimizer_name.lower()
        params = self.parameters()
        if key == "sgd":
            self.optimizer = optim.SGD(params, lr=0.01)        # Keras's default rate
        elif key == "adam":
            self.optimizer = optim.Adam(params, lr=1e-3)
        else:
            self.optimizer = optim.AdamW(params, lr=1e-3)

    def _require_compiled(self, who):
        if getattr(self, "loss_fn", None) is None:
            raise RuntimeError(f"{who}: call model.compile(optimizer, loss) first")

    def _binary_threshold(self):
        from .nn.losses import BCEWithLogitsLoss
        return 0.0 if isinstance(self.loss_fn, BCEWithLogitsLoss) else 0.5

    # ------------------------------------------------------------------ training
    def train_on_batch(self, x, y):
        """One optimizer step on (x, y); returns (loss, correct predictions)."""
        out = self.forward(x)
        loss = self.loss_fn(out, y)
        if not math.isfinite(loss):
            raise FloatingPointError(
                f"the loss became {loss}: training diverged (lower the learning rate, check the "
                "inputs for NaN / inf, or scale them, e.g. divide images by 255)")
        self.backward_parameters(self.loss_fn.backward())
        self.optimizer.step()
        self.optimizer.zero_grad()
        correct = correct_predictions(out, y, self._binary_threshold()) if self.metrics else 0
        return loss, correct

    def fit(self, x, y, epochs=1, batch_size=32, shuffle=True, validation_data=None,
            validation_split=0.0, callbacks=None, verbose=1):
        """Train for ``epochs`` passes over (x, y) in mini-batches; returns a History.

        ``validation_split`` holds out the last fraction of the samples (before shuffling, as
        Keras does); ``validation_data`` is an (x_val, y_val) pair. Images are used as given:
        divide uint8 pixels by 255 yourself. A float32 C-contiguous x has its batches gathered by
        the kernels' threads (data.take_rows); other dtypes are converted batch by batch."""
        self._require_compiled("fit")
        x, y = _check_inputs(x, y, "fit")
        if batch_size < 1 or epochs < 0:
            raise ValueError("fit needs batch_size >= 1 and epochs >= 0")
        if not 0.0 <= validation_split < 1.0:
            raise ValueError(f"validation_split must be in [0, 1), got {validation_split}")
        if validation_split and validation_data is None:
            split = len(x) - int(len(x) * validation_split)
            if split < 1 or split == len(x):
                raise ValueError("validation_split leaves no training or no validation samples")
            validation_data = (x[split:], y[split:])
            x, y = x[:split], y[:split]
        if not self.is_built():
            self._build_from_shape(x.shape[1:])  # Dense layers learn their input size
        if self.optimizer is None:
            self._build_optimizer()
        callbacks = list(callbacks or [])
        for cb in callbacks:
            cb.model = self
        history, self.stop_training = History(), False
        self.history = history
        n = len(x)
        steps = math.ceil(n / batch_size)
        for cb in callbacks:
            cb.on_train_begin()
        self.zero_grad()
        rng = _rng.generator()
        for epoch in range(epochs):
            self.train()
            bar = ProgressBar(epoch, epochs, steps, verbose)
            order = rng.permutation(n) if shuffle else None
            total_loss, total_correct, seen = 0.0, 0, 0
            for step, idx in enumerate(batch_slices(n, batch_size, order), 1):
                xb, yb = _as_batch(take_rows(x, idx)), y[idx]
                loss, correct = self.train_on_batch(xb, yb)
                total_loss += loss * len(xb)
                total_correct += correct
                seen += len(xb)
                bar.update(step, self._logs(total_loss, total_correct, seen))
            logs = self._logs(total_loss, total_correct, seen)
            if validation_data is not None:
                val = self.evaluate(*validation_data, batch_size=max(batch_size, 256))
                logs.update({"val_" + k: v for k, v in val.items()})
            bar.finish(logs)
            history.record(epoch, logs)
            for cb in callbacks:
                cb.on_epoch_end(epoch, logs)
            if self.stop_training:
                break
        for cb in callbacks:
            cb.on_train_end()
        self.eval()
        return history

    def _logs(self, total_loss, total_correct, seen):
        logs = {"loss": total_loss / seen}
        if "accuracy" in self.metrics:
            logs["accuracy"] = total_correct / seen
        return logs

    # ------------------------------------------------------------------ inference
    def _eval_batches(self, x, batch_size):
        """Outputs of each mini-batch in eval mode (the training mode is put back after)."""
        was_training = self.training
        self.eval()
        try:
            for idx in batch_slices(len(x), batch_size):
                with no_grad():
                    out = self.forward(_as_batch(x[idx]))
                yield idx, out
        finally:
            self.train(was_training)

    def evaluate(self, x, y, batch_size=32, verbose=0):
        """{"loss": mean loss, "accuracy": ... (when compiled with it)} over (x, y)."""
        self._require_compiled("evaluate")
        x, y = _check_inputs(x, y, "evaluate")
        total_loss, total_correct = 0.0, 0
        for idx, out in self._eval_batches(x, batch_size):
            yb = y[idx]
            total_loss += self.loss_fn(out, yb) * len(out)
            if self.metrics:
                total_correct += correct_predictions(out, yb, self._binary_threshold())
        result = self._logs(total_loss, total_correct, len(x))
        if verbose:
            print(" - ".join(f"{k}: {v:.4f}" for k, v in result.items()), file=sys.stderr)
        return result

    def predict(self, x, batch_size=32):
        """The model's outputs for x (eval mode), as one float32 NumPy array."""
        x, _ = _check_inputs(x, None, "predict")
        return np.concatenate([out for _, out in self._eval_batches(x, batch_size)])

    # ------------------------------------------------------------------ summary
    def summary(self, input_shape=None, print_fn=print):
        """Print (and return) a Keras-style table: layer, output shape, parameter count.

        ``input_shape`` is one sample's shape, e.g. (784,) or (1, 28, 28); it is needed for output
        shapes and to build Dense layers whose input size is not known yet."""
        layers = list(getattr(self, "layers", [self]))
        if input_shape is not None:
            self._build_from_shape(tuple(input_shape))
        rows, counts, shape = [], {}, tuple(input_shape) if input_shape is not None else None
        for layer in layers:
            kind = type(layer).__name__
            counts[kind] = counts.get(kind, 0) + 1
            name = kind.lower() + ("" if counts[kind] == 1 else f"_{counts[kind] - 1}")
            if shape is not None:
                shape = tuple(layer.output_shape(shape))
            out = "?" if shape is None else "(None, " + ", ".join(map(str, shape)) + ")"
            rows.append((f"{name} ({kind})", out, f"{layer.count_params():,}"))
        total = self.count_params()
        width = (34, 26, 12)
        line = "=" * sum(width)
        text = [f'Model: "{type(self).__name__.lower()}"', "_" * sum(width),
                f"{'Layer (type)':<{width[0]}}{'Output Shape':<{width[1]}}{'Param #':>{width[2]}}",
                line]
        text += [f"{a:<{width[0]}}{b:<{width[1]}}{c:>{width[2]}}" for a, b, c in rows]
        text += [line, f"Total params: {total:,}", f"Trainable params: {total:,}",
                 "Non-trainable params: 0", "_" * sum(width)]
        table = "\n".join(text)
        if print_fn is not None:
            print_fn(table)
        return table

    def _build_from_shape(self, input_shape):
        """Run one zero sample through the model in eval mode (builds lazy layers)."""
        was_training = self.training
        self.eval()
        try:
            self.forward(np.zeros((1, *input_shape), dtype=np.float32))
        finally:
            self.train(was_training)
