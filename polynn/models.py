"""Sequential: the model users build, compile and train, whatever the backend."""

from __future__ import annotations

import dataclasses
import inspect
import os
import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Literal, cast, overload

import numpy as np

from . import _registry, _training, plugins
from . import distribution as _distribution
from . import losses as _losses
from . import metrics as _metrics
from . import optimizers as _optimizers
from . import random as _random
from . import schedules as _schedules
from ._bound_layer import BoundLayer
from ._live_optimizer import LiveOptimizer
from ._spec import (
    FunctionField,
    check_arguments,
    check_bool,
    check_choice,
    check_int,
    check_number,
    check_output_axes,
    check_positive_int,
    check_shape,
    resolve,
)
from ._summary import summary_lines
from .backend import Plan, Runtime
from .distribution import Replica
from .errors import (
    InvalidArgumentError,
    NotCompiledError,
    NotSupportedError,
    PluginError,
    PolynnError,
    ShapeMismatchError,
    UnsupportedComponentError,
)
from .hookspecs import DTYPES
from .layers import Dropout, Input, Layer, WeightSpec

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

    from .backend import Backend
    from .callbacks import Callback, History
    from .losses import Loss
    from .metrics import Metric
    from .optimizers import Optimizer

__all__ = ["Sequential", "BoundLayer", "load_model"]


class _Compiled:
    """What compile() fixed: the components, the backend, and the plan and runtime built from them."""

    def __init__(self, optimizer: Optimizer, loss: Loss | None, metric_ids: list[Any], weighted_ids: list[Any],
                 backend: Backend, dtype: str, seed: int, steps_per_execution: int | str, device: str | None,
                 nonfinite_loss: str = "stop", distribution: Replica | None = None) -> None:
        self.optimizer, self.loss = optimizer, loss
        self.distribution = distribution  # this process's Replica under data-parallel training, else None
        # As given to compile(): `metrics` ignore sample and class weights, `weighted_metrics` use them.
        self.metric_ids, self.weighted_ids = metric_ids, weighted_ids
        self.backend, self.dtype, self.seed = backend, dtype, seed
        self.steps_per_execution, self.device = steps_per_execution, device
        self.nonfinite_loss = nonfinite_loss
        self.runtime: Runtime | None = None
        self.plan: Plan | None = None  # the runtime's; its metrics resolved from the last data's labels
        self.metric_names: list[str] = []  # the log name of each plan metric
        self.learning_rate: float | None = None  # set by callbacks that change the rate
        self.optimizer_view: LiveOptimizer | None = None  # model.optimizer, made once per compile


# compile(nonfinite_loss=...): what fit() does when a step's loss is NaN or infinite.
NONFINITE_LOSS_POLICIES = ("stop", "raise", "continue")

# Keras arguments polynn does not take, and why.
_KERAS_ONLY = {
    "loss_weights": "a Sequential model has one output, so one loss",
    "run_eagerly": "backends choose how they run; steps_per_execution sets the steps per call",
    "jit_compile": "backends choose how they compile",
    "auto_scale_loss": "polynn trains in float32 or float64, without loss scaling",
    "steps_per_epoch": "an epoch is one pass over the arrays given (no generators or datasets)",
    "validation_steps": "validation runs over the whole of validation_data",
    "steps": "the arrays given are used whole (no generators or datasets)",
    "max_queue_size": "no generators or datasets",
    "workers": "no generators or datasets",
    "use_multiprocessing": "no generators or datasets",
}


# Keras model attributes polynn's Sequential does not have, and what to use.
_KERAS_ATTRIBUTES = {
    "train_on_batch": "fit(x, y, batch_size=len(x), epochs=1, shuffle=False)",
    "test_on_batch": "evaluate(x, y, batch_size=len(x))",
    "predict_on_batch": "predict(x, batch_size=len(x))",
    "trainable_variables": "trainable_weights (NumPy arrays)",
    "metrics_names": "the keys of evaluate(..., return_dict=True)",
    "to_json": "json.dumps(model.get_config())",
    "save_spec": "model.input_shape",
}


def _refuse_unsupported(method: str, bound: Callable[..., Any], unsupported: dict[str, Any]) -> None:
    """A keyword the method lacks: an InvalidArgumentError naming it and the accepted ones (and why,
    for Keras arguments polynn does not take) instead of Python's TypeError."""
    if unsupported:
        accepted = [p for p in inspect.signature(bound).parameters if p != "unsupported"]
        check_arguments(method, accepted, (), unsupported, hints=_KERAS_ONLY)


def _weight_array(index: int, value: ArrayLike) -> np.ndarray:
    try:
        array = np.asarray(value)
    except (ValueError, TypeError):  # ragged nested lists: NumPy refuses to make one array of them
        raise InvalidArgumentError(f"weights[{index}]", value, "an array of real numbers (nested lists of "
                                   "one shape)", owner="set_weights") from None
    if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise InvalidArgumentError(f"weights[{index}]", f"array of dtype {array.dtype}", "an array of real numbers",
                                   owner="set_weights")
    return array


def _checked_weights(weights: Sequence[ArrayLike], expected: list[tuple], prefix: str, holder: str,
                     names: list[str] | None = None) -> list[np.ndarray]:
    """The arrays of a set_weights() call, checked against the shapes the holder has: their count,
    then each one's shape (named where `names` are given)."""
    arrays = [_weight_array(k, w) for k, w in enumerate(weights)]
    if len(arrays) != len(expected):
        raise ShapeMismatchError(f"{prefix}set_weights() got {len(arrays)} arrays; {holder} has {len(expected)} "
                                 f"with shapes {expected}")
    for k, (w, shape) in enumerate(zip(arrays, expected)):
        if tuple(w.shape) != tuple(shape):
            label = f"array {k}" if names is None else f"array {k} ({names[k]})"
            raise ShapeMismatchError(f"{prefix}set_weights(): {label} has shape {tuple(w.shape)}; "
                                     f"expected {tuple(shape)}")
    return arrays


def _metric_list(owner: str, argument: str, value: Any) -> list[Any]:
    """compile()'s metrics or weighted_metrics as a list, each entry checked now, not at fit time."""
    if value is None:
        return []
    if not isinstance(value, (list, tuple)):
        raise InvalidArgumentError(argument, value, "a list or tuple of metrics (names, metric objects or "
                                   "functions), as Keras (a model has one output, so no dict)", owner=owner)
    for m in value:
        if not (isinstance(m, str) and m.lower() in ("accuracy", "acc")):
            _metrics.get(m)
    return list(value)


