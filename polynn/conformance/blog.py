"""The blog's training example as a conformance case, without and with Dropout between the Dense layers."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..layers import Dense, Dropout, Layer
from . import tolerances
from ._case import Case, Scenario
from ._compare import Tolerance
from ._harness import StepLosses, compiled_model, flat

EPOCHS = 2
BATCH_SIZE = 32  # fit()'s default, as the blog leaves it
DROPOUT_RATE = 0.2
HISTORY_KEYS = ("loss", "accuracy", "val_loss", "val_accuracy")


def blog_data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The blog's data: np.random.seed(1000), then training, validation and test sets in that order.

    A RandomState seeded with 1000 draws the same numbers as the global np.random after
    np.random.seed(1000), without touching the caller's global state."""
    rng = np.random.RandomState(1000)
    x_train = rng.random_sample((10000, 10))
    y_train = rng.randint(2, size=(10000, 1))
    x_val = rng.random_sample((2500, 10))
    y_val = rng.randint(2, size=(2500, 1))
    x_test = rng.random_sample((2500, 10))
    y_test = rng.randint(2, size=(2500, 1))
    return x_train, y_train, x_val, y_val, x_test, y_test


def blog_layers(dropout: bool) -> list[Layer]:
    units = (64, 32, 16, 8, 4)
    layers: list[Layer] = []
    for i, n in enumerate(units):
        layers.append(Dense(n, input_dim=10, activation="relu") if i == 0 else Dense(n, activation="relu"))
        if dropout:
            layers.append(Dropout(DROPOUT_RATE))
    layers.append(Dense(1, activation="sigmoid"))
    return layers


def _scenario(dropout: bool) -> Scenario:
    def run(backend: str, dtype: str) -> dict[str, Any]:
        x_train, y_train, x_val, y_val, x_test, _ = blog_data()
        model = compiled_model(blog_layers(dropout), backend=backend, dtype=dtype, optimizer="Adam",
                               loss="binary_crossentropy", metrics=["accuracy"])
        steps = StepLosses(len(x_train), BATCH_SIZE)
        history = model.fit(x_train, y_train, epochs=EPOCHS, validation_data=(x_val, y_val), verbose=0,
                            callbacks=[steps])
        observed = {"step_loss": np.asarray(steps.losses)}
        for key in HISTORY_KEYS:
            observed[f"history.{key}"] = np.asarray(history.history.get(key, []), dtype=np.float64)
        observed["final_weights"] = flat(model.get_weights())
        observed["test_predictions"] = model.predict(x_test, verbose=0)
        return observed

    return run


def cases() -> list[Case]:
    def tol(dtype: str) -> dict[str, Tolerance]:
        return tolerances.blog(dtype, HISTORY_KEYS)

    return [
        Case("blog", "blog", _scenario(False), tol, plotted=("step_loss",)),
        Case("blog_dropout", "blog", _scenario(True), tol, plotted=("step_loss",)),
    ]
