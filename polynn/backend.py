"""The interface a backend implements: a Backend that compiles a Plan into a Runtime.

The core owns everything that must be the same on every engine: the spec, initial weights, batch
order, dropout masks, per-step optimizer scalars, metric results, the training loop and its
logging. A backend owns only the arithmetic: forward, gradients, optimizer updates and metric
increments, for whole blocks of steps at a time so graph engines can compile the loop.
"""

from __future__ import annotations

import abc
import dataclasses
import functools
import inspect
import sys
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np

from . import _registry, plugins
from . import ops as polynn_ops
from ._communicator import Cluster, Communicator
from ._custom import per_sample_check as check_values
from ._signals import deferred_interrupts
from ._spec import Component
from ._typing import Tensor
from .distribution import Replica
from .errors import InvalidArgumentError, UnsupportedComponentError
from .hookspecs import COMPUTED_KINDS
from .layers import Layer, WeightSpec
from .losses import Loss
from .metrics import MeanMetric, Metric
from .optimizers import Optimizer

__all__ = ["Backend", "Runtime", "Plan", "StepResult", "SharedLayer", "check_values", "deferred_interrupts",
           "takes_training"]
# check_values(spec, values_shape, y_pred_shape, weighted=False): a user loss's or metric's values are
# per sample or one for the batch (shape ()); a backend that runs user functions itself (not through the
# shared calls) checks them with it, and a runtime about to weight a metric's values per sample passes
# weighted=True, which refuses one value per batch as Keras 3 does.


@dataclasses.dataclass(frozen=True)
class Plan:
    """Everything a backend needs to build a model, resolved and validated by the core.

    layers: the layer specs in order (Input layers included; they compute the identity).
    input_shape / shapes: per-sample input shape and each layer's output shape (no batch axis).
    weights: (layer index, WeightSpec) for every weight array, in Keras order.
    frozen_weights: indices into `weights` of the arrays the optimizer leaves alone: those of layers
        with trainable=False, and the non-trainable weights (WeightSpec.trainable False: moving
        statistics) of every layer. A train step gives them no update, no change to their optimizer
        slots, and leaves their gradients out of gradient clipping; their regularizer penalties and
        constraints are dropped (Backend.weight_implementations leaves them out), as Keras 3 does.
        Only a Runtime whose class sets `supports_frozen_weights` gets a plan with any (the core
        refuses the others).
    state_layers: indices of the layers whose train steps update their non-trainable weights
        (Layer.has_state_updates(): a trainable layer defining `state_updates`). In each train step,
        never in test or predict steps, a runtime calls the layer implementation's
        state_updates(params, x) on the input x of its training-mode forward and puts the values in
        the layer's arrays `state_weights()` lists, once the step's update is done. Only a Runtime
        whose class sets `supports_state_updates` gets a plan with any (the core refuses the others).
    dropout_layers: indices of Dropout layers with rate > 0; train_steps gets one mask per entry.
    metrics: resolved metric specs (the string 'accuracy' already turned into a class).
    metric_weighted: for each metric, whether it takes the sample weights (compile's
        weighted_metrics) or ignores them (compile's metrics), as Keras.
    distribution: None for one process; under compile(distribution="data_parallel") this
        process's polynn.distribution.Replica (rank, world size, communicator, slicing), which
        train_steps follows as that class documents. Only a backend whose `distributions` lists
        "data_parallel" gets a plan with one.
    """

    layers: tuple[Layer, ...]
    input_shape: tuple
    shapes: tuple[tuple, ...]
    weights: tuple[tuple[int, WeightSpec], ...]
    loss: Loss
    metrics: tuple[Metric, ...]
    metric_weighted: tuple[bool, ...]
    optimizer: Optimizer
    dtype: str
    dropout_layers: tuple[int, ...]
    device: str | None = None
    frozen_weights: tuple[int, ...] = ()
    distribution: Replica | None = None
    state_layers: tuple[int, ...] = ()

    def trainable_weights(self) -> list[int]:
        """Indices into `weights` of the arrays a train step updates: all but `frozen_weights`."""
        frozen = set(self.frozen_weights)
        return [k for k in range(len(self.weights)) if k not in frozen]

    def state_weights(self) -> dict[int, list[int]]:
        """For each of `state_layers`, the indices into `weights` of its non-trainable arrays, in
        order: where the values of its state_updates go."""
        found: dict[int, list[int]] = {index: [] for index in self.state_layers}
        for k, (owner, weight) in enumerate(self.weights):
            if owner in found and not weight.trainable:
                found[owner].append(k)
        return found

    def layer_weights(self) -> list[list[int]]:
        """For each layer, the indices into `weights` of its arrays, in order (empty for a layer
        without weights): one pass over the weights, however many layers."""
        owned: list[list[int]] = [[] for _ in self.layers]
        for k, (owner, _) in enumerate(self.weights):
            owned[owner].append(k)
        return owned

    def components(self) -> list[Component]:
        """Every component spec the plan uses, nested ones included (for support checks)."""
        found: list[Component] = []
        # Specs are frozen dataclasses, hashable unless a field holds a list: the set keeps a plan of
        # many distinct components linear; the list scan serves the unhashable ones.
        seen: set[Any] = set()

        def visit(component: Any) -> None:
            if component is None:
                return
            try:
                if component in seen:
                    return
                seen.add(component)
            except TypeError:
                if component in found:
                    return
            found.append(component)
            for f in dataclasses.fields(component):
                value = getattr(component, f.name)
                if hasattr(value, "kind") and hasattr(value, "get_config"):
                    visit(value)

        for c in (*self.layers, self.loss, *self.metrics, self.optimizer):
            visit(c)
        return found