class _MetricNamer:
    """The name each metric of one compile() logs under before clashes are settled: a string is
    its own name; a metric given a name keeps it; any other metric object is named as Keras names
    a fresh process's metric objects, once per object, its automatic name numbered in compile()
    order (auc, auc_1, ...; one object given twice keeps one name, as a Keras object does); a
    metric class is a new object at each use; a function keeps its name, as in Keras."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.objects: dict[int, str] = {}  # id of a metric object given -> its automatic name

    def __call__(self, identifier: Any, spec: Metric) -> str:
        if isinstance(identifier, str):
            return identifier
        if spec.given_name is not None:
            return spec.given_name
        if isinstance(spec, _metrics.CustomMetric):
            base = FunctionField.display_name(spec)
        else:
            base = spec.auto_name or spec.name
        if isinstance(identifier, _metrics.Metric) and id(identifier) in self.objects:
            return self.objects[id(identifier)]
        if not isinstance(identifier, (_metrics.Metric, type)):
            return base
        count = self.counts.get(base, 0)
        self.counts[base] = count + 1
        name = base if count == 0 else f"{base}_{count}"
        if isinstance(identifier, _metrics.Metric):
            self.objects[id(identifier)] = name
        return name


def _log_names(names: list[str], weighted: list[bool]) -> list[str]:
    """Keras' log names: a second metric of one name is name_1, name_2, ...; a weighted metric whose
    name is already taken is weighted_name (then weighted_name_1, ...)."""
    taken: dict[str, int] = {}
    out: list[str] = []
    for name, takes_weights in zip(names, weighted):
        if takes_weights and name in taken:
            name = f"weighted_{name}"
        count = taken.get(name, 0)
        taken[name] = count + 1
        out.append(name if count == 0 else f"{name}_{count}")
    return out


class Sequential:
    """A linear stack of layers, spelled as keras.Sequential."""

    def __init__(self, layers: Sequence[Any] | None = None, name: str | None = None) -> None:
        self.name = name or "sequential"
        self._layers: list[Layer] = []
        self._bound: list[BoundLayer] = []  # what model.layers gives, one per layer
        self._built_shape: tuple | None = None
        self._weights: list[np.ndarray] | None = None  # float64 until compiled
        self._weights_provisional = False
        self._compiled: _Compiled | None = None
        self._iterations = 0
        self._weight_writes = 0  # set_weights() calls: fit's rewind (polynn._rewind) snapshots again after one
        self.history: History | None = None
        self.stop_training = False
        self._trainable = True
        self._fitting = False  # a runtime is not rebuilt under a running fit (its blocks hold it)
        if layers is not None and not isinstance(layers, (list, tuple)):
            raise InvalidArgumentError("layers", layers, "a list or tuple of layers, or None", owner=self.name)
        taken: set[str] = set()  # the given names so far: a model of n layers is checked in O(n)
        for layer in layers or ():
            self._append(layer, taken)

    # ---- structure ----------------------------------------------------------------------

    def add(self, layer: Any) -> None:
        self._append(layer, {other.given_name for other in self._layers if other.given_name is not None})

    def _append(self, layer: Any, taken: set[str]) -> None:
        """add(): `taken` holds the names given to the model's layers; the new layer's is added to it."""
        if isinstance(layer, BoundLayer):  # another model's layer: its spec (weights are not shared)
            layer = layer.spec
        if isinstance(layer, (str, dict)) or not isinstance(layer, Layer):
            layer = resolve("layer", layer)
        _registry.check_usable(layer)
        if isinstance(layer, Input) and self._layers:
            raise InvalidArgumentError("layer", layer, "an Input layer only as the first layer", owner=self.name)
        if layer.given_name is not None and layer.given_name in taken:
            # Keras refuses it too: names pick layers out, in the summary and in get_layer().
            raise InvalidArgumentError("name", layer.given_name, f"a name no other layer of {self.name} has; "
                                       f"taken: {', '.join(self.layer_names())}", owner=type(layer).__name__)
        if self._layers and layer.declared_input_shape is not None:
            # Keras warns too: only the first layer's input shape is the model's.
            warnings.warn(f"{self.name}: input_dim/input_shape {layer.declared_input_shape} on layer "
                          f"{len(self._layers)} ({layer.name}) is ignored; only the first layer's declares the "
                          f"model's input", UserWarning, stacklevel=2)
        self._layers.append(layer)
        if layer.given_name is not None:
            taken.add(layer.given_name)
        self._bound.append(BoundLayer(self))
        self._built_shape = None
        self._weights = None
        if self._compiled is not None:
            self._compiled.runtime = self._compiled.plan = None

    def pop(self) -> Layer:
        if not self._layers:
            raise InvalidArgumentError("layers", [], "a model with at least one layer to pop", owner=self.name)
        layer = self._layers.pop()
        self._bound.pop()._detach(layer)
        self._built_shape, self._weights = None, None
        if self._compiled is not None:
            self._compiled.runtime = self._compiled.plan = None
        return layer

    def get_layer(self, name: str | None = None, index: int | None = None) -> BoundLayer:
        """Keras's get_layer: the layer of model.layers with this name (given, or the model's
        automatic one), or at this index; exactly one of the two."""
        if (name is None) == (index is None):
            raise InvalidArgumentError("name and index", (name, index), "exactly one of name= and index=",
                                       owner=f"{self.name}.get_layer")
        if index is not None:
            index = check_int(f"{self.name}.get_layer", "index", index)
            if not -len(self._layers) <= index < len(self._layers):
                raise InvalidArgumentError("index", index, f"an index of one of the model's {len(self._layers)} "
                                           "layers", owner=f"{self.name}.get_layer")
            return self._bound[index]
        names = self.layer_names()
        if name not in names:
            raise InvalidArgumentError("name", name, f"one of the model's layer names: {', '.join(names) or 'none'}",
                                       owner=f"{self.name}.get_layer")
        return self._bound[names.index(name)]

    @property
    def layers(self) -> list[BoundLayer]:
        """The layers, as Keras's model.layers: each a BoundLayer, which reads as its spec and adds
        get_weights(), set_weights(), weights and a settable trainable."""
        return list(self._bound)

    def __getstate__(self) -> dict[str, Any]:
        # A copy (copy, deepcopy, pickle) binds layers of its own: a BoundLayer copies as its spec.
        state = dict(self.__dict__)
        del state["_bound"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._bound = [BoundLayer(self) for _ in self._layers]

    def _layer_index(self, bound: BoundLayer) -> int | None:
        return next((i for i, b in enumerate(self._bound) if b is bound), None)

    @property
    def trainable(self) -> bool:
        """Setting it sets every layer's trainable, as Keras's model.trainable does (a layer may be set
        back afterwards: in polynn each layer's own flag decides, and is what the file keeps).
        Reading it: whether any layer is trainable, so a loaded model reads as the one saved."""
        return any(layer.trainable for layer in self._layers) if self._layers else self._trainable

    @trainable.setter
    def trainable(self, value: bool) -> None:
        value = check_bool(self.name, "trainable", bool(value) if isinstance(value, np.bool_) else value)
        for index in range(len(self._layers)):
            self._set_layer_trainable(index, value)
        self._trainable = value

    def _set_layer_trainable(self, index: int, value: Any) -> None:
        layer = self._layers[index]
        value = check_bool(self.layer_names()[index], "trainable",
                           bool(value) if isinstance(value, np.bool_) else value)
        if layer.trainable != value:
            # The plan and runtime follow at the next fit, evaluate or predict (_runtime_for).
            self._layers[index] = dataclasses.replace(layer, trainable=value)

    def layer_names(self) -> list[str]:
        """Each layer's name, as summary() shows it: the name given with name=, else the model's
        automatic one, Keras-style (dense, dropout, dense_1, ...: the registry name, then _1, _2,
        ... per kind in layer order), skipping the names given to other layers. Computed from the
        layers alone (Keras counts over the process), so it is the same in every run."""
        taken = {layer.given_name for layer in self._layers if layer.given_name is not None}
        counts: dict[str, int] = {}
        names: list[str] = []
        for layer in self._layers:
            name = layer.given_name
            while name is None or (layer.given_name is None and name in taken):
                count = counts.get(layer.name, 0)
                counts[layer.name] = count + 1
                name = layer.name if count == 0 else f"{layer.name}_{count}"
            taken.add(name)
            names.append(name)
        return names

    def _weight_keys(self) -> list[str]:
        """Each layer's key in files ("weights.<key>.kernel"): its automatic name as if no layer
        had been given one, so a weights file fits any model of the same layers, named or not
        (Keras's weight paths do not use the layers' names either)."""
        seen: dict[str, int] = {}
        keys: list[str] = []
        for layer in self._layers:
            count = seen.get(layer.name, 0)
            keys.append(layer.name if count == 0 else f"{layer.name}_{count}")
            seen[layer.name] = count + 1
        return keys

    @property
    def input_shape(self) -> tuple | None:
        if self._built_shape is not None:
            return self._built_shape
        return self._layers[0].declared_input_shape if self._layers else None

    def _shapes(self, input_shape: tuple) -> list[tuple]:
        shapes: list[tuple] = []
        shape = input_shape
        for layer in self._layers:
            shape = layer.output_shape(shape)
            shapes.append(shape)
        return shapes

    @property
    def output_shape(self) -> tuple | None:
        shape = self.input_shape
        return None if shape is None or not self._layers else self._shapes(shape)[-1]

    def _weight_specs(self, input_shape: tuple) -> list[tuple[int, WeightSpec]]:
        specs: list[tuple[int, WeightSpec]] = []
        shape = input_shape
        for index, layer in enumerate(self._layers):
            specs.extend((index, w) for w in layer.weight_specs(shape))
            shape = layer.output_shape(shape)
        return specs

    @property
    def built(self) -> bool:
        return self._built_shape is not None

    def build(self, input_shape: Iterable[int] | None = None) -> None:
        """Fix the input shape (per sample, without the batch axis) and draw initial weights."""
        if not self._layers:
            raise InvalidArgumentError("layers", [], "a model with at least one layer", owner=self.name)
        declared = self._layers[0].declared_input_shape
        shape = check_shape(self.name, "input_shape", input_shape) if input_shape is not None else declared
        if shape is None:
            raise InvalidArgumentError(
                "input_shape", None, "a shape from input_dim=, input_shape=, an Input layer, or the data",
                owner=self.name)
        if declared is not None and tuple(declared) != tuple(shape):
            raise ShapeMismatchError(
                f"input shape {tuple(shape)} does not match the model's declared input shape {tuple(declared)}")
        self._built_shape = tuple(shape)
        seed = self._compiled.seed if self._compiled is not None else _random.resolve_seed(None)
        self._weights_provisional = self._compiled is None
        self._weights = [
            _random.initial_value(seed, layer_index, k, ws)
            for k, (layer_index, ws) in enumerate(self._weight_specs(self._built_shape))
        ]

    def _ensure_built(self, data_shape: tuple | None = None) -> None:
        if self._built_shape is None or self._weights is None:
            self.build(self._built_shape if data_shape is None else data_shape)

    # ---- compile ------------------------------------------------------------------------

    def compile(self, optimizer: Any = "rmsprop", loss: Any = None, metrics: Sequence[Any] | None = None, *,
                weighted_metrics: Sequence[Any] | None = None, backend: str | None = None, dtype: str = "float32",
                seed: int | None = None, steps_per_execution: int | str = "auto", device: str | None = None,
                nonfinite_loss: str = "stop", distribution: Any = None, **unsupported: Any) -> None:
        """Fix the optimizer, loss and metrics, and build the model on a backend.

        metrics / weighted_metrics: lists of metrics (names, metric objects or functions). As in
        Keras, sample and class weights weight the loss and `weighted_metrics`, never `metrics`.
        backend: a registered backend name, else $POLYNN_BACKEND, else "numpy".
        dtype: "float32" or "float64". seed: the seed of the shared random streams (initial weights,
        batch order, dropout), else the one from polynn.set_random_seed, else a random one.
        steps_per_execution: training steps per backend call; "auto" runs a whole epoch per call
        unless a progress bar or a batch-level callback needs the steps one by one.
        nonfinite_loss: what fit() does when a step's loss is NaN or infinite. "stop" (the default)
        warns, naming the epoch and step, and ends training with the model at its last step whose
        loss was finite (and whose weights are); "raise" does the same and raises
        polynn.errors.NonFiniteLossError; "continue" trains on, as Keras does without TerminateOnNaN.
        Like device, it belongs to this session and is not saved in model files.
        device: where the backend computes: None (its default, the CPU), or a device it lists, such
        as torch's "cpu", "cuda", "cuda:N" and TensorFlow's "cpu", "gpu", "gpu:N"; under
        data-parallel training "cuda" and "gpu" mean the GPU numbered by the process's local rank.
        distribution: None trains in this process alone; "data_parallel" (or
        polynn.distribution.DataParallel()) trains one model across the processes of the job the
        script was launched in (polynn.distribution), batch_size being the global batch; "auto" is
        data-parallel exactly when the launcher started more than one process. Rank 0's seed is
        used everywhere. Not saved in model files: a checkpoint resumes at any number of processes.
        A layer that trains on statistics of the whole batch (BatchNormalization, unless frozen)
        is refused under data-parallel training, whose processes each see a share of the batch.
        """
        _refuse_unsupported("compile", self.compile, unsupported)
        check_choice(self.name, "dtype", dtype, DTYPES)
        check_choice(self.name, "nonfinite_loss", nonfinite_loss, NONFINITE_LOSS_POLICIES)
        if steps_per_execution != "auto":
            check_positive_int(self.name, "steps_per_execution", steps_per_execution)
        optimizer = _optimizers.get(optimizer.spec if isinstance(optimizer, LiveOptimizer) else optimizer)
        loss = None if loss is None else _losses.get(loss)
        if loss is not None and loss.reduction == "none":
            raise InvalidArgumentError("reduction", "none", "a reducing reduction for training: "
                                       + ", ".join(_losses.REDUCTIONS), owner=loss.name)
        metric_ids = _metric_list(self.name, "metrics", metrics)
        weighted_ids = _metric_list(self.name, "weighted_metrics", weighted_metrics)
        name = backend or os.environ.get("POLYNN_BACKEND") or "numpy"
        engine = plugins.get_backend(name)
        replica = _distribution.resolve(distribution, self.name)
        if replica is not None:
            _check_distribution(engine, replica)
            _refuse_state_layers(self.layer_names(), self._layers)
            seed = _replicas().agree_on_seed(replica, _random.resolve_seed(seed))
        # Weights set by the user or trained are kept (moving a model to another backend);
        # weights only drawn before any seed was given are drawn again from this one.
        keep = self._weights is not None and not self._weights_provisional
        previous = None
        if keep:
            # The runtime's weights when there is one (they may be trained); otherwise the float64
            # weights held here, not get_weights(), whose float32 copy would lose precision.
            runtime = None if self._compiled is None else self._compiled.runtime
            previous = runtime.get_weights() if runtime is not None else self._weights
        # A compile() that fails (the backend refusing the device, say) leaves the model as it was.
        before = (self._compiled, self._iterations, self._weights, self._weights_provisional, self._built_shape)
        try:
            self._compiled = _Compiled(optimizer, loss, metric_ids, weighted_ids, engine, dtype,
                                       _random.resolve_seed(seed), steps_per_execution, device, nonfinite_loss,
                                       replica)
            self._iterations = 0
            self._weights = None if previous is None else [np.asarray(w, dtype=np.float64) for w in previous]
            if self.input_shape is not None:
                self._ensure_built()
                self._make_runtime()
        except BaseException:
            self._compiled, self._iterations, self._weights, self._weights_provisional, self._built_shape = before
            raise

    @property
    def compiled(self) -> bool:
        return self._compiled is not None

    @property
    def backend(self) -> str | None:
        return None if self._compiled is None else self._compiled.backend.name

    @property
    def dtype(self) -> str | None:
        return None if self._compiled is None else self._compiled.dtype

    @property
    def optimizer(self) -> LiveOptimizer | None:
        """The compiled optimizer (None before compile()): its spec read through, with Keras's live
        `learning_rate` (readable and settable, the same as model.learning_rate) and `iterations`;
        `model.optimizer.spec` is the immutable spec itself. See polynn._live_optimizer."""
        compiled = self._compiled
        if compiled is None:
            return None
        if compiled.optimizer_view is None:
            compiled.optimizer_view = LiveOptimizer(self, compiled)
        return compiled.optimizer_view

    @property
    def loss(self) -> Loss | None:
        return None if self._compiled is None else self._compiled.loss

    @property
    def learning_rate(self) -> float | None:
        """The rate of the next update: a callback's override, else the optimizer's rate, or its
        schedule at the current iteration. Settable (to a number, or None to drop an override)
        when the optimizer has a constant rate, as keras' optimizer.learning_rate."""
        compiled = self._require_compiled("learning_rate")
        if compiled.learning_rate is not None:
            return compiled.learning_rate
        return float(compiled.optimizer.learning_rates(np.array([self._iterations]))[0])

    @learning_rate.setter
    def learning_rate(self, value: float | None) -> None:
        compiled = self._require_compiled("learning_rate")
        if isinstance(compiled.optimizer.learning_rate, _schedules.LearningRateSchedule):
            raise InvalidArgumentError(
                "learning_rate", value, "no new rate: the optimizer follows a LearningRateSchedule (as Keras)",
                owner=self.name)
        compiled.learning_rate = None if value is None else check_number(
            self.name, "learning_rate", float(value) if isinstance(value, np.floating) else value, low=0.0)

    @property
    def iterations(self) -> int:
        """Optimizer updates made since compile()."""
        return self._iterations

    def _require_compiled(self, action: str) -> _Compiled:
        if self._compiled is None:
            raise NotCompiledError(f"{action}() was called before compile(); "
                                   "call model.compile(optimizer=..., loss=...) first")
        return self._compiled

    def _resolve_metrics(self, y_shape: tuple | None) -> tuple[tuple[Metric, ...], tuple[bool, ...], list[str]]:
        """(metric specs, whether each takes the sample weights, log names): `metrics` first, then
        `weighted_metrics`, named as Keras names them."""
        compiled = cast(_Compiled, self._compiled)  # compile() has set it
        out_shape = cast(tuple, self.output_shape)  # the model is built
        resolved: list[Metric] = []
        weighted: list[bool] = []
        names: list[str] = []
        namer = _MetricNamer()
        for ids, takes_weights in ((compiled.metric_ids, False), (compiled.weighted_ids, True)):
            for m in ids:
                if isinstance(m, str) and m.lower() in ("accuracy", "acc"):
                    y_true_shape = y_shape if y_shape is not None else out_shape
                    resolved.append(_metrics.resolve_accuracy(tuple(y_true_shape), tuple(out_shape)))
                    names.append(m.lower() if m.lower() == "accuracy" else "acc")
                else:
                    spec = _metrics.get(m)
                    resolved.append(spec)
                    names.append(namer(m, spec))
                weighted.append(takes_weights)
        return tuple(resolved), tuple(weighted), _log_names(names, weighted)

    def _metric_ids_to_save(self) -> tuple[list[Any], list[Any]]:
        """compile()'s metrics and weighted_metrics as a model file holds them: each metric object
        without a name given the automatic one it logs under, so the loaded model, whose objects
        are new ones, logs the same keys."""
        compiled = cast(_Compiled, self._compiled)  # compile() has set it
        namer = _MetricNamer()

        def named(m: Any) -> Any:
            if isinstance(m, (_metrics.Metric, type)):
                spec = _metrics.get(m)
                if spec.given_name is None:
                    return dataclasses.replace(spec, given_name=namer(m, spec))
            return m

        return [named(m) for m in compiled.metric_ids], [named(m) for m in compiled.weighted_ids]

    def _plan(self, metrics: tuple[Metric, ...], weighted: tuple[bool, ...]) -> Plan:
        compiled = cast(_Compiled, self._compiled)  # compile() has set it
        built_shape = cast(tuple, self._built_shape)  # and the model is built
        shapes = self._shapes(built_shape)
        dropout = tuple(i for i, layer in enumerate(self._layers) if isinstance(layer, Dropout) and layer.rate > 0)
        weights = tuple(self._weight_specs(built_shape))
        for _, ws in weights:
            axes = getattr(ws.constraint, "axis", None)
            for axis in (axes if isinstance(axes, tuple) else () if axes is None else (axes,)):
                if not -len(ws.shape) <= axis < len(ws.shape):
                    raise InvalidArgumentError(
                        "axis", axes, f"axes of the {len(ws.shape)}-d {ws.name} of shape {ws.shape}",
                        owner=type(ws.constraint).__name__)
        loss = compiled.loss if compiled.loss is not None else _losses.MeanSquaredError()
        check_output_axes((loss, *metrics), shapes[-1])
        if compiled.distribution is not None:
            _refuse_state_layers(self.layer_names(), self._layers)
        plan = Plan(tuple(self._layers), built_shape, tuple(shapes), weights, loss, metrics,
                    weighted, compiled.optimizer, compiled.dtype, dropout, compiled.device,
                    frozen_weights=self._frozen_weights(weights), distribution=compiled.distribution,
                    state_layers=self._state_layers())
        # The plugins are loaded by now (the backend was found): a spec they left out is refused
        # here even if the model was assembled before they loaded.
        for component in plan.components():
            _registry.check_usable(component)
        return plan

    def _frozen_weights(self, weights: Sequence[tuple[int, WeightSpec]]) -> tuple[int, ...]:
        """Indices of the weights the optimizer leaves alone (Plan.frozen_weights): those of layers
        with trainable=False, and the non-trainable ones (moving statistics) of every layer."""
        return tuple(k for k, (index, ws) in enumerate(weights) if not (self._layers[index].trainable and ws.trainable))

    def _state_layers(self) -> tuple[int, ...]:
        """Indices of the layers whose train steps update their state (Plan.state_layers)."""
        return tuple(index for index, layer in enumerate(self._layers) if layer.has_state_updates())

    def _make_runtime(self, y_shape: tuple | None = None,
                      state: tuple[list[np.ndarray], list[list[np.ndarray]]] | None = None) -> None:
        """A runtime for the current plan, its weights the model's, or `state` (weights and optimizer
        slots, in the plan's dtype) when it replaces a runtime whose layers' trainable changed."""
        compiled = cast(_Compiled, self._compiled)  # compile() has set it
        weights = cast("list[np.ndarray]", self._weights)  # and the model is built
        metrics, weighted, names = self._resolve_metrics(y_shape)
        plan = self._plan(metrics, weighted)
        runtime = _compile_on(compiled.backend, plan)
        if plan.frozen_weights and not getattr(runtime, "supports_frozen_weights", False):
            raise _cannot_freeze(compiled.backend, runtime,
                                 sorted({self.layer_names()[plan.weights[k][0]] for k in plan.frozen_weights}))
        if plan.state_layers and not getattr(runtime, "supports_state_updates", False):
            raise _cannot_update_state(compiled.backend, runtime, [self.layer_names()[i] for i in plan.state_layers])
        if state is None:
            runtime.set_weights([w.astype(compiled.dtype) for w in weights])
        else:
            runtime.set_weights(state[0])
            runtime.set_optimizer_state(state[1])
        compiled.runtime, compiled.plan, compiled.metric_names = runtime, plan, names

    def _runtime_for(self, x_shape: tuple, y_shape: tuple | None = None) -> Runtime:
        """The runtime, built now if the input shape came from data; metrics re-resolved from y."""
        compiled = cast(_Compiled, self._compiled)  # compile() has set it
        self._ensure_built(x_shape)
        if compiled.runtime is None:
            self._make_runtime(y_shape)
        elif not self._fitting and self._trainable_changed(cast(Plan, compiled.plan)):
            # A layer's trainable changed: a new runtime, with the weights and optimizer state kept.
            runtime = compiled.runtime
            self._make_runtime(y_shape, (runtime.get_weights(), runtime.get_optimizer_state()))
        elif y_shape is not None and (compiled.metric_ids or compiled.weighted_ids):
            metrics, weighted, names = self._resolve_metrics(y_shape)
            plan = cast(Plan, compiled.plan)  # set with the runtime
            if metrics != plan.metrics:
                compiled.runtime.set_metrics(metrics, weighted)
                compiled.plan = dataclasses.replace(plan, metrics=metrics, metric_weighted=weighted)
                compiled.metric_names = names
        return cast(Runtime, compiled.runtime)  # made above if it was not

    def _trainable_changed(self, plan: Plan) -> bool:
        """Whether a layer's trainable changed since `plan` was made: its frozen weights or its
        layers with state updates differ (a frozen BatchNormalization updates no statistics)."""
        return plan.frozen_weights != self._frozen_weights(plan.weights) or plan.state_layers != self._state_layers()

    # ---- weights ------------------------------------------------------------------------

    def get_weights(self) -> list[np.ndarray]:
        """Every weight array as numpy, Keras order: per layer, in its weight_specs() order (kernel
        then bias; gamma, beta, moving_mean, moving_variance), non-trainable ones included."""
        if self._compiled is not None and self._compiled.runtime is not None:
            return self._compiled.runtime.get_weights()
        if self._weights is None:
            if self.input_shape is None:
                return []
            self._ensure_built()
        dtype = self._compiled.dtype if self._compiled is not None else "float32"
        return [w.astype(dtype) for w in cast("list[np.ndarray]", self._weights)]  # built just above

    def set_weights(self, weights: Sequence[ArrayLike]) -> None:
        if self._weights is None:
            if self.input_shape is None:
                raise InvalidArgumentError(
                    "weights", f"{len(weights)} arrays", "set_weights() only once the input shape is known",
                    owner=self.name)
            self._ensure_built()
        expected = [ws.shape for _, ws in self._weight_specs(cast(tuple, self._built_shape))]  # built above
        arrays = _checked_weights(weights, expected, "", "the model")
        self._weights = [w.astype(np.float64) for w in arrays]
        self._weights_provisional = False
        self._weight_writes += 1
        if self._compiled is not None and self._compiled.runtime is not None:
            self._compiled.runtime.set_weights([w.astype(self._compiled.dtype) for w in arrays])

    def _exact_weights(self) -> list[np.ndarray]:
        """Every weight as the model holds it: the runtime's (plan dtype), else the float64 ones."""
        if self._compiled is not None and self._compiled.runtime is not None:
            return self._compiled.runtime.get_weights()
        self._ensure_built()
        return list(cast("list[np.ndarray]", self._weights))  # built just above

    def _layer_positions(self, index: int) -> list[tuple[int, WeightSpec]] | None:
        """(k, spec) of layer `index`'s weights in the model's list; None while the input shape is unknown."""
        shape = self._built_shape if self._built_shape is not None else self.input_shape
        if shape is None:
            return None
        return [(k, ws) for k, (owner, ws) in enumerate(self._weight_specs(tuple(shape))) if owner == index]

    def _layer_weights(self, index: int) -> list[np.ndarray]:
        positions = self._layer_positions(index)
        if not positions:
            return []
        weights = self.get_weights()
        return [weights[k] for k, _ in positions]

    def _set_layer_weights(self, index: int, weights: Sequence[ArrayLike]) -> None:
        """Layer `index`'s weights replaced, checked first (as set_weights) so a bad list changes nothing."""
        name = self.layer_names()[index]
        positions = self._layer_positions(index)
        if not isinstance(weights, (list, tuple)):
            raise InvalidArgumentError("weights", weights, "a list of arrays, as get_weights() gives",
                                       owner=f"layer {name}.set_weights")
        if positions is None:
            raise InvalidArgumentError(
                "weights", f"{len(weights)} arrays", "set_weights() only once the model's input shape is known",
                owner=f"layer {name}")
        arrays = _checked_weights(weights, [ws.shape for _, ws in positions], f"layer {name}: ", "the layer",
                                  [ws.name for _, ws in positions])
        full = self._exact_weights()
        for (k, _), w in zip(positions, arrays):
            full[k] = w
        self.set_weights(full)

    @property
    def weights(self) -> list[np.ndarray]:
        """Every weight, as get_weights() (NumPy arrays, where Keras gives variables)."""
        return self.get_weights()

    def _weights_where(self, trainable: bool) -> list[np.ndarray]:
        shape = self.input_shape
        if shape is None:
            return []
        specs = self._weight_specs(tuple(shape))
        return [w for w, (owner, ws) in zip(self.get_weights(), specs)
                if (self._layers[owner].trainable and ws.trainable) == trainable]

    @property
    def trainable_weights(self) -> list[np.ndarray]:
        """The trainable weights of the layers with trainable=True, in get_weights() order."""
        return self._weights_where(True)

    @property
    def non_trainable_weights(self) -> list[np.ndarray]:
        """The weights of the layers with trainable=False, and the non-trainable weights (moving
        statistics) of the others, in get_weights() order (Keras's order per layer)."""
        return self._weights_where(False)

    def count_params(self) -> int:
        shape = self.input_shape
        if shape is None:
            return 0
        return int(sum(int(np.prod(ws.shape)) for _, ws in self._weight_specs(tuple(shape))))

    # ---- training -----------------------------------------------------------------------

    def fit(self, x: ArrayLike | None = None, y: ArrayLike | None = None, batch_size: int | None = None,
            epochs: int = 1, verbose: int | str = "auto", callbacks: Sequence[Callback] | None = None,
            validation_split: float = 0.0, validation_data: tuple | None = None, shuffle: bool = True,
            class_weight: dict[int, float] | None = None, sample_weight: ArrayLike | None = None,
            initial_epoch: int = 0, validation_batch_size: int | None = None, validation_freq: int = 1,
            **unsupported: Any) -> History:
        """Train as keras.Model.fit; returns the History.

        class_weight and sample_weight given together multiply, as tf.keras 2 did (Keras 3 refuses
        the pair); both weight the loss and weighted_metrics only."""
        _refuse_unsupported("fit", self.fit, unsupported)
        self._require_compiled("fit")
        # A callback's own fit on this model runs inside this one and must not end its hold on the runtime.
        outer_fitting = self._fitting
        try:
            return _training.fit(self, _Trainee(self, training=True), x, y, batch_size=batch_size, epochs=epochs,
                                 verbose=verbose,
                                 callbacks=callbacks, validation_split=validation_split,
                                 validation_data=validation_data, shuffle=shuffle, class_weight=class_weight,
                                 sample_weight=sample_weight, initial_epoch=initial_epoch,
                                 validation_batch_size=validation_batch_size, validation_freq=validation_freq)
        finally:
            self._fitting = outer_fitting

    # The return type follows return_dict: the loss (and metrics, as a list) or a dict of them all.
    @overload
    def evaluate(self, x: ArrayLike | None = None, y: ArrayLike | None = None, batch_size: int | None = None,
                 verbose: int | str = "auto", sample_weight: ArrayLike | None = None,
                 callbacks: Sequence[Callback] | None = None, return_dict: Literal[False] = False,
                 **unsupported: Any) -> float | list[float]: ...

    @overload
    def evaluate(self, x: ArrayLike | None = None, y: ArrayLike | None = None, batch_size: int | None = None,
                 verbose: int | str = "auto", sample_weight: ArrayLike | None = None,
                 callbacks: Sequence[Callback] | None = None, *, return_dict: Literal[True],
                 **unsupported: Any) -> dict[str, float]: ...

    @overload
    def evaluate(self, x: ArrayLike | None = None, y: ArrayLike | None = None, batch_size: int | None = None,
                 verbose: int | str = "auto", sample_weight: ArrayLike | None = None,
                 callbacks: Sequence[Callback] | None = None, return_dict: bool = False,
                 **unsupported: Any) -> float | list[float] | dict[str, float]: ...

    def evaluate(self, x: ArrayLike | None = None, y: ArrayLike | None = None, batch_size: int | None = None,
                 verbose: int | str = "auto", sample_weight: ArrayLike | None = None,
                 callbacks: Sequence[Callback] | None = None, return_dict: bool = False,
                 **unsupported: Any) -> float | list[float] | dict[str, float]:
        """Loss (and metrics) in inference mode, as keras.Model.evaluate."""
        _refuse_unsupported("evaluate", self.evaluate, unsupported)
        self._require_compiled("evaluate")
        return _training.evaluate(self, _Trainee(self), x, y, batch_size=batch_size, verbose=verbose,
                                  sample_weight=sample_weight, callbacks=callbacks, return_dict=return_dict)

    def predict(self, x: ArrayLike, batch_size: int | None = None, verbose: int | str = "auto",
                callbacks: Sequence[Callback] | None = None, **unsupported: Any) -> np.ndarray:
        """Outputs in inference mode. Before compile(), runs on the default backend in float32."""
        _refuse_unsupported("predict", self.predict, unsupported)
        if self._compiled is None:
            drawn_here = self._weights is None or self._weights_provisional
            # Weights already drawn (by build, get_weights, summary or export) are the ones predicted
            # with, as in Keras; the implicit compile draws them only if there are none.
            self._weights_provisional = False
            try:
                self.compile(loss=None)
            finally:
                # They stay provisional: a later compile(seed=...) draws them again from its seed.
                self._weights_provisional = drawn_here
        return _training.predict(self, _Trainee(self), x, batch_size=batch_size, verbose=verbose, callbacks=callbacks)

    # ---- files --------------------------------------------------------------------------

    def save(self, filepath: str | os.PathLike[str], overwrite: bool = True) -> None:
        """Write the model to one safetensors file: spec, weights, optimizer state, training position
        and metadata. Atomic: the file is written beside the target, then renamed over it.
        A name ending in '.keras' writes a Keras 3 archive instead (keras.models.load_model reads it;
        a component Keras lacks is refused); Keras's legacy '.h5' / '.hdf5' names are refused."""
        _replicas().on_chief(self._distribution(), "save the model",
                             lambda: _files().save_model(self, filepath, overwrite))

    def save_weights(self, filepath: str | os.PathLike[str], overwrite: bool = True) -> None:
        """Write only the weights (safetensors, atomically); a name ending in '.weights.h5' writes
        Keras 3's weights file instead (keras_model.load_weights reads it)."""
        _replicas().on_chief(self._distribution(), "save the weights",
                             lambda: _files().save_weights(self, filepath, overwrite))

    def load_weights(self, filepath: str | os.PathLike[str], allow_nonfinite: bool = False) -> None:
        """Set the weights from a file written by save_weights() or save(); names and shapes must match.
        Keras 3's .weights.h5 and .keras files are read too (told by content): their Dense kernels
        and biases, in order. A file holding NaN or infinite weights is refused unless allow_nonfinite=True."""
        _model_files().load_weights(self, filepath, allow_nonfinite=allow_nonfinite)

    def export(self, filepath: str | os.PathLike[str], format: str | None = None,  # noqa: A002 (Keras's name)
               verbose: bool | None = None, input_signature: Sequence[int | None] | None = None,
               opset_version: int | None = None, **unsupported: Any) -> None:
        """Write the inference model as an ONNX graph, as keras.Model.export(format="onnx"); needs
        polynn[onnx]. Atomic, as save().

        format: "onnx", or None (the default) for a filepath ending in ".onnx": polynn exports
        ONNX only. The graph has one input "input" of shape (batch, *input_shape) and one output
        "output", in the model's dtype (float32 before compile); its weights are those get_weights()
        gives now, so every backend writes the same file. Dropout is the identity. Each built-in
        layer and activation is restated with elementary ONNX ops and Keras's constants; a component
        without such a lowering (a plugin's, a Python function) is refused before anything is
        written, and so is exact gelu in float64 (ONNX Runtime runs Erf in float32 only).
        input_signature: None (batch dynamic) or a shape (batch, *input_shape), batch None or a
        positive int. opset_version: None (17), or 13 up to the installed onnx's newest.
        verbose: True prints where the file went.
        """
        _refuse_unsupported("export", self.export, unsupported)
        from . import _onnx_export

        _replicas().on_chief(self._distribution(), "export the model", lambda: _onnx_export.export(
            self, filepath, format=format, verbose=verbose, input_signature=input_signature,
            opset_version=opset_version))

    def _distribution(self) -> Replica | None:
        """This process's Replica when compiled for data-parallel training, else None."""
        return None if self._compiled is None else self._compiled.distribution

    # ---- description --------------------------------------------------------------------

    def summary(self, print_fn: Callable[[str], Any] | None = None) -> None:
        emit = print_fn or print
        for line in summary_lines(self):
            emit(line)

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "layers": [_registry.serialize(layer) for layer in self._layers]}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Sequential:
        if not isinstance(config, dict) or not isinstance(config.get("layers"), list):
            raise InvalidArgumentError("config", config, "a dict with a 'layers' list, from Sequential.get_config()")
        return cls([resolve("layer", layer) for layer in config["layers"]], name=config.get("name"))

    def __repr__(self) -> str:
        return f"<Sequential {self.name!r}: {len(self._layers)} layers, backend={self.backend}>"


