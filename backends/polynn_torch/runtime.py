"""The torch runtime: a compiled model's forward pass, autograd gradients and chunked in-place updates.

Data lives on the device from put_data on; each block of steps crosses to and from the host once
(indices, masks and scalars in, per-step losses and metric sums out), so steps never wait on the host.
Under data-parallel training each step's gradients cross to the other processes in one
torch.distributed all-reduce of a flat tensor on the device (polynn.distribution.Replica's contract).
"""

from __future__ import annotations

import inspect

import numpy as np
import torch

from polynn.backend import Runtime, StepResult, check_values, takes_training
from polynn.distribution import collective, loss_divisor
from polynn.errors import DistributionError
from polynn.metrics import MeanMetric

from . import metrics as metric_impls
from . import optimizers
from .workspace import Workspace


class TorchRuntime(Runtime):
    supports_frozen_weights = True
    supports_state_updates = True

    def __init__(self, backend, plan, device):
        self.plan = plan
        self.device = device
        self.np_dtype = np.dtype(plan.dtype)
        self.dtype = getattr(torch, plan.dtype)
        # Weights and optimizer slots are views of flat buffers, which the update walks in cached
        # chunks: `state` holds the weights a step trains, `frozen` those of layers with
        # trainable=False (Plan.frozen_weights), which no gradient or update reaches.
        starts = plan.optimizer.slot_initial_values()
        trainable, frozen = plan.trainable_weights(), list(plan.frozen_weights)
        self.state = optimizers.FlatState([plan.weights[k][1].shape for k in trainable], starts, self.dtype, device)
        self.weights = [None] * len(plan.weights)
        self.slots = [[None] * len(plan.weights) for _ in starts]
        parts = [(self.state, trainable)]
        if frozen:
            stored = optimizers.FlatState([plan.weights[k][1].shape for k in frozen], starts, self.dtype, device)
            for w in stored.weights:
                w.requires_grad_(False)
            parts.append((stored, frozen))
        for part, indices in parts:
            for i, k in enumerate(indices):
                self.weights[k] = part.weights[i]
                for slot, views in zip(self.slots, part.slots):
                    slot[k] = views[i]
        self.layers = [(backend.implementation("layer", spec.name)(backend, spec), [self.weights[k] for k in owned])
                       for spec, owned in zip(plan.layers, plan.layer_weights())]
        # Training steps on the CPU write large gradients into tensors kept from step to step, one
        # workspace per layer whose forward takes one (see workspace.py); a third-party layer allocates.
        self.workspaces = [
            Workspace() if device.type == "cpu" and "workspace" in inspect.signature(layer.forward).parameters
            else None
            for layer, _ in self.layers
        ]
        mask_slot = {layer_index: k for k, layer_index in enumerate(plan.dropout_layers)}
        self.layer_masks = [mask_slot.get(index) for index in range(len(plan.layers))]
        # Layers computing otherwise in training get training=True in train steps; those with state
        # (moving statistics) have their non-trainable weights replaced after each step.
        self.training = [{"training": True} if takes_training(layer) else {} for layer, _ in self.layers]
        self.layer_state = {index: [self.weights[k] for k in ks] for index, ks in plan.state_weights().items()}
        self.loss_value = backend.implementation("loss", plan.loss.name)
        # The weight tensors themselves, which the step reads without indexing.
        self.regularized = [(self.weights[k], spec, penalty)
                            for k, spec, penalty in backend.weight_implementations(plan, "regularizer")]
        self.constrained = [(self.weights[k], spec, project)
                            for k, spec, project in backend.weight_implementations(plan, "constraint")]
        self.optimizer = plan.optimizer
        self.update = backend.implementation("optimizer", plan.optimizer.name)
        # Chosen once: it depends only on the optimizer spec, its rule and the state's dtype and device.
        self.fused_update = optimizers.fused_rule(plan.optimizer, self.update, self.state)
        self.backend = backend
        self.set_metrics(plan.metrics, plan.metric_weighted)
        self.replica = plan.distribution
        if self.replica is not None:
            self._start_replica()

    # ---- state ------------------------------------------------------------------------

    def _host(self, tensor):
        return tensor.detach().to("cpu", copy=True).numpy()

    def _assign(self, targets, values):
        with torch.no_grad():
            for target, value in zip(targets, values):
                target.copy_(torch.tensor(np.asarray(value, dtype=self.np_dtype)))

    def get_weights(self):
        return [self._host(w) for w in self.weights]

    def set_weights(self, weights):
        self._assign(self.weights, weights)

    def get_optimizer_state(self):
        return [[self._host(slot[i]) for slot in self.slots] for i in range(len(self.weights))]

    def set_optimizer_state(self, state):
        for i, values in enumerate(state):
            self._assign([slot[i] for slot in self.slots], values)

    def snapshot(self):
        if self.device.type != "cpu":
            # Device memory is the scarce one: the copy goes to the host (Runtime's default).
            return super().snapshot()
        with torch.no_grad():
            weights = [w.detach().clone() for w in self.weights]
            return weights, [[s.detach().clone() for s in slot] for slot in self.slots]

    def restore(self, snapshot):
        if self.device.type != "cpu":
            super().restore(snapshot)
            return
        weights, slots = snapshot
        with torch.no_grad():
            for target, value in zip(self.weights, weights):
                target.copy_(value)
            for targets, values in zip(self.slots, slots):
                for target, value in zip(targets, values):
                    target.copy_(value)

    def set_metrics(self, metrics, weighted):
        # Mean metrics give per-sample values; the others (precision, recall, auc) their state increment.
        self.metrics = [(m, self.backend.implementation("metric", m.name), isinstance(m, MeanMetric), takes_weights)
                        for m, takes_weights in zip(metrics, weighted)]

    def put_data(self, x, y=None, sample_weight=None):
        return tuple(None if a is None else self._data_tensor(a) for a in (x, y, sample_weight))

    def _data_tensor(self, array):
        """The array as a tensor on the device. On the CPU the tensor shares a writable array's memory,
        as the NumPy runtime uses the array itself: the steps only read it, and a copy would cost a
        second training set in memory and its writing
        (measured: docs/performance.md#torch-data-shares-the-array)."""
        array = np.asarray(array, dtype=self.np_dtype)
        if self.device.type == "cpu" and array.flags.writeable:
            return torch.from_numpy(array)
        return torch.tensor(array, device=self.device)

    # ---- one step ---------------------------------------------------------------------

    def _forward(self, x, masks=None, penalties=None, training=False, penalty_rows=None, states=None):
        """Outputs; activity penalties are appended to `penalties` when it is a list, each divided by
        `penalty_rows` when given (the global batch under data-parallel training), else by x's rows;
        when `states` is a list, each layer with state updates appends (its state weights, their
        new values), computed from the weights and input its forward reads."""
        for index, ((layer, params), slot, workspace) in enumerate(zip(self.layers, self.layer_masks,
                                                                        self.workspaces)):
            mask = None if slot is None or masks is None else masks[slot]
            options = self.training[index] if training else {}
            if states is not None and index in self.layer_state:
                with torch.no_grad():
                    states.append((self.layer_state[index], layer.state_updates(params, x.detach())))
            if training and workspace is not None:
                x = layer.forward(params, x, mask, workspace=workspace, **options)
            else:
                x = layer.forward(params, x, mask, **options)
            if penalties is not None and layer.activity is not None:
                if penalty_rows is None:
                    penalties.append(layer.penalty(x))
                else:
                    penalties.append(layer.activity(layer.spec.activity_regularizer, x) / penalty_rows)
        return x

    def _loss(self, y, p, w, penalties):
        """Reduced loss plus penalties, in the order the NumPy runtime adds them."""
        spec = self.plan.loss
        values = self.loss_value(spec, y, p)
        if w is not None and values.dim() == 0:
            values = values.expand(w.shape)  # one value per batch stands for each sample
        if w is None:
            total = torch.sum(values)
        else:
            weights = w.reshape(w.shape + (1,) * (values.dim() - 1)).expand(values.shape)
            total = torch.sum(values * weights)
        if spec.reduction == "sum":
            loss = total
        elif spec.reduction == "mean_with_sample_weight" and w is not None:
            # A zero sum of weights gives total * 0, as the reference; where() keeps it off the host.
            divisor = torch.sum(weights)
            nonzero = divisor != 0
            loss = total / torch.where(nonzero, divisor, 1.0) * nonzero
        else:
            loss = total / values.numel() if values.numel() else total * 0
        for weight, reg, penalty in self.regularized:
            loss = loss + penalty(reg, weight)
        for term in penalties:
            loss = loss + term
        return loss

    def _train_step(self, x, y, w, masks, s):
        penalties, states = [], []
        p = self._forward(x, masks, penalties, training=True, states=states)
        loss = self._loss(y, p, w, penalties)
        if self.state.weights:
            grads = list(torch.autograd.grad(loss, self.state.weights))
            with torch.no_grad():
                optimizers.apply(self.optimizer, self.update, self.state, grads, s, self.fused_update)
                for weight, constraint, project in self.constrained:
                    weight.copy_(project(constraint, weight))
        self._update_state(states)
        return loss.detach(), p.detach()

    @staticmethod
    def _update_state(states):
        """Each layer's state weights set to their new values, once the step's update is done."""
        with torch.no_grad():
            for targets, values in states:
                for target, value in zip(targets, values):
                    target.copy_(value)

    # ---- blocks of steps --------------------------------------------------------------

    def _rows(self, batches):
        return torch.from_numpy(np.ascontiguousarray(batches, dtype=np.int64)).to(self.device)

    def _result(self, losses, sums, counts):
        """One transfer for the whole block: the losses as float64 and each metric's state."""
        parts = [torch.stack(losses).to(torch.float64)]
        for (_, _, mean, _), metric_sums, metric_counts in zip(self.metrics, sums, counts):
            if not mean:
                parts.append(torch.stack(metric_sums).sum(dim=0))
                continue
            parts.append(torch.stack(metric_sums).sum().reshape(1))
            if metric_counts and isinstance(metric_counts[0], torch.Tensor):
                parts.append(torch.stack(metric_counts).sum().reshape(1))
        host = torch.cat(parts).cpu().numpy()
        states, at = [], len(losses)
        for (metric, _, mean, _), metric_counts in zip(self.metrics, counts):
            if not mean:
                states.append(host[at:at + metric.state_size].copy())
                at += metric.state_size
                continue
            total = host[at]
            at += 1
            if metric_counts and isinstance(metric_counts[0], torch.Tensor):
                count = host[at]
                at += 1
            else:
                count = float(sum(metric_counts))
            states.append(np.array([total, count], dtype=np.float64))
        return StepResult(host[:len(losses)].copy(), states)

    def _accumulate(self, sums, counts, y, p, w):
        for (metric, impl, mean, takes_weights), metric_sums, metric_counts in zip(self.metrics, sums, counts):
            mw = w if takes_weights else None
            if not mean:
                metric_sums.append(impl(metric, y, p, mw))
                continue
            values = impl(metric, y, p)
            if mw is not None:
                check_values(metric, values.shape, p.shape, weighted=True)
            total, count = metric_impls.mean_state(values, mw)
            metric_sums.append(total)
            metric_counts.append(count)

    def train_steps(self, data, batches, masks, scalars):
        if self.replica is not None:
            return self._replica_steps(data, batches, masks, scalars)
        x, y, w = data
        rows = self._rows(batches)
        masks = [torch.from_numpy(np.ascontiguousarray(m)).to(self.device, self.dtype) for m in masks]
        # Python floats of the plan-dtype values: exact, and element-wise ops take them without a tensor.
        scalars = {name: values.tolist() for name, values in scalars.items()}
        losses = []
        sums = [[] for _ in self.metrics]
        counts = [[] for _ in self.metrics]
        # Grad mode is thread state: an interrupt inside a no_grad() entry elsewhere can leave it off.
        with torch.inference_mode(False), torch.enable_grad():
            self._train_block(x, y, w, rows, masks, scalars, losses, sums, counts)
        return self._result(losses, sums, counts)

    def _train_block(self, x, y, w, rows, masks, scalars, losses, sums, counts):
        for step in range(len(rows)):
            index = rows[step]
            yb = y.index_select(0, index)
            wb = None if w is None else w.index_select(0, index)
            loss, p = self._train_step(
                x.index_select(0, index), yb, wb, [m[step] for m in masks] if masks else None,
                {name: values[step] for name, values in scalars.items()})
            losses.append(loss)
            self._accumulate(sums, counts, yb, p, wb)

    # ---- data-parallel steps (polynn.distribution.Replica's contract) -------------------

    def _start_replica(self):
        """The buffer a step's gradients and loss share cross to the other processes in: the
        trainable gradients, flat in the weights' order, then the share; and views of it per weight."""
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)  # NCCL's own calls run on the current device
        n = self.state.size
        self.reduce_buffer = torch.empty(n + 1, dtype=self.dtype, device=self.device)
        sizes = [w.numel() for w in self.state.weights]
        self.reduced_grads = [part.view(w.shape) for part, w in
                              zip(torch.split(self.reduce_buffer[:n], sizes), self.state.weights)]
        # The regularized weights the step trains, and where their gradients are among the trainable.
        trained = {id(w): i for i, w in enumerate(self.state.weights)}
        self.penalized = [(trained[id(weight)], weight) for weight, _, _ in self.regularized if id(weight) in trained]

    def _replica_steps(self, data, batches, masks, scalars):
        x, y, w = data
        width = batches.shape[1]
        rows = self._rows(self.replica.rows(batches))
        masks = [torch.from_numpy(np.ascontiguousarray(m)).to(self.device, self.dtype)
                 for m in self.replica.masks(list(masks), width)]
        scalars = {name: values.tolist() for name, values in scalars.items()}
        # Each step's sum of sample weights over its global rows, for the divisor of every process's share.
        weight_sums = [None] * len(batches) if w is None else \
            w.index_select(0, self._rows(batches).reshape(-1)).reshape(batches.shape).sum(dim=1).tolist()
        losses = []
        sums = [[] for _ in self.metrics]
        counts = [[] for _ in self.metrics]
        with torch.inference_mode(False), torch.enable_grad():
            for step in range(len(rows)):
                index = rows[step]
                yb = y.index_select(0, index)
                wb = None if w is None else w.index_select(0, index)
                loss, p = self._replica_step(
                    x.index_select(0, index), yb, wb, [m[step] for m in masks] if masks else None,
                    {name: values[step] for name, values in scalars.items()}, width, weight_sums[step])
                losses.append(loss)
                self._accumulate(sums, counts, yb, p, wb)
        return self._result(losses, sums, counts)

    def _replica_step(self, x, y, w, masks, s, width, weight_sum):
        """One step on this process's rows: the gradients of its share of the global loss, summed
        with the other processes' (the share riding along), then the weight penalties once."""
        penalties = []
        p = self._forward(x, masks, penalties, training=True, penalty_rows=width)
        share = self._share(y, p, w, penalties, width, weight_sum)
        buffer, n = self.reduce_buffer, self.state.size
        parts = [g.reshape(-1) for g in torch.autograd.grad(share, self.state.weights)] if self.state.weights else []
        torch.cat(parts + [share.detach().reshape(1)], out=buffer)
        self._all_reduce(buffer)
        loss = buffer[n].clone()  # the buffer is the next step's
        for weight, reg, penalty in self.regularized:
            loss = loss + penalty(reg, weight)
        grads = self.reduced_grads
        with torch.no_grad():
            if self.penalized:
                # The reduced share is a constant here: the loss's gradient is the weight penalties'.
                penalty_grads = torch.autograd.grad(loss, [weight for _, weight in self.penalized])
                for (i, _), g in zip(self.penalized, penalty_grads):
                    grads[i].add_(g)
            if self.state.weights:
                optimizers.apply(self.optimizer, self.update, self.state, grads, s, self.fused_update)
            for weight, constraint, project in self.constrained:
                weight.copy_(project(constraint, weight))
        return loss.detach(), p.detach()

    def _share(self, y, p, w, penalties, width, weight_sum):
        """This process's part of the global loss: its rows' weighted sum over the global batch's
        divisor, plus its activity penalties (already divided by the global batch size)."""
        spec = self.plan.loss
        values = self.loss_value(spec, y, p)
        if values.dim() == 0:
            raise DistributionError(
                f"loss {spec.name!r} gives one value for the whole batch; data-parallel training splits every "
                f"batch across processes, so it needs one value per sample (a shape of (batch, ...))")
        divisor = loss_divisor(spec.reduction, int(np.prod(values.shape[1:], dtype=np.int64)), width, weight_sum)
        if w is None:
            total = torch.sum(values)
        else:
            total = torch.sum(values * w.reshape(w.shape + (1,) * (values.dim() - 1)).expand(values.shape))
        share = total / divisor if divisor else total * 0
        for term in penalties:
            share = share + term
        return share

    def _all_reduce(self, flat):
        """flat summed over the processes, in place: torch.distributed's all-reduce on the device
        (NCCL for CUDA tensors, gloo for CPU ones); another engine's communicator (the single
        process's) reduces a host copy."""
        comm = self.replica.communicator
        with collective(comm, "the all-reduce of a training step's gradients"):
            if comm.engine == "torch":
                import torch.distributed as dist

                dist.all_reduce(flat, op=dist.ReduceOp.SUM)
            elif flat.device.type == "cpu":
                comm.all_reduce_sum(flat.numpy())
            else:
                host = flat.cpu().numpy()
                comm.all_reduce_sum(host)
                flat.copy_(torch.from_numpy(host))

    def test_steps(self, data, batches):
        x, y, w = data
        losses = []
        sums = [[] for _ in self.metrics]
        counts = [[] for _ in self.metrics]
        with torch.inference_mode():
            for index in self._rows(batches):
                yb = y.index_select(0, index)
                wb = None if w is None else w.index_select(0, index)
                penalties = []
                p = self._forward(x.index_select(0, index), None, penalties)
                losses.append(self._loss(yb, p, wb, penalties))
                self._accumulate(sums, counts, yb, p, wb)
            return self._result(losses, sums, counts)

    def predict_steps(self, data, batches):
        x = data[0]
        with torch.inference_mode():
            outputs = [self._forward(x.index_select(0, index)) for index in self._rows(batches)]
            return torch.cat(outputs).cpu().numpy()