class StepResult(NamedTuple):
    """What a block of steps returns: the loss of each step (float64, regularization included)
    and, for each metric, the sum of its state increments over the block."""

    losses: np.ndarray
    metric_states: list[np.ndarray]


class Runtime(abc.ABC):
    """A compiled model on one backend. Arrays cross this interface as numpy arrays.

    Subclasses implement every abstract method below; snapshot() and restore() have defaults built
    on them. The core never calls anything else.

    `supports_frozen_weights`: set it True on a runtime whose train_steps leaves the weights in
    Plan.frozen_weights, and their optimizer slots, as they are (OpsRuntime and polynn's backends
    do); the core refuses a model with frozen layers (trainable=False) or non-trainable weights on
    a runtime that does not say so, rather than train what the user froze.

    `supports_state_updates`: set it True on a runtime whose train_steps passes training=True to
    the layer implementations whose forward takes `training` (see takes_training) and applies the
    state updates of Plan.state_layers; the core refuses a model with such layers
    (BatchNormalization) on a runtime that does not say so, rather than leave its moving
    statistics where they started.
    """

    supports_frozen_weights: bool = False
    supports_state_updates: bool = False

    @abc.abstractmethod
    def get_weights(self) -> list[np.ndarray]:
        """Every trainable array, in Plan.weights order, as numpy arrays of the plan's dtype."""
        ...

    @abc.abstractmethod
    def set_weights(self, weights: Sequence[np.ndarray]) -> None:
        """Replace every trainable array; shapes were checked by the core."""
        ...

    @abc.abstractmethod
    def get_optimizer_state(self) -> list[list[np.ndarray]]:
        """For each weight, its optimizer slots in Optimizer.slot_names() order."""
        ...

    @abc.abstractmethod
    def set_optimizer_state(self, state: Sequence[Sequence[np.ndarray]]) -> None:
        ...

    def snapshot(self) -> Any:
        """The training state (weights and optimizer slots) as an opaque value for restore().

        fit() takes one before each block of steps and restores it when the block fails or is
        interrupted, so the model never holds a half-done block. The default copies through
        get_weights() and get_optimizer_state(); a runtime may return something cheaper (copies in
        the engine's memory, or the arrays themselves when it never updates them in place).
        """
        return self.get_weights(), self.get_optimizer_state()

    def restore(self, snapshot: Any) -> None:
        """Put back the state a snapshot() call returned."""
        weights, slots = snapshot
        self.set_weights(weights)
        self.set_optimizer_state(slots)

    @abc.abstractmethod
    def set_metrics(self, metrics: Sequence[Metric], weighted: Sequence[bool]) -> None:
        """Replace the metrics computed by train_steps and test_steps; weighted[i] tells whether
        metric i takes the sample weights (as Plan.metric_weighted)."""
        ...

    @abc.abstractmethod
    def put_data(self, x: np.ndarray, y: np.ndarray | None = None, sample_weight: np.ndarray | None = None) -> Any:
        """Move a data set to the engine once; the handle is passed back to the *_steps methods.
        x and y arrive in the plan's dtype; sample_weight is None or a float vector of len(x)."""
        ...

    @abc.abstractmethod
    def train_steps(self, data: Any, batches: np.ndarray, masks: Sequence[np.ndarray],
                    scalars: dict[str, np.ndarray]) -> StepResult:
        """Run len(batches) training steps in order.

        batches: int64 (steps, batch_size) row indices into the data set.
        masks: for each Plan.dropout_layers entry, (steps, *mask_shape) scaled keep masks.
        scalars: the optimizer's per-step scalars (Optimizer.step_scalars), each (steps,), already
        in the plan's dtype.
        Each step: forward in training mode, loss = reduced loss + penalties, gradients, the
        optimizer update in the order the optimizers module documents, constraints, then the
        state updates of Plan.state_layers. Metric increments use the training-mode predictions
        of that step, before its update.
        """
        ...

    @abc.abstractmethod
    def test_steps(self, data: Any, batches: np.ndarray) -> StepResult:
        """Loss (penalties included) and metric increments of each batch in inference mode."""
        ...

    @abc.abstractmethod
    def predict_steps(self, data: Any, batches: np.ndarray) -> np.ndarray:
        """Inference-mode outputs for the rows of each batch, concatenated in order."""
        ...


