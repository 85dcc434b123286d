"""What ``fit`` reports to and is steered by: History, Callback, EarlyStopping, and the per-epoch
progress bar."""
import math
import sys
import time


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
