"""The spec: immutable, validated components that round-trip through JSON, Keras defaults, and the
Sequential model's structure (shapes, weights, summary) without training."""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys

import numpy as np
import pytest

import polynn
from polynn import (
    _registry,
    activations,
    constraints,
    initializers,
    layers,
    losses,
    metrics,
    optimizers,
    regularizers,
    schedules,
)
from polynn.layers import Activation, Dense, Dropout, Input
from polynn.models import Sequential

# Specs whose defaults cannot stand alone, with the arguments that make them valid.
REQUIRED_ARGS = {("layer", "input"): {"shape": (3,)}}


def enumerable_specs(kind):
    """polynn's own spec classes a default instance stands for; custom-function wrappers
    (enumerable False) need a user function and plugin components (polynn-extras, when
    installed) are tested by their own packages."""
    return _registry.builtin_specs(kind)


def all_specs():
    return [(kind, cls) for kind in _registry.KINDS for cls in enumerable_specs(kind)]


def default_instance(kind, cls):
    return cls(**REQUIRED_ARGS.get((kind, cls.name), {}))


def json_round_trip(component):
    config = json.loads(json.dumps(component.get_config()))
    return type(component).from_config(config)


@pytest.mark.parametrize("kind,cls", all_specs(), ids=lambda v: getattr(v, "name", v))
def test_every_registered_spec_round_trips_through_json(kind, cls):
    component = default_instance(kind, cls)
    assert json_round_trip(component) == component
    # and through the registry, by name, as a nested config is stored
    assert polynn._spec.resolve(kind, json.loads(json.dumps(_registry.serialize(component)))) == component


@pytest.mark.parametrize("kind,cls", all_specs(), ids=lambda v: getattr(v, "name", v))
def test_every_spec_is_immutable(kind, cls):
    component = default_instance(kind, cls)
    fields = dataclasses.fields(component)
    if not fields:
        pytest.skip(f"{cls.__name__} has no fields")
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(component, fields[0].name, None)


@pytest.mark.parametrize("component", [
    Dense(5, activation="softmax", use_bias=False, kernel_initializer=initializers.HeNormal(),
          kernel_regularizer=regularizers.L1L2(l1=0.01, l2=0.02), bias_regularizer="l2",
          activity_regularizer=regularizers.L1(0.5), kernel_constraint=constraints.MaxNorm(3.0, axis=1),
          input_shape=(7, 4)),
    Dropout(0.25, noise_shape=(None, 1), seed=3),
    Activation("tanh"),
    Input((2, 3)),
    optimizers.Adam(learning_rate=schedules.ExponentialDecay(0.1, 10, 0.5), amsgrad=True, clipnorm=1.0),
    optimizers.SGD(0.1, momentum=0.9, nesterov=True, weight_decay=0.01),
    optimizers.RMSprop(centered=True, momentum=0.5, global_clipnorm=2.0),
    losses.BinaryCrossentropy(from_logits=True, label_smoothing=0.1, reduction="sum"),
    losses.CategoricalCrossentropy(label_smoothing=0.2, reduction="mean_with_sample_weight"),
    losses.SparseCategoricalCrossentropy(from_logits=True),
    metrics.BinaryAccuracy(threshold=0.3),
    schedules.PiecewiseConstantDecay([10, 20], [0.1, 0.01, 0.001]),
    constraints.MinMaxNorm(0.5, 2.0, rate=0.5, axis=(0, 1)),
], ids=lambda c: type(c).__name__)
def test_non_default_configs_round_trip(component):
    again = json_round_trip(component)
    assert again == component
    assert again.get_config() == component.get_config()


def test_config_names_registry_entries_not_module_paths():
    text = json.dumps(Dense(3, activation="relu", kernel_regularizer="l2").get_config())
    assert "polynn" not in text and "module" not in text
    assert '"class_name": "relu"' in text and '"class_name": "l2"' in text


