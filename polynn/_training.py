"""The training loop every backend shares: fit, evaluate and predict, with callbacks, logging and history."""

from __future__ import annotations

import contextlib
import math
import time
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING, NoReturn, Protocol

import numpy as np

from . import _data, plugins
from ._blocks import TrainingBlocks, index_blocks
from ._progress import Progress, epoch_header
from ._rewind import Rewind
from .callbacks import CallbackList, CSVLogger, History, ModelCheckpoint
from .callbacks import checked as checked_callbacks
from .errors import InvalidArgumentError, NonFiniteLossError, PluginError, PolynnError

if TYPE_CHECKING:
    from .backend import Plan, Runtime
    from .distribution import Replica


class Trainee(Protocol):
    """What the loop needs of a compiled model beyond its public API (models.Sequential gives it)."""

    # Read-only: the loop never sets them.
    @property
    def plan(self) -> Plan:
        """The plan the runtime was compiled from (metrics as last resolved)."""

    @property
    def seed(self) -> int:
        """Of the shared random streams."""

    @property
    def steps_per_execution(self) -> int | str:
        """Training steps per backend call, or "auto"."""

    @property
    def learning_rate(self) -> float | None:
        """A callback's override of the optimizer's rate, read at each block."""

    @property
    def metric_names(self) -> list[str]:
        """The log name of each Plan.metrics entry."""

    @property
    def nonfinite_loss(self) -> str:
        """What fit does when a step's loss is NaN or infinite: "stop", "raise" or "continue"."""

    @property
    def distribution(self) -> Replica | None:
        """This process's Replica under data-parallel training, else None."""

    def share_learning_rate(self, value: float | None) -> None:
        """Set the learning-rate override (rank 0's, under data-parallel training)."""

    def build(self, x_shape: tuple) -> None:
        """Fix the input shape from the data's (and draw the weights) if not done yet."""

    def prepare(self, x_shape: tuple, y_shape: tuple | None = None) -> Runtime:
        """The runtime for data of these shapes, compiled now if need be; metrics resolved from y's shape."""

    @property
    def weight_writes(self) -> int:
        """How many times the weights were written from outside fit (set_weights, load_weights)."""

    def advance(self, steps: int) -> None:
        """Count `steps` more optimizer updates."""

    def restart_at(self, iterations: int) -> None:
        """Set the count of optimizer updates back to `iterations` (fit going back to a snapshot)."""


# ---- calls into the backend ------------------------------------------------------------


@contextlib.contextmanager
def backend_call(backend: str, method: str, where: str = "") -> Iterator[None]:
    """An error a Runtime method raises, re-raised as a PluginError naming the backend and its
    plugin, the original chained as __cause__. polynn's own errors (about the user's input, or a
    backend's deliberate ones) and what is not an Exception (KeyboardInterrupt, SystemExit) pass as
    they are; fit's going back to the last completed step happens above, on any of them."""
    try:
        yield
    except PolynnError:
        raise
    except Exception as error:
        text = " ".join(f"{type(error).__name__}: {error}".split()).rstrip(":.")
        raise PluginError(
            f"{plugins.describe_backend(backend)} raised {text:.500} in Runtime.{method}{where}; that error is "
            f"this one's __cause__, whose traceback (printed above) shows where it was raised: in the backend, "
            f"or in a custom function the model runs on it") from error


# ---- results and logs ------------------------------------------------------------------


