"""The JAX runtime: each block of steps is one call of a jit-compiled function scanning over the steps.

Weights and optimizer slots are a pytree carried through jax.lax.scan, so a block of training
steps is one compiled program: per step, the batch's rows are gathered from the data set (on the
engine since put_data), the loss and its gradients come from jax.value_and_grad, and the update
and constraints produce the next carry. A block returns its per-step losses and summed metric
increments in float64, one host transfer per call. Everything runs in JAX's scoped x64 mode
(see precision.py), whatever the plan's dtype.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from polynn.backend import Runtime, StepResult
from polynn.metrics import MeanMetric

from . import losses as loss_impls
from . import metrics as metric_impls
from . import optimizers
from .precision import in_x64


class JaxRuntime(Runtime):
    @in_x64
    def __init__(self, backend, plan):
        self.plan = plan
        self.backend = backend
        self.dtype = np.dtype(plan.dtype)
        self.weights = [self._device(np.zeros(ws.shape)) for _, ws in plan.weights]
        starts = plan.optimizer.slot_initial_values()
        self.slots = [[self._device(np.full(ws.shape, start)) for start in starts] for _, ws in plan.weights]
        # Each layer, with the positions of its weights in the weights list.
        self.layers = []
        for index, spec in enumerate(plan.layers):
            owned = [k for k, (owner, _) in enumerate(plan.weights) if owner == index]
            self.layers.append((backend.implementation("layer", spec.name)(backend, spec), owned))
        mask_slot = {layer_index: k for k, layer_index in enumerate(plan.dropout_layers)}
        self.layer_masks = [mask_slot.get(index) for index in range(len(plan.layers))]
        self.loss_value = backend.implementation("loss", plan.loss.name)
        self.regularized = [
            (k, ws.regularizer, backend.implementation("regularizer", ws.regularizer.name))
            for k, (_, ws) in enumerate(plan.weights) if ws.regularizer is not None
        ]
        self.constrained = [
            (k, ws.constraint, backend.implementation("constraint", ws.constraint.name))
            for k, (_, ws) in enumerate(plan.weights) if ws.constraint is not None
        ]
        self.optimizer = plan.optimizer
        self.update = backend.implementation("optimizer", plan.optimizer.name)
        self.set_metrics(plan.metrics, plan.metric_weighted)

    # ---- state ------------------------------------------------------------------------

    def _device(self, value):
        # device_put copies the host array as it is; jnp.asarray would compile a conversion per shape.
        return jax.device_put(np.asarray(value, dtype=self.dtype))

    def get_weights(self):
        return [np.array(w, copy=True) for w in self.weights]

    @in_x64
    def set_weights(self, weights):
        self.weights = [self._device(value) for value in weights]

    def get_optimizer_state(self):
        return [[np.array(s, copy=True) for s in slots] for slots in self.slots]

    @in_x64
    def set_optimizer_state(self, state):
        self.slots = [[self._device(value) for value in values] for values in state]

    def set_metrics(self, metrics, weighted):
        self.metrics = [(m, self.backend.implementation("metric", m.name), takes_weights)
                        for m, takes_weights in zip(metrics, weighted)]
        # The compiled functions bake the metrics in: new ones are traced on their next call.
        self._train = jax.jit(self._train_block)
        self._test = jax.jit(self._test_block)
        self._predict = jax.jit(self._predict_block)

    @in_x64
    def put_data(self, x, y=None, sample_weight=None):
        return tuple(None if a is None else self._device(a) for a in (x, y, sample_weight))

    # ---- one step (traced inside the block functions) -----------------------------------

    def _forward(self, weights, x, masks):
        """Outputs and the activity penalties of the layers that have one; masks None in inference."""
        activity = []
        for (layer, owned), slot in zip(self.layers, self.layer_masks):
            mask = None if masks is None or slot is None else masks[slot]
            x = layer.forward([weights[k] for k in owned], x, mask)
            if layer.activity is not None:
                activity.append(layer.penalty(x))
        return x, activity

    def _loss(self, weights, y, p, w, activity):
        """The loss to differentiate (plan dtype) and the one to report (float64), in the reference's order."""
        loss = loss_impls.reduce(self.plan.loss, self.loss_value(self.plan.loss, y, p), w)
        report = loss.astype(jnp.float64)
        for term in [penalty(reg, weights[k]) for k, reg, penalty in self.regularized] + activity:
            loss = loss + term
            report = report + term.astype(jnp.float64)
        return loss, report

    def _metric_states(self, y, p, w):
        states = []
        for m, impl, takes_weights in self.metrics:
            mw = w if takes_weights else None
            states.append(metric_impls.mean_state(impl(m, y, p), mw) if isinstance(m, MeanMetric)
                          else impl(m, y, p, mw).astype(jnp.float64))
        return tuple(states)

    @staticmethod
    def _rows(data, rows):
        x, y, w = data
        return x[rows], y[rows], None if w is None else w[rows]

    def _train_step(self, data, carry, step):
        weights, slots, totals = carry
        rows, masks, s = step
        x, y, w = self._rows(data, rows)

        def objective(weights):
            p, activity = self._forward(weights, x, masks)
            loss, report = self._loss(weights, y, p, w, activity)
            return loss, (report, p)

        (_, (report, p)), grads = jax.value_and_grad(objective, has_aux=True)(weights)
        # Metric increments use this step's training-mode predictions, before its update.
        states = self._metric_states(y, p, w)
        weights, slots = optimizers.apply(self.optimizer, self.update, weights, grads, slots, s)
        for k, constraint, project in self.constrained:
            weights[k] = project(constraint, weights[k])
        totals = tuple(a + b for a, b in zip(totals, states))
        return (weights, slots, totals), report

    def _zero_totals(self):
        return tuple(jnp.zeros(m.state_size, jnp.float64) for m, _, _ in self.metrics)

    # ---- compiled blocks ---------------------------------------------------------------

    def _train_block(self, weights, slots, data, batches, masks, scalars):
        def step(carry, inputs):
            return self._train_step(data, carry, inputs)

        (weights, slots, totals), losses = jax.lax.scan(
            step, (weights, slots, self._zero_totals()), (batches, masks, scalars))
        return weights, slots, losses, totals

    def _test_block(self, weights, data, batches):
        def step(totals, rows):
            x, y, w = self._rows(data, rows)
            p, activity = self._forward(weights, x, None)
            _, report = self._loss(weights, y, p, w, activity)
            return tuple(a + b for a, b in zip(totals, self._metric_states(y, p, w))), report

        totals, losses = jax.lax.scan(step, self._zero_totals(), batches)
        return losses, totals

    def _predict_block(self, weights, x, batches):
        def step(_, rows):
            return None, self._forward(weights, x[rows], None)[0]

        _, outputs = jax.lax.scan(step, None, batches)
        return outputs.reshape((-1, *outputs.shape[2:]))

    @staticmethod
    def _indices(batches):
        return jax.device_put(np.asarray(batches, dtype=np.int64))

    @staticmethod
    def _result(losses, totals):
        return StepResult(np.asarray(losses, dtype=np.float64),
                          [np.asarray(t, dtype=np.float64) for t in totals])

    @in_x64
    def train_steps(self, data, batches, masks, scalars):
        self.weights, self.slots, losses, totals = self._train(
            self.weights, self.slots, data, self._indices(batches),
            tuple(self._device(m) for m in masks),
            {name: self._device(values) for name, values in scalars.items()})
        return self._result(losses, totals)

    @in_x64
    def test_steps(self, data, batches):
        return self._result(*self._test(self.weights, data, self._indices(batches)))

    @in_x64
    def predict_steps(self, data, batches):
        return np.asarray(self._predict(self.weights, data[0], self._indices(batches)))
