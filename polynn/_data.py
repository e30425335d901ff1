"""What fit, evaluate and predict take, checked and prepared: arguments, arrays, validation split, weights."""

from __future__ import annotations

import numbers
from typing import NamedTuple, cast

import numpy as np

from ._foreign import DATA_ACCEPTED, dataset_kind
from ._spec import INT_LIMIT, check_bool, check_int, check_number, check_positive_int
from .errors import InvalidArgumentError, ShapeMismatchError
from .layers import Embedding, Input
from .metrics import CustomMetric

# ---- arguments -------------------------------------------------------------------------


def verbose(value) -> int:
    if value == "auto":
        return 1
    if value in (0, 1, 2):  # True and False too, as Keras takes them
        return int(value)
    raise InvalidArgumentError("verbose", value, "'auto', 0, 1 or 2")


def batch_size(value, owner: str, default=32) -> int:
    return default if value is None else check_positive_int(owner, "batch_size", value)


class FitArguments(NamedTuple):
    batch_size: int
    epochs: int
    verbose: int
    initial_epoch: int
    validation_freq: int
    validation_split: float
    shuffle: bool


def fit_arguments(batch_size_, epochs, verbose_, initial_epoch, validation_freq, validation_split,
                  shuffle) -> FitArguments:
    """fit()'s scalar arguments, checked in the order Keras reads them."""
    size = batch_size(batch_size_, "fit")
    # epochs=0 trains nothing and returns an empty History, as Keras. Epoch numbers key the
    # shuffling stream as int64 (polynn.random), hence the bound.
    check_int("fit", "epochs", epochs, low=0)
    level = verbose(verbose_)
    check_int("fit", "initial_epoch", initial_epoch, low=0)
    validation_freq = check_positive_int("fit", "validation_freq", validation_freq)
    validation_split = check_number("fit", "validation_split", validation_split, low=0.0, high=1.0, high_open=True)
    shuffle = check_bool("fit", "shuffle", shuffle)
    # epochs and initial_epoch are any Integral (a NumPy integer too), kept as given.
    return FitArguments(size, cast(int, epochs), level, cast(int, initial_epoch), validation_freq, validation_split,
                        shuffle)


# ---- arrays ----------------------------------------------------------------------------


def as_array(name: str, value, dtype) -> np.ndarray:
    if value is None:
        raise InvalidArgumentError(name, None, "an array-like of numbers")
    kind = dataset_kind(value)
    if kind is not None:
        raise InvalidArgumentError(name, kind, DATA_ACCEPTED)
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
    if not all_finite(array):
        bad = array.size - int(np.count_nonzero(np.isfinite(array)))
        raise InvalidArgumentError(name, f"{bad} values that are NaN or infinite in {dtype}", "finite numbers")
    return array


def all_finite(array: np.ndarray) -> bool:
    """Whether every value is finite: a finite sum proves it in one pass that allocates nothing,
    unlike np.isfinite's mask (docs/performance.md#checking-that-inputs-are-finite)."""
    with np.errstate(over="ignore", invalid="ignore"):
        if np.isfinite(np.add.reduce(array, axis=None)):
            return True
    return bool(np.isfinite(array).all())


def check_x(x, dtype, input_shape, layers=()) -> np.ndarray:
    """x as a `dtype` array of (samples, features...), its per-sample shape `input_shape` if known;
    indices in range when the first of `layers` (after an Input) takes integers (check_indices)."""
    x = as_array("x", x, dtype)
    if x.ndim < 2:
        raise ShapeMismatchError(
            f"x has shape {x.shape}; expected (samples, features...) with at least 2 axes")
    if 0 in x.shape[1:]:
        # A model without a declared input size would build weights of size 0 from it.
        raise ShapeMismatchError(
            f"x has per-sample shape {tuple(x.shape[1:])}, with no features on an axis; expected at least "
            f"one value on every axis after the samples")
    if input_shape is not None and tuple(x.shape[1:]) != tuple(input_shape):
        raise ShapeMismatchError(
            f"input feature width does not match the model: x has per-sample shape {tuple(x.shape[1:])} "
            f"(features {x.shape[-1]}); the model expects {tuple(input_shape)}")
    check_indices(x, layers)
    return x