def shared_method(kind: str, spec_class: type[Any]) -> str | None:
    """The name of the method a spec class of `kind` defines when it is written once on polynn.ops:
    `call` (a mean metric's per-sample values included), `increment` for a metric that is not a
    mean (its state increment for a batch), `update` for an optimizer (one weight's rule); None for
    kinds the core computes itself."""
    if kind == "metric" and not issubclass(spec_class, MeanMetric):
        return "increment"
    if kind == "optimizer":
        return "update"
    return "call" if kind in ("layer", "activation", "loss", "metric", "regularizer", "constraint") else None


def _rows(y: Tensor) -> Any:
    """The number of rows of y: a number where the engine knows it, else a scalar of y's dtype
    (a graph traced for any batch size)."""
    shape = polynn_ops.shape(y)
    if shape[0] is not None:
        return shape[0]
    ones = polynn_ops.ones_like(y)
    if len(shape) > 1:
        ones = polynn_ops.mean(ones, axis=tuple(range(1, len(shape))))
    return polynn_ops.sum(ones)


def takes_training(layer: Any) -> bool:
    """Whether a layer implementation's forward takes the keyword `training` (SharedLayer's does):
    a runtime passes training=True in train steps to those that do, and nothing to the others
    (layers written before it, or that compute the same in training)."""
    return _takes(layer.forward, "training")


def _takes(function: Callable[..., Any], name: str) -> bool:
    try:
        return name in inspect.signature(function).parameters
    except (TypeError, ValueError):  # a builtin without a signature takes no keywords of ours
        return False


