"""The training loop reads the Plan it compiled: a plugin layer subclassing Dropout under another name
gets its masks on every backend, and the blocks of steps draw the same whatever their size."""

from __future__ import annotations

import dataclasses
import importlib.util
import warnings
from typing import ClassVar

import numpy as np
import pytest

from polynn import hookimpl, metrics
from polynn import random as polynn_random
from polynn._blocks import TrainingBlocks
from polynn.layers import Dense, Dropout
from polynn.models import Sequential


@dataclasses.dataclass(frozen=True)
class NamedDropout(Dropout):
    """Dropout shipped by a plugin under its own name."""

    name: ClassVar[str] = "inline_named_dropout"


def _backends() -> list:
    params = []
    for name, engine in (("numpy", "numpy"), ("torch", "torch"), ("tensorflow", "tensorflow")):
        marks = () if importlib.util.find_spec(engine) else pytest.mark.skip(reason=f"{engine} is not installed")
        params.append(pytest.param(name, marks=marks))
    return params


def _register(plugins, backend: str) -> None:
    """Register NamedDropout alone: every backend computes it as the Dropout it subclasses."""

    class Plugin:
        @hookimpl
        def polynn_register_components(self, register):
            register(NamedDropout)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        plugins.register_plugin(Plugin(), "inline_dropout_plugin", "polynn-inline-dropout 1.0")
    assert [f for f in plugins.failures() if f.plugin == "inline_dropout_plugin"] == []


def _train(backend: str, dropout_layer, steps_per_execution="auto"):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(40, 5))
    y = rng.normal(size=(40, 2))
    model = Sequential([Dense(12, activation="tanh", input_dim=5), dropout_layer, Dense(2)])
    model.compile(optimizer="adam", loss="mse", backend=backend, dtype="float64", seed=5,
                  steps_per_execution=steps_per_execution)
    history = model.fit(x, y, batch_size=8, epochs=3, verbose=0, validation_split=0.25)
    return history.history, model.get_weights(), model.predict(x, verbose=0)


@pytest.mark.parametrize("backend", _backends())
def test_a_dropout_subclass_under_another_name_trains_exactly_as_dropout(fresh_plugins, backend):
    _register(fresh_plugins, backend)
    for layer_seed in (None, 11):
        for noise_shape in (None, (None, 1)):
            spec = dict(rate=0.4, noise_shape=noise_shape, seed=layer_seed)
            ref_history, ref_weights, ref_outputs = _train(backend, Dropout(**spec))
            history, weights, outputs = _train(backend, NamedDropout(**spec))
            assert history == ref_history
            for got, expected in zip(weights, ref_weights):
                np.testing.assert_array_equal(got, expected)
            np.testing.assert_array_equal(outputs, ref_outputs)
    # The masks really apply: without them the layer is the identity, as Dropout(0) is.
    identity_history, _, _ = _train(backend, Dropout(0.0))
    assert history["loss"] != identity_history["loss"]


def test_the_block_size_changes_nothing_drawn(fresh_plugins):
    _register(fresh_plugins, "numpy")
    model = Sequential([Dense(6, input_dim=3), NamedDropout(0.3), Dense(4), Dropout(0.2, noise_shape=(None, 1)),
                        Dense(1)])
    model.compile(optimizer="adam", loss="mse", backend="numpy", seed=9)  # the input shape is known: compiled now
    plan = model._compiled.plan
    assert plan.dropout_layers == (1, 3)

    def drawn(steps_per_call: int):
        blocks = TrainingBlocks(plan, 9, 23, 4, steps_per_call)
        rows, masks, scalars = [], [[], []], {}
        for epoch in (0, 1):
            step = epoch * 6
            for block in blocks.epoch(epoch, shuffle=True):
                block_masks, block_scalars = blocks.inputs(block, step, None)
                rows.extend(block.tolist())
                for k, mask in enumerate(block_masks):
                    masks[k].extend(mask)
                for name, values in block_scalars.items():
                    scalars.setdefault(name, []).extend(values)
                step += len(block)
        return rows, masks, scalars

    rows, masks, scalars = drawn(1)
    for steps_per_call in (2, 5, 100):
        other_rows, other_masks, other_scalars = drawn(steps_per_call)
        assert other_rows == rows
        for got, expected in zip(other_masks, masks):
            np.testing.assert_array_equal(np.concatenate(got), np.concatenate(expected))
        assert other_scalars.keys() == scalars.keys()
        for name in scalars:
            np.testing.assert_array_equal(other_scalars[name], scalars[name])
    # Each mask is the shared stream's for its step and layer: the seed's, or the layer's own.
    assert sum(rows[:6], []) == polynn_random.batch_order(9, 0, 23).tolist()
    np.testing.assert_array_equal(masks[0][0], polynn_random.dropout_mask(9, 0, 1, (4, 6), 0.3, "float32"))
    np.testing.assert_array_equal(masks[1][7], polynn_random.dropout_mask(9, 7, 3, (4, 1), 0.2, "float32"))


def test_the_kept_plan_follows_the_metrics_the_labels_resolve():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(12, 4))
    labels = rng.integers(0, 3, size=12)
    model = Sequential([Dense(3, activation="softmax", input_dim=4)])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                  weighted_metrics=["accuracy"], backend="numpy", seed=1)
    # Compiled before any labels are seen, 'accuracy' is resolved from the output shape alone.
    assert model._compiled.plan.metrics == (metrics.CategoricalAccuracy(),) * 2
    logs = model.evaluate(x, labels, verbose=0, return_dict=True)
    assert model._compiled.plan.metrics == (metrics.SparseCategoricalAccuracy(),) * 2
    assert model._compiled.plan.metric_weighted == (False, True)
    assert logs["accuracy"] == np.mean(np.argmax(model.predict(x, verbose=0), axis=-1) == labels)


def test_the_plan_lists_each_layer_s_weights_and_each_component_once():
    model = Sequential([Dense(3, input_dim=4, use_bias=False), Dropout(0.5), Dense(2, activation="relu"),
                        Dense(2, activation="relu")])
    model.compile(optimizer="sgd", loss="mse", metrics=["mae", "mae"], backend="numpy", seed=1)
    plan = model._compiled.plan
    assert plan.layer_weights() == [[0], [], [1, 2], [3, 4]]
    assert [plan.weights[k][0] for ks in plan.layer_weights() for k in ks] == [0, 2, 2, 3, 3]
    components = plan.components()
    # Equal specs count once (the two relu Dense layers differ in nothing: one entry, its relu one too).
    assert len(components) == len({id(c) for c in components})
    assert sum(c == model.layers[2].spec for c in components) == 1
    assert sum(getattr(c, "name", None) == "relu" for c in components) == 1