def test_sequential_config_round_trips():
    model = Sequential([Input((4,)), Dense(3, activation="relu"), Dropout(0.1), Dense(1, activation="sigmoid")],
                       name="net")
    config = json.loads(json.dumps(model.get_config()))
    again = Sequential.from_config(config)
    assert again.name == "net"
    assert again.layers == model.layers


@pytest.mark.parametrize("kind,spelling,cls", [
    ("optimizer", "Adam", optimizers.Adam), ("optimizer", "adam", optimizers.Adam),
    ("optimizer", "ADAM", optimizers.Adam), ("optimizer", "RMSprop", optimizers.RMSprop),
    ("optimizer", "sgd", optimizers.SGD),
    ("loss", "binary_crossentropy", losses.BinaryCrossentropy),
    ("loss", "BinaryCrossentropy", losses.BinaryCrossentropy), ("loss", "MSE", losses.MeanSquaredError),
    ("activation", "ReLU", activations.ReLU), ("activation", "Sigmoid", activations.Sigmoid),
    ("initializer", "GlorotUniform", initializers.GlorotUniform),
    ("regularizer", "L2", regularizers.L2), ("constraint", "MaxNorm", constraints.MaxNorm),
    ("layer", "Dense", layers.Dense), ("metric", "BinaryAccuracy", metrics.BinaryAccuracy),
    ("schedule", "ExponentialDecay", schedules.ExponentialDecay),
])
def test_names_resolve_case_insensitively(kind, spelling, cls):
    assert polynn._spec.resolve(kind, spelling) == cls()


def test_objects_are_accepted_where_names_are():
    model = Sequential([Dense(1, input_dim=2, activation=activations.Sigmoid())])
    model.compile(optimizer=optimizers.Adam(learning_rate=1e-3), loss=losses.BinaryCrossentropy(),
                  metrics=[metrics.BinaryAccuracy()])
    assert model.optimizer == optimizers.Adam() and model.loss == losses.BinaryCrossentropy()
    model.compile(optimizer="Adam", loss="binary_crossentropy")
    assert model.optimizer == optimizers.Adam(learning_rate=1e-3)


def test_keras_defaults():
    adam = optimizers.Adam()
    assert (adam.learning_rate, adam.beta_1, adam.beta_2, adam.epsilon, adam.amsgrad) == (1e-3, 0.9, 0.999, 1e-7, False)
    assert optimizers.SGD().learning_rate == 0.01 and optimizers.RMSprop().learning_rate == 1e-3
    assert optimizers.RMSprop().rho == 0.9
    assert losses.EPSILON == 1e-7
    dense = Dense(4)
    assert dense.kernel_initializer == initializers.GlorotUniform()
    assert dense.bias_initializer == initializers.Zeros()
    assert dense.activation == activations.Linear() and dense.use_bias is True
    assert Dropout().rate == 0.5
    assert losses.BinaryCrossentropy().reduction == "sum_over_batch_size"
    # Sequential.compile's optimizer default, as keras.Model.compile
    model = Sequential([Dense(1, input_dim=2)])
    model.compile(loss="mse")
    assert model.optimizer == optimizers.RMSprop()


def test_glorot_uniform_limit():
    fan_in, fan_out = 300, 200
    limit = math.sqrt(6 / (fan_in + fan_out))
    values = initializers.GlorotUniform().sample((fan_in, fan_out), np.random.default_rng(0))
    assert values.shape == (fan_in, fan_out)
    assert np.all(np.abs(values) <= limit)
    # 60,000 uniform draws: the extremes come within 0.1% of the limit and the spread matches U[-l, l]
    assert np.abs(values).max() > 0.999 * limit
    assert values.std() == pytest.approx(limit / math.sqrt(3), rel=0.01)


def test_accuracy_string_resolves_from_shapes_as_keras():
    assert metrics.resolve_accuracy((1,), (1,)) == metrics.BinaryAccuracy(threshold=0.5)
    assert metrics.resolve_accuracy((), (1,)) == metrics.BinaryAccuracy()
    assert metrics.resolve_accuracy((3,), (3,)) == metrics.CategoricalAccuracy()
    assert metrics.resolve_accuracy((), (3,)) == metrics.SparseCategoricalAccuracy()
    assert metrics.resolve_accuracy((1,), (3,)) == metrics.SparseCategoricalAccuracy()