class SharedLayer:
    """A layer written once on polynn.ops (its spec's `call`), in the form the runtimes of engines
    with autodiff build: cls(backend, spec); forward(params, x, mask=None, training=False) -> y,
    run on the backend's ops with its implementation of the layer's activation (its override or a
    user function's, else the activation's shared `call`), training passed on to a call that takes
    it; state_updates(params, x), the spec's (a layer with state); `activity`, the implementation
    of the activity regularizer (None without one), and penalty(y), its penalty of y divided by the
    batch size (Keras 3). A backend's own layer may subclass it to override `forward`."""

    def __init__(self, backend: Backend, spec: Layer) -> None:
        self.spec = spec
        self.backend = backend
        self.activation: Callable[..., Tensor] | None = None
        self.activation_in_ops = False
        activation: Any = getattr(spec, "activation", None)
        if getattr(activation, "kind", None) == "activation":
            # An override (the activation's, or its parent's when it keeps the parent's math) runs as
            # the backend has it; without one the shared call runs inside the layer's own run_ops.
            parent = _computed_as("activation", type(activation))
            own = backend.own_implementation("activation", activation.name)
            if own is None and parent is not None:
                own = backend.own_implementation("activation", parent.name)
            self.activation = activation.call if own is None else functools.partial(own, activation)
            # An override runs on the engine's tensors as they are; a shared call needs run_ops.
            self.activation_in_ops = own is None
        regularizer = getattr(spec, "activity_regularizer", None)
        # The backend's implementation of the regularizer, f(spec, y) -> penalty, or None.
        self.activity: Any = None if regularizer is None else backend.implementation("regularizer", regularizer.name)
        call: Any = spec.call
        self.call_in_training = functools.partial(call, training=True) if _takes(call, "training") else call

    def forward(self, params: Sequence[Tensor], x: Tensor, mask: Tensor | None = None,
                training: bool = False) -> Tensor:
        call = self.call_in_training if training else self.spec.call
        return self.backend.run_ops(call, x, params, x, mask, self.activation)

    def state_updates(self, params: Sequence[Tensor], x: Tensor) -> list[Tensor]:
        """The new values of the layer's non-trainable weights after a train step on input x
        (the spec's state_updates, on the backend's ops)."""
        return list(self.backend.run_ops(self.spec.state_updates, x, params, x))  # type: ignore[attr-defined]

    def penalty(self, y: Tensor) -> Tensor:
        regularizer = self.spec.activity_regularizer  # type: ignore[attr-defined]  # set where activity is
        return self.activity(regularizer, y) / self.backend.run_ops(_rows, y, y)


def _computed_as(kind: str, spec_class: type[Any] | None) -> type[Any] | None:
    """The nearest registered spec class that `spec_class` subclasses without changing its math
    (it inherits the shared method unchanged), so that the parent's implementations serve it: a
    plugin's Dropout under another name is a Dropout on every backend. None otherwise."""
    if spec_class is None:
        return None
    method = shared_method(kind, spec_class)
    for base in spec_class.__mro__[1:]:
        if _registry.find(kind, getattr(base, "name", None) or "") is not base:
            continue
        if method is None or getattr(spec_class, method, None) is getattr(base, method, None):
            return base
        return None
    return None


