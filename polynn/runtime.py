"""OpsRuntime: the whole Runtime written on polynn.ops, for a backend that adds only its engine's autodiff."""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from . import ops
from ._typing import Tensor
from .backend import Backend, Plan, Runtime, StepResult, check_values, takes_training
from .metrics import MeanMetric, Metric
from .optimizers import apply_updates

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

__all__ = ["OpsRuntime"]


class OpsRuntime(Runtime):
    """A Runtime on a backend's ops namespace (`Backend.ops`) and its component implementations.

    Every step runs under `backend.run_ops`: the layers' forward passes (`implementation("layer",
    name)(backend, spec)` with `forward(params, x, mask)`, `activity` and `penalty(y)`), the loss
    reduced as polynn.losses documents (an all-zero weight sum gives a zero loss, never 0/0), the
    regularizer and activity penalties, the reported loss summed in float64, the metric states
    ([sum(w * v), sum(w)] in float64 for a mean metric, the increment for any other), the update
    of polynn.optimizers.apply_updates (the optimizer implementation, if the backend has its own,
    in its pure form `update(spec, w, g, slots, scalars) -> (w, slots)`), then the constraints.
    Weights and slots are immutable tensors, replaced each step; a block of steps is a Python loop
    over one per-step function, unless the subclass runs it as one program (`compile_block`). The
    weights of frozen layers (Plan.frozen_weights) are neither differentiated nor updated: the
    objective takes the others, and the update and constraints run on those alone. In train steps
    the layers whose forward takes `training` get training=True, and the layers with state updates
    (Plan.state_layers) have their non-trainable weights replaced by their state_updates of the
    step's weights and their training-mode input, after the update.

    A subclass supplies `value_and_gradients`, and where its engine wants them `compile_step` (a
    jit) or `compile_block` (a compiled loop: jax.lax.scan), and `to_tensor`/`to_numpy` (a device,
    say). Backend.compile returns `cls(backend, plan)`.
    """

    supports_frozen_weights = True
    supports_state_updates = True

    def __init__(self, backend: Backend, plan: Plan) -> None:
        self.backend = backend
        self.plan = plan
        self.trainable = plan.trainable_weights()
        self.dtype = np.dtype(plan.dtype)
        with ops.using(backend.ops):
            # A scalar of the plan's float dtype: what run_ops reads the dtype (and device) from.
            self.like = ops.cast(ops.convert_to_tensor(0.0), plan.dtype)
        self.layers: list[tuple[Any, list[int]]] = []  # (the layer's implementation, its weights' indices)
        for spec, owned in zip(plan.layers, plan.layer_weights()):
            # Not None: the backends' compile() runs check_plan(plan) first.
            build: Any = backend.implementation("layer", spec.name)
            self.layers.append((build(backend, spec), owned))
        mask_slot = {layer_index: k for k, layer_index in enumerate(plan.dropout_layers)}
        self.layer_masks = [mask_slot.get(index) for index in range(len(plan.layers))]
        self.training = [{"training": True} if takes_training(layer) else {} for layer, _ in self.layers]
        self.layer_state = plan.state_weights()
        self.loss_value: Any = backend.implementation("loss", plan.loss.name)
        self.regularized = backend.weight_implementations(plan, "regularizer")
        self.constrained = backend.weight_implementations(plan, "constraint")
        self.update = backend.implementation("optimizer", plan.optimizer.name)
        starts = plan.optimizer.slot_initial_values()
        self.weights = [self.to_tensor(np.zeros(ws.shape, self.dtype)) for _, ws in plan.weights]
        self.slots = [[self.to_tensor(np.full(ws.shape, start, self.dtype)) for start in starts]
                      for _, ws in plan.weights]
        self.set_metrics(plan.metrics, plan.metric_weighted)

    # ---- what a subclass supplies -----------------------------------------------------------

    @abc.abstractmethod
    def value_and_gradients(self, objective: Callable[[list[Tensor]], tuple[Tensor, Any]],
                            params: list[Tensor]) -> tuple[tuple[Tensor, Any], Sequence[Tensor]]:
        """((loss, aux), grads): objective(params) -> (loss, aux) evaluated, and d loss / d params,
        one gradient per param (zeros for a param the loss does not reach). The engine's autodiff:
        torch.autograd.grad, tf.GradientTape, jax.value_and_grad(has_aux=True)."""

    def compile_step(self, function: Callable[..., Any]) -> Callable[..., Any]:
        """`function` compiled for the engine (jax.jit, tf.function); it takes and returns tensors,
        lists, tuples, dicts and None. Eager engines keep it as it is. Used by compile_block."""
        return function

    def compile_block(self, step: Callable[..., Any]) -> Callable[..., Any]:
        """A block of steps: `step(constants, carry, inputs) -> (carry, output)` applied once per step,
        returned as `block(constants, carry, sequences) -> (last carry, outputs)`. `sequences` holds
        each step's inputs on the leading axis of its tensors (in tuples, lists and dicts); `outputs`
        stacks each step's output tensor on a new leading axis (None for no steps); `constants` (the
        data set, say) are the same every step, arguments rather than closure constants so a compiled
        block serves every data set. jax.lax.scan's contract, with constants passed through. The
        default calls compile_step(step) in a Python loop; an engine that compiles loops overrides
        this to run a whole block as one program (jax.jit of jax.lax.scan)."""
        step = self.compile_step(step)

        def block(constants: Any, carry: Any, sequences: Any) -> tuple[Any, Any]:
            outputs = []
            for t in range(cast(int, _length(sequences))):  # every block has rows
                carry, output = step(constants, carry, _at(sequences, t))
                outputs.append(output)
            return carry, self.backend.run_ops(ops.stack, self.like, outputs) if outputs else None

        return block

    def to_tensor(self, array: np.ndarray) -> Tensor:
        """A NumPy array as the engine's tensor, of the array's dtype (an engine may copy it)."""
        return self.backend.run_ops(ops.convert_to_tensor, self.like, array, str(array.dtype))

    def to_numpy(self, tensor: Tensor) -> np.ndarray:
        """An engine tensor as a NumPy array (it may share the tensor's memory)."""
        return np.asarray(tensor)

    # ---- state ------------------------------------------------------------------------------

    def _arrays(self, arrays: Iterable[ArrayLike]) -> list[Tensor]:
        return [self.to_tensor(np.array(a, dtype=self.dtype)) for a in arrays]

    def get_weights(self) -> list[np.ndarray]:
        return [np.array(self.to_numpy(w), dtype=self.dtype) for w in self.weights]

    def set_weights(self, weights: Sequence[np.ndarray]) -> None:
        self.weights = self._arrays(weights)

    def get_optimizer_state(self) -> list[list[np.ndarray]]:
        return [[np.array(self.to_numpy(s), dtype=self.dtype) for s in slots] for slots in self.slots]

    def set_optimizer_state(self, state: Sequence[Sequence[np.ndarray]]) -> None:
        self.slots = [self._arrays(values) for values in state]

    def snapshot(self) -> Any:
        # Steps return new tensors and never write into these, so holding them is a copy.
        return list(self.weights), [list(slots) for slots in self.slots]

    def restore(self, snapshot: Any) -> None:
        weights, slots = snapshot
        self.weights, self.slots = list(weights), [list(values) for values in slots]

    def set_metrics(self, metrics: Sequence[Metric], weighted: Sequence[bool]) -> None:
        self.metrics: list[tuple[Metric, Any, bool]] = [
            (m, self.backend.implementation("metric", m.name), takes_weights)
            for m, takes_weights in zip(metrics, weighted)]
        # Compiled steps bake the metrics in: new ones are compiled on their next use.
        self._steps: dict[str, Callable[..., Any]] = {}

    def put_data(self, x: np.ndarray, y: np.ndarray | None = None,
                 sample_weight: np.ndarray | None = None) -> tuple[Tensor | None, ...]:
        arrays = (x, y, None if sample_weight is None else np.asarray(sample_weight, self.dtype))
        return tuple(None if a is None else self.to_tensor(np.asarray(a)) for a in arrays)

    # ---- one step, on the backend's ops -----------------------------------------------------

    def _forward(self, weights: Sequence[Tensor], x: Tensor, masks: Sequence[Tensor] | None,
                 inputs: dict[int, Tensor] | None = None) -> tuple[Tensor, list[Tensor]]:
        """Outputs and the activity penalties of the layers that have one; masks None in inference,
        a list (maybe empty) in training. `inputs`, when a dict, gets the input of each layer with
        state updates, by layer index."""
        activity = []
        for index, ((layer, owned), slot) in enumerate(zip(self.layers, self.layer_masks)):
            mask = None if masks is None or slot is None else masks[slot]
            if inputs is not None and index in self.layer_state:
                inputs[index] = x
            options = {} if masks is None else self.training[index]
            x = layer.forward([weights[k] for k in owned], x, mask, **options)
            if layer.activity is not None:
                activity.append(layer.penalty(x))
        return x, activity

    def _loss(self, weights: Sequence[Tensor], y: Tensor, p: Tensor, w: Tensor | None,
              activity: list[Tensor]) -> tuple[Tensor, Tensor]:
        """The loss to differentiate (plan dtype) and the one to report (float64), in the reference's
        order: the reduced loss, each weight's penalty, each layer's activity penalty."""
        spec = self.plan.loss
        values = self.loss_value(spec, y, p)
        if w is not None and not ops.shape(values):
            values = values * ops.ones_like(w)  # one value per batch stands for each sample
        size = _size(values)
        if w is None:
            total, weight_sum = ops.sum(values), size
        else:
            spread = _spread(w, values)
            total, weight_sum = ops.sum(values * spread), ops.sum(spread)
        if spec.reduction == "sum":
            loss = total
        elif spec.reduction == "mean_with_sample_weight" and w is not None:
            nonzero = ops.not_equal(weight_sum, 0)
            loss = ops.where(nonzero, total / ops.where(nonzero, weight_sum, ops.ones_like(weight_sum)), total * 0)
        elif isinstance(size, int) and size == 0:
            loss = total * 0
        else:
            loss = total / size
        report = ops.cast(loss, "float64")
        for term in [penalty(reg, weights[k]) for k, reg, penalty in self.regularized] + activity:
            loss = loss + term
            report = report + ops.cast(term, "float64")
        return loss, report

    def _metric_states(self, y: Tensor, p: Tensor, w: Tensor | None) -> list[Tensor]:
        states = []
        for m, impl, takes_weights in self.metrics:
            mw = w if takes_weights else None
            if not isinstance(m, MeanMetric):
                states.append(ops.cast(impl(m, y, p, mw), "float64"))
                continue
            values = impl(m, y, p)
            if mw is not None:
                check_values(m, ops.shape(values), ops.shape(p), weighted=True)
            if mw is None:
                count = _size(values)
                count = ops.convert_to_tensor(count) if isinstance(count, int) else count
                states.append(ops.stack([ops.sum(ops.cast(values, "float64")), ops.cast(count, "float64")]))
            else:
                spread = _spread(mw, values)
                states.append(ops.stack([ops.sum(ops.cast(spread * values, "float64")),
                                         ops.sum(ops.cast(spread, "float64"))]))
        return states

    @staticmethod
    def _rows(data: Sequence[Tensor | None], rows: Tensor) -> tuple[Tensor | None, ...]:
        return tuple(None if t is None else ops.take(t, rows, axis=0) for t in data)

    def _train_step(self, weights: list[Tensor], slots: list[list[Tensor]], data: Sequence[Tensor | None],
                    rows: Tensor, masks: list[Tensor], scalars: dict[str, Tensor],
                    ) -> tuple[list[Tensor], list[list[Tensor]], Tensor, list[Tensor]]:
        x, y, w = self._rows(data, rows)
        trainable = self.trainable

        def objective(params: list[Tensor]) -> tuple[Tensor, tuple[Tensor, Tensor, dict[int, Tensor]]]:
            every = list(weights)
            for k, param in zip(trainable, params):
                every[k] = param
            inputs: dict[int, Tensor] = {}
            p, activity = self._forward(every, x, masks, inputs)
            loss, report = self._loss(every, y, p, w, activity)
            return loss, (report, p, inputs)

        params = [weights[k] for k in trainable]
        if params:
            (_, (report, p, inputs)), grads = self.value_and_gradients(objective, params)
        else:
            (_, (report, p, inputs)), grads = objective([]), []
        report, p = ops.stop_gradient(report), ops.stop_gradient(p)
        new_state: list[tuple[int, Tensor]] = []
        for index, targets in self.layer_state.items():
            layer, owned = self.layers[index]
            values = layer.state_updates([weights[k] for k in owned], ops.stop_gradient(inputs[index]))
            new_state.extend(zip(targets, values))
        # Metric increments use this step's training-mode predictions, before its update.
        states = self._metric_states(y, p, w)
        trained, trained_slots = apply_updates(self.plan.optimizer, params, grads, [slots[k] for k in trainable],
                                               scalars, update=self.update)
        weights, slots = list(weights), list(slots)
        for k, value, values in zip(trainable, trained, trained_slots):
            weights[k], slots[k] = value, values
        for k, constraint, project in self.constrained:
            weights[k] = project(constraint, weights[k])
        for k, value in new_state:
            weights[k] = value
        return weights, slots, report, states

    def _test_step(self, weights: Sequence[Tensor], data: Sequence[Tensor | None],
                   rows: Tensor) -> tuple[Tensor, list[Tensor]]:
        x, y, w = self._rows(data, rows)
        p, activity = self._forward(weights, x, None)
        _, report = self._loss(weights, y, p, w, activity)
        return report, self._metric_states(y, p, w)

    def _predict_step(self, weights: Sequence[Tensor], x: Tensor, rows: Tensor) -> Tensor:
        return self._forward(weights, ops.take(x, rows, axis=0), None)[0]

    # ---- blocks of steps --------------------------------------------------------------------

    def _block(self, name: str) -> Callable[..., Any]:
        """The block function for the per-step function `name`, run on the backend's ops, built once."""
        if name not in self._steps:
            function = getattr(self, f"_{name}_block_step")
            self._steps[name] = self.compile_block(
                lambda *args: self.backend.run_ops(function, self.like, *args))
        return self._steps[name]

    def _train_block_step(self, data: Sequence[Tensor | None], carry: Any, inputs: Any) -> tuple[Any, Tensor]:
        weights, slots, totals = carry
        rows, masks, scalars = inputs
        weights, slots, report, states = self._train_step(weights, slots, data, rows, masks, scalars)
        return (weights, slots, [a + b for a, b in zip(totals, states)]), report

    def _test_block_step(self, constants: tuple[Sequence[Tensor], Sequence[Tensor | None]], totals: list[Tensor],
                         rows: Tensor) -> tuple[list[Tensor], Tensor]:
        report, states = self._test_step(*constants, rows)
        return [a + b for a, b in zip(totals, states)], report

    def _predict_block_step(self, constants: tuple[Sequence[Tensor], Tensor], carry: Any,
                            rows: Tensor) -> tuple[Any, Tensor]:
        return carry, self._predict_step(*constants, rows)

    def _zero_totals(self) -> list[Tensor]:
        return [self.to_tensor(np.zeros(m.state_size)) for m, _, _ in self.metrics]

    def _result(self, reports: Tensor | None, totals: Sequence[Tensor]) -> StepResult:
        losses = np.zeros(0) if reports is None else self.to_numpy(reports)
        states = [np.array(self.to_numpy(t), dtype=np.float64) for t in totals]
        return StepResult(np.array(losses, dtype=np.float64), states)

    def train_steps(self, data: Any, batches: np.ndarray, masks: Sequence[np.ndarray],
                    scalars: dict[str, np.ndarray]) -> StepResult:
        rows = self.to_tensor(np.asarray(batches, dtype=np.int64))
        masks = [self.to_tensor(np.asarray(m, self.dtype)) for m in masks]
        scalars = {name: self.to_tensor(np.asarray(values, self.dtype)) for name, values in scalars.items()}
        (self.weights, self.slots, totals), reports = self._block("train")(
            data, (self.weights, self.slots, self._zero_totals()), (rows, masks, scalars))
        return self._result(reports, totals)

    def test_steps(self, data: Any, batches: np.ndarray) -> StepResult:
        rows = self.to_tensor(np.asarray(batches, dtype=np.int64))
        totals, reports = self._block("test")((self.weights, data), self._zero_totals(), rows)
        return self._result(reports, totals)

    def predict_steps(self, data: Any, batches: np.ndarray) -> np.ndarray:
        rows = self.to_tensor(np.asarray(batches, dtype=np.int64))
        _, outputs = self._block("predict")((self.weights, data[0]), (), rows)
        if outputs is None:
            return np.zeros((0, *self.plan.shapes[-1]), self.dtype)
        outputs = np.asarray(self.to_numpy(outputs))
        return outputs.reshape((-1, *outputs.shape[2:]))


def _spread(w: Tensor, values: Tensor) -> Tensor:
    """Sample weights (one per row) repeated over each row's values."""
    return ops.reshape(w, (-1,) + (1,) * (len(ops.shape(values)) - 1)) * ops.ones_like(values)


def _size(values: Tensor) -> Any:
    """The number of values: an int where the shape is static, else counted on the engine."""
    shape = ops.shape(values)
    dims = [d for d in shape if isinstance(d, int)]
    if len(dims) == len(shape):
        return int(np.prod(dims, dtype=np.int64))
    return ops.sum(ops.ones_like(values))


def _at(tree: Any, t: int) -> Any:
    """Step t's entries of a block's sequences: each tensor's row t, in the same tuples, lists and dicts."""
    if isinstance(tree, dict):
        return {key: _at(value, t) for key, value in tree.items()}
    if isinstance(tree, (tuple, list)):
        return type(tree)(_at(value, t) for value in tree)
    return tree[t]


def _length(tree: Any) -> int | None:
    """The number of steps in a block's sequences: the leading length of their first tensor."""
    if isinstance(tree, dict):
        tree = list(tree.values())
    if isinstance(tree, (tuple, list)):
        return next((n for n in map(_length, tree) if n is not None), None)
    return len(tree)