# The largest integer every float32 holds exactly: larger indices would reach an Embedding rounded.
_FLOAT32_EXACT = 2**24


def check_indices(x: np.ndarray, layers) -> None:
    """x's values as the indices of an Embedding that is the model's first layer (after an Input):
    each, truncated toward 0 as the layer casts it (Keras's cast to int32), in [0, input_dim). An
    engine would fail on another index, or clamp it silently (TensorFlow on GPU, XLA, JAX)."""
    first = next((layer for layer in layers if not isinstance(layer, Input)), None)
    if not isinstance(first, Embedding) or x.size == 0:
        return
    low, high = float(np.min(x)), float(np.max(x))
    limit = first.input_dim
    if not (-1.0 < low and high < limit):
        raise InvalidArgumentError("x", f"indices in [{low:g}, {high:g}]", f"indices in [0, {limit - 1}] (the "
                                   f"model's first layer is an Embedding with input_dim={limit})")
    if x.dtype == np.float32 and high >= _FLOAT32_EXACT:
        raise InvalidArgumentError("x", f"indices up to {high:g} in float32", "indices below 2**24, which float32 "
                                   "holds exactly (the indices reach the Embedding as floats of the model's "
                                   "dtype); compile in float64 for larger vocabularies")


def check_y(x, y, dtype, output_shape, loss) -> np.ndarray:
    """y as a `dtype` array of one label per row of x, in the form `loss` reads for `output_shape`."""
    y = as_array("y", y, dtype)
    if y.ndim == 0 or len(y) != len(x):
        raise ShapeMismatchError(
            f"x and y have different lengths: x has {len(x)} samples, y has {len(y) if y.ndim else 'a scalar'}; "
            f"they must match")
    out = tuple(output_shape)
    if loss.sparse_labels:
        label_shape = out[:-1]
        if tuple(y.shape[1:]) not in (label_shape, (*label_shape, 1)):
            raise ShapeMismatchError(
                f"y has shape {y.shape}, incompatible with loss {loss.name!r} on outputs {(None, *out)}: "
                f"expected integer labels of shape {(None, *label_shape)} or {(None, *label_shape, 1)}")
        if y.size and (np.any(y < 0) or np.any(y >= out[-1]) or np.any(y != np.floor(y))):
            raise InvalidArgumentError(
                "y", f"labels in [{y.min()}, {y.max()}]", f"integer class labels in [0, {out[-1] - 1}]",
                owner=loss.name)
        return y
    if tuple(y.shape[1:]) == out:
        return y
    if y.ndim == 1 and out == (1,):
        return y.reshape(-1, 1)
    raise ShapeMismatchError(
        f"y has shape {y.shape}, incompatible with loss {loss.name!r} on outputs {(None, *out)}: "
        f"expected y of shape {(None, *out)}")


def check_metric_labels(plan, metric_names, y_shape: tuple) -> None:
    """Each metric's labels must have the form it reads: integer labels for the sparse metrics,
    one value per output unit for the others (user functions decide for themselves)."""
    out = tuple(plan.shapes[-1])
    sparse = (out[:-1], (*out[:-1], 1))
    for name, metric in zip(metric_names, plan.metrics):
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


def check_sample_weight(sample_weight, n: int, dtype):
    if sample_weight is None:
        return None
    w = as_array("sample_weight", sample_weight, dtype)
    if w.ndim == 2 and w.shape[1] == 1:
        w = w[:, 0]
    if w.shape != (n,):
        raise ShapeMismatchError(f"sample_weight has shape {w.shape}; expected ({n},), one weight per sample")
    return w


