"""Callbacks, spelled and called as in Keras: the Callback base class with the on_* hooks, History,
and Keras' training callbacks (EarlyStopping, ModelCheckpoint, TerminateOnNaN, LearningRateScheduler,
ReduceLROnPlateau, CSVLogger, LambdaCallback), with Keras' arguments and behaviour."""

from __future__ import annotations

import csv
import inspect
import math
import numbers
import os
import warnings
from collections.abc import Callable, Iterable
from typing import IO, Any, cast

import numpy as np

from . import _files, _formats
from ._spec import check_bool, check_choice, check_number
from .errors import FileAccessError, InvalidArgumentError

__all__ = ["Callback", "History", "CallbackList", "EarlyStopping", "ModelCheckpoint", "TerminateOnNaN",
           "LearningRateScheduler", "ReduceLROnPlateau", "CSVLogger", "LambdaCallback"]

_BATCH_HOOKS = (
    "on_batch_begin", "on_batch_end", "on_train_batch_begin", "on_train_batch_end",
    "on_test_batch_begin", "on_test_batch_end", "on_predict_batch_begin", "on_predict_batch_end",
)


class Callback:
    """Base class: override the hooks you need. `self.model` and `self.params` are set by fit()."""

    def __init__(self) -> None:
        # The model fit() (evaluate(), predict()) runs, a Sequential; None until set_model().
        self.model: Any = None
        self.params: dict[str, Any] = {}

    def set_model(self, model: Any) -> None:
        self.model = model

    def set_params(self, params: dict[str, Any]) -> None:
        self.params = params

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None: ...
    def on_train_end(self, logs: dict[str, Any] | None = None) -> None: ...
    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None: ...
    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None: ...
    def on_test_begin(self, logs: dict[str, Any] | None = None) -> None: ...
    def on_test_end(self, logs: dict[str, Any] | None = None) -> None: ...
    def on_predict_begin(self, logs: dict[str, Any] | None = None) -> None: ...
    def on_predict_end(self, logs: dict[str, Any] | None = None) -> None: ...

    def on_train_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self.on_batch_begin(batch, logs)

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self.on_batch_end(batch, logs)

    def on_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None: ...
    def on_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None: ...
    def on_test_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None: ...
    def on_test_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None: ...
    def on_predict_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None: ...
    def on_predict_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None: ...

    def wants_batches(self) -> bool:
        """True when a batch-level hook is overridden: fit then runs one step per backend call."""
        return any(getattr(type(self), hook) is not getattr(Callback, hook) for hook in _BATCH_HOOKS)


class History(Callback):
    """Records each epoch's logs: `history` maps each name to its per-epoch floats; `epoch` lists epochs."""

    def __init__(self) -> None:
        super().__init__()
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.epoch = []

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(value)
        if self.model is not None:
            self.model.history = self


def checked(callbacks: Any) -> list[Callback]:
    """`callbacks` as a list, refusing anything but a list or tuple of Callback objects (or None)."""
    if callbacks is None:
        return []
    if isinstance(callbacks, Callback) or not isinstance(callbacks, (list, tuple)):
        raise InvalidArgumentError("callbacks", callbacks, "a list of polynn.callbacks.Callback objects")
    for callback in callbacks:
        if not isinstance(callback, Callback):
            raise InvalidArgumentError("callbacks", callback, "polynn.callbacks.Callback objects in the list")
    return list(callbacks)


class CallbackList:
    """Calls every callback's hook in order."""

    def __init__(self, callbacks: Iterable[Callback], model: Any, params: dict[str, Any]) -> None:
        self.callbacks = checked(callbacks)
        for callback in self.callbacks:
            callback.set_model(model)
            callback.set_params(params)

    def wants_batches(self) -> bool:
        return any(c.wants_batches() for c in self.callbacks)

    def __getattr__(self, hook: str) -> Callable[..., None]:
        if not hook.startswith("on_"):
            raise AttributeError(hook)

        def call(*args: Any, **kwargs: Any) -> None:
            for callback in self.callbacks:
                getattr(callback, hook)(*args, **kwargs)

        return call