class _Totals:
    """Running, sample-weighted means of the loss and the metrics over an epoch."""

    def __init__(self, trainee: Trainee, backend: str):
        self.metrics, self.metric_names, self.backend = trainee.plan.metrics, trainee.metric_names, backend
        self.loss_sum = 0.0
        self.count = 0
        self.states = [np.zeros(m.state_size) for m in self.metrics]

    def add(self, result, block: np.ndarray, method: str):
        """Add what runtime.`method` returned for `block`, a (steps, batch) array of row indices."""
        losses, states = self.checked(result, len(block), method)
        self.add_checked(losses, states, block)

    def add_checked(self, losses: np.ndarray, states: list[np.ndarray], block: np.ndarray):
        """Add the losses and metric states that checked() returned for `block`."""
        batch = block.shape[1]
        self.loss_sum += float(np.sum(losses)) * batch
        self.count += len(losses) * batch
        for total, state in zip(self.states, states):
            total += state

    def logs(self, prefix: str = "") -> dict:
        logs = {prefix + "loss": self.loss_sum / self.count if self.count else float("nan")}
        for name, metric, state in zip(self.metric_names, self.metrics, self.states):
            logs[prefix + name] = metric.result(state)
        return logs

    def checked(self, result, steps: int, method: str):
        """The losses and metric states of a StepResult, as float64 arrays, after checking their counts
        and sizes: one missing would otherwise shift or drop values from the logs without a word."""
        def refuse(what: str, accepted: str) -> NoReturn:
            raise PluginError(f"{plugins.describe_backend(self.backend)} returned {what} from {method}; "
                              f"accepted: {accepted}")

        losses = getattr(result, "losses", None)
        states = getattr(result, "metric_states", None)
        if losses is None or states is None:
            refuse(f"{type(result).__module__}.{type(result).__qualname__}",
                   "a polynn.backend.StepResult(losses, metric_states)")
        losses = np.asarray(losses, dtype=np.float64)
        if losses.shape != (steps,):
            count = f"{losses.size} losses" if losses.ndim == 1 else f"losses of shape {losses.shape}"
            refuse(f"{count} for {steps} steps", f"one loss per step, an array of shape ({steps},)")
        metrics = self.metrics
        states = [np.asarray(state, dtype=np.float64) for state in states]
        if len(states) != len(metrics):
            names = ", ".join(m.name for m in metrics) or "none"
            refuse(f"{len(states)} metric states for {len(metrics)} metrics",
                   f"one state per metric, in the order of the plan's metrics ({names})")
        for name, metric, state in zip(self.metric_names, metrics, states):
            if state.shape != (metric.state_size,):
                refuse(f"a state of shape {state.shape} for metric {name!r} ({metric.name})",
                       f"a vector of the metric's state_size, shape ({metric.state_size},)")
        return losses, states


def _require_loss(model, action: str) -> None:
    if model.loss is None:
        raise InvalidArgumentError("loss", None, f"a loss given to compile() before {action}()", owner=model.name)


