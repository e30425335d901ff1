"""Whole-model scenarios combining components, checked step for step: the loss of every training step
and the final weights, as the blog case, on models small enough to run in a second.

- softmax_rmsprop: softmax + categorical_crossentropy + RMSprop(momentum, centered);
- mse_nesterov_l2_maxnorm: MSE + SGD(nesterov) + L2 kernel regularizers + MaxNorm kernel constraints;
- sparse_logits_adamw_decay: sparse_categorical_crossentropy from logits + AdamW + ExponentialDecay.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..constraints import MaxNorm
from ..layers import Dense, Layer
from ..losses import CategoricalCrossentropy, Loss, MeanSquaredError, SparseCategoricalCrossentropy
from ..optimizers import SGD, AdamW, Optimizer, RMSprop
from ..regularizers import L2
from ..schedules import ExponentialDecay
from . import tolerances
from ._case import Case, Scenario
from ._harness import StepLosses, compiled_model, flat

SAMPLES = 96
FEATURES = 6
CLASSES = 4
BATCH_SIZE = 16
EPOCHS = 3  # 18 steps

# What a scenario builds: its layers, loss, optimizer and data (x, y).
Built = tuple[Sequence[Layer], Loss, Optimizer, np.ndarray, np.ndarray]


def _features(seed: int) -> np.ndarray:
    return np.random.RandomState(seed).normal(size=(SAMPLES, FEATURES))


def _classes(x: np.ndarray) -> np.ndarray:
    # Labels a linear rule of the features mostly decides, so the loss falls over the steps.
    scores = x @ np.random.RandomState(31).normal(size=(FEATURES, CLASSES))
    return np.argmax(scores + 0.5 * np.random.RandomState(37).normal(size=scores.shape), axis=-1)


def _softmax_rmsprop() -> Built:
    x = _features(41)
    y = np.eye(CLASSES)[_classes(x)]
    layers = [Dense(8, input_dim=FEATURES, activation="tanh"), Dense(CLASSES, activation="softmax")]
    return layers, CategoricalCrossentropy(), RMSprop(learning_rate=0.01, momentum=0.9, centered=True), x, y


def _mse_nesterov_l2_maxnorm() -> Built:
    x = _features(43)
    y = np.tanh(x @ np.random.RandomState(47).normal(size=(FEATURES, 2)))
    # MaxNorm(0.8) is below the kernels' column norms within a few steps, so it projects.
    dense: dict[str, Any] = {"kernel_regularizer": L2(l2=0.01), "kernel_constraint": MaxNorm(max_value=0.8)}
    layers = [Dense(8, input_dim=FEATURES, activation="tanh", **dense), Dense(2, **dense)]
    return layers, MeanSquaredError(), SGD(learning_rate=0.05, momentum=0.9, nesterov=True), x, y


def _sparse_logits_adamw_decay() -> Built:
    x = _features(53)
    y = _classes(x).astype(np.float64)
    layers = [Dense(8, input_dim=FEATURES, activation="tanh"), Dense(CLASSES)]
    schedule = ExponentialDecay(initial_learning_rate=0.02, decay_steps=6, decay_rate=0.5)
    return (layers, SparseCategoricalCrossentropy(from_logits=True), AdamW(learning_rate=schedule, weight_decay=0.05),
            x, y)


SCENARIOS = {
    "softmax_rmsprop": _softmax_rmsprop,
    "mse_nesterov_l2_maxnorm": _mse_nesterov_l2_maxnorm,
    "sparse_logits_adamw_decay": _sparse_logits_adamw_decay,
}


def _scenario(build: Callable[[], Built]) -> Scenario:
    def run(backend: str, dtype: str) -> dict[str, Any]:
        layers, loss, optimizer, x, y = build()
        model = compiled_model(layers, backend=backend, dtype=dtype, optimizer=optimizer, loss=loss)
        steps = StepLosses(SAMPLES, BATCH_SIZE)
        model.fit(x, y, batch_size=BATCH_SIZE, epochs=EPOCHS, shuffle=True, verbose=0, callbacks=[steps])
        return {"step_loss": np.asarray(steps.losses), "final_weights": flat(model.get_weights()),
                "predictions": model.predict(x, verbose=0)}

    return run


def _components(build: Callable[[], Built]) -> tuple[Loss, Optimizer]:
    _, loss, optimizer, _, _ = build()
    return (loss, optimizer)


def cases() -> list[Case]:
    return [Case(f"scenario.{name}", "scenario", _scenario(build), tolerances.scenario, _components(build),
                 plotted=("step_loss",))
            for name, build in SCENARIOS.items()]