def class_weights(class_weight, y: np.ndarray, dtype):
    """Each sample's weight from its class, as Keras looks it up: class_weight.get(label, 1.0), the
    label being the rounded value of a single unit's label or the index of a one-hot row's largest
    entry. Keys no label takes (a class absent from this data, say) weigh nothing, as in Keras."""
    if not isinstance(class_weight, dict) or not class_weight:
        raise InvalidArgumentError("class_weight", class_weight, "a non-empty dict {class index: weight}", owner="fit")
    if y.ndim == 1 or y.shape[-1] == 1:
        labels = np.rint(y.reshape(len(y), -1)[:, 0]).astype(np.int64)
    else:
        labels = np.argmax(y.reshape(len(y), -1), axis=-1)
    weights = np.ones(len(labels))
    for key, value in class_weight.items():
        if isinstance(key, bool) or not isinstance(key, numbers.Integral):
            raise InvalidArgumentError("class_weight", {key: value}, "integer class indices as keys", owner="fit")
        weight = check_number("fit", "class_weight", value, low=0.0, accepted="weights that are finite numbers >= 0")
        if -INT_LIMIT - 1 <= int(key) <= INT_LIMIT:  # a key beyond int64 matches no label
            weights[labels == int(key)] = weight
    return weights.astype(dtype)


# ---- the data sets of fit and evaluate ---------------------------------------------------


class Arrays(NamedTuple):
    """One data set, checked: x, y and the sample weights (None for none)."""

    x: np.ndarray
    y: np.ndarray
    sample_weight: np.ndarray | None


def labelled(model, build, x, y, sample_weight, dtype) -> Arrays:
    """x, y and sample_weight checked against `model`; build(x_shape) fixes the model's input
    shape from x first, since y's expected shape follows from it."""
    x = check_x(x, dtype, model.input_shape, model._layers)
    build(tuple(x.shape[1:]))
    y = check_y(x, y, dtype, model.output_shape, model.loss)
    return Arrays(x, y, check_sample_weight(sample_weight, len(x), dtype))


def training_data(model, build, x, y, *, sample_weight, validation_split, validation_data, class_weight,
                  dtype) -> tuple[Arrays, Arrays | None]:
    """fit()'s training and validation sets: checked, split (the last fraction, before any
    shuffling, as Keras), the class weights folded into the training set's sample weights."""
    train = labelled(model, build, x, y, sample_weight, dtype)
    x, y, sw = train
    if validation_data is not None:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
            shown = dataset_kind(validation_data) or type(validation_data).__name__
            raise InvalidArgumentError("validation_data", shown,
                                       "a tuple (x_val, y_val) or (x_val, y_val, sample_weight) of arrays; datasets, "
                                       "data loaders, generators and dicts are not taken", owner="fit")
        x_val = check_x(validation_data[0], dtype, model.input_shape, model._layers)
        y_val = check_y(x_val, validation_data[1], dtype, model.output_shape, model.loss)
        sw_val = check_sample_weight(validation_data[2] if len(validation_data) == 3 else None, len(x_val), dtype)
        if len(x_val) == 0:
            # Its loss would be NaN and its metrics 0, read by EarlyStopping and ModelCheckpoint as real.
            raise InvalidArgumentError("validation_data", "0 samples", "at least one validation sample, or no "
                                       "validation_data", owner="fit")
        validation = Arrays(x_val, y_val, sw_val)
    elif validation_split:
        split = int(len(x) * (1.0 - validation_split))
        if split == 0 or split == len(x):
            raise InvalidArgumentError("validation_split", validation_split,
                                       f"a fraction leaving samples on both sides of {len(x)}", owner="fit")
        validation = Arrays(x[split:], y[split:], None if sw is None else sw[split:])
        x, y, sw = x[:split], y[:split], None if sw is None else sw[:split]
    else:
        validation = None
    if len(x) == 0:
        raise InvalidArgumentError("x", "0 samples", "at least one sample", owner="fit")
    if class_weight is not None:
        # after the split: as in Keras, class weights apply to the training batches only
        cw = class_weights(class_weight, y, dtype)
        sw = cw if sw is None else sw * cw
    return Arrays(x, y, sw), validation