def _steps_per_call(trainee: Trainee, steps: int, batch_hooks: bool, interactive: bool) -> int:
    """Steps per backend call: compile's steps_per_execution, else the whole epoch, one step at a time
    for batch-level callbacks, about 30 calls an epoch for a progress bar redrawn in place."""
    per_call = trainee.steps_per_execution
    if not isinstance(per_call, str):  # a count; the one string compile() accepts is "auto"
        return per_call
    if batch_hooks:
        return 1
    if interactive:
        return max(1, steps // 30)
    return steps


# ---- fit / evaluate / predict ----------------------------------------------------------


def fit(model, trainee: Trainee, x, y, *, batch_size, epochs, verbose, callbacks, validation_split,
        validation_data, shuffle, class_weight, sample_weight, initial_epoch, validation_batch_size,
        validation_freq):
    _require_loss(model, "fit")
    args = _data.fit_arguments(batch_size, epochs, verbose, initial_epoch, validation_freq, validation_split, shuffle)
    dtype = model.dtype
    train, validation = _data.training_data(
        model, trainee.build, x, y, sample_weight=sample_weight, validation_split=args.validation_split,
        validation_data=validation_data, class_weight=class_weight, dtype=dtype)
    n = len(train.x)
    runtime = trainee.prepare(tuple(train.x.shape[1:]), tuple(train.y.shape[1:]))
    _data.check_metric_labels(trainee.plan, trainee.metric_names, tuple(train.y.shape[1:]))

    replica = trainee.distribution
    history = History()
    steps = math.ceil(n / args.batch_size)
    callback_list = CallbackList([*checked_callbacks(callbacks), history], model,
                                 {"verbose": args.verbose, "epochs": args.epochs, "steps": steps})
    # Under data-parallel training only rank 0 prints (every process's logs are the same), and the
    # blocks are the same everywhere (each ends with a collective): none sized for a bar on a terminal.
    shown = args.verbose if replica is None or replica.rank == 0 else 0
    interactive = replica is None and shown == 1 and Progress(steps, shown).interactive
    batch_hooks = callback_list.wants_batches()
    blocks = TrainingBlocks(trainee.plan, trainee.seed, n, args.batch_size,
                            _steps_per_call(trainee, steps, batch_hooks, interactive))
    if replica is not None:
        _start_replicas(model, trainee, runtime, replica, args, train, validation, validation_batch_size,
                        blocks.steps_per_call, callback_list)

    with backend_call(model.backend, "put_data", " during fit"):
        data = runtime.put_data(*train)
        val_data = None if validation is None else runtime.put_data(*validation)
    val_batch = _data.batch_size(validation_batch_size, "fit", args.batch_size)

    # Processes of a data-parallel job go back alike only from snapshots taken alike (Rewind).
    rewind = Rewind(runtime, blocks, data, lambda: trainee.weight_writes,
                    every_block=replica is not None and replica.world_size > 1)
    model.stop_training = False
    callback_list.on_train_begin({})
    logs: dict = {}
    for epoch in range(args.initial_epoch, args.epochs):
        callback_list.on_epoch_begin(epoch, {})
        epoch_header(epoch, args.epochs, shown)
        progress = Progress(steps, shown)
        totals = _Totals(trainee, model.backend)
        done = 0
        for rows in blocks.epoch(epoch, args.shuffle):
            if batch_hooks:
                callback_list.on_train_batch_begin(done, {})
            ran = _train_block(model, trainee, rewind, rows, totals, epoch, done)  # after the hook: it may set the rate
            done += ran
            if ran < len(rows):  # the loss turned non-finite: the model is back at its last finite step
                model.stop_training = True
                break
            if progress.interactive or batch_hooks:
                batch_logs = totals.logs()
                progress.update(done, batch_logs)
            if batch_hooks:
                # With several steps per call the hooks run once per call, for its last batch (Keras).
                callback_list.on_train_batch_end(done - 1, batch_logs)
                if model.stop_training:  # a batch-level callback (TerminateOnNaN) stops mid-epoch, as Keras
                    break
        logs = totals.logs()
        if val_data is not None and validation is not None and (epoch + 1) % args.validation_freq == 0:
            logs.update(_evaluate_data(model, trainee, runtime, val_data, len(validation.x), val_batch,
                                       prefix="val_"))
        progress.finish(logs)
        callback_list.on_epoch_end(epoch, logs)
        if model.stop_training:
            break
    callback_list.on_train_end(logs)
    model.history = history
    return history


def _train_block(model, trainee: Trainee, rewind: Rewind, rows: np.ndarray, totals: _Totals, epoch: int,
                 done: int) -> int:
    """Run a block of training steps as one transaction and return how many steps it kept.

    An exception or interrupt puts back the state after the last completed block, so weights,
    optimizer slots and iterations always describe one completed step. A non-finite loss (unless
    the policy is "continue") keeps the steps before it, run again from the block's start.
    """
    first, learning_rate = model.iterations, trainee.learning_rate
    where = f" during fit (epoch {epoch + 1}, training steps {first + 1} to {first + len(rows)})"
    with backend_call(model.backend, "snapshot", where):
        rewind.before_block(first)
    masks, scalars = rewind.blocks.inputs(rows, first, learning_rate)
    try:
        started = time.perf_counter()
        with backend_call(model.backend, "train_steps", where):
            result = rewind.runtime.train_steps(rewind.data, rows, masks, scalars)
        seconds = time.perf_counter() - started
        losses, states = _summed(trainee, totals.checked(result, len(rows), "train_steps"))
        bad = np.flatnonzero(~np.isfinite(losses))
        if not len(bad) or trainee.nonfinite_loss == "continue":
            trainee.advance(len(rows))
            rewind.after_block(rows, first, learning_rate, seconds)
            totals.add_checked(losses, states, rows)
            return len(rows)
        step, value = int(bad[0]), float(losses[bad[0]])
        with backend_call(model.backend, "train_steps", f"{where}, running again the steps before a non-finite loss"):
            kept_losses, kept_states, count = _finite_steps(trainee, rewind, rows, first, learning_rate, totals,
                                                            step, states)
        trainee.advance(count)
        if count:
            rewind.after_block(rows[:count], first, learning_rate, 0.0)
        totals.add_checked(kept_losses, kept_states, rows[:count])
    except BaseException:
        if model.iterations == first:
            try:
                with backend_call(model.backend, "restore or train_steps", f"{where}, going back to step {first}"):
                    trainee.restart_at(rewind.back())
            except BaseException:
                trainee.restart_at(rewind.iterations)  # interrupted again: the snapshot's state
                raise
        raise
    with backend_call(model.backend, "get_weights", where):
        finite = _finite_state(rewind.runtime)
    message = (f"{model.name}: the loss was {value} at epoch {epoch + 1}, batch {done + step + 1} (training "
               f"step {first + step + 1}); training stopped, and the model keeps its state after step "
               f"{first + count}{'' if finite else ', whose weights are not finite'}. "
               f"compile(nonfinite_loss='continue') trains on regardless.")
    if trainee.nonfinite_loss == "raise":
        raise NonFiniteLossError(message)
    warnings.warn(message, RuntimeWarning, stacklevel=4)
    return count


def _finite_steps(trainee: Trainee, rewind: Rewind, rows: np.ndarray, first: int, learning_rate: float | None,
                  totals: _Totals, step: int, states: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray], int]:
    """Back at the block's start, run its steps before `step` (whose loss was not finite) again:
    (losses, metric states, steps kept). One step fewer when those left the weights non-finite."""
    rewind.back()
    for count in (step, step - 1):
        if count <= 0:
            break
        losses, kept = _summed(trainee, totals.checked(rewind.replay(rows[:count], first, learning_rate),
                                                              count, "train_steps"))
        if np.all(np.isfinite(losses)) and _finite_state(rewind.runtime):
            return losses, kept, count
        rewind.back()
    return np.zeros(0), [np.zeros_like(s) for s in states], 0


