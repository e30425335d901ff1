"""The TensorFlow runtime: a compiled model whose blocks of steps each run inside one tf.function call.

Weights and optimizer slots are tf.Variables updated in place; a data set stays on the engine as
tensors after put_data, and each step gathers its batch's rows from it. A block's per-step losses
and summed metric increments come back as one float64 vector, one host transfer per call. Under
data-parallel training each step of the block is one strategy.run on this process's rows, whose
gradients cross in one all-reduce of the job's MultiWorkerMirroredStrategy (collectives.py).
"""

from __future__ import annotations

import contextlib

import numpy as np
import tensorflow as tf

from polynn.backend import Runtime, StepResult, check_values, deferred_interrupts, takes_training
from polynn.distribution import collective, loss_divisor
from polynn.errors import DistributionError
from polynn.metrics import MeanMetric
from polynn.optimizers import apply_updates

from . import metrics as metric_impls
from . import optimizers
from .collectives import brief_errors


def _dense(grads):
    """Gradients as dense tensors: a weight read by tf.gather (ops.take: an Embedding's table) gets
    an IndexedSlices, which the optimizers' arithmetic does not take."""
    return [tf.convert_to_tensor(g) if isinstance(g, tf.IndexedSlices) else g for g in grads]


class _Data:
    """A data set on the engine: the tensors (x,), (x, y) or (x, y, sample weights)."""

    def __init__(self, *tensors):
        self.tensors = tensors

    def key(self):
        return tuple(tuple(t.shape[1:]) for t in self.tensors)

    def signature(self):
        # A free leading axis; the trailing axes stay static (Dense and label smoothing read them).
        return tuple(tf.TensorSpec([None, *t.shape[1:]], t.dtype) for t in self.tensors)

    @staticmethod
    def rows(tensors, rows):
        """x, y and w (None without sample weights) of the given rows."""
        x, y, *w = (tf.gather(t, rows) for t in tensors)
        return x, y, (w[0] if w else None)


