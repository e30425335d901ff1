"""Building and driving tiny models through the public API, the same way on every backend."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np

from ..callbacks import Callback
from ..layers import Dense
from ..losses import MeanSquaredError
from ..models import Sequential
from ..optimizers import SGD

# The seed of polynn's shared streams (initial weights, batch order, dropout) in every case, unless
# the kit runs under seeded(another).
SEED = 1000
_seed = [SEED]


def kit_seed() -> int:
    """The seed the cases compile their models with now."""
    return _seed[0]


@contextlib.contextmanager
def _holding(cell: list[int], value: int) -> Iterator[None]:
    """`cell[0]` set to `value` for the duration, then put back."""
    saved = cell[0]
    cell[0] = value
    try:
        yield
    finally:
        cell[0] = saved


def seeded(seed: int) -> contextlib.AbstractContextManager[None]:
    """Run the cases with `seed` for polynn's shared streams instead of SEED."""
    return _holding(_seed, seed)

# Rounding-level nudges of a case's initial weights: run k multiplies each weight by 1 + s * 2**-23,
# s in {-1, 0, 1} drawn from RandomState(k), which moves a float32 weight by one or two ulps. The
# reference's float32 runs so nudged show what another engine's rounding can do to a case that can
# fork (runner.FORKING_KINDS): docs/plugins.md, "float32".
NUDGES = 4
_nudge = [0]


def nudged(k: int) -> contextlib.AbstractContextManager[None]:
    """Run the cases with their initial weights nudged by nudge k (0: none)."""
    return _holding(_nudge, k)


def nudge_weights(model: Sequential) -> None:
    """Apply the current nudge to a compiled model's weights (nothing under nudge 0)."""
    if _nudge[0] == 0:
        return
    rng = np.random.RandomState(_nudge[0])
    model.set_weights([w * (1 + rng.randint(-1, 2, size=w.shape) * 2.0 ** -23) for w in model.get_weights()])


# One SGD step at this rate turns a weight's change into its gradient: g = (w_before - w_after) / rate.
# A power of two keeps g * rate exact, and a large one makes the update dominate the weight, so the
# rounding of w_after (to the plan's dtype) costs at most about one ulp of g, not one ulp of w.
GRADIENT_PROBE_RATE = 2.0 ** 12


def compiled_model(layers, *, backend: str, dtype: str, optimizer, loss, metrics=None, weighted_metrics=None,
                   weights=None) -> Sequential:
    model = Sequential(list(layers))
    model.compile(optimizer=optimizer, loss=loss, metrics=metrics, weighted_metrics=weighted_metrics,
                  backend=backend, dtype=dtype, seed=kit_seed())
    if weights is not None:
        model.set_weights(weights)
    nudge_weights(model)
    return model


def gradient_probe(model, x, y, sample_weight=None) -> tuple[float, list[np.ndarray]]:
    """The training loss and every weight's gradient at one step over the whole of (x, y).

    The model must be compiled with SGD(learning_rate=GRADIENT_PROBE_RATE)."""
    before = [w.astype(np.float64) for w in model.get_weights()]
    history = model.fit(x, y, batch_size=len(x), epochs=1, shuffle=False, verbose=0, sample_weight=sample_weight)
    after = [w.astype(np.float64) for w in model.get_weights()]
    return history.history["loss"][0], [(b - a) / GRADIENT_PROBE_RATE for b, a in zip(before, after)]


def identity_inputs(n: int) -> np.ndarray:
    # Row i of the identity selects kernel row i exactly: 1 * k + 0 * others, on any engine.
    return np.eye(n)


def activation_probe(activation, grid, upstream, *, backend: str, dtype: str) -> dict:
    """An activation's values at the pre-activations `grid` (samples, units), from predict(), and
    its vector-Jacobian product with the upstream gradient of sum((y - upstream)**2), from one SGD
    step: Dense(identity kernel rows) makes the kernel's change dloss/dpre-activation."""
    rows, units = grid.shape
    model = compiled_model([Dense(units, input_dim=rows, activation=activation)], backend=backend, dtype=dtype,
                           optimizer=SGD(learning_rate=GRADIENT_PROBE_RATE), loss=MeanSquaredError(reduction="sum"),
                           weights=[grid, np.zeros(units)])
    x = identity_inputs(rows)
    forward = model.predict(x, batch_size=rows, verbose=0)
    _, grads = gradient_probe(model, x, upstream)
    return {"forward": forward, "gradient": grads[0]}


def loss_probe(loss, predictions, labels, *, backend: str, dtype: str, sample_weight=None) -> dict:
    """A loss's value at exactly `predictions` (samples, units), and dloss/dpredictions, from one
    SGD step of a linear layer whose kernel rows are the predictions."""
    samples, units = predictions.shape
    model = compiled_model([Dense(units, input_dim=samples)], backend=backend, dtype=dtype,
                           optimizer=SGD(learning_rate=GRADIENT_PROBE_RATE), loss=loss,
                           weights=[predictions, np.zeros(units)])
    value, grads = gradient_probe(model, identity_inputs(samples), labels, sample_weight=sample_weight)
    return {"value": np.asarray(value), "gradient": grads[0]}


class StepLosses(Callback):
    """The training loss of every step.

    fit() logs, after each step, the running mean of the epoch's losses weighted by batch size;
    each step's loss is recovered from two consecutive means. The cancellation costs about
    1e-13 relative in float64, far below the 1e-9 checked. Overriding a batch hook also makes
    fit() run one step per backend call, so each step's value comes from the backend itself.
    """

    def __init__(self, samples: int, batch_size: int):
        super().__init__()
        full, rest = divmod(samples, batch_size)
        self.sizes = [batch_size] * full + ([rest] if rest else [])
        self.losses: list[float] = []
        self._sum, self._count = 0.0, 0

    def on_epoch_begin(self, epoch, logs=None):
        self._sum, self._count = 0.0, 0

    def on_train_batch_end(self, batch, logs=None):
        size = self.sizes[batch]
        count = self._count + size
        total = float(logs["loss"]) * count
        self.losses.append((total - self._sum) / size)
        self._sum, self._count = total, count


class WeightTrajectory(Callback):
    """Every weight, flattened and concatenated, after each training step."""

    def __init__(self):
        super().__init__()
        self.steps: list[np.ndarray] = []

    def on_train_batch_end(self, batch, logs=None):
        self.steps.append(flat(self.model.get_weights()))


def flat(arrays) -> np.ndarray:
    return np.concatenate([np.asarray(a, dtype=np.float64).ravel() for a in arrays])
