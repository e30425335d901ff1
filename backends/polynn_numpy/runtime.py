"""The NumPy runtime: a compiled model's forward pass, backward pass and update, one step at a time."""

from __future__ import annotations

import inspect

import numpy as np

from polynn.backend import Runtime, StepResult, check_values, takes_training
from polynn.distribution import collective, loss_divisor
from polynn.errors import DistributionError
from polynn.metrics import MeanMetric

from . import losses as loss_impls
from . import metrics as metric_impls
from . import optimizers
from .workspace import Workspace

# Arrays from this size on are written into a workspace while training (see workspace.py); below it
# the C allocator reuses freed memory without returning it to the kernel, and keeping an array per
# layer would only add Python calls to a small model's short step (measured:
# docs/performance.md#numpy-workspace-threshold).
WORKSPACE_MIN_BYTES = 1 << 17


class NumpyRuntime(Runtime):
    supports_frozen_weights = True
    supports_state_updates = True

    def __init__(self, backend, plan):
        self.plan = plan
        self.dtype = np.dtype(plan.dtype)
        # Weights, gradients and optimizer slots each live in one flat buffer, with a view per
        # weight: the optimizer updates every weight in a handful of NumPy calls (element-wise,
        # so the numbers are those of a per-weight update). The trainable weights come first, so
        # the update (and gradient clipping) runs on the buffers' first `trained` elements only.
        shapes = [tuple(ws.shape) for _, ws in plan.weights]
        trainable = plan.trainable_weights()
        order = trainable + list(plan.frozen_weights)
        total = sum(int(np.prod(shape)) for shape in shapes)
        self.trained = sum(int(np.prod(shapes[k])) for k in trainable)
        self.trainable = trainable
        self.flat_weights = np.zeros(total, dtype=self.dtype)
        self.weights = _views(self.flat_weights, shapes, order)
        self.flat_grads = np.zeros(total, dtype=self.dtype)
        self.grads = _views(self.flat_grads, shapes, order)
        owned = plan.layer_weights()
        self.layers = [(backend.implementation("layer", spec.name)(backend, spec), [self.weights[k] for k in ks])
                       for spec, ks in zip(plan.layers, owned)]
        # Where each layer's gradients go in the flat buffer (its first weight, how many), and whether its
        # backward can write there.
        self.grad_slices = [(ks[0] if ks else 0, len(ks)) for ks in owned]
        # Layers computing otherwise in training get training=True in train steps; those with state
        # (moving statistics) have their non-trainable weights' views replaced after each step.
        self.training = [{"training": True} if takes_training(layer) else {} for layer, _ in self.layers]
        self.layer_state = {index: [self.weights[k] for k in ks] for index, ks in plan.state_weights().items()}
        self.backward_options = []
        for index, (layer, _) in enumerate(self.layers):
            first, count = self.grad_slices[index]
            writes_into = "out" in inspect.signature(layer.backward).parameters
            self.backward_options.append({"out": self.grads[first:first + count]} if writes_into else {})
        # Training steps write large activations and gradients into arrays kept from step to step,
        # one workspace per layer that takes one (a third-party layer without a `workspace`
        # parameter allocates); each block's first step sizes the layers' outputs to choose them.
        self.layer_workspaces = [
            Workspace() if all("workspace" in inspect.signature(method).parameters
                               for method in (layer.forward, layer.backward)) else None
            for layer, _ in self.layers
        ]
        self.workspaces = [None] * len(self.layers)
        self.batch_workspace = Workspace()
        self.mask_slot = {layer_index: k for k, layer_index in enumerate(plan.dropout_layers)}
        self.loss_value, self.loss_vjp = backend.implementation("loss", plan.loss.name)
        # Per weight: (k, spec, penalty, gradient) and (weight, spec, project).
        self.regularized = [(k, spec, *pair) for k, spec, pair in backend.weight_implementations(plan, "regularizer")]
        self.constrained = [(self.weights[k], spec, project)
                            for k, spec, project in backend.weight_implementations(plan, "constraint")]
        self.optimizer = plan.optimizer
        self.update = backend.implementation("optimizer", plan.optimizer.name)
        starts = plan.optimizer.slot_initial_values()
        self.flat_slots = [np.full(total, start, dtype=self.dtype) for start in starts]
        self.update_scratch = optimizers.scratch(total, self.dtype)
        by_slot = [_views(flat, shapes, order) for flat in self.flat_slots]
        self.slots = [[views[k] for views in by_slot] for k in range(len(shapes))]
        # What the update reads: the trainable part of each flat buffer, and the trainable weights' views.
        n = self.trained
        self.trained_buffers = (self.flat_weights[:n], self.flat_grads[:n], [self.grads[k] for k in trainable],
                                [flat[:n] for flat in self.flat_slots])
        self.trained_views = ([self.weights[k] for k in trainable], [self.slots[k] for k in trainable])
        self.backend = backend
        self.set_metrics(plan.metrics, plan.metric_weighted)
        # Data-parallel training: the trained gradients and the loss term, summed across processes at once.
        self.replica = plan.distribution
        self.reduce_buffer = np.empty(self.trained + 1, dtype=self.dtype) if self.replica is not None else None

    # ---- state ------------------------------------------------------------------------

    def get_weights(self):
        return [w.copy() for w in self.weights]

    def set_weights(self, weights):
        for target, value in zip(self.weights, weights):
            np.copyto(target, value, casting="unsafe")

    def get_optimizer_state(self):
        return [[s.copy() for s in slots] for slots in self.slots]

    def set_optimizer_state(self, state):
        for slots, values in zip(self.slots, state):
            for target, value in zip(slots, values):
                np.copyto(target, value, casting="unsafe")

    def set_metrics(self, metrics, weighted):
        self.metrics = [(m, self.backend.implementation("metric", m.name), takes_weights)
                        for m, takes_weights in zip(metrics, weighted)]

    def put_data(self, x, y=None, sample_weight=None):
        return x, y, sample_weight

    # ---- one step ---------------------------------------------------------------------

    def _forward(self, x, masks, training=False, sizes=None, states=None):
        """Outputs and caches; when `sizes` is a list, each layer's larger array in bytes, its input
        (the size of its input gradient) or its output, is appended to it; when `states` is a list,
        the new state of each layer with state updates, (its weights, their values), is."""
        caches = []
        for index, (layer, params) in enumerate(self.layers):
            mask = None
            if masks is not None and index in self.mask_slot:
                mask = masks[self.mask_slot[index]]
            given = x
            options = self.training[index] if training else {}
            if training and self.workspaces[index] is not None:
                x, cache = layer.forward(params, x, mask, workspace=self.workspaces[index], **options)
            else:
                x, cache = layer.forward(params, x, mask, **options)
            if states is not None and index in self.layer_state:
                # Computed now, while the input is this step's; written after the update.
                states.append((self.layer_state[index], layer.state_updates(params, given)))
            caches.append(cache)
            if sizes is not None:
                sizes.append(max(given.nbytes, x.nbytes))
        return x, caches

    def _loss(self, y, p, w, caches, gradient=True):
        """Reduced loss plus penalties, and dloss/dp (None unless `gradient`)."""
        spec = self.plan.loss
        values = self.loss_value(spec, y, p)
        reduced, upstream = loss_impls.reduce(spec, values, w, self.dtype, gradient)
        loss = float(reduced)
        for k, reg, penalty, _ in self.regularized:
            loss += float(penalty(reg, self.weights[k]))
        for (layer, _), cache in zip(self.layers, caches):
            if layer.activity is not None:
                loss += float(layer.penalty(cache))
        if not gradient:
            return loss, None
        return loss, self.loss_vjp(spec, y, p, upstream).astype(self.dtype, copy=False)

    def _metric_states(self, y, p, w):
        states = []
        for m, impl, takes_weights in self.metrics:
            mw = w if takes_weights else None
            if not isinstance(m, MeanMetric):
                states.append(impl(m, y, p, mw))
                continue
            values = impl(m, y, p)
            if mw is not None:
                check_values(m, np.shape(values), p.shape, weighted=True)
            states.append(metric_impls.mean_state(values, mw))
        return states

    def _train_step(self, x, y, w, masks, s, sizes=None):
        states = []
        p, caches = self._forward(x, masks, training=True, sizes=sizes, states=states)
        loss, dp = self._loss(y, p, w, caches)
        metric_states = self._metric_states(y, p, w)
        dy = dp
        for index in range(len(self.layers) - 1, -1, -1):
            layer, params = self.layers[index]
            first, count = self.grad_slices[index]
            targets = self.grads[first:first + count]
            options = self.backward_options[index]
            if self.workspaces[index] is not None:
                options = {**options, "workspace": self.workspaces[index]}
            dy, grads = layer.backward(params, caches[index], dy, need_dx=index > 0, **options)
            for target, g in zip(targets, grads):
                if g is not target:
                    np.copyto(target, g)
        for k, reg, _, gradient in self.regularized:
            self.grads[k] += gradient(reg, self.weights[k])
        self._update(s)
        for targets, values in states:
            for target, value in zip(targets, values):
                np.copyto(target, value)
        return loss, metric_states

    def _update(self, s):
        """The optimizer's update of the trainable weights from self.grads, then the constraints."""
        if self.trainable:
            optimizers.apply(self.optimizer, self.update, *self.trained_buffers, s, self.update_scratch,
                             *self.trained_views)
        for w_, constraint, project in self.constrained:
            np.copyto(w_, project(constraint, w_))

    # ---- blocks of steps --------------------------------------------------------------

    def train_steps(self, data, batches, masks, scalars):
        if self.replica is not None:
            return self._replica_steps(data, batches, masks, scalars)
        x, y, w = data
        losses = np.empty(len(batches))
        totals = [np.zeros(m.state_size) for m, _, _ in self.metrics]
        self.workspaces = [None] * len(self.layers)
        gather_into = len(batches) > 0 and len(batches[0]) * x[:1].nbytes >= WORKSPACE_MIN_BYTES
        for step, rows in enumerate(batches):
            step_masks = [mask[step] for mask in masks] if masks else None
            s = {name: values[step] for name, values in scalars.items()}
            sizes = [] if step == 0 else None
            xb = self._batch(x, rows) if gather_into else x[rows]
            losses[step], states = self._train_step(xb, y[rows], None if w is None else w[rows], step_masks, s, sizes)
            if sizes is not None:
                self.workspaces = [workspace if workspace is not None and size >= WORKSPACE_MIN_BYTES else None
                                   for workspace, size in zip(self.layer_workspaces, sizes)]
            for total, state in zip(totals, states):
                total += state
        return StepResult(losses, totals)

    # ---- data-parallel steps (polynn.distribution.Replica's contract) -------------------

    def _replica_steps(self, data, batches, masks, scalars):
        x, y, w = data
        width = batches.shape[1]
        rows = self.replica.rows(batches)
        masks = self.replica.masks(list(masks), width)
        losses = np.empty(len(batches))
        totals = [np.zeros(m.state_size) for m, _, _ in self.metrics]
        self.workspaces = [None] * len(self.layers)
        for layer, _ in self.layers:
            layer.penalty_rows = width
        try:
            for step in range(len(batches)):
                mine = rows[step]
                weight_sum = None if w is None else np.add.reduce(w[batches[step]].astype(self.dtype))
                losses[step], states = self._replica_step(
                    x[mine], y[mine], None if w is None else w[mine], [m[step] for m in masks] if masks else None,
                    {name: values[step] for name, values in scalars.items()}, width, weight_sum)
                for total, state in zip(totals, states):
                    total += state
        finally:
            for layer, _ in self.layers:
                layer.penalty_rows = None
        return StepResult(losses, totals)

    def _replica_step(self, x, y, w, masks, s, width, weight_sum):
        """One step on this process's rows: the gradients of its share of the global loss, summed
        with the other processes' (the share riding along), then the weight penalties once."""
        p, caches = self._forward(x, masks, training=True)
        spec = self.plan.loss
        values = self.loss_value(spec, y, p)
        if np.ndim(values) == 0:
            raise DistributionError(
                f"loss {spec.name!r} gives one value for the whole batch; data-parallel training splits every "
                f"batch across processes, so it needs one value per sample (a shape of (batch, ...))")
        per_row = int(np.prod(np.shape(values)[1:], dtype=np.int64))
        divisor = loss_divisor(spec.reduction, per_row, width, weight_sum)
        reduced, upstream = loss_impls.reduce(spec, values, w, self.dtype, True, divisor=divisor)
        share = float(reduced)
        for (layer, _), cache in zip(self.layers, caches):
            if layer.activity is not None:
                share += float(layer.penalty(cache))
        dy = self.loss_vjp(spec, y, p, upstream).astype(self.dtype, copy=False)
        states = self._metric_states(y, p, w)
        for index in range(len(self.layers) - 1, -1, -1):
            layer, params = self.layers[index]
            first, count = self.grad_slices[index]
            dy, grads = layer.backward(params, caches[index], dy, need_dx=index > 0, **self.backward_options[index])
            for target, g in zip(self.grads[first:first + count], grads):
                if g is not target:
                    np.copyto(target, g)
        n, buffer = self.trained, self.reduce_buffer
        buffer[:n] = self.flat_grads[:n]
        buffer[n] = share
        comm = self.replica.communicator
        with collective(comm, "the all-reduce of a training step's gradients"):
            comm.all_reduce_sum(buffer)
        self.flat_grads[:n] = buffer[:n]
        loss = float(buffer[n])
        for k, reg, penalty, gradient in self.regularized:
            loss += float(penalty(reg, self.weights[k]))
            self.grads[k] += gradient(reg, self.weights[k])
        self._update(s)
        return loss, states

    def _batch(self, x, rows):
        """x[rows], written into the same array every step (rows come from the core, all in range)."""
        out = self.batch_workspace.array("x", (len(rows),) + x.shape[1:], x.dtype)
        return np.take(x, rows, axis=0, out=out, mode="clip")  # mode="raise" would copy through a buffer

    def test_steps(self, data, batches):
        x, y, w = data
        losses = np.empty(len(batches))
        totals = [np.zeros(m.state_size) for m, _, _ in self.metrics]
        for step, rows in enumerate(batches):
            wb = None if w is None else w[rows]
            p, caches = self._forward(x[rows], None)
            losses[step], _ = self._loss(y[rows], p, wb, caches, gradient=False)
            for total, state in zip(totals, self._metric_states(y[rows], p, wb)):
                total += state
        return StepResult(losses, totals)

    def predict_steps(self, data, batches):
        x = data[0]
        return np.concatenate([self._forward(x[rows], None)[0] for rows in batches], axis=0)


def _views(flat: np.ndarray, shapes, order) -> list[np.ndarray]:
    """Views of consecutive pieces of `flat`, one per shape, laid out in `order` (indices into
    shapes), listed in the shapes' order."""
    views, offset = [None] * len(shapes), 0
    for k in order:
        size = int(np.prod(shapes[k]))
        views[k] = flat[offset:offset + size].reshape(shapes[k])
        offset += size
    return views
