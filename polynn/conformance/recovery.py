"""Going back, as a conformance case: fit interrupted inside a block of steps returns to its last
completed step, and a non-finite loss stops it at its last finite step, on the backend as on the
reference. This is the path of Runtime.snapshot()/restore() and of replayed blocks, which needs a
backend's train_steps to be a function of the state and its arguments.

- recovery.interrupted_block: a block fails after one of its two steps; fit goes back to a snapshot;
- recovery.interrupted_block_replayed: the same, going back to fit's first snapshot and replaying
  every block run since;
- recovery.nonfinite_loss: the fourth batch's loss overflows (a huge label); fit keeps the three
  steps before it, run again from the block's start.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np

from .. import _rewind
from ..errors import PluginError
from ..layers import Dense, Dropout
from ..losses import BinaryCrossentropy, MeanSquaredError
from ..models import Sequential
from ..optimizers import Adam
from . import tolerances
from ._case import Case, Scenario
from ._compare import Tolerance
from ._harness import flat, kit_seed

SAMPLES, FEATURES, BATCH_SIZE = 60, 5, 10  # 6 steps an epoch


class _InjectedError(Exception):
    """The failure the interrupted cases inject into a block of steps."""


def _data() -> tuple[np.ndarray, np.ndarray]:
    x = np.random.RandomState(61).normal(size=(SAMPLES, FEATURES))
    y = (x @ np.random.RandomState(67).normal(size=(FEATURES, 1)) > 0).astype(np.float64)
    return x, y


def _model(backend: str, dtype: str) -> Sequential:
    model = Sequential([Dense(8, input_dim=FEATURES, activation="tanh"), Dropout(0.25),
                        Dense(1, activation="sigmoid")])
    model.compile(Adam(learning_rate=0.05), BinaryCrossentropy(), backend=backend, dtype=dtype, seed=kit_seed(),
                  steps_per_execution=2)
    return model


def _fail_second_block(model: Sequential) -> None:
    """The next fit's second block runs one of its steps (the weights move in place), then fails."""
    runtime: Any = model._compiled.runtime  # type: ignore[union-attr]  # compiled and built by a first fit
    real = runtime.train_steps
    calls = [0]

    def train_steps(data: Any, batches: np.ndarray, masks: list[np.ndarray],
                    scalars: dict[str, np.ndarray]) -> Any:
        calls[0] += 1
        if calls[0] != 2:
            return real(data, batches, masks, scalars)
        runtime.train_steps = real
        real(data, batches[:1], [m[:1] for m in masks], {name: v[:1] for name, v in scalars.items()})
        raise _InjectedError

    runtime.train_steps = train_steps


@contextlib.contextmanager
def _snapshots_only_at_the_start() -> Iterator[None]:
    saved = _rewind.RATIO
    _rewind.RATIO = float("inf")
    try:
        yield
    finally:
        _rewind.RATIO = saved


def _interrupted(replayed: bool) -> Scenario:
    def run(backend: str, dtype: str) -> dict[str, Any]:
        x, y = _data()
        model = _model(backend, dtype)
        model.fit(x, y, batch_size=BATCH_SIZE, epochs=1, verbose=0)
        _fail_second_block(model)
        with _snapshots_only_at_the_start() if replayed else contextlib.nullcontext():
            try:
                model.fit(x, y, batch_size=BATCH_SIZE, epochs=2, initial_epoch=1, verbose=0)
            except PluginError as error:  # fit names the backend whose train_steps raised, chaining the error
                if not isinstance(error.__cause__, _InjectedError):
                    raise
        observed = {"iterations": np.array([float(model.iterations)]), "weights_after": flat(model.get_weights())}
        model.fit(x, y, batch_size=BATCH_SIZE, epochs=3, initial_epoch=2, verbose=0)
        observed["final_weights"] = flat(model.get_weights())
        observed["predictions"] = model.predict(x, verbose=0)
        return observed

    return run


def _nonfinite(backend: str, dtype: str) -> dict[str, Any]:
    x, _ = _data()
    y = np.tanh(x @ np.random.RandomState(71).normal(size=(FEATURES, 1)))
    # A label whose squared error overflows the dtype: the fourth batch's loss is inf, on any engine.
    y[35] = 10 * np.sqrt(np.finfo(dtype).max)
    model = Sequential([Dense(8, input_dim=FEATURES, activation="tanh"), Dense(1)])
    # One block for the epoch: the three steps before the bad one are replayed from its start.
    model.compile(Adam(learning_rate=0.05), MeanSquaredError(), backend=backend, dtype=dtype, seed=kit_seed())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the stop's RuntimeWarning, and the engine's overflow warnings
        model.fit(x, y, batch_size=BATCH_SIZE, epochs=2, shuffle=False, verbose=0)
    return {"iterations": np.array([float(model.iterations)]), "final_weights": flat(model.get_weights()),
            "predictions": model.predict(x, verbose=0)}


def _tolerances(dtype: str) -> dict[str, Tolerance]:
    # Six to twelve Adam steps of the scenarios' kind: their tolerances, and the step count exact.
    scenario = tolerances.scenario(dtype)
    return {"iterations": Tolerance(rtol=0.0, atol=0.0), "weights_after": scenario["final_weights"],
            "final_weights": scenario["final_weights"], "predictions": scenario["predictions"]}


def cases() -> list[Case]:
    return [
        Case("recovery.interrupted_block", "recovery", _interrupted(False), _tolerances),
        Case("recovery.interrupted_block_replayed", "recovery", _interrupted(True), _tolerances),
        Case("recovery.nonfinite_loss", "recovery", _nonfinite, _tolerances),
    ]
