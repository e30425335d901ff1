"""Per-component cases, generated from the registry: every layer, activation, loss, metric, optimizer,
learning-rate schedule, initializer, regularizer and constraint registered (polynn's own and any
plugin's), in each configuration options.py gives it.

Each case reaches its component through the public model API only, so it runs on any backend:
- activation: Dense(identity kernel rows) -> activation; forward values from predict(), and the
  vector-Jacobian product from one SGD step (the kernel's change is dloss/dpre-activation);
- loss: a linear layer whose outputs are exactly the chosen predictions; the loss value and
  dloss/dpredictions from one SGD step, with sample weights where the configuration says;
- metric: the metric's result from evaluate() over several batches, and from one training epoch;
  with sample weights, both as an unweighted metric and as a weighted one (compile's metrics and
  weighted_metrics);
- optimizer: the weights after each of 8 steps on a least-squares problem;
- initializer: the initial kernel drawn from the shared stream, exactly, and its statistics;
- schedule: the weights after each of 8 SGD steps at the schedule's rates, on the same problem;
- layer, regularizer, constraint: short training runs of a tiny model using them (trajectories.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from .. import _custom, _registry
from ..layers import Dense
from ..losses import MeanSquaredError, SparseCategoricalCrossentropy
from ..optimizers import SGD
from . import inputs, options, tolerances, trajectories
from ._case import Case, Scenario
from ._compare import Tolerance
from ._harness import WeightTrajectory, activation_probe, compiled_model, flat, identity_inputs, loss_probe

KINDS = ("activation", "loss", "metric", "optimizer", "initializer", "layer", "regularizer", "constraint", "schedule")


def _instance(cls: type[Any], config: options.Config) -> Any:
    """The spec instance, or the error its construction raised (reported by the case)."""
    try:
        return cls(**dict(config.kwargs))
    except Exception as error:  # a configuration the spec refuses is reported, not dropped
        return error


def _built(spec: Any) -> Any:
    if isinstance(spec, Exception):
        raise spec
    return spec


# ---- activations and losses -------------------------------------------------------------


def _activation_scenario(spec: Any) -> Scenario:
    def run(backend: str, dtype: str) -> dict[str, Any]:
        grid = inputs.activation_grid()
        return activation_probe(_built(spec), grid, inputs.activation_upstream(grid.shape), backend=backend,
                                dtype=dtype)

    return run


def _loss_scenario(spec: Any, config: options.Config) -> Scenario:
    def run(backend: str, dtype: str) -> dict[str, Any]:
        loss = _built(spec)
        p, y = inputs.predictions_and_labels(loss)
        w = inputs.sample_weights(len(p)) if config.sample_weight else None
        return loss_probe(loss, p, y, backend=backend, dtype=dtype, sample_weight=w)

    return run


# ---- metrics ---------------------------------------------------------------------------


def _metric_scenario(spec: Any, config: options.Config) -> Scenario:
    def run(backend: str, dtype: str) -> dict[str, Any]:
        metric = _built(spec)
        p, y = inputs.predictions_and_labels(metric)
        samples, units = p.shape
        # The harness loss must accept the metric's labels; its value is not checked here.
        loss = SparseCategoricalCrossentropy() if inputs.domain(metric) == "sparse" else MeanSquaredError()
        # With sample weights the metric runs twice, as Keras names them: unweighted under
        # `metrics` (its log name) and weighted under `weighted_metrics` ("weighted_" + that name).
        model = compiled_model([Dense(units, input_dim=samples)], backend=backend, dtype=dtype,
                               optimizer=SGD(learning_rate=0.0), loss=loss, metrics=[metric],
                               weighted_metrics=[metric] if config.sample_weight else None,
                               weights=[p, np.zeros(units)])
        x = identity_inputs(samples)
        w = inputs.sample_weights(samples) if config.sample_weight else None
        # Batches of 5 leave a short last batch: increments must add up across batches.
        logs = model.evaluate(x, y, batch_size=5, sample_weight=w, verbose=0, return_dict=True)
        history = model.fit(x, y, batch_size=5, epochs=1, shuffle=False, sample_weight=w, verbose=0)
        # The metric's log name (its spec name, or a registered function's name) is the one beside 'loss'.
        key = next(k for k in logs if k != "loss")
        result = {"evaluate": np.asarray(logs[key]), "train": np.asarray(history.history[key][0])}
        if config.sample_weight:
            weighted = f"weighted_{key}"
            result.update({"weighted_evaluate": np.asarray(logs[weighted]),
                           "weighted_train": np.asarray(history.history[weighted][0])})
        return result

    return run


# ---- optimizers ------------------------------------------------------------------------

OPTIMIZER_STEPS = 8


def _optimizer_trajectory(optimizer: Any, backend: str, dtype: str) -> dict[str, Any]:
    x, y, kernel, bias = inputs.optimizer_problem()
    units = y.shape[1]
    model = compiled_model([Dense(units, input_dim=x.shape[1])], backend=backend, dtype=dtype,
                           optimizer=optimizer, loss="mse", weights=[kernel, bias])
    start = flat(model.get_weights())
    trajectory = WeightTrajectory()
    model.fit(x, y, batch_size=len(x) // OPTIMIZER_STEPS, epochs=1, shuffle=False, verbose=0,
              callbacks=[trajectory])
    # Displacements from the start, so the checked size is the update's, not the weight's.
    return {"trajectory": np.stack(trajectory.steps) - start}


def _optimizer_scenario(spec: Any) -> Scenario:
    def run(backend: str, dtype: str) -> dict[str, Any]:
        return _optimizer_trajectory(_built(spec), backend, dtype)

    return run


def _schedule_scenario(spec: Any) -> Scenario:
    """The schedule as SGD's learning rate, on the optimizer cases' problem."""

    def run(backend: str, dtype: str) -> dict[str, Any]:
        return _optimizer_trajectory(SGD(learning_rate=_built(spec)), backend, dtype)

    return run


# ---- initializers ----------------------------------------------------------------------

INITIALIZER_SHAPE = (64, 48)


def _initializer_scenario(spec: Any) -> Scenario:
    def run(backend: str, dtype: str) -> dict[str, Any]:
        initializer = _built(spec)
        fan_in, units = INITIALIZER_SHAPE
        model = compiled_model([Dense(units, input_dim=fan_in, use_bias=False, kernel_initializer=initializer)],
                               backend=backend, dtype=dtype, optimizer=SGD(), loss="mse")
        kernel = model.get_weights()[0].astype(np.float64)
        stats = np.array([kernel.mean(), kernel.std(), kernel.min(), kernel.max()])
        return {"values": kernel, "statistics": stats}

    return run


# ---- generation ------------------------------------------------------------------------

_OBSERVATIONS = {
    "activation": ("forward", "gradient"),
    "loss": ("value", "gradient"),
    "metric": ("evaluate", "train"),
    "optimizer": ("trajectory",),
    "initializer": ("values", "statistics"),
    "schedule": ("trajectory",),
    **trajectories.OBSERVATIONS,
}


def _scenario(kind: str, spec: Any, config: options.Config) -> Scenario:
    if kind == "activation":
        return _activation_scenario(spec)
    if kind == "loss":
        return _loss_scenario(spec, config)
    if kind == "metric":
        return _metric_scenario(spec, config)
    if kind == "optimizer":
        return _optimizer_scenario(spec)
    if kind == "initializer":
        return _initializer_scenario(spec)
    if kind == "schedule":
        return _schedule_scenario(spec)
    return trajectories.SCENARIOS[kind](lambda: _built(spec))


def _registered_functions(kind: str) -> list[tuple[type[Any], str]]:
    """(custom spec class, function name) for each user function polynn.register holds for `kind`;
    they run through the kind's custom_* spec, which the registry does not enumerate."""
    names = sorted(_custom._FUNCTIONS.get(kind, {}))
    if not names:
        return []
    cls = _registry.lookup(kind, f"custom_{kind}")
    return [(cls, name) for name in names]


def _configured(kind: str) -> list[tuple[type[Any], options.Config]]:
    """(spec class, configuration) pairs: every enumerable spec, then every registered function."""
    pairs = [(cls, config) for cls in _registry.specs(kind) for config in options.configs(kind, cls)]
    for cls, function in _registered_functions(kind):
        pairs.extend((cls, options.Config((("function", function), *config.kwargs), config.sample_weight))
                     for config in options.configs(kind, cls))
    return pairs


def cases(kinds: Iterable[str] = KINDS) -> list[Case]:
    found = []
    for kind in kinds:
        for cls, config in _configured(kind):
            observations = _OBSERVATIONS[kind]
            if kind == "metric" and config.sample_weight:
                observations = (*observations, *(f"weighted_{name}" for name in observations))

            def tol(dtype: str, kind: str = kind, observations: tuple[str, ...] = observations,
                    ) -> dict[str, Tolerance]:
                return tolerances.component(dtype, kind, observations)

            spec = _instance(cls, config)
            components = () if isinstance(spec, Exception) else (spec,)
            found.append(Case(f"{kind}.{cls.name}{config.label()}", kind, _scenario(kind, spec, config), tol,
                              components))
    return found