def _not_supported(name: str, instead: str) -> property:
    def refuse(self: Sequential) -> Any:
        raise NotSupportedError(f"Sequential has no {name!r} (Keras has); accepted instead: {instead}")

    return property(refuse, doc=f"Not in polynn: use {instead}.")


# Properties, not __getattr__: that would also catch an AttributeError raised inside a real property
# and report the property itself as missing.
for _name, _instead in _KERAS_ATTRIBUTES.items():
    setattr(Sequential, _name, _not_supported(_name, _instead))
del _name, _instead


class _Trainee:
    """A compiled Sequential as the training loop uses it (polynn._training.Trainee): the plan and
    runtime for the data's shapes, the metrics' log names, the seed, the step counter."""

    def __init__(self, model: Sequential, training: bool = False) -> None:
        self._model = model
        self._compiled = cast(_Compiled, model._compiled)  # fit(), evaluate() and predict() compile first
        self._training = training

    @property
    def plan(self) -> Plan:
        return cast(Plan, self._compiled.plan)  # read once prepare() made the runtime

    @property
    def seed(self) -> int:
        return self._compiled.seed

    @property
    def steps_per_execution(self) -> int | str:
        return self._compiled.steps_per_execution

    @property
    def learning_rate(self) -> float | None:
        return self._compiled.learning_rate

    @property
    def metric_names(self) -> list[str]:
        return self._compiled.metric_names

    @property
    def nonfinite_loss(self) -> str:
        return self._compiled.nonfinite_loss

    @property
    def distribution(self) -> Replica | None:
        return self._compiled.distribution

    def share_learning_rate(self, value: float | None) -> None:
        self._compiled.learning_rate = value

    def build(self, x_shape: tuple) -> None:
        self._model._ensure_built(x_shape)

    def prepare(self, x_shape: tuple, y_shape: tuple | None = None) -> Runtime:
        runtime = self._model._runtime_for(x_shape, y_shape)
        if self._training:
            # From here on fit's blocks hold this runtime: a layer frozen meanwhile (by a callback)
            # waits for the next fit, evaluate or predict, as the validation runs on this one.
            self._model._fitting = True
        return runtime

    @property
    def weight_writes(self) -> int:
        return self._model._weight_writes

    def advance(self, steps: int) -> None:
        self._model._iterations += steps

    def restart_at(self, iterations: int) -> None:
        self._model._iterations = iterations


