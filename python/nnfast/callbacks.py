"""What ``fit`` reports to and is steered by: History, the callbacks (EarlyStopping,
ModelCheckpoint, CSVLogger, LearningRateScheduler, ReduceLROnPlateau, with Keras's arguments)
and the per-epoch progress bar."""
import inspect
import math
import os
import sys
import time

from . import distributed


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
    """Base class: override any of the hooks; ``self.model`` is set by ``fit``. ``logs`` holds
    the epoch's "loss", metrics and "val_" values (a batch's running ones in
    ``on_train_batch_end``)."""

    model = None

    def on_train_begin(self, logs=None):
        pass

    def on_epoch_begin(self, epoch, logs=None):
        pass

    def on_train_batch_end(self, batch, logs=None):
        pass

    def on_epoch_end(self, epoch, logs=None):
        pass

    def on_train_end(self, logs=None):
        pass

    def state_dict(self):
        """What a checkpoint written during fit keeps of this callback (JSON values, or lists of
        arrays); the callback's configuration is not part of it."""
        return {}

    def load_state_dict(self, state):
        pass

    def resume_point(self, callbacks):
        """Called once after on_train_begin: a FitProgress to resume fit from (having put the
        model, RNG and ``callbacks`` back as they were there), or None to start afresh."""
        return None


