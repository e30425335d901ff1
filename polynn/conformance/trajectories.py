"""Scenarios of the component kinds that act during training: layers, regularizers, constraints and
learning-rate schedules, each observed over a short training run (8 SGD steps) on a tiny model.

- layer: Dense -> layer -> Dense (a layer declaring its input shape, as Input or Dense(input_shape=...),
  comes first instead), on rank-2 or the layer's declared inputs; a layer options.LAYER_INPUT_SHAPES
  names takes inputs of that shape, and one LAYER_INTEGER_INPUTS names takes integers, first;
  the loss of every step, the weights after every step and the predictions after training;
- regularizer: as kernel and bias regularizer of a hidden Dense and activity regularizer of the
  output Dense; step losses (penalties included), weights, and evaluate()'s loss;
- constraint: as kernel constraint of both Dense layers and bias constraint of the first (when its
  axis suits a vector); step losses and weights;
- schedule: the learning rate of SGD on the optimizer cases' least-squares problem; weights.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, cast

import numpy as np

from ..layers import Dense, Input, Layer
from ..models import Sequential
from ..optimizers import SGD
from . import options
from ._case import Scenario
from ._harness import StepLosses, WeightTrajectory, compiled_model, flat

HIDDEN = 5
OUTPUT = 3
SAMPLES = 24
BATCH_SIZE = 6
EPOCHS = 2  # 8 steps
LEARNING_RATE = 0.1


def _data(input_shape: tuple, seed: int = 23) -> np.ndarray:
    return np.random.RandomState(seed).normal(size=(SAMPLES, *input_shape))


def _train(model: Sequential, x: np.ndarray, *, seed: int = 29) -> dict[str, Any]:
    """Targets drawn for the model's output shape, then EPOCHS epochs of SGD in order."""
    y = np.random.RandomState(seed).normal(size=(SAMPLES, *cast(tuple, model.output_shape)))  # a built model
    start = flat(model.get_weights())
    steps, trajectory = StepLosses(SAMPLES, BATCH_SIZE), WeightTrajectory()
    model.fit(x, y, batch_size=BATCH_SIZE, epochs=EPOCHS, shuffle=False, verbose=0, callbacks=[steps, trajectory])
    return {
        "step_loss": np.asarray(steps.losses),
        # Displacements from the start, so the checked size is the updates', not the weights'.
        "trajectory": np.stack(trajectory.steps) - start,
        "predictions": model.predict(x, batch_size=SAMPLES, verbose=0),
        "evaluate_loss": np.asarray(model.evaluate(x, y, batch_size=BATCH_SIZE, verbose=0)),
    }


def _integers(input_shape: tuple, count: int, seed: int = 23) -> np.ndarray:
    return np.random.RandomState(seed).randint(count, size=(SAMPLES, *input_shape)).astype(np.float64)


def _train_by_sgd(layers: Sequence[Layer], shape: tuple, backend: str, dtype: str,
                  x: np.ndarray | None = None) -> dict[str, Any]:
    """The layers compiled with SGD on mean squared error, then trained as `_train` (on `x`, by
    default normal samples of `shape`)."""
    model = compiled_model(layers, backend=backend, dtype=dtype, optimizer=SGD(learning_rate=LEARNING_RATE),
                           loss="mse")
    return _train(model, _data(shape) if x is None else x)


def _two_dense(backend: str, dtype: str, first: dict[str, Any], second: dict[str, Any]) -> dict[str, Any]:
    """Dense(HIDDEN, tanh) with the options `first`, then Dense(OUTPUT) with `second`, trained by SGD."""
    shape = options.LAYER_INPUT_SHAPE
    layers = [Dense(HIDDEN, input_shape=shape, activation="tanh", **first), Dense(OUTPUT, **second)]
    return _train_by_sgd(layers, shape, backend, dtype)


def layer_scenario(built: Callable[[], Any]) -> Scenario:
    def run(backend: str, dtype: str) -> dict[str, Any]:
        layer = built()
        declared = getattr(layer, "declared_input_shape", None)
        shape = options.layer_input_shape(layer)
        integers = options.layer_integer_inputs(layer)
        if integers is not None:
            # Integer inputs go to the layer first: nothing before it could make integers.
            shape = tuple(declared) if declared is not None else shape or options.LAYER_INPUT_SHAPE
            layers = [layer] if declared is not None else [Input(shape), layer]
            return _train_by_sgd([*layers, Dense(OUTPUT)], shape, backend, dtype, _integers(shape, integers))
        if declared is not None:
            layers, shape = [layer, Dense(HIDDEN, activation="tanh"), Dense(OUTPUT)], tuple(declared)
        elif shape is not None:
            # A Dense on the last axis before the layer keeps its input's shape and makes the
            # trajectory depend on the layer's input gradient too.
            layers = [Dense(shape[-1], input_shape=shape, activation="tanh"), layer, Dense(OUTPUT)]
        else:
            shape = options.LAYER_INPUT_SHAPE
            layers = [Dense(HIDDEN, input_shape=shape, activation="tanh"), layer, Dense(OUTPUT)]
        return _train_by_sgd(layers, shape, backend, dtype)

    return run


def regularizer_scenario(built: Callable[[], Any]) -> Scenario:
    def run(backend: str, dtype: str) -> dict[str, Any]:
        regularizer = built()
        return _two_dense(backend, dtype, {"kernel_regularizer": regularizer, "bias_regularizer": regularizer},
                          {"activity_regularizer": regularizer})

    return run


def _suits_vectors(constraint: Any) -> bool:
    """Whether the constraint applies to a bias (rank 1): no axis, or only axis 0 / -1."""
    axis = getattr(constraint, "axis", 0)
    return all(a in (0, -1) for a in (axis if isinstance(axis, tuple) else (axis,)))


def constraint_scenario(built: Callable[[], Any]) -> Scenario:
    def run(backend: str, dtype: str) -> dict[str, Any]:
        constraint = built()
        bias = constraint if _suits_vectors(constraint) else None
        return _two_dense(backend, dtype, {"kernel_constraint": constraint, "bias_constraint": bias},
                          {"kernel_constraint": constraint})

    return run


OBSERVATIONS = {
    "layer": ("step_loss", "trajectory", "predictions", "evaluate_loss"),
    "regularizer": ("step_loss", "trajectory", "predictions", "evaluate_loss"),
    "constraint": ("step_loss", "trajectory", "predictions", "evaluate_loss"),
}

SCENARIOS = {"layer": layer_scenario, "regularizer": regularizer_scenario, "constraint": constraint_scenario}