def _replicas_module():
    """polynn._replicas, imported on first use."""
    from . import _replicas

    return _replicas


def _summed(trainee: Trainee, checked: tuple[np.ndarray, list[np.ndarray]]) -> tuple[np.ndarray, list[np.ndarray]]:
    """A block's losses and metric states, the states summed over the processes under data-parallel
    training (the losses are already the global batch's: they ride in the gradients' all-reduce)."""
    losses, states = checked
    if trainee.distribution is None:
        return losses, states
    return losses, _replicas_module().sum_states(trainee.distribution, states)


def _start_replicas(model, trainee: Trainee, runtime: Runtime, replica: Replica, args, train, validation,
                    validation_batch_size, steps_per_call: int, callback_list: CallbackList) -> None:
    """Before the first step of a data-parallel fit: refuse, on every process, a model, arguments or
    data that differ from rank 0's; then take rank 0's weights, optimizer state and step count."""
    replicas = _replicas_module()
    settings = {"batch_size": args.batch_size, "epochs": args.epochs, "initial_epoch": args.initial_epoch,
                "shuffle": args.shuffle, "validation_freq": args.validation_freq,
                "validation_batch_size": validation_batch_size, "steps_per_execution": trainee.steps_per_execution,
                # fewer with batch-level callbacks: the blocks, each ending with a collective, must match
                "training steps per backend call (batch-level callbacks make it 1)": steps_per_call,
                "nonfinite_loss": trainee.nonfinite_loss, "data length": len(train.x),
                # each write holds every process until rank 0 is done (a collective): all must have them
                "callbacks that write on rank 0 (ModelCheckpoint, CSVLogger: give them to every process)": tuple(
                    type(c).__name__ for c in callback_list.callbacks if isinstance(c, (ModelCheckpoint, CSVLogger)))}
    arrays = {"x": train.x, "y": train.y, "sample_weight": train.sample_weight,
              "validation x": None if validation is None else validation.x,
              "validation y": None if validation is None else validation.y,
              "validation sample_weight": None if validation is None else validation.sample_weight}
    replicas.check_same_fit(replica, model.backend, trainee.plan, trainee.seed, settings, arrays)
    with backend_call(model.backend, "get_weights or set_weights (or their optimizer state twins)", " during fit"):
        iterations, rate = replicas.share_state(replica, runtime, model.iterations, trainee.learning_rate,
                                                trainee.plan.dtype)
    trainee.restart_at(iterations)
    trainee.share_learning_rate(rate)