class Monitor:
    """A logged quantity to improve: ``mode`` "min" or "max", "auto" minimising losses and
    maximising everything else (accuracy); an improvement must beat the best by ``min_delta``."""

    def __init__(self, who, monitor, mode="auto", min_delta=0.0):
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
        if mode == "auto":
            mode = "min" if "loss" in monitor else "max"
        self.who, self.name, self.min_delta = who, monitor, abs(min_delta)
        self.sign = 1.0 if mode == "min" else -1.0
        self.reset()

    def reset(self):
        self.best = math.inf   # of sign * value

    def state_dict(self):
        return {"best": None if math.isinf(self.best) else self.best}

    def load_state_dict(self, state):
        self.best = math.inf if state["best"] is None else state["best"]

    def value(self, logs):
        if self.name not in logs:
            raise KeyError(f"{self.who} monitors {self.name!r}, which fit does not log "
                           f"(available: {sorted(logs)})")
        return logs[self.name]

    def improved(self, logs):
        """Whether this epoch's value beats the best (which it then becomes)."""
        value = self.sign * self.value(logs)
        if value < self.best - self.min_delta:
            self.best = value
            return True
        return False


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for ``patience`` epochs;
    optionally put back the weights of the best epoch."""

    def __init__(self, monitor="val_loss", patience=0, min_delta=0.0, mode="auto",
                 restore_best_weights=False, verbose=0):
        self.monitor = Monitor("EarlyStopping", monitor, mode, min_delta)
        self.patience = int(patience)
        self.restore_best_weights, self.verbose = restore_best_weights, verbose
        self.stopped_epoch = None

    def on_train_begin(self, logs=None):
        self.monitor.reset()
        self.best_weights, self.best_epoch, self.wait = None, None, 0
        self.stopped_epoch = None

    def state_dict(self):
        return {**self.monitor.state_dict(), "wait": self.wait, "best_epoch": self.best_epoch,
                "best_weights": self.best_weights}

    def load_state_dict(self, state):
        self.monitor.load_state_dict(state)
        self.wait, self.best_epoch = state["wait"], state["best_epoch"]
        self.best_weights = state["best_weights"]

    def on_epoch_end(self, epoch, logs=None):
        if self.monitor.improved(logs):
            self.best_epoch, self.wait = epoch, 0
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
                print(f"Epoch {epoch + 1}: early stopping (best {self.monitor.name} at epoch "
                      f"{self.best_epoch + 1})", file=sys.stderr)


class ModelCheckpoint(Callback):
    """Save the model (``model.save``, or ``save_weights`` with ``save_weights_only``) at the end
    of each epoch, or only when ``monitor`` improved with ``save_best_only``. ``filepath`` may
    name the epoch and logged values: "ckpt-{epoch:02d}-{val_loss:.3f}.nnf" (epochs from 1, as
    Keras). Each file is written atomically: a kill mid-save leaves the previous one intact."""

    def __init__(self, filepath, monitor="val_loss", verbose=0, save_best_only=False,
                 save_weights_only=False, mode="auto"):
        self.filepath, self.verbose = os.fspath(filepath), verbose
        self.save_best_only, self.save_weights_only = save_best_only, save_weights_only
        self.monitor = Monitor("ModelCheckpoint", monitor, mode)

    def on_train_begin(self, logs=None):
        self.monitor.reset()

    def state_dict(self):
        return self.monitor.state_dict()

    def load_state_dict(self, state):
        self.monitor.load_state_dict(state)

    def on_epoch_end(self, epoch, logs=None):
        if self.save_best_only and not self.monitor.improved(logs):
            return
        path = self.filepath.format(epoch=epoch + 1, **logs)
        (self.model.save_weights if self.save_weights_only else self.model.save)(path)
        if self.verbose:
            print(f"Epoch {epoch + 1}: saved {path}", file=sys.stderr)


class CSVLogger(Callback):
    """One CSV row per epoch: the epoch (from 0, as Keras) and every logged value, sorted by
    name, under a header row (not repeated when ``append`` continues a file)."""

    def __init__(self, filename, separator=",", append=False):
        self.filename, self.separator, self.append = os.fspath(filename), separator, append
        self.file = self.keys = None

    def on_train_begin(self, logs=None):
        if not distributed.is_root():   # rank 0 writes the file (nnfast.distributed)
            return
        continuing = self.append and os.path.exists(self.filename) and os.path.getsize(
            self.filename) > 0
        self.file = open(self.filename, "a" if self.append else "w", newline="")
        self.keys = [] if continuing else None

    def on_epoch_end(self, epoch, logs=None):
        if self.file is None:
            return
        if self.keys is None or not self.keys:
            new_file = self.keys is None
            self.keys = sorted(logs)
            if new_file:
                self.file.write(self.separator.join(["epoch", *self.keys]) + "\n")
        self.file.write(self.separator.join([str(epoch)] + [repr(float(logs[k])) for k in
                                                            self.keys]) + "\n")
        self.file.flush()

    def on_train_end(self, logs=None):
        if self.file is not None:
            self.file.close()
            self.file = None


class LearningRateScheduler(Callback):
    """Keras's: at each epoch's start, the optimizer's rate becomes ``schedule(epoch, lr)``
    (or ``schedule(epoch)``); the rate is logged as "learning_rate"."""

    def __init__(self, schedule, verbose=0):
        self.schedule, self.verbose = schedule, verbose
        try:
            self.arguments = len(inspect.signature(schedule).parameters)
        except (TypeError, ValueError):
            self.arguments = 2

    def on_epoch_begin(self, epoch, logs=None):
        optimizer = self.model.optimizer
        lr = (self.schedule(epoch, optimizer.lr) if self.arguments >= 2
              else self.schedule(epoch))
        lr = float(lr)
        if not math.isfinite(lr):
            raise ValueError(f"LearningRateScheduler: the schedule gave {lr} at epoch {epoch}")
        optimizer.lr = lr
        if self.verbose:
            print(f"Epoch {epoch + 1}: learning rate {lr:.6g}", file=sys.stderr)

    def on_epoch_end(self, epoch, logs=None):
        logs["learning_rate"] = self.model.optimizer.lr


class ReduceLROnPlateau(Callback):
    """Keras's: multiply the optimizer's rate by ``factor`` when ``monitor`` has not improved by
    ``min_delta`` for ``patience`` epochs, then wait ``cooldown`` epochs; never below
    ``min_lr``. The rate is logged as "learning_rate"."""

    def __init__(self, monitor="val_loss", factor=0.1, patience=10, verbose=0, mode="auto",
                 min_delta=1e-4, cooldown=0, min_lr=0.0):
        if not 0 < factor < 1:
            raise ValueError(f"ReduceLROnPlateau needs 0 < factor < 1, got {factor}")
        self.monitor = Monitor("ReduceLROnPlateau", monitor, mode, min_delta)
        self.factor, self.patience, self.verbose = factor, patience, verbose
        self.cooldown, self.min_lr = cooldown, min_lr

    def on_train_begin(self, logs=None):
        self.monitor.reset()
        self.wait = self.cooldown_counter = 0

    def state_dict(self):
        return {**self.monitor.state_dict(), "wait": self.wait,
                "cooldown_counter": self.cooldown_counter}

    def load_state_dict(self, state):
        self.monitor.load_state_dict(state)
        self.wait, self.cooldown_counter = state["wait"], state["cooldown_counter"]

    def on_epoch_end(self, epoch, logs=None):
        self.monitor.value(logs)   # KeyError for a name fit does not log
        optimizer = self.model.optimizer
        logs["learning_rate"] = optimizer.lr
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if self.monitor.improved(logs):
            self.wait = 0
        elif self.cooldown_counter == 0:
            self.wait += 1
            if self.wait >= self.patience and optimizer.lr > self.min_lr:
                optimizer.lr = max(optimizer.lr * self.factor, self.min_lr)
                self.cooldown_counter, self.wait = self.cooldown, 0
                if self.verbose:
                    print(f"Epoch {epoch + 1}: ReduceLROnPlateau reducing the learning rate to "
                          f"{optimizer.lr:.6g}", file=sys.stderr)


class TerminateOnNaN(Callback):
    """Keras's: stop training (without an error) after a batch whose loss is NaN or infinite;
    for ``fit(..., terminate_on_nan=False)``, whose default raises instead."""

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            print(f"Batch {batch + 1}: the loss is {loss}, terminating training", file=sys.stderr)
            self.model.stop_training = True


class BackupAndRestore(Callback):
    """Keras's: back the training run up in ``backup_dir`` (at each epoch's start, or every
    ``save_freq`` batches), and when fit starts with a backup there, resume from it: weights,
    optimizer state, epoch and batch, nnfast's RNG state (shuffling, dropout) and the other
    callbacks' states, so that a run killed at any moment and started again ends with the
    weights an uninterrupted run has, bit for bit. The backup is deleted when fit ends
    (``delete_checkpoint``). Give fit the same data, batch size and callbacks when resuming."""

    def __init__(self, backup_dir, save_freq="epoch", delete_checkpoint=True):
        if save_freq != "epoch" and (isinstance(save_freq, bool) or not isinstance(save_freq, int)
                                     or save_freq < 1):
            raise ValueError(f"save_freq must be 'epoch' or a number of batches >= 1, got "
                             f"{save_freq!r}")
        self.backup_dir, self.save_freq = os.fspath(backup_dir), save_freq
        self.delete_checkpoint = delete_checkpoint
        self.path = os.path.join(self.backup_dir, "backup.nnf")
        self.batches = 0

    def resume_point(self, callbacks):
        if not os.path.exists(self.path):
            return None
        return self.model.restore_checkpoint(self.path, callbacks)

    def _backup(self):
        if distributed.is_root():
            os.makedirs(self.backup_dir, exist_ok=True)
        self.model.save(self.path)

    def on_epoch_begin(self, epoch, logs=None):
        if self.save_freq == "epoch":
            self._backup()

    def on_train_batch_end(self, batch, logs=None):
        self.batches += 1
        if self.save_freq != "epoch" and self.batches % self.save_freq == 0:
            self._backup()

    def on_train_end(self, logs=None):
        if self.delete_checkpoint and distributed.is_root() and os.path.exists(self.path):
            os.unlink(self.path)


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