def test_compile_resolves_accuracy_for_one_output_unit():
    model = Sequential([Dense(1, input_dim=3, activation="sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    assert model._compiled.plan.metrics == (metrics.BinaryAccuracy(threshold=0.5),)
    assert model._compiled.metric_names == ["accuracy"]


@pytest.mark.parametrize("code", [
    "import polynn",
    "import polynn, polynn.models, polynn.layers, polynn.losses, polynn.metrics, polynn.optimizers, "
    "polynn.activations, polynn.initializers, polynn.regularizers, polynn.constraints, polynn.schedules, "
    "polynn.callbacks, polynn.backend, polynn.plugins; polynn.plugins.backend_entries()",
])
def test_import_loads_no_framework(code):
    check = ("import sys; bad = [m for m in ('tensorflow', 'torch', 'keras', 'jax') if m in sys.modules]; "
             "assert not bad, bad")
    result = subprocess.run([sys.executable, "-c", f"{code}; {check}"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_blog_import_check_holds():
    code = "import polynn, sys; assert 'tensorflow' not in sys.modules and 'torch' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0


# ---- model structure ------------------------------------------------------------------


def blog_model():
    model = Sequential()
    model.add(Dense(64, input_dim=10, activation="relu"))
    for units in (32, 16, 8, 4):
        model.add(Dense(units, activation="relu"))
    model.add(Dense(1, activation="sigmoid"))
    return model


BLOG_UNITS = (10, 64, 32, 16, 8, 4, 1)


@pytest.mark.parametrize("declare", ["input_dim", "input_shape", "Input"])
def test_weights_exist_right_after_compile(declare):
    first = {"input_dim": Dense(5, input_dim=3), "input_shape": Dense(5, input_shape=(3,))}.get(declare)
    stack = [Input((3,)), Dense(5)] if declare == "Input" else [first]
    model = Sequential([*stack, Dense(2)])
    model.compile(optimizer="sgd", loss="mse")
    weights = model.get_weights()
    assert [w.shape for w in weights] == [(3, 5), (5,), (5, 2), (2,)]
    assert all(isinstance(w, np.ndarray) and w.dtype == np.float32 for w in weights)
    assert np.all(weights[1] == 0) and np.any(weights[0] != 0)
    assert model.count_params() == (3 + 1) * 5 + (5 + 1) * 2


def test_weights_follow_the_data_when_no_input_shape_is_declared():
    model = Sequential([Dense(4), Dense(1)])
    model.compile(optimizer="sgd", loss="mse", seed=0)
    assert model.get_weights() == []
    model.fit(np.ones((8, 6)), np.ones((8, 1)), verbose=0)
    assert [w.shape for w in model.get_weights()] == [(6, 4), (4,), (4, 1), (1,)]


def test_get_weights_keras_order_and_set_weights_round_trip():
    model = blog_model()
    model.compile(optimizer="adam", loss="binary_crossentropy", dtype="float64", seed=1)
    shapes = []
    for fan_in, units in zip(BLOG_UNITS, BLOG_UNITS[1:]):
        shapes += [(fan_in, units), (units,)]
    assert [w.shape for w in model.get_weights()] == shapes
    rng = np.random.default_rng(0)
    new = [rng.normal(size=s) for s in shapes]
    model.set_weights(new)
    for got, want in zip(model.get_weights(), new):
        np.testing.assert_array_equal(got, want)
    # the runtime computes with the new weights: compare with a hand-written forward pass
    x = rng.normal(size=(5, 10))
    h = x
    for k in range(0, len(new) - 2, 2):
        h = np.maximum(h @ new[k] + new[k + 1], 0)
    expected = 1 / (1 + np.exp(-(h @ new[-2] + new[-1])))
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, rtol=1e-12)


def test_dense_on_rank3_inputs():
    model = Sequential([Dense(3, input_shape=(5, 4), activation="tanh"), Dense(2)])
    model.compile(optimizer="sgd", loss="mse", dtype="float64", seed=0)
    assert model.output_shape == (5, 2)
    kernel, bias, kernel2, bias2 = model.get_weights()
    assert kernel.shape == (4, 3) and kernel2.shape == (3, 2)
    x = np.random.default_rng(0).normal(size=(6, 5, 4))
    expected = np.tanh(x @ kernel + bias) @ kernel2 + bias2
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, rtol=1e-12)
    model.fit(x, np.zeros((6, 5, 2)), verbose=0, epochs=2)


def test_summary_table_matches_shapes_and_counts():
    model = blog_model()
    model.compile(optimizer="adam", loss="binary_crossentropy")
    lines = []
    model.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert lines[0] == 'Model: "sequential"'
    for header in ("Layer (type)", "Output Shape", "Param #"):
        assert header in lines[2]
    rows = [line for line in lines if "(Dense)" in line]
    names = ["dense"] + [f"dense_{k}" for k in range(1, 6)]
    assert len(rows) == 6
    total = 0
    for row, name, fan_in, units in zip(rows, names, BLOG_UNITS, BLOG_UNITS[1:]):
        count = (fan_in + 1) * units
        total += count
        cells = [c.strip() for c in row.strip("\u2502").split("\u2502")]
        assert cells == [f"{name} (Dense)", str((None, units)), f"{count:,}"]
    assert f"Total params: {total:,} ({total * 4 / 1024:.2f} KB)" in text
    assert f"Trainable params: {total:,}" in text
    assert "Non-trainable params: 0" in text
    assert total == model.count_params()


def test_summary_with_input_and_dropout_rows():
    model = Sequential([Input((7, 3)), Dense(5), Dropout(0.2), Activation("relu")])
    lines = []
    model.summary(print_fn=lines.append)
    rows = [[c.strip() for c in line.strip("\u2502").split("\u2502")] for line in lines if line.startswith("\u2502")]
    # As Keras 3: the Input sets the shapes but has no row of its own.
    assert rows == [["dense (Dense)", str((None, 7, 5)), f"{(3 + 1) * 5:,}"],
                    ["dropout (Dropout)", str((None, 7, 5)), "0"],
                    ["activation (Activation)", str((None, 7, 5)), "0"]]


def test_an_input_shape_on_a_later_layer_is_ignored_with_a_warning():
    model = Sequential([Dense(2, input_dim=3)])
    with pytest.warns(UserWarning, match=r"input_dim/input_shape \(5,\) on layer 1 \(dense\) is ignored"):
        model.add(Dense(4, input_dim=5))
    assert model.input_shape == (3,)


def test_input_layer_only_first():
    from polynn.errors import InvalidArgumentError

    model = Sequential([Dense(2, input_dim=3)])
    with pytest.raises(InvalidArgumentError, match="Input layer only as the first layer"):
        model.add(Input((2,)))


def test_layer_names_are_keras_style():
    model = Sequential([Dense(2, input_dim=3), Dropout(0.1), Dense(2), Dense(1)])
    assert model.layer_names() == ["dense", "dropout", "dense_1", "dense_2"]


def test_adam_complement_error_measures_one_minus_beta_formed_in_the_dtype():
    """1 - beta formed in float64 is the formula's 1 - beta rounded; in float32 it is not, and the
    gap grows as beta nears 1 (a float32 step near 1 over 1 - beta)."""
    default, slow = optimizers.Adam(), optimizers.Adam(beta_2=0.9999)
    assert default.complement_error("float64") == slow.complement_error("float64") == 0
    assert 0 < default.complement_error("float32") < slow.complement_error("float32")
    one_minus = float(1 - np.float32(0.9999))
    assert slow.complement_error("float32") == pytest.approx(abs(one_minus / float(np.float32(1 - 0.9999)) - 1))
    assert optimizers.Adam(beta_2=1 - 1e-9).complement_error("float32") == 1.0  # beta_2 rounds to 1
