"""The training loop every backend shares: data checks, batching, streams, logging and callbacks."""

from __future__ import annotations

import collections.abc
import math
import numbers

import numpy as np

from . import plugins
from . import random as _random
from ._progress import Progress, epoch_header
from ._spec import check_number, check_positive_int
from .callbacks import CallbackList, History
from .callbacks import checked as checked_callbacks
from .errors import InvalidArgumentError, PluginError, ShapeMismatchError
from .metrics import CustomMetric

# Dropout masks for one backend call stay under this many bytes; blocks of steps shrink to fit.
_MASK_BUDGET_BYTES = 64 * 2**20


# ---- argument and data checks ----------------------------------------------------------


def _verbose(value) -> int:
    if value == "auto":
        return 1
    if value in (0, 1, 2):  # True and False too, as Keras takes them
        return int(value)
    raise InvalidArgumentError("verbose", value, "'auto', 0, 1 or 2")


def _as_array(name: str, value, dtype) -> np.ndarray:
    if value is None:
        raise InvalidArgumentError(name, None, "an array-like of numbers")
    if isinstance(value, collections.abc.Iterator):
        raise InvalidArgumentError(name, type(value).__name__, "an array-like of numbers (generators, iterators "
                                   "and datasets are not taken: pass the arrays, numpy.asarray(list(...)))")
    try:
        array = np.asarray(value)
    except Exception as error:  # ragged lists and the like
        raise InvalidArgumentError(name, type(value).__name__, f"an array-like of numbers ({error})") from None
    if array.dtype == object or np.iscomplexobj(array) or not (
            np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise InvalidArgumentError(name, f"array of dtype {array.dtype}", "an array of real numbers")
    with np.errstate(over="ignore", invalid="ignore"):  # reported just below, as a polynn error
        array = np.ascontiguousarray(array, dtype=dtype)
    # A NaN or infinity (or a value too large for the dtype) would silently poison the weights.
    if not _all_finite(array):
        bad = array.size - int(np.count_nonzero(np.isfinite(array)))
        raise InvalidArgumentError(name, f"{bad} values that are NaN or infinite in {dtype}", "finite numbers")
    return array


def _all_finite(array: np.ndarray) -> bool:
    """Whether every value is finite. A sum that is finite proves it in one pass that allocates
    nothing (a NaN or an infinity makes every sum it enters NaN or infinite); a sum that overflowed
    falls back to the element-wise test. np.isfinite(array).all() writes a mask as large as a
    quarter of a float32 array first: for 18944x1024 float32, 82 ms in a fresh process (the mask's
    first touch) against 6.6 ms."""
    with np.errstate(over="ignore", invalid="ignore"):
        if np.isfinite(np.add.reduce(array, axis=None)):
            return True
    return bool(np.isfinite(array).all())


def _check_x(model, x, dtype) -> np.ndarray:
    x = _as_array("x", x, dtype)
    if x.ndim < 2:
        raise ShapeMismatchError(
            f"x has shape {x.shape}; expected (samples, features...) with at least 2 axes")
    expected = model.input_shape
    if expected is not None and tuple(x.shape[1:]) != tuple(expected):
        raise ShapeMismatchError(
            f"input feature width does not match the model: x has per-sample shape {tuple(x.shape[1:])} "
            f"(features {x.shape[-1]}); the model expects {tuple(expected)}")
    return x


def _check_y(model, x, y, dtype) -> np.ndarray:
    y = _as_array("y", y, dtype)
    if y.ndim == 0 or len(y) != len(x):
        raise ShapeMismatchError(
            f"x and y have different lengths: x has {len(x)} samples, y has {len(y) if y.ndim else 'a scalar'}; "
            f"they must match")
    out = tuple(model.output_shape)
    loss = model.loss
    if loss.sparse_labels:
        label_shape = out[:-1]
        if tuple(y.shape[1:]) not in (label_shape, (*label_shape, 1)):
            raise ShapeMismatchError(
                f"y has shape {y.shape}, incompatible with loss {loss.name!r} on outputs {(None, *out)}: "
                f"expected integer labels of shape {(None, *label_shape)} or {(None, *label_shape, 1)}")
        if y.size and (np.any(y < 0) or np.any(y >= out[-1]) or np.any(y != np.floor(y))):
            raise InvalidArgumentError(
                "y", f"labels in [{y.min()}, {y.max()}]", f"integer class labels in [0, {out[-1] - 1}]", owner=loss.name)
        return y
    if tuple(y.shape[1:]) == out:
        return y
    if y.ndim == 1 and out == (1,):
        return y.reshape(-1, 1)
    raise ShapeMismatchError(
        f"y has shape {y.shape}, incompatible with loss {loss.name!r} on outputs {(None, *out)}: "
        f"expected y of shape {(None, *out)}")


def _check_metric_labels(model, y_shape: tuple) -> None:
    """Each metric's labels must have the form it reads: integer labels for the sparse metrics,
    one value per output unit for the others (user functions decide for themselves)."""
    compiled = model._compiled
    out = tuple(model.output_shape)
    sparse = (out[:-1], (*out[:-1], 1))
    for name, metric in zip(compiled.metric_names, compiled.metrics):
        if isinstance(metric, CustomMetric):
            continue
        expected = sparse if metric.sparse_labels else (out,)
        if tuple(y_shape) not in expected:
            accepted = " or ".join(str((None, *shape)) for shape in expected)
            raise ShapeMismatchError(
                f"metric {name!r} ({metric.name}) needs y of shape {accepted} for outputs {(None, *out)}; "
                f"y has shape {(None, *y_shape)}")
        class_id = getattr(metric, "class_id", None)
        if class_id is not None and class_id >= out[-1]:
            raise InvalidArgumentError("class_id", class_id, f"an output index below {out[-1]}", owner=name)


def _check_sample_weight(sample_weight, n: int, dtype):
    if sample_weight is None:
        return None
    w = _as_array("sample_weight", sample_weight, dtype)
    if w.ndim == 2 and w.shape[1] == 1:
        w = w[:, 0]
    if w.shape != (n,):
        raise ShapeMismatchError(f"sample_weight has shape {w.shape}; expected ({n},), one weight per sample")
    return w


def _class_weights(class_weight, y: np.ndarray, loss, dtype):
    if not isinstance(class_weight, dict) or not class_weight:
        raise InvalidArgumentError("class_weight", class_weight, "a non-empty dict {class index: weight}")
    if y.ndim == 1 or y.shape[-1] == 1:
        labels = np.rint(y.reshape(len(y), -1)[:, 0]).astype(np.int64)
    else:
        labels = np.argmax(y.reshape(len(y), -1), axis=-1)
    for key in class_weight:
        if isinstance(key, bool) or not isinstance(key, numbers.Integral) or key < 0:
            raise InvalidArgumentError("class_weight", class_weight, "integer class indices >= 0 as keys")
    table = np.ones(int(max(max(class_weight), labels.max(initial=0))) + 1)
    for key, value in class_weight.items():
        table[int(key)] = check_number("fit", "class_weight", value, low=0.0)
    return table[labels].astype(dtype)


def _batch_size(value, owner: str, default=32) -> int:
    return default if value is None else check_positive_int(owner, "batch_size", value)


# ---- blocks of steps -------------------------------------------------------------------


def _index_blocks(order: np.ndarray, batch_size: int, steps_per_call: int):
    """Split an epoch's sample order into (steps, batch) index blocks; the short last batch alone."""
    n = len(order)
    full = n // batch_size
    blocks = []
    if full:
        grid = order[: full * batch_size].reshape(full, batch_size)
        blocks.extend(grid[i:i + steps_per_call] for i in range(0, full, steps_per_call))
    if n % batch_size:
        blocks.append(order[full * batch_size:].reshape(1, -1))
    return blocks


def _mask_inputs(plan_layers, shapes, input_shape, dropout_layers, seed, iterations, batch, dtype):
    masks = []
    for index in dropout_layers:
        layer = plan_layers[index]
        shape_in = input_shape if index == 0 else shapes[index - 1]
        mask_shape = layer.mask_shape((batch, *shape_in))
        layer_seed = seed if layer.seed is None else layer.seed
        masks.append(np.stack([
            _random.dropout_mask(layer_seed, int(t), index, mask_shape, layer.rate, dtype) for t in iterations
        ]))
    return masks


class _Totals:
    """Running, sample-weighted means of the loss and the metrics over an epoch."""

    def __init__(self, compiled):
        self.compiled = compiled
        self.loss_sum = 0.0
        self.count = 0
        self.states = [np.zeros(m.state_size) for m in compiled.metrics]

    def add(self, result, block: np.ndarray, method: str):
        """Add what runtime.`method` returned for `block`, a (steps, batch) array of row indices."""
        losses, states = _checked_result(self.compiled, result, len(block), method)
        batch = block.shape[1]
        self.loss_sum += float(np.sum(losses)) * batch
        self.count += len(losses) * batch
        for total, state in zip(self.states, states):
            total += state

    def logs(self, prefix: str = "") -> dict:
        logs = {prefix + "loss": self.loss_sum / self.count if self.count else float("nan")}
        for name, metric, state in zip(self.compiled.metric_names, self.compiled.metrics, self.states):
            logs[prefix + name] = metric.result(state)
        return logs


def _checked_result(compiled, result, steps: int, method: str):
    """The losses and metric states of a StepResult, as float64 arrays, after checking their counts
    and sizes: one missing would otherwise shift or drop values from the logs without a word."""
    def refuse(what: str, accepted: str):
        raise PluginError(f"{plugins.describe_backend(compiled.backend.name)} returned {what} from {method}; "
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
    metrics = compiled.metrics
    states = [np.asarray(state, dtype=np.float64) for state in states]
    if len(states) != len(metrics):
        names = ", ".join(m.name for m in metrics) or "none"
        refuse(f"{len(states)} metric states for {len(metrics)} metrics",
               f"one state per metric, in the order of the plan's metrics ({names})")
    for name, metric, state in zip(compiled.metric_names, metrics, states):
        if state.shape != (metric.state_size,):
            refuse(f"a state of shape {state.shape} for metric {name!r} ({metric.name})",
                   f"a vector of the metric's state_size, shape ({metric.state_size},)")
    return losses, states


# ---- fit / evaluate / predict ----------------------------------------------------------


def fit(model, x, y, *, batch_size, epochs, verbose, callbacks, validation_split, validation_data,
        shuffle, class_weight, sample_weight, initial_epoch, validation_batch_size, validation_freq):
    compiled = model._compiled
    if compiled.loss is None:
        raise InvalidArgumentError("loss", None, "a loss given to compile() before fit()", owner=model.name)
    batch_size = _batch_size(batch_size, "fit")
    # epochs=0 trains nothing and returns an empty History, as Keras.
    if isinstance(epochs, bool) or not isinstance(epochs, numbers.Integral) or epochs < 0:
        raise InvalidArgumentError("epochs", epochs, "an integer >= 0", owner="fit")
    verbose = _verbose(verbose)
    if isinstance(initial_epoch, bool) or not isinstance(initial_epoch, numbers.Integral) or not 0 <= initial_epoch:
        raise InvalidArgumentError("initial_epoch", initial_epoch, "an integer >= 0", owner="fit")
    validation_freq = check_positive_int("fit", "validation_freq", validation_freq)
    validation_split = check_number("fit", "validation_split", validation_split, low=0.0, high=1.0, high_open=True)
    if not isinstance(shuffle, bool):
        raise InvalidArgumentError("shuffle", shuffle, "True or False", owner="fit")
    dtype = compiled.dtype

    x = _check_x(model, x, dtype)
    model._ensure_built(tuple(x.shape[1:]))
    y = _check_y(model, x, y, dtype)
    sw = _check_sample_weight(sample_weight, len(x), dtype)

    if validation_data is not None:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
            raise InvalidArgumentError("validation_data", type(validation_data).__name__,
                                       "a tuple (x_val, y_val) or (x_val, y_val, sample_weight)", owner="fit")
        x_val = _check_x(model, validation_data[0], dtype)
        y_val = _check_y(model, x_val, validation_data[1], dtype)
        sw_val = _check_sample_weight(validation_data[2] if len(validation_data) == 3 else None, len(x_val), dtype)
        if len(x_val) == 0:
            # Its loss would be NaN and its metrics 0, read by EarlyStopping and ModelCheckpoint as real.
            raise InvalidArgumentError("validation_data", "0 samples", "at least one validation sample, or no "
                                       "validation_data", owner="fit")
    elif validation_split:
        # Keras takes the last fraction, before any shuffling.
        split = int(len(x) * (1.0 - validation_split))
        if split == 0 or split == len(x):
            raise InvalidArgumentError("validation_split", validation_split,
                                       f"a fraction leaving samples on both sides of {len(x)}", owner="fit")
        x, x_val = x[:split], x[split:]
        y, y_val = y[:split], y[split:]
        sw, sw_val = (None, None) if sw is None else (sw[:split], sw[split:])
    else:
        x_val = None
    if len(x) == 0:
        raise InvalidArgumentError("x", "0 samples", "at least one sample", owner="fit")
    if class_weight is not None:
        # after the split: as in Keras, class weights apply to the training batches only
        cw = _class_weights(class_weight, y, compiled.loss, dtype)
        sw = cw if sw is None else sw * cw

    runtime = model._runtime_for(tuple(x.shape[1:]), tuple(y.shape[1:]))
    _check_metric_labels(model, tuple(y.shape[1:]))
    plan_layers = model._layers
    shapes = model._shapes(model._built_shape)
    dropout_layers = tuple(i for i, layer in enumerate(plan_layers) if layer.name == "dropout" and layer.rate > 0)

    history = History()
    steps = math.ceil(len(x) / batch_size)
    params = {"verbose": verbose, "epochs": epochs, "steps": steps}
    callback_list = CallbackList([*checked_callbacks(callbacks), history], model, params)

    interactive = verbose == 1 and Progress(steps, verbose).interactive
    batch_hooks = callback_list.wants_batches()
    if compiled.steps_per_execution != "auto":
        steps_per_call = compiled.steps_per_execution
    elif batch_hooks:
        steps_per_call = 1
    elif interactive:
        steps_per_call = max(1, steps // 30)
    else:
        steps_per_call = steps
    mask_bytes = batch_size * np.dtype(dtype).itemsize * sum(
        int(np.prod(plan_layers[i].mask_shape((1, *(model._built_shape if i == 0 else shapes[i - 1]))))) for i in dropout_layers)
    if mask_bytes:
        steps_per_call = max(1, min(steps_per_call, _MASK_BUDGET_BYTES // mask_bytes))

    data = runtime.put_data(x, y, sw)
    val_data = None if x_val is None else runtime.put_data(x_val, y_val, sw_val)
    val_batch = _batch_size(validation_batch_size, "fit", batch_size)

    model.stop_training = False
    callback_list.on_train_begin({})
    logs: dict = {}
    for epoch in range(initial_epoch, epochs):
        callback_list.on_epoch_begin(epoch, {})
        epoch_header(epoch, epochs, verbose)
        progress = Progress(steps, verbose)
        totals = _Totals(compiled)
        order = _random.batch_order(compiled.seed, epoch, len(x)) if shuffle else np.arange(len(x))
        done = 0
        for block in _index_blocks(order, batch_size, steps_per_call):
            first = model._iterations
            iterations = np.arange(first, first + len(block), dtype=np.int64)
            if batch_hooks:
                callback_list.on_train_batch_begin(done, {})
            scalars = {name: values.astype(dtype) for name, values in
                       compiled.optimizer.step_scalars(iterations, compiled.learning_rate).items()}
            masks = _mask_inputs(plan_layers, shapes, model._built_shape, dropout_layers,
                                 compiled.seed, iterations, block.shape[1], dtype)
            result = runtime.train_steps(data, block, masks, scalars)
            model._iterations += len(block)
            totals.add(result, block, "train_steps")
            done += len(block)
            if progress.interactive or batch_hooks:
                batch_logs = totals.logs()
                progress.update(done, batch_logs)
            if batch_hooks:
                # With several steps per call the hooks run once per call, for its last batch (Keras).
                callback_list.on_train_batch_end(done - 1, batch_logs)
                if model.stop_training:  # a batch-level callback (TerminateOnNaN) stops mid-epoch, as Keras
                    break
        logs = totals.logs()
        if val_data is not None and (epoch + 1) % validation_freq == 0:
            logs.update(_evaluate_data(model, runtime, val_data, len(x_val), val_batch, prefix="val_"))
        progress.finish(logs)
        callback_list.on_epoch_end(epoch, logs)
        if model.stop_training:
            break
    callback_list.on_train_end(logs)
    model.history = history
    return history


def _evaluate_data(model, runtime, data, n: int, batch_size: int, prefix: str = "") -> dict:
    totals = _Totals(model._compiled)
    for block in _index_blocks(np.arange(n), batch_size, max(1, n // batch_size)):
        totals.add(runtime.test_steps(data, block), block, "test_steps")
    return totals.logs(prefix)


def evaluate(model, x, y, *, batch_size, verbose, sample_weight, callbacks, return_dict):
    compiled = model._compiled
    if compiled.loss is None:
        raise InvalidArgumentError("loss", None, "a loss given to compile() before evaluate()", owner=model.name)
    batch_size = _batch_size(batch_size, "evaluate")
    verbose = _verbose(verbose)
    dtype = compiled.dtype
    x = _check_x(model, x, dtype)
    model._ensure_built(tuple(x.shape[1:]))
    y = _check_y(model, x, y, dtype)
    sw = _check_sample_weight(sample_weight, len(x), dtype)
    if len(x) == 0:
        raise InvalidArgumentError("x", "0 samples", "at least one sample", owner="evaluate")
    runtime = model._runtime_for(tuple(x.shape[1:]), tuple(y.shape[1:]))
    _check_metric_labels(model, tuple(y.shape[1:]))
    steps = math.ceil(len(x) / batch_size)
    callback_list = CallbackList(callbacks, model, {"verbose": verbose, "steps": steps})
    callback_list.on_test_begin({})
    progress = Progress(steps, 1 if verbose else 0)
    logs = _evaluate_data(model, runtime, runtime.put_data(x, y, sw), len(x), batch_size)
    progress.finish(logs)
    callback_list.on_test_end(logs)
    if return_dict:
        return logs
    values = [logs["loss"], *(logs[name] for name in compiled.metric_names)]
    return values[0] if len(values) == 1 else values


def predict(model, x, *, batch_size, verbose, callbacks):
    compiled = model._compiled
    batch_size = _batch_size(batch_size, "predict")
    verbose = _verbose(verbose)
    x = _check_x(model, x, compiled.dtype)
    model._ensure_built(tuple(x.shape[1:]))
    runtime = model._runtime_for(tuple(x.shape[1:]))
    steps = math.ceil(len(x) / batch_size)
    callback_list = CallbackList(callbacks, model, {"verbose": verbose, "steps": steps})
    callback_list.on_predict_begin({})
    progress = Progress(steps, 1 if verbose else 0)
    if len(x) == 0:
        out = np.zeros((0, *model.output_shape), dtype=compiled.dtype)
    else:
        data = runtime.put_data(x)
        out = np.concatenate([runtime.predict_steps(data, block)
                              for block in _index_blocks(np.arange(len(x)), batch_size, max(1, steps))], axis=0)
    progress.finish({})
    callback_list.on_predict_end({})
    return out