def _replicas() -> Any:
    """polynn._replicas, imported on first use (data-parallel training only)."""
    from . import _replicas

    return _replicas


def _check_distribution(backend: Backend, replica: Replica) -> None:
    """Refuse a backend that does not train data-parallel, or not on the job's engine."""
    if "data_parallel" not in plugins.backend_distributions(backend.name):
        able = sorted(e.name for e in plugins.backend_entries() if "data_parallel" in e.distributions)
        raise InvalidArgumentError(
            "distribution", "data_parallel",
            f"None: backend {backend.name!r} does not train data-parallel (it declares no distributions); "
            f"backends that do: {', '.join(able) or 'none installed'}", owner=f"backend {backend.name!r}")
    engines = backend.distribution_engines
    engine = replica.communicator.engine
    if engines is not None and engine not in (*engines, "none"):
        raise InvalidArgumentError(
            "distribution", "data_parallel",
            f"a job on the {' or '.join(engines)} engine: backend {backend.name!r} trains data-parallel on "
            f"{', '.join(engines)} collectives, but this process joined its job on the {engine} engine "
            f"(polynn.distribution.initialize read {engine!r} from the launcher's environment)",
            owner=f"backend {backend.name!r}")


def _files() -> Any:
    """polynn._saving, imported on first use: it and json would add to every `import polynn`."""
    from . import _saving

    return _saving