def _check_count(owner: str, name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise InvalidArgumentError(name, value, "an integer >= 0", owner=owner)
    return int(value)


# Metric names (after "val_") that improve upwards / downwards, for mode="auto".
_UP = ("acc", "auc", "precision", "recall")
_DOWN = ("loss", "error", "crossentropy", "hinge", "divergence", "mse", "mae", "mape", "msle")


class _MonitorCallback(Callback):
    """A callback watching one logged quantity: Keras' MonitorCallback (mode, min_delta, baseline)."""

    def __init__(self, monitor: str = "val_loss", mode: str = "auto", baseline: float | None = None,
                 min_delta: float = 0, baseline_name: str = "baseline") -> None:
        super().__init__()
        owner = type(self).__name__
        if not isinstance(monitor, str) or not monitor:
            raise InvalidArgumentError("monitor", monitor, "the name of a logged quantity, e.g. 'val_loss'",
                                       owner=owner)
        self.monitor = monitor
        self.mode = check_choice(owner, "mode", mode, ("auto", "min", "max"))
        self.best: float | None = None if baseline is None else check_number(owner, baseline_name, baseline,
                                                                              engine=False)
        self.min_delta = abs(check_number(owner, "min_delta", min_delta, engine=False))
        self.monitor_op: Any = None  # np.less or np.greater, once the mode is known

    def _set_monitor_op(self) -> None:
        mode = self.mode
        if mode == "auto":
            name = self.monitor.removeprefix("val_").lower()
            if name == "loss" or any(word in name for word in _DOWN):
                mode = "min"
            elif any(word in name for word in _UP):
                mode = "max"
            else:
                raise InvalidArgumentError(
                    "mode", "auto", f"'min' or 'max': polynn cannot tell whether {self.monitor!r} should go up or down",
                    owner=type(self).__name__)
        self.monitor_op = np.less if mode == "min" else np.greater
        if mode == "min":
            self.min_delta = -abs(self.min_delta)

    def _is_improvement(self, value: float, reference: float | None) -> bool:
        # NaN or inf is never the best (Keras starts from an infinite best, which NaN never beats).
        if not math.isfinite(value):
            return False
        if reference is None:
            return True
        return bool(self.monitor_op(value - self.min_delta, reference))

    def _monitor_value(self, logs: dict[str, Any] | None, what: str) -> Any:
        value = (logs or {}).get(self.monitor)
        if value is None:
            warnings.warn(f"{what} conditioned on metric `{self.monitor}` which is not available. "
                          f"Available metrics are: {','.join(logs or {})}", stacklevel=3)
        return value


class EarlyStopping(_MonitorCallback):
    """Stop training once `monitor` has not improved by more than min_delta for `patience` epochs.

    baseline: training stops after `patience` epochs without beating it. restore_best_weights: at
    the end, the weights of the best epoch are set back. start_from_epoch: epochs before this one
    are not watched (warm-up). As keras.callbacks.EarlyStopping.
    """

    def __init__(self, monitor: str = "val_loss", min_delta: float = 0, patience: int = 0, verbose: int = 0,
                 mode: str = "auto", baseline: float | None = None, restore_best_weights: bool = False,
                 start_from_epoch: int = 0) -> None:
        super().__init__(monitor, mode, min_delta=min_delta)
        self.patience = _check_count("EarlyStopping", "patience", patience)
        self.verbose = verbose
        self.baseline = None if baseline is None else check_number("EarlyStopping", "baseline", baseline, engine=False)
        self.restore_best_weights = check_bool("EarlyStopping", "restore_best_weights", restore_best_weights)
        self.start_from_epoch = _check_count("EarlyStopping", "start_from_epoch", start_from_epoch)
        self.wait = 0
        self.stopped_epoch = 0
        self.best_weights: list[np.ndarray] | None = None
        self.best_epoch = 0

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.wait = 0
        self.stopped_epoch = 0
        self.best = None
        self.best_weights = None
        self.best_epoch = 0

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self.monitor_op is None:
            self._set_monitor_op()
        current = self._monitor_value(logs, "Early stopping")
        if current is None or epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None and _finite(weights := self.model.get_weights()):
            self.best_weights = weights
            self.best_epoch = epoch
        self.wait += 1
        if self._is_improvement(current, self.best):
            self.best = current
            self.best_epoch = epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            if self.baseline is None or self._is_improvement(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        if self.stopped_epoch > 0 and self.verbose > 0:
            _say(self.model, f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose > 0:
                _say(self.model, f"Restoring model weights from the end of the best epoch: {self.best_epoch + 1}.")
            self.model.set_weights(self.best_weights)


class ModelCheckpoint(_MonitorCallback):
    """Save the model (or its weights) every epoch, or every `save_freq` batches.

    filepath may hold str.format fields filled with epoch (1-based), batch (1-based, batch saves)
    and the logs, e.g. "ckpt-{epoch:02d}-{val_loss:.3f}.safetensors"; a name ending in '.keras' (or in
    '.weights.h5' with save_weights_only) writes Keras 3's format instead. save_best_only writes only
    when `monitor` improves; initial_value_threshold is the value to beat first. Files are written
    with model.save / model.save_weights, atomically. As keras.callbacks.ModelCheckpoint.
    """

    def __init__(self, filepath: str | os.PathLike[str], monitor: str = "val_loss", verbose: int = 0,
                 save_best_only: bool = False, save_weights_only: bool = False, mode: str = "auto",
                 save_freq: str | int = "epoch", initial_value_threshold: float | None = None) -> None:
        super().__init__(monitor, mode, initial_value_threshold, baseline_name="initial_value_threshold")
        self.filepath = os.fspath(filepath)
        self.verbose = verbose
        self.save_best_only = check_bool("ModelCheckpoint", "save_best_only", save_best_only)
        self.save_weights_only = check_bool("ModelCheckpoint", "save_weights_only", save_weights_only)
        # As Keras's: '.weights.h5' for weights only, '.keras' for the model (or a safetensors name),
        # checked now rather than at the first save.
        _formats.check_writable_name(self.filepath, "ModelCheckpoint", weights=self.save_weights_only)
        if save_freq != "epoch" and (isinstance(save_freq, bool) or not isinstance(save_freq, numbers.Integral)
                                     or save_freq <= 0):
            raise InvalidArgumentError("save_freq", save_freq, "'epoch' or an integer number of batches > 0",
                                       owner="ModelCheckpoint")
        self.save_freq = save_freq
        self._batches_seen_since_last_saving = 0
        self._last_batch_seen: int | None = None
        self._current_epoch = 0

    def wants_batches(self) -> bool:
        return self.save_freq != "epoch"

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._current_epoch = epoch

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if isinstance(self.save_freq, str):  # "epoch", the one string __init__ accepts
            return
        # A batch index that did not move forward starts a new epoch.
        if self._last_batch_seen is None or batch <= self._last_batch_seen:
            self._batches_seen_since_last_saving += batch + 1
        else:
            self._batches_seen_since_last_saving += batch - self._last_batch_seen
        self._last_batch_seen = batch
        if self._batches_seen_since_last_saving >= self.save_freq:
            self._batches_seen_since_last_saving = 0
            self._save_model(self._current_epoch, batch, logs)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self.monitor_op is None:
            self._set_monitor_op()
        if self.save_freq == "epoch":
            self._save_model(epoch, None, logs)

    def _file_path(self, epoch: int, batch: int | None, logs: dict[str, Any] | None) -> str:
        fields = dict(logs or {})
        fields["epoch"] = epoch + 1
        if batch is not None and "batch" not in fields:
            fields["batch"] = batch + 1
        try:
            return self.filepath.format(**fields)
        except (KeyError, IndexError, ValueError) as error:
            raise InvalidArgumentError(
                "filepath", self.filepath, f"a template whose fields are epoch, batch or logged names "
                f"({', '.join(sorted(fields))}); formatting failed with {type(error).__name__}: {error}",
                owner="ModelCheckpoint") from None

    def _should_save(self, epoch: int, logs: dict[str, Any] | None, filepath: str) -> bool:
        if not self.save_best_only:
            if self.verbose > 0:
                _say(self.model, f"\nEpoch {epoch + 1}: saving model to {filepath}")
            return True
        if self.monitor_op is None:
            self._set_monitor_op()
        current = (logs or {}).get(self.monitor)
        if current is None:
            warnings.warn(f"Can save best model only with {self.monitor} available.", stacklevel=3)
            return True
        best = "None" if self.best is None else f"{self.best:.5f}"
        if self._is_improvement(current, self.best):
            if self.verbose > 0:
                _say(self.model, f"\nEpoch {epoch + 1}: {self.monitor} improved from {best} to {current:.5f}, "
                     f"saving model to {filepath}")
            self.best = current
            return True
        if self.verbose > 0:
            _say(self.model, f"\nEpoch {epoch + 1}: {self.monitor} did not improve from {best}")
        return False

    def _save_model(self, epoch: int, batch: int | None, logs: dict[str, Any] | None) -> None:
        filepath = self._file_path(epoch, batch, logs)
        if not self._should_save(epoch, logs, filepath):
            return
        if not _finite(self.model.get_weights()):
            # The last good checkpoint is worth more than a file of NaN.
            warnings.warn(f"ModelCheckpoint: epoch {epoch + 1}{'' if batch is None else f', batch {batch + 1}'}: "
                          f"the model's weights are not finite; {filepath!r} was not written", RuntimeWarning,
                          stacklevel=3)
            return
        directory = os.path.dirname(filepath)
        if directory:
            # Rank 0's folder only, under data-parallel training: it alone writes the file.
            _on_chief(self.model, "create the checkpoint folder", lambda: self._make_folder(directory, filepath))
        if self.save_weights_only:
            self.model.save_weights(filepath, overwrite=True)
        else:
            self.model.save(filepath, overwrite=True)

    @staticmethod
    def _make_folder(directory: str, filepath: str) -> None:
        try:
            os.makedirs(directory, exist_ok=True)
        except OSError as error:
            raise FileAccessError(f"ModelCheckpoint: cannot create the folder {_files.describe(directory)} "
                                  f"for {_files.describe(filepath)}: {_files.os_reason(error)}", error) from error


class TerminateOnNaN(Callback):
    """Stop training as soon as a batch's loss is NaN or infinite."""

    def on_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            _say(self.model, f"Batch {batch}: Invalid loss, terminating training")
            self.model.stop_training = True


def _finite(arrays: list[np.ndarray]) -> bool:
    return all(bool(np.all(np.isfinite(a))) for a in arrays)


def _takes_one_argument(function: Callable[..., Any]) -> bool:
    try:
        parameters = list(inspect.signature(function).parameters.values())
    except (TypeError, ValueError):
        return False
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) == 1 and not any(p.kind == p.VAR_POSITIONAL for p in parameters)


class LearningRateScheduler(Callback):
    """At each epoch's start, set the learning rate to schedule(epoch, lr) (or schedule(epoch)),
    epoch 0-based; logs the rate as "learning_rate". As keras.callbacks.LearningRateScheduler."""

    def __init__(self, schedule: Callable[..., float], verbose: int = 0) -> None:
        super().__init__()
        if not callable(schedule):
            raise InvalidArgumentError("schedule", schedule, "a function (epoch, lr) -> lr",
                                       owner="LearningRateScheduler")
        self.schedule = schedule
        self.verbose = verbose

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if _takes_one_argument(self.schedule):
            learning_rate = self.schedule(epoch)
        else:
            learning_rate = self.schedule(epoch, self.model.learning_rate)
        if isinstance(learning_rate, bool) or not isinstance(learning_rate, numbers.Real):
            raise InvalidArgumentError("schedule", learning_rate, "a schedule returning a float learning rate",
                                       owner="LearningRateScheduler")
        self.model.learning_rate = float(learning_rate)
        if self.verbose > 0:
            _say(self.model,
                 f"\nEpoch {epoch + 1}: LearningRateScheduler setting learning rate to {float(learning_rate)}.")

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if logs is not None:
            logs["learning_rate"] = self.model.learning_rate


class ReduceLROnPlateau(_MonitorCallback):
    """Multiply the learning rate by `factor` once `monitor` has not improved by min_delta for
    `patience` epochs; then wait `cooldown` epochs; never below min_lr. Logs "learning_rate".
    As keras.callbacks.ReduceLROnPlateau."""

    def __init__(self, monitor: str = "val_loss", factor: float = 0.1, patience: int = 10, verbose: int = 0,
                 mode: str = "auto", min_delta: float = 1e-4, cooldown: int = 0, min_lr: float = 0.0) -> None:
        super().__init__(monitor, mode, min_delta=min_delta)
        self.factor = check_number("ReduceLROnPlateau", "factor", factor, low=0.0, high=1.0, high_open=True,
                                   accepted="a number in [0, 1): Keras refuses factor >= 1")
        self.patience = _check_count("ReduceLROnPlateau", "patience", patience)
        self.verbose = verbose
        self.cooldown = _check_count("ReduceLROnPlateau", "cooldown", cooldown)
        self.min_lr = check_number("ReduceLROnPlateau", "min_lr", min_lr, low=0.0)
        self.cooldown_counter = 0
        self.wait = 0

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.best = None
        self.cooldown_counter = 0
        self.wait = 0

    def in_cooldown(self) -> bool:
        return self.cooldown_counter > 0

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self.monitor_op is None:
            self._set_monitor_op()
        logs = logs if logs is not None else {}
        logs["learning_rate"] = self.model.learning_rate
        current = self._monitor_value(logs, "Learning rate reduction")
        if current is None:
            return
        if self.in_cooldown():
            self.cooldown_counter -= 1
            self.wait = 0
        if self._is_improvement(current, self.best):
            self.best = current
            self.wait = 0
        elif not self.in_cooldown():
            self.wait += 1
            if self.wait >= self.patience:
                old = self.model.learning_rate
                # Keras compares against min_lr in float32, the optimizer variable's precision.
                if old > np.float32(self.min_lr):
                    new = max(old * self.factor, self.min_lr)
                    self.model.learning_rate = new
                    if self.verbose > 0:
                        _say(self.model, f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {new}.")
                    self.cooldown_counter = self.cooldown
                    self.wait = 0


def _say(model: Any, text: str) -> None:
    """Print a callback's message (verbose=1), on rank 0 only under data-parallel training: every
    process decides alike, so the others would print the same line."""
    replica = model._distribution() if hasattr(model, "_distribution") else None
    if replica is None or replica.rank == 0:
        print(text)


def _on_chief(model: Any, what: str, write: Callable[[], Any]) -> None:
    """write() on rank 0 only under data-parallel training (every process waits, and hears of a
    failure); a model trained in one process just writes."""
    replica = model._distribution() if hasattr(model, "_distribution") else None
    if replica is None:
        write()
        return
    from . import _replicas

    _replicas.on_chief(replica, what, write)


class CSVLogger(Callback):
    """Write each epoch's logs as a row of a CSV file (columns: epoch, then the sorted log names).
    append=True continues an existing file without repeating its header. As keras.callbacks.CSVLogger.
    Under data-parallel training rank 0 writes the file (every process has the same logs)."""

    def __init__(self, filename: str | os.PathLike[str], separator: str = ",", append: bool = False) -> None:
        super().__init__()
        self.filename = os.fspath(filename)
        if not isinstance(separator, str) or len(separator) != 1:
            raise InvalidArgumentError("separator", separator, "a one-character string", owner="CSVLogger")
        self.sep = separator
        self.append = check_bool("CSVLogger", "append", append)
        self.writer: csv.DictWriter[str] | None = None
        self.keys: list[str] | None = None
        self.append_header = True
        self.csv_file: IO[str] | None = None

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        _on_chief(self.model, "open the CSVLogger file", self._open)

    def _open(self) -> None:
        if self.csv_file is not None and not self.csv_file.closed:
            self.csv_file.close()
        try:
            if self.append:
                if os.path.exists(self.filename):
                    with open(self.filename, newline="") as existing:
                        self.append_header = not bool(len(existing.readline()))
                mode = "a"
            else:
                mode = "w"
            self.csv_file = open(self.filename, mode, newline="")
        except (OSError, UnicodeDecodeError) as error:
            reason = _files.os_reason(error) if isinstance(error, OSError) else f"not a text file ({error.reason})"
            raise FileAccessError(f"CSVLogger: cannot open the log file {_files.describe(self.filename)}: "
                                  f"{reason}", error) from error
        self.writer = None
        self.keys = None

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        _on_chief(self.model, "write the CSVLogger row", lambda: self._write(epoch, logs or {}))

    def _write(self, epoch: int, logs: dict[str, Any]) -> None:
        csv_file = cast("IO[str]", self.csv_file)  # opened by on_train_begin
        if self.keys is None:
            self.keys = sorted(logs)
            # Keras' layout: without validation this epoch, reserve the val_ columns anyway.
            if self.keys and not any(key.startswith("val_") for key in self.keys):
                self.keys.extend(f"val_{key}" for key in list(self.keys))
        if self.writer is None:
            separator = self.sep

            class Dialect(csv.excel):
                delimiter = separator

            self.writer = csv.DictWriter(csv_file, fieldnames=["epoch", *self.keys], dialect=Dialect)
            if self.append_header:
                self.writer.writeheader()
        row = {"epoch": epoch}
        row.update((key, logs.get(key, "NA")) for key in self.keys)
        self.writer.writerow(row)
        csv_file.flush()

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        if self.csv_file is not None and not self.csv_file.closed:
            self.csv_file.close()
        self.writer = None


class LambdaCallback(Callback):
    """A callback built from functions: on_epoch_begin/on_epoch_end(epoch, logs),
    on_train_begin/on_train_end(logs), on_train_batch_begin/on_train_batch_end(batch, logs).
    Extra keyword arguments become attributes. As keras.callbacks.LambdaCallback."""

    _HOOKS = ("on_epoch_begin", "on_epoch_end", "on_train_begin", "on_train_end",
              "on_train_batch_begin", "on_train_batch_end")

    def __init__(self, on_epoch_begin: Callable[..., Any] | None = None, on_epoch_end: Callable[..., Any] | None = None,
                 on_train_begin: Callable[..., Any] | None = None, on_train_end: Callable[..., Any] | None = None,
                 on_train_batch_begin: Callable[..., Any] | None = None,
                 on_train_batch_end: Callable[..., Any] | None = None, **kwargs: Any) -> None:
        super().__init__()
        self.__dict__.update(kwargs)
        given = dict(zip(self._HOOKS, (on_epoch_begin, on_epoch_end, on_train_begin, on_train_end,
                                       on_train_batch_begin, on_train_batch_end)))
        for hook, function in given.items():
            if function is None:
                continue
            if not callable(function):
                raise InvalidArgumentError(hook, function, "a function", owner="LambdaCallback")
            setattr(self, hook, function)
        self._batch_hooks = given["on_train_batch_begin"] is not None or given["on_train_batch_end"] is not None

    def wants_batches(self) -> bool:
        return self._batch_hooks
