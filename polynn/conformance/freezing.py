"""Frozen layers, as conformance cases: a layer with trainable=False keeps its weights and their
optimizer slots through fit, bit for bit, and the others train as on the reference (Keras 3: no
weight penalty or constraint for frozen weights, gradient clipping over the trainable ones only).

- freezing.frozen_layer: the first layer frozen from the start (Dense(..., trainable=False)), with
  a weight penalty, a constraint its initial kernel breaks, AdamW's weight decay and global_clipnorm
  that would all move it or change the others' steps if a runtime let them act;
- freezing.changed_after_compile: model.layers[i].trainable set between fits (no compile again):
  the first layer frozen after a fit, then unfrozen while the last is frozen; weights and optimizer
  slots carry over.

A runtime that does not set Runtime.supports_frozen_weights is refused by the core (reported
unsupported): freezing is never left silently undone.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..layers import Dense
from ..losses import MeanSquaredError
from ..models import Sequential
from ..optimizers import AdamW
from ..regularizers import L2
from . import tolerances
from ._case import Case
from ._compare import Tolerance
from ._harness import SEED, flat

SAMPLES, FEATURES, BATCH_SIZE = 60, 5, 10  # 6 steps an epoch
EXACT = Tolerance(rtol=0.0, atol=0.0)


def _data() -> tuple[np.ndarray, np.ndarray]:
    x = np.random.RandomState(73).normal(size=(SAMPLES, FEATURES))
    y = np.tanh(x @ np.random.RandomState(79).normal(size=(FEATURES, 1)))
    return x, y


def _model(backend: str, dtype: str, first_trainable: bool) -> Sequential:
    model = Sequential([
        Dense(8, input_dim=FEATURES, activation="tanh", kernel_regularizer=L2(0.05), kernel_constraint="non_neg",
              activity_regularizer=L2(0.01), trainable=first_trainable),
        Dense(6, activation="relu", kernel_regularizer=L2(0.05)),
        Dense(1),
    ])
    model.compile(AdamW(learning_rate=0.05, weight_decay=0.1, global_clipnorm=0.5), MeanSquaredError(),
                  backend=backend, dtype=dtype, seed=SEED)
    return model


def _state(model: Sequential, layers: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """The weights of `layers` and their optimizer slots, flattened (slots through the runtime:
    the public API has none)."""
    owners = [index for index, layer in enumerate(model.layers) for _ in layer.get_weights()]
    weights = [w for w, owner in zip(model.get_weights(), owners) if owner in layers]
    runtime: Any = model._compiled.runtime  # type: ignore[union-attr]  # compiled and fitted
    slots = [s for per_weight, owner in zip(runtime.get_optimizer_state(), owners) if owner in layers
             for s in per_weight]
    return flat(weights), flat(slots)


def _frozen_layer(backend: str, dtype: str) -> dict[str, Any]:
    x, y = _data()
    model = _model(backend, dtype, first_trainable=False)
    history = model.fit(x, y, batch_size=BATCH_SIZE, epochs=2, shuffle=False, verbose=0)
    frozen, frozen_slots = _state(model, [0])
    trained, _ = _state(model, [1, 2])
    return {"frozen_weights": frozen, "frozen_slots": frozen_slots, "final_weights": trained,
            "epoch_loss": np.array(history.history["loss"]), "predictions": model.predict(x, verbose=0)}


def _changed_after_compile(backend: str, dtype: str) -> dict[str, Any]:
    x, y = _data()
    model = _model(backend, dtype, first_trainable=True)
    model.fit(x, y, batch_size=BATCH_SIZE, epochs=1, shuffle=False, verbose=0)
    model.layers[0].trainable = False
    before = _state(model, [0])
    model.fit(x, y, batch_size=BATCH_SIZE, epochs=1, shuffle=False, verbose=0)
    after = _state(model, [0])
    observed = {"frozen_weights": after[0] - before[0], "frozen_slots": after[1] - before[1],
                "weights_after": flat(model.get_weights())}
    model.layers[0].trainable = True
    model.layers[2].trainable = False
    before = _state(model, [2])
    model.fit(x, y, batch_size=BATCH_SIZE, epochs=1, shuffle=False, verbose=0)
    after = _state(model, [2])
    observed.update({"refrozen_weights": after[0] - before[0], "refrozen_slots": after[1] - before[1],
                     "final_weights": flat(model.get_weights()), "predictions": model.predict(x, verbose=0)})
    return observed


def _tolerances(dtype: str) -> dict[str, Tolerance]:
    # Frozen weights and slots are the reference's to the bit (their change is exactly 0); the rest
    # is a dozen AdamW steps, held as the scenarios' final weights are.
    scenario = tolerances.scenario(dtype)
    loose = {"final_weights": scenario["final_weights"], "weights_after": scenario["final_weights"],
             "predictions": scenario["predictions"], "epoch_loss": scenario["step_loss"]}
    exact = ("frozen_weights", "frozen_slots", "refrozen_weights", "refrozen_slots")
    return {**loose, **{name: EXACT for name in exact}}


def cases() -> list[Case]:
    return [
        Case("freezing.frozen_layer", "freezing", _frozen_layer, _tolerances),
        Case("freezing.changed_after_compile", "freezing", _changed_after_compile, _tolerances),
    ]