def _model_files() -> Any:
    """polynn._model_files (which reads polynn's files and Keras's), imported on first use."""
    from . import _model_files

    return _model_files


def _compile_on(backend: Backend, plan: Plan) -> Runtime:
    """backend.compile(plan), with whatever else than a polynn error it raises, or a result that is
    not a Runtime, reported as the plugin's fault, naming it (the core checked the plan)."""
    try:
        runtime = backend.compile(plan)
    except PolynnError:
        raise
    except Exception as error:
        raise PluginError(f"{plugins.describe_backend(backend.name)} failed to compile the model: "
                          f"{type(error).__name__}: {error}") from error
    if not isinstance(runtime, Runtime):
        raise PluginError(f"{plugins.describe_backend(backend.name)}: compile(plan) returned "
                          f"{type(runtime).__module__}.{type(runtime).__qualname__}; accepted: an instance of "
                          f"polynn.backend.Runtime")
    return runtime


def _refuse_state_layers(names: list[str], layers: Sequence[Layer]) -> None:
    """Data-parallel training is exact (N processes give one's numbers); a layer that updates its
    state from each training batch (BatchNormalization's batch statistics) would see only a
    process's share of the batch, so it is refused."""
    for name, layer in zip(names, layers):
        if layer.has_state_updates():
            raise InvalidArgumentError(
                "distribution", "data_parallel",
                f"None with layer {name} ({type(layer).__name__}): in training it normalizes by, and updates "
                f"its state from, statistics of the whole batch, which data-parallel training splits across "
                f"processes, so its numbers would not be one process's; or freeze it (trainable=False runs it "
                f"in inference mode, on its moving statistics)", owner=f"layer {name}")