class Backend(abc.ABC):
    """A backend: compiles a Plan into a Runtime for one engine.

    A plugin registers one through the polynn_register_backends hook. Class attributes describe
    it without importing its engine. `ops` is the backend's polynn.ops namespace (every name in
    polynn.ops.OP_NAMES, on its tensors); with it, every component written once on polynn.ops runs
    on this backend with no code of its own. `implementations` maps each kind in COMPUTED_KINDS
    to {component name: implementation}: the backend's own versions, which override the shared
    ones (for speed, measured); component plugins can add more for this backend's name. A backend
    without an ops namespace (ops None) implements every component itself. polynn.ops uses the
    NumPy backend's namespace outside any model.
    """

    name: str = ""
    engine: str = ""
    dtypes: tuple[str, ...] = ("float32", "float64")
    devices: tuple[str, ...] = ("cpu",)
    implementations: dict[str, dict[str, Any]] = {}
    ops: Any = None
    # Under data-parallel training (declared at registration: register(distributions=...)), the
    # communicator engines (Communicator.engine) its runtimes train on; None: any, through host arrays.
    distribution_engines: tuple[str, ...] | None = None

    def make_communicator(self, cluster: Cluster) -> Communicator | None:
        """The communicator of this backend's own engine for `cluster`, when
        polynn.distribution.initialize(engine=<this backend's name>) asks (TensorFlow's
        MultiWorkerMirroredStrategy, say); None (the default) offers none."""
        return None

    def engine_version(self) -> str:
        """The engine's version: by default the `__version__` of the module named `engine`, once
        something has imported it (the backend's own modules have), else "unknown"."""
        return str(getattr(sys.modules.get(self.engine), "__version__", None) or "unknown")

    def implementation(self, kind: str, name: str) -> Any | None:
        """This backend's implementation of component `kind`/`name`, or None: its own override,
        else one a component plugin registered for it, else the shared one (`shared_implementation`)."""
        impl = self.own_implementation(kind, name)
        if impl is None:
            parent = _computed_as(kind, _registry.find(kind, name))
            if parent is not None:
                impl = self.implementation(kind, parent.name)
        return impl if impl is not None else self.shared_implementation(kind, name)

    def own_implementation(self, kind: str, name: str) -> Any | None:
        """The implementation of `kind`/`name` written for this backend: its own override, else one a
        component plugin registered for it; None where only the shared one (if any) applies."""
        impl = self.implementations.get(kind, {}).get(name)
        if impl is None:
            impl = plugins.component_implementation(self.name, kind, name)
        return impl

    def weight_implementations(self, plan: Plan, kind: str) -> list[tuple[int, Any, Any]]:
        """(k, spec, implementation) for each weight k of `plan` whose WeightSpec has a `kind`
        ("regularizer" or "constraint"), in Plan.weights order: what a runtime applies per weight.
        Frozen weights (Plan.frozen_weights) have none: as Keras 3, a layer with trainable=False adds
        no weight penalty to the loss and its weights are not projected."""
        found = []
        frozen = set(plan.frozen_weights)
        for k, (_, weight) in enumerate(plan.weights):
            if k in frozen:
                continue
            spec = getattr(weight, kind)
            if spec is not None:
                found.append((k, spec, self.implementation(kind, spec.name)))
        return found

    def shared_implementation(self, kind: str, name: str) -> Any | None:
        """The component's implementation written once on polynn.ops (its spec class's `call`),
        adapted to this backend by `adapt`; None when the backend has no ops namespace or the spec
        class has no shared implementation."""
        if self.ops is None:
            return None
        spec_class = _registry.find(kind, name)
        if spec_class is None:
            return None
        method = shared_method(kind, spec_class)
        if method is None or not callable(getattr(spec_class, method, None)):
            return None
        return self.adapt(kind, spec_class)

    def run_ops(self, function: Callable[..., Any], like: Tensor, *args: Any) -> Any:
        """function(*args) with this backend's ops as polynn.ops; `like` is a tensor of the model's
        float dtype (and device). A backend whose ops make constants in a dtype of their own
        overrides this to set it from `like`."""
        with polynn_ops.using(self.ops):
            return function(*args)

    def adapt(self, kind: str, spec_class: type[Any]) -> Any:
        """The shared implementation in the form this backend's runtime calls, for an engine that
        differentiates what its ops compute (autograd, GradientTape, jax.grad): layer, the class
        SharedLayer; activation f(spec, x); loss f(spec, y, p) per-sample values; mean metric
        f(spec, y, p) per-sample values, other metric f(spec, y, p, w) state increment; regularizer
        f(spec, w) scalar penalty; constraint f(spec, w) projected weight; optimizer f(spec, w, g,
        slots, scalars) -> (new w, new slots), the `update` argument of
        polynn.optimizers.apply_updates. A backend without autodiff (NumPy) overrides this to add
        the gradients."""
        run = self.run_ops
        if kind == "layer":
            return SharedLayer
        if kind == "optimizer":
            return lambda spec, w, g, slots, s: run(spec.update, w, w, g, slots, s)
        if kind == "activation":
            return lambda spec, x: run(spec.call, x, x)
        if kind in ("regularizer", "constraint"):
            return lambda spec, w: run(spec.call, w, w)
        if kind == "metric" and not issubclass(spec_class, MeanMetric):
            return lambda spec, y, p, w: run(spec.increment, p, y, p, w)
        return lambda spec, y, p: run(spec.call, p, y, p)

    def supports(self, component: Component | type[Component]) -> bool:
        """Whether this backend computes `component` (a spec, or a spec class: kind and name suffice)."""
        return component.kind not in COMPUTED_KINDS or self.implementation(component.kind, component.name) is not None

    def check_plan(self, plan: Plan) -> None:
        """Raise UnsupportedComponentError for the first component of `plan` this backend lacks."""
        for component in plan.components():
            if not self.supports(component):
                others = plugins.backends_implementing(component)  # installed ones too, not only those loaded
                raise UnsupportedComponentError(component.kind, component.name, self.name, others)
        if plan.dtype not in self.dtypes:
            raise InvalidArgumentError("dtype", plan.dtype, ", ".join(self.dtypes), owner=f"backend {self.name!r}")

    @abc.abstractmethod
    def compile(self, plan: Plan) -> Runtime:
        """Build a Runtime for `plan`, its weights not yet set (the core sets them next)."""


# The plugin manager checks every loaded backend against this class; it is handed over here, not
# imported there, as this interface asks the manager for plugins' implementations.
plugins.accept_backends_of(Backend)