class TensorFlowRuntime(Runtime):
    supports_frozen_weights = True
    supports_state_updates = True

    def __init__(self, backend, plan, device):
        self.plan = plan
        # The weights a step differentiates and updates: all but the frozen layers' (Plan.frozen_weights).
        self.trainable = plan.trainable_weights()
        self.backend = backend
        self.dtype = tf.as_dtype(plan.dtype)
        self.device = device
        with self._placement():
            self.weights = [tf.Variable(tf.zeros(ws.shape, self.dtype), name=ws.name) for _, ws in plan.weights]
            starts = tuple(zip(plan.optimizer.slot_names(), plan.optimizer.slot_initial_values()))
            self.slots = [[tf.Variable(tf.fill(w.shape, tf.constant(start, self.dtype)), trainable=False, name=name)
                           for name, start in starts] for w in self.weights]
        self.layers = []
        for spec, owned in zip(plan.layers, plan.layer_weights()):
            self.layers.append((backend.implementation("layer", spec.name)(backend, spec), owned))
        self.mask_slot = {layer_index: k for k, layer_index in enumerate(plan.dropout_layers)}
        # Layers computing otherwise in training get training=True in train steps; those with state
        # (moving statistics) have their non-trainable variables assigned after each step.
        self.training = [{"training": True} if takes_training(layer) else {} for layer, _ in self.layers]
        self.layer_state = plan.state_weights()
        self.loss_value = backend.implementation("loss", plan.loss.name)
        self.regularized = backend.weight_implementations(plan, "regularizer")
        self.constrained = {k: (spec, project)
                            for k, spec, project in backend.weight_implementations(plan, "constraint")}
        self.optimizer = plan.optimizer
        self.update = backend.implementation("optimizer", plan.optimizer.name)
        largest = max((int(np.prod(ws.shape)) for _, ws in plan.weights), default=0)
        shared = backend.own_implementation("optimizer", plan.optimizer.name) is None
        self.fused_update = optimizers.fused_rule(plan.optimizer, shared, plan.dtype, largest)
        self.set_metrics(plan.metrics, plan.metric_weighted)
        self.replica = plan.distribution

    def _placement(self):
        return contextlib.nullcontext() if self.device is None else tf.device(self.device)

    # ---- state ------------------------------------------------------------------------

    def get_weights(self):
        return [np.array(w.numpy(), copy=True) for w in self.weights]

    def set_weights(self, weights):
        for target, value in zip(self.weights, weights):
            target.assign(np.asarray(value, dtype=self.plan.dtype))

    def get_optimizer_state(self):
        return [[np.array(s.numpy(), copy=True) for s in slots] for slots in self.slots]

    def set_optimizer_state(self, state):
        for slots, values in zip(self.slots, state):
            for target, value in zip(slots, values):
                target.assign(np.asarray(value, dtype=self.plan.dtype))

    def snapshot(self):
        # A variable's read is a value that later assignments leave alone: no copy to NumPy.
        return [w.read_value() for w in self.weights], [[s.read_value() for s in slots] for slots in self.slots]

    def restore(self, snapshot):
        weights, slots = snapshot
        for target, value in zip(self.weights, weights):
            target.assign(value)
        for targets, values in zip(self.slots, slots):
            for target, value in zip(targets, values):
                target.assign(value)

    def set_metrics(self, metrics, weighted):
        self.metrics = [(m, self.backend.implementation("metric", m.name), takes_weights)
                        for m, takes_weights in zip(metrics, weighted)]
        # Compiled functions bake the metrics in; the next call traces them again.
        self._functions = {}

    def put_data(self, x, y=None, sample_weight=None):
        with self._placement():
            tensors = [tf.constant(x)]
            if y is not None:
                tensors.append(tf.constant(y))
            if sample_weight is not None:
                tensors.append(tf.constant(np.asarray(sample_weight, dtype=self.plan.dtype)))
            return _Data(*tensors)

    # ---- one step (traced inside the block functions) -----------------------------------

    def _read(self):
        # Each weight read once per step: the forward pass, penalties and update share the values.
        return [tf.convert_to_tensor(v) for v in self.weights]

    def _forward(self, params, x, masks, rows=None, inputs=None):
        """Outputs and the activity penalties of the layers that have one; masks None in inference,
        a list (maybe empty) in training. `rows`, when given, divides the penalties instead of x's
        rows (the global batch's size). `inputs`, when a dict, gets the input of each layer with
        state updates, by layer index."""
        activity = []
        for index, (layer, owned) in enumerate(self.layers):
            mask = None if masks is None or index not in self.mask_slot else masks[self.mask_slot[index]]
            if inputs is not None and index in self.layer_state:
                inputs[index] = x
            options = {} if masks is None else self.training[index]
            x = layer.forward([params[k] for k in owned], x, mask, **options)
            if layer.activity is not None:
                if rows is None:
                    activity.append(layer.penalty(x))
                else:
                    activity.append(layer.activity(layer.spec.activity_regularizer, x) / rows)
        return x, activity

    def _loss(self, params, y, p, w, activity):
        """The loss to differentiate (plan dtype) and the one to report (float64), as NumPy's `_loss`."""
        spec = self.plan.loss
        values = self.loss_value(spec, y, p)
        if w is not None and values.shape.rank == 0:
            values = tf.broadcast_to(values, tf.shape(w))  # one value per batch stands for each sample
        size = tf.cast(tf.size(values), self.dtype)
        if w is None:
            total, weight_sum = tf.math.reduce_sum(values), size
        else:
            weights = tf.broadcast_to(tf.reshape(w, [-1] + [1] * (values.shape.rank - 1)), tf.shape(values))
            total, weight_sum = tf.math.reduce_sum(values * weights), tf.math.reduce_sum(weights)
        if spec.reduction == "sum":
            loss = total
        elif spec.reduction == "mean_with_sample_weight":
            divisor = weight_sum
            nonzero = tf.math.not_equal(divisor, 0)
            # All-zero weights give a zero loss and zero gradients, never 0/0.
            loss = tf.where(nonzero, total / tf.where(nonzero, divisor, tf.ones_like(divisor)), total * 0)
        else:
            loss = total / size
        penalties = [penalty(reg, params[k]) for k, reg, penalty in self.regularized] + activity
        report = tf.cast(loss, tf.float64)
        for term in penalties:
            loss = loss + term
            report = report + tf.cast(term, tf.float64)
        return loss, report

    def _metric_states(self, y, p, w):
        states = []
        for m, impl, takes_weights in self.metrics:
            mw = w if takes_weights else None
            if not isinstance(m, MeanMetric):
                states.append(impl(m, y, p, mw))
                continue
            values = impl(m, y, p)
            if mw is not None:
                check_values(m, values.shape, p.shape, weighted=True)
            states.append(metric_impls.mean_state(values, mw))
        return tuple(states)

    def _train_step(self, x, y, w, masks, s):
        current = self._read()
        trained = [current[k] for k in self.trainable]
        inputs = {}
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(trained)
            p, activity = self._forward(current, x, masks, inputs=inputs)
            loss, report = self._loss(current, y, p, w, activity)
        grads = _dense(tape.gradient(loss, trained, unconnected_gradients=tf.UnconnectedGradients.ZERO))
        states = self._metric_states(y, p, w)
        new_state = self._new_state(current, inputs)
        self._update(trained, grads, s)
        for k, value in new_state:
            self.weights[k].assign(value)
        return report, states

    def _new_state(self, params, inputs):
        """(k, value) for each non-trainable weight of the layers with state updates: their
        state_updates of the weights as this step read them and the layer's training-mode input."""
        found = []
        for index, targets in self.layer_state.items():
            layer, owned = self.layers[index]
            values = layer.state_updates([params[k] for k in owned], tf.stop_gradient(inputs[index]))
            found.extend(zip(targets, values))
        return found

    def _update(self, trained, grads, s):
        """The optimizer's update of the trainable weights from `trained` (their values this step)
        and their gradients, then the constraints."""
        if not trained:
            return
        variables = [self.weights[k] for k in self.trainable]
        slot_variables = [self.slots[k] for k in self.trainable]
        # The update runs on this backend's ops, floats in the plan's dtype (s["lr"] is one).
        run = self.backend.run_ops
        if self.fused_update is not None:
            run(optimizers.apply_fused, s["lr"], self.optimizer, self.fused_update, variables, trained, grads,
                slot_variables, s)
            for k, (constraint, project) in self.constrained.items():
                self.weights[k].assign(project(constraint, tf.convert_to_tensor(self.weights[k])))
            return
        slots = [[tf.convert_to_tensor(v) for v in ws] for ws in slot_variables]
        new_weights, new_slots = run(apply_updates, s["lr"], self.optimizer, trained, grads, slots, s, self.update)
        new_weights = dict(zip(self.trainable, new_weights))
        for k, (constraint, project) in self.constrained.items():
            new_weights[k] = project(constraint, new_weights[k])
        for k, value in new_weights.items():
            self.weights[k].assign(value)
        for variables, values in zip(slot_variables, new_slots):
            for variable, value in zip(variables, values):
                variable.assign(value)

    # ---- one data-parallel step (polynn.distribution.Replica's contract) -----------------

    def _share(self, y, p, w, width, weight_sum):
        """This process's share of the global batch's loss: its rows' weighted sum over the global
        divisor (0 where the divisor is 0, never 0/0)."""
        spec = self.plan.loss
        values = self.loss_value(spec, y, p)
        if values.shape.rank == 0:
            raise DistributionError(
                f"loss {spec.name!r} gives one value for the whole batch; data-parallel training splits every "
                f"batch across processes, so it needs one value per sample (a shape of (batch, ...))")
        per_row = values.shape[1:].num_elements()
        if per_row is None:
            raise DistributionError(f"loss {spec.name!r} gives values of shape {values.shape}; data-parallel "
                                    f"training needs their shape after the batch axis known when it compiles")
        if w is None:
            total = tf.math.reduce_sum(values)
        else:
            total = tf.math.reduce_sum(values * tf.reshape(w, [-1] + [1] * (values.shape.rank - 1)))
        if spec.reduction == "mean_with_sample_weight" and weight_sum is not None:
            divisor = weight_sum * per_row
        else:
            divisor = tf.constant(loss_divisor(spec.reduction, per_row, width, None), self.dtype)
        nonzero = tf.math.not_equal(divisor, 0)
        return tf.where(nonzero, total / tf.where(nonzero, divisor, tf.ones_like(divisor)), total * 0)

    def _replica_step(self, x, y, w, masks, s, width, weight_sum):
        """One step on this process's rows, in a replica context: the gradients of its share of the
        global loss, summed with the other processes' in one all-reduce (the share riding along),
        then the weight penalties and their gradients once, the update and the constraints."""
        current = self._read()
        trained = [current[k] for k in self.trainable]
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(trained)
            p, activity = self._forward(current, x, masks, rows=width)
            share = self._share(y, p, w, width, weight_sum)
            for term in activity:
                share = share + term
        grads = _dense(tape.gradient(share, trained, unconnected_gradients=tf.UnconnectedGradients.ZERO))
        states = self._metric_states(y, p, w)
        flat = tf.concat([tf.reshape(g, [-1]) for g in grads] + [tf.reshape(share, [1])], 0)
        summed = tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, flat)
        pieces = tf.split(summed, [int(np.prod(g.shape)) for g in grads] + [1])
        grads = [tf.reshape(piece, g.shape) for piece, g in zip(pieces, grads)]
        report = tf.cast(pieces[-1][0], tf.float64)
        if self.regularized:
            with tf.GradientTape(watch_accessed_variables=False) as tape:
                tape.watch(trained)
                penalties = [penalty(reg, current[k]) for k, reg, penalty in self.regularized]
            extra = _dense(tape.gradient(penalties, trained))
            grads = [g if e is None else g + e for g, e in zip(grads, extra)]
            for term in penalties:
                report = report + tf.cast(term, tf.float64)
        self._update(trained, grads, s)
        return report, states

    # ---- compiled blocks ---------------------------------------------------------------

    def _loop(self, batches, step):
        """Run step(t, losses, totals) for each row of `batches` in one graph loop; returns the
        per-step losses followed by the summed metric increments, as one float64 vector."""
        steps = tf.shape(batches)[0]

        def body(t, losses, totals):
            losses, totals = step(t, losses, totals)
            return t + 1, losses, totals

        totals = tuple(tf.zeros([m.state_size], tf.float64) for m, _, _ in self.metrics)
        _, losses, totals = tf.while_loop(lambda t, *_: t < steps, body,
                                          (tf.constant(0), tf.TensorArray(tf.float64, size=steps), totals))
        return tf.concat([losses.stack(), *totals], 0)

    def _function(self, key, build):
        if key not in self._functions:
            function = build()
            # TensorFlow's tracing is not interrupt-safe (a Ctrl-C halfway comes out as a SystemError
            # from its internals): trace now, from the input signature, with Ctrl-C held until done.
            with deferred_interrupts():
                function.get_concrete_function()
            self._functions[key] = function
        return self._functions[key]

    def _train_function(self, data, masks, scalars):
        names = tuple(sorted(scalars))
        signature = (
            data.signature(), tf.TensorSpec([None, None], tf.int64),
            tuple(tf.TensorSpec([None] * m.ndim, self.dtype) for m in masks),
            {name: tf.TensorSpec([None], self.dtype) for name in names},
        )

        def build():
            # autograph=False: the loop is an explicit tf.while_loop, and tracing without
            # autograph's conversion of every called function is several times faster.
            @tf.function(input_signature=signature, autograph=False)
            def train(tensors, batches, masks, scalars):
                def step(t, losses, totals):
                    x, y, w = _Data.rows(tensors, batches[t])
                    s = {name: values[t] for name, values in scalars.items()}
                    report, states = self._train_step(x, y, w, [mask[t] for mask in masks], s)
                    return losses.write(t, report), tuple(a + b for a, b in zip(totals, states))

                return self._loop(batches, step)

            return train

        key = ("train", data.key(), tuple(m.ndim for m in masks), names)
        return self._function(key, build)

    def _replica_train_function(self, data, masks, scalars, width):
        """The block function of data-parallel training on batches of `width` rows: the loop over
        the steps at cross-replica level (an all-reduce inside a replica's loop is unsupported),
        each step one strategy.run of _replica_step on this process's rows [lo, hi)."""
        names = tuple(sorted(scalars))
        signature = (
            data.signature(), tf.TensorSpec([None, width], tf.int64),
            tuple(tf.TensorSpec([None] * m.ndim, self.dtype) for m in masks),
            {name: tf.TensorSpec([None], self.dtype) for name in names},
        )
        comm = self.replica.communicator
        # One process without TensorFlow's engine (a job of one): the default strategy, whose
        # all-reduce over its single replica is the identity.
        strategy = getattr(comm, "strategy", None) or tf.distribute.get_strategy()
        lo, hi = self.replica.bounds(width)

        def build():
            @tf.function(input_signature=signature, autograph=False)
            def train(tensors, batches, masks, scalars):
                weights = tensors[2] if len(tensors) > 2 else None

                def replica_step(t):
                    with self._placement():
                        x, y, w = _Data.rows(tensors, batches[t, lo:hi])
                        # The divisor of "mean_with_sample_weight": the weights of the step's global rows.
                        weight_sum = None if weights is None else tf.math.reduce_sum(tf.gather(weights, batches[t]))
                        s = {name: values[t] for name, values in scalars.items()}
                        return self._replica_step(x, y, w, [mask[t] for mask in masks], s, width, weight_sum)

                def step(t, losses, totals):
                    results = strategy.run(replica_step, args=(t,))
                    report, states = tf.nest.map_structure(lambda v: strategy.experimental_local_results(v)[0],
                                                           results)
                    return losses.write(t, report), tuple(a + b for a, b in zip(totals, states))

                return self._loop(batches, step)

            return train

        key = ("replica train", data.key(), tuple(m.ndim for m in masks), names, width)
        return self._function(key, build)

    def _test_function(self, data):
        signature = (data.signature(), tf.TensorSpec([None, None], tf.int64))

        def build():
            @tf.function(input_signature=signature, autograph=False)
            def test(tensors, batches):
                def step(t, losses, totals):
                    x, y, w = _Data.rows(tensors, batches[t])
                    params = self._read()
                    p, activity = self._forward(params, x, None)
                    _, report = self._loss(params, y, p, w, activity)
                    states = self._metric_states(y, p, w)
                    return losses.write(t, report), tuple(a + b for a, b in zip(totals, states))

                return self._loop(batches, step)

            return test

        return self._function(("test", data.key()), build)

    def _predict_function(self, data):
        signature = (data.signature(), tf.TensorSpec([None, None], tf.int64))
        out_shape = list(self.plan.shapes[-1]) if self.plan.shapes else list(self.plan.input_shape)

        def build():
            @tf.function(input_signature=signature, autograph=False)
            def predict(tensors, batches):
                def step(t, outputs):
                    x = tf.gather(tensors[0], batches[t])
                    return t + 1, outputs.write(t, self._forward(self._read(), x, None)[0])

                steps = tf.shape(batches)[0]
                _, outputs = tf.while_loop(lambda t, _: t < steps, step,
                                           (tf.constant(0), tf.TensorArray(self.dtype, size=steps)))
                return tf.reshape(outputs.stack(), [-1, *out_shape])

            return predict

        return self._function(("predict", data.key()), build)

    def _result(self, packed, steps):
        packed = packed.numpy()
        totals, offset = [], steps
        for m, _, _ in self.metrics:
            totals.append(packed[offset:offset + m.state_size])
            offset += m.state_size
        return StepResult(packed[:steps], totals)

    def train_steps(self, data, batches, masks, scalars):
        if self.replica is not None:
            return self._replica_train_steps(data, batches, masks, scalars)
        with self._placement():
            train = self._train_function(data, masks, scalars)
            packed = train(data.tensors, tf.constant(batches, tf.int64),
                           tuple(tf.constant(m, self.dtype) for m in masks),
                           {name: tf.constant(values, self.dtype) for name, values in scalars.items()})
        return self._result(packed, len(batches))

    def _replica_train_steps(self, data, batches, masks, scalars):
        """train_steps under data-parallel training: the global batches and masks in, this
        process's slice of each taken inside the block function (masks sliced here)."""
        width = batches.shape[1]
        masks = self.replica.masks(list(masks), width)
        with self._placement():
            train = self._replica_train_function(data, masks, scalars, width)
            with collective(self.replica.communicator, "a block of training steps"), brief_errors():
                packed = train(data.tensors, tf.constant(batches, tf.int64),
                               tuple(tf.constant(m, self.dtype) for m in masks),
                               {name: tf.constant(values, self.dtype) for name, values in scalars.items()})
                return self._result(packed, len(batches))

    def test_steps(self, data, batches):
        with self._placement():
            packed = self._test_function(data)(data.tensors, tf.constant(batches, tf.int64))
        return self._result(packed, len(batches))

    def predict_steps(self, data, batches):
        with self._placement():
            return self._predict_function(data)(data.tensors, tf.constant(batches, tf.int64)).numpy()