def _cannot_update_state(backend: Backend, runtime: Runtime, layers: list[str]) -> UnsupportedComponentError:
    """The error for layers with state updates on a runtime that does not say it applies them."""
    error = UnsupportedComponentError("layer", f"{layers[0]} (state updates in training)", backend.name)
    kind = f"{type(runtime).__module__}.{type(runtime).__qualname__}"
    error.args = (f"{plugins.describe_backend(backend.name)} cannot train layers with state: its runtime {kind} "
                  f"does not set supports_state_updates, and layer {', '.join(layers)} updates its non-trainable "
                  f"weights in training (moving statistics); accepted: such layers frozen (trainable=False), or a "
                  f"backend that updates layer state (polynn's own do)",)
    return error


def _cannot_freeze(backend: Backend, runtime: Runtime, frozen: list[str]) -> UnsupportedComponentError:
    """The error for frozen layers on a runtime that does not say it leaves them alone: refused, as
    an unsupported component is (the kit reports the case unsupported), rather than trained."""
    error = UnsupportedComponentError("layer", f"{frozen[0]} (trainable=False)", backend.name)
    kind = f"{type(runtime).__module__}.{type(runtime).__qualname__}"
    error.args = (f"{plugins.describe_backend(backend.name)} cannot freeze layers: its runtime {kind} does not "
                  f"set supports_frozen_weights, and layer {', '.join(frozen)} has trainable=False or "
                  f"non-trainable weights (moving statistics); accepted: trainable=True on every layer and no "
                  f"layer with non-trainable weights, or a backend that freezes layers (polynn's own do)",)
    return error


