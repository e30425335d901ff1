"""Blocks of training steps and what each step draws: batch order, optimizer scalars, dropout masks."""

from __future__ import annotations

import numpy as np

from . import random as _random
from .errors import InvalidArgumentError
from .optimizers import MAX_ITERATIONS

# Dropout masks for one backend call stay under this many bytes; blocks of steps shrink to fit.
MASK_BUDGET_BYTES = 64 * 2**20


def index_blocks(order: np.ndarray, batch_size: int, steps_per_call: int) -> list[np.ndarray]:
    """Split an epoch's sample order into (steps, batch) index blocks; the short last batch alone."""
    n = len(order)
    full = n // batch_size
    blocks: list[np.ndarray] = []
    if full:
        grid = order[: full * batch_size].reshape(full, batch_size)
        blocks.extend(grid[i:i + steps_per_call] for i in range(0, full, steps_per_call))
    if n % batch_size:
        blocks.append(order[full * batch_size:].reshape(1, -1))
    return blocks


def _mask_shape(plan, index: int, batch: int) -> tuple:
    """The mask shape of dropout layer `index` for a batch of `batch` rows."""
    shape_in = plan.input_shape if index == 0 else plan.shapes[index - 1]
    return plan.layers[index].mask_shape((batch, *shape_in))


class TrainingBlocks:
    """The blocks of steps of one fit() and, for each, what the shared streams give its steps.

    Every draw is keyed by (seed, position) (polynn.random), so a block's rows, masks and scalars
    depend only on the seed, the epoch and the global step, whatever the block sizes.
    """

    def __init__(self, plan, seed: int, n: int, batch_size: int, steps_per_call: int):
        self.plan, self.seed, self.n, self.batch_size = plan, seed, n, batch_size
        first = max(1, min(batch_size, n))
        for batch in {first, n % batch_size} - {0}:  # a noise_shape's batch entry is refused now, not mid-epoch
            for index in plan.dropout_layers:
                _mask_shape(plan, index, batch)
        mask_bytes = np.dtype(plan.dtype).itemsize * sum(
            int(np.prod(_mask_shape(plan, i, first))) for i in plan.dropout_layers)
        if mask_bytes:
            steps_per_call = max(1, min(steps_per_call, MASK_BUDGET_BYTES // mask_bytes))
        self.steps_per_call = steps_per_call

    def epoch(self, epoch: int, shuffle: bool) -> list[np.ndarray]:
        """The (steps, batch) row indices of each block of `epoch`, in order."""
        order = _random.batch_order(self.seed, epoch, self.n) if shuffle else np.arange(self.n)
        return index_blocks(order, self.batch_size, self.steps_per_call)

    def inputs(self, rows: np.ndarray, first_step: int, learning_rate: float | None):
        """(masks, scalars) for a block of rows whose first step is global step `first_step`:
        a scaled keep mask per Plan.dropout_layers entry, (steps, *mask_shape), and the optimizer's
        per-step scalars in the plan's dtype, at `learning_rate` (None: the optimizer's own)."""
        plan, dtype = self.plan, self.plan.dtype
        if first_step + len(rows) > MAX_ITERATIONS:
            raise InvalidArgumentError("iterations", first_step, f"at most {MAX_ITERATIONS} - {len(rows)} before "
                                       f"a block of {len(rows)} steps: training stops at 2**53 steps in all")
        iterations = np.arange(first_step, first_step + len(rows), dtype=np.int64)
        scalars = {name: values.astype(dtype) for name, values in
                   plan.optimizer.step_scalars(iterations, learning_rate).items()}
        masks = []
        for index in plan.dropout_layers:
            layer = plan.layers[index]
            shape = _mask_shape(plan, index, rows.shape[1])
            seed = self.seed if layer.seed is None else layer.seed
            masks.append(np.stack([
                _random.dropout_mask(seed, int(t), index, shape, layer.rate, dtype) for t in iterations]))
        return masks, scalars