def _finite_state(runtime: Runtime) -> bool:
    arrays = [*runtime.get_weights(), *(s for slots in runtime.get_optimizer_state() for s in slots)]
    return all(bool(np.all(np.isfinite(a))) for a in arrays)


def _evaluate_data(model, trainee: Trainee, runtime: Runtime, data, n: int, batch_size: int,
                   prefix: str = "") -> dict:
    totals = _Totals(trainee, model.backend)
    for block in index_blocks(np.arange(n), batch_size, max(1, n // batch_size)):
        with backend_call(model.backend, "test_steps", " during validation" if prefix else " during evaluate"):
            result = runtime.test_steps(data, block)
        totals.add(result, block, "test_steps")
    return totals.logs(prefix)


def evaluate(model, trainee: Trainee, x, y, *, batch_size, verbose, sample_weight, callbacks, return_dict):
    _require_loss(model, "evaluate")
    batch_size = _data.batch_size(batch_size, "evaluate")
    verbose = _data.verbose(verbose)
    arrays = _data.labelled(model, trainee.build, x, y, sample_weight, model.dtype)
    if len(arrays.x) == 0:
        raise InvalidArgumentError("x", "0 samples", "at least one sample", owner="evaluate")
    runtime = trainee.prepare(tuple(arrays.x.shape[1:]), tuple(arrays.y.shape[1:]))
    _data.check_metric_labels(trainee.plan, trainee.metric_names, tuple(arrays.y.shape[1:]))
    steps = math.ceil(len(arrays.x) / batch_size)
    callback_list = CallbackList(callbacks, model, {"verbose": verbose, "steps": steps})
    callback_list.on_test_begin({})
    progress = Progress(steps, verbose)
    with backend_call(model.backend, "put_data", " during evaluate"):
        data = runtime.put_data(*arrays)
    logs = _evaluate_data(model, trainee, runtime, data, len(arrays.x), batch_size)
    progress.finish(logs)
    callback_list.on_test_end(logs)
    if return_dict:
        return logs
    values = [logs["loss"], *(logs[name] for name in trainee.metric_names)]
    return values[0] if len(values) == 1 else values


def predict(model, trainee: Trainee, x, *, batch_size, verbose, callbacks):
    batch_size = _data.batch_size(batch_size, "predict")
    verbose = _data.verbose(verbose)
    x = _data.check_x(x, model.dtype, model.input_shape, model._layers)
    runtime = trainee.prepare(tuple(x.shape[1:]))
    steps = math.ceil(len(x) / batch_size)
    callback_list = CallbackList(callbacks, model, {"verbose": verbose, "steps": steps})
    callback_list.on_predict_begin({})
    progress = Progress(steps, verbose)
    if len(x) == 0:
        out = np.zeros((0, *model.output_shape), dtype=model.dtype)
    else:
        with backend_call(model.backend, "put_data or predict_steps", " during predict"):
            data = runtime.put_data(x)
            out = np.concatenate([runtime.predict_steps(data, block)
                                  for block in index_blocks(np.arange(len(x)), batch_size, max(1, steps))], axis=0)
    progress.finish({})
    callback_list.on_predict_end({})
    return out