def load_model(filepath: str | os.PathLike[str], backend: str | None = None, dtype: str | None = None,
               allow_nonfinite: bool = False, *, device: str | None = None, distribution: Any = None) -> Sequential:
    """A model written by Sequential.save(), compiled with its weights, optimizer state, iteration
    count, learning-rate override and seed restored, so training resumes exactly.

    A Keras 3 .keras archive (told by content, whatever its name) loads as Keras saved it: the
    architecture, weights, compile configuration and optimizer state, so fit() continues as Keras's
    would. It is parsed, never executed: only Keras's own components that polynn has are accepted
    (no Lambda layers or custom objects); anything else is refused, naming the file and the item.
    Needs polynn[keras-files] (h5py).

    backend: None uses the backend recorded in the file if installed, else the default.
    dtype: None uses the recorded dtype. Files are checked strictly and nothing in them is executed:
    a malformed or hostile file raises ModelFileError (UnknownComponentError for unknown names).
    allow_nonfinite: load NaN or infinite weights and optimizer slots as they are (else refused).
    device, distribution: as compile() takes them, for a model saved compiled (they belong to the
    session, not the file): a checkpoint written by a data-parallel job of any size resumes with
    distribution="data_parallel" in a job of another size, or in one process, step for step.
    """
    return _model_files().load_model(filepath, Sequential, backend=backend, dtype=dtype,
                                     allow_nonfinite=allow_nonfinite, device=device, distribution=distribution)
