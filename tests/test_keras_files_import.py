"""Keras 3 .keras archives and .weights.h5 files read into polynn (polynn._keras_import).

Two halves. Without Keras: configs written as Keras 3.15 writes them (json in hand, arrays made
here) check what each Keras component becomes, where each variable goes, and every refusal; these
run everywhere, h5py and Keras or not. With Keras 3 on TensorFlow (the test extra; skipped without
it), real files: a model trained a little in Keras, saved, read by polynn on every installed backend,
predicts as Keras does and goes on training as Keras goes on (same History and weights), to the
Keras-parity tolerances of test_keras_parity. A trivial reader (zipfile + h5py) stands in for
polynn._keras_archive's defensive one.
"""

from __future__ import annotations

import copy
import functools
import os
import warnings
from typing import Any, NamedTuple

import numpy as np
import pytest

import polynn
from polynn import (
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
from polynn._keras_components import OPTIMIZER_CLASSES
from polynn._keras_import import OPTIMIZER_SLOTS, load_weights_from_keras, model_from_keras
from polynn.errors import ModelFileError, UnknownComponentError
from polynn.models import Sequential, load_model

F64_TOLERANCE = 1e-10  # test_keras_parity's, for training
F32_TOLERANCE = 1e-6
PREDICT_F64_TOLERANCE = 1e-12
MESSAGE_LIMIT = 1000


# ---- files in hand -----------------------------------------------------------------------------


class KerasVariable(NamedTuple):
    path: str
    shape: tuple
    dtype: str


class FakeFile:
    """A KerasFile of a config and arrays made here."""

    def __init__(self, config: Any, arrays: dict[str, np.ndarray], kind: str = "archive",
                 metadata: Any = None) -> None:
        self.kind, self.config = kind, config
        self.metadata = {"keras_version": "3.15.1", "date_saved": "2026-01-01@00:00:00"} if metadata is None \
            else metadata
        self.arrays = {path: np.asarray(a) for path, a in arrays.items()}
        self.variables = {path: KerasVariable(path, a.shape, a.dtype.name) for path, a in self.arrays.items()}
        self.reads: list[str] = []

    def read(self, path: str) -> np.ndarray:
        self.reads.append(path)
        return self.arrays[path].copy()


def obj(module: str, class_name: str, config: Any, **extra: Any) -> dict:
    return {"module": module, "class_name": class_name, "config": config, "registered_name": None, **extra}


def policy(dtype: str = "float32") -> dict:
    return obj("keras", "DTypePolicy", {"name": dtype})


def input_layer(*shape: int, dtype: str = "float32") -> dict:
    return obj("keras.layers", "InputLayer", {"batch_shape": [None, *shape], "dtype": dtype, "sparse": False,
                                               "ragged": False, "name": "input_layer", "optional": False})


def dense(name: str, units: int, activation: Any = "linear", dtype: str = "float32", **options: Any) -> dict:
    config = {"name": name, "trainable": True, "dtype": policy(dtype), "units": units, "activation": activation,
              "use_bias": True,
              "kernel_initializer": obj("keras.initializers", "GlorotUniform",
                                        {"seed": None, "input_axes": None, "output_axes": None}),
              "bias_initializer": obj("keras.initializers", "Zeros", {}), "kernel_regularizer": None,
              "bias_regularizer": None, "kernel_constraint": None, "bias_constraint": None,
              "quantization_config": None}
    config.update(options)
    return obj("keras.layers", "Dense", config, build_config={"input_shape": [None, 3]})


def layer(class_name: str, name: str, dtype: str = "float32", **options: Any) -> dict:
    return obj("keras.layers", class_name, {"name": name, "trainable": True, "dtype": policy(dtype), **options})


def optimizer(class_name: str = "Adam", **options: Any) -> dict:
    config = {"name": class_name.lower(), "learning_rate": 0.0010000000474974513, "weight_decay": None,
              "clipnorm": None, "global_clipnorm": None, "clipvalue": None, "use_ema": False, "ema_momentum": 0.99,
              "ema_overwrite_frequency": None, "loss_scale_factor": None, "gradient_accumulation_steps": None}
    defaults = {"Adam": {"beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-07, "amsgrad": False},
                "SGD": {"momentum": 0.0, "nesterov": False}}
    config.update(defaults.get(class_name, {}))
    config.update(options)
    return obj("keras.optimizers", class_name, config)


def compile_config(**options: Any) -> dict:
    config = {"optimizer": optimizer(), "loss": "binary_crossentropy", "loss_weights": None, "metrics": ["accuracy"],
              "weighted_metrics": None, "run_eagerly": False, "steps_per_execution": 1, "jit_compile": False}
    config.update(options)
    return config


def sequential(layer_list: list | None = None, compiled: dict | None = None, dtype: str = "float32",
               inputs: int = 3) -> dict:
    layer_list = [dense("dense", 4, "relu", dtype), dense("dense_1", 1, "sigmoid", dtype)] if layer_list is None \
        else layer_list
    config = {"module": "keras", "class_name": "Sequential",
              "config": {"name": "sequential", "trainable": True, "dtype": policy(dtype),
                         "layers": [input_layer(inputs, dtype=dtype), *layer_list],
                         "build_input_shape": [None, inputs]},
              "registered_name": None, "build_config": {"input_shape": [None, inputs]}}
    if compiled is not None:
        config["compile_config"] = compiled
    return config


RNG = np.random.default_rng(7)
W = {"layers/dense/vars/0": RNG.normal(size=(3, 4)), "layers/dense/vars/1": RNG.normal(size=(4,)),
     "layers/dense_1/vars/0": RNG.normal(size=(4, 1)), "layers/dense_1/vars/1": RNG.normal(size=(1,))}
WEIGHT_PATHS = list(W)


def adam_vars(iterations: int = 5, lr: float = 0.001) -> dict[str, np.ndarray]:
    """Keras's Adam variables over W: iteration, learning rate, then (m, v) per weight, interleaved."""
    out = {"optimizer/vars/0": np.array(iterations, np.int64), "optimizer/vars/1": np.array(lr, np.float32)}
    for k, path in enumerate(WEIGHT_PATHS):
        out[f"optimizer/vars/{2 + 2 * k}"] = np.full(W[path].shape, 10.0 * k + 1)  # m
        out[f"optimizer/vars/{3 + 2 * k}"] = np.full(W[path].shape, 10.0 * k + 2)  # v
    return out


def archive(config: Any = None, arrays: dict | None = None, **kwargs: Any) -> FakeFile:
    config = sequential(compiled=compile_config()) if config is None else config
    return FakeFile(config, {**W, **adam_vars()} if arrays is None else arrays, **kwargs)


def load(file: FakeFile, **kwargs: Any) -> Sequential:
    return model_from_keras(file, Sequential, **kwargs)


def slot(model: Sequential, weight: int, name: str) -> np.ndarray:
    state = model._compiled.runtime.get_optimizer_state()
    return state[weight][model.optimizer.spec.slot_names().index(name)]


# ---- what a file becomes -----------------------------------------------------------------------


def test_archive_gives_the_compiled_model_with_weights_slots_and_iterations():
    file = archive()
    model = load(file)
    assert model.layer_names() == ["input_layer", "dense", "dense_1"]
    assert model.input_shape == (3,) and model.dtype == "float32" and model.backend == "numpy"
    assert model.layers[1].spec == layers.Dense(4, activation="relu", given_name="dense")
    assert model.optimizer.spec == optimizers.Adam(learning_rate=float(np.float32(0.001)))
    assert model.loss == losses.BinaryCrossentropy()
    assert model._compiled.metric_ids == ["accuracy"] and model._compiled.steps_per_execution == "auto"
    for got, path in zip(model.get_weights(), WEIGHT_PATHS):
        np.testing.assert_array_equal(got, W[path].astype(np.float32))
    for k in range(4):
        assert np.all(slot(model, k, "m") == 10 * k + 1) and np.all(slot(model, k, "v") == 10 * k + 2)
    assert model.iterations == 5
    assert set(file.reads) == set(file.arrays)  # every array read once, none twice
    assert len(file.reads) == len(file.arrays)


def test_float64_policy_compiles_in_float64_and_weights_keep_their_bits():
    config = sequential(compiled=compile_config(), dtype="float64")
    model = load(archive(config, {**W, **adam_vars()}))
    assert model.dtype == "float64"
    for got, path in zip(model.get_weights(), WEIGHT_PATHS):
        np.testing.assert_array_equal(got, W[path])
    assert load(archive(config), dtype="float32", backend="numpy").dtype == "float32"


def test_keras_3_0_string_dtypes_and_build_input_shape_without_input_layer():
    config = sequential(compiled=compile_config())
    inner = config["config"]
    inner["layers"] = inner["layers"][1:]
    inner["dtype"] = "float64"
    for item in inner["layers"]:
        item["config"]["dtype"] = "float64"
    model = load(archive(config))
    assert model.input_shape == (3,) and model.dtype == "float64"
    assert model.layer_names() == ["dense", "dense_1"]


@pytest.mark.parametrize("compiled", [None, {}])  # Keras 3.15 writes {}
def test_uncompiled_archive_gives_an_uncompiled_model_with_its_weights(compiled):
    model = load(archive(sequential(compiled=compiled), dict(W)))
    assert not model.compiled
    np.testing.assert_allclose(model.get_weights()[2], W["layers/dense_1/vars/0"].astype(np.float32))


def test_unbuilt_model_has_no_weights_and_a_fresh_optimizer():
    config = sequential(compiled=compile_config())
    inner = config["config"]
    inner["layers"] = inner["layers"][1:]
    del inner["build_input_shape"], config["build_config"]
    model = load(archive(config, {"optimizer/vars/0": np.array(0), "optimizer/vars/1": np.array(0.001)}))
    assert model.input_shape is None and model.iterations == 0 and model.compiled


def test_layers_and_their_components():
    l1 = obj("keras.regularizers", "L1", {"l1": 0.001})
    stack = [
        dense("dense", 5, activation=obj("builtins", "function", "gelu", registered_name="function"),
              use_bias=True,
              kernel_initializer=obj("keras.initializers", "VarianceScaling", {
                  "seed": 3, "scale": 2.0, "mode": "fan_out", "distribution": "uniform", "input_axes": None,
                  "output_axes": None}),
              bias_initializer=obj("keras.initializers", "Constant", {"value": 0.1}),
              kernel_regularizer=obj("keras.regularizers", "L1L2", {"l1": 0.01, "l2": 0.02}),
              bias_regularizer=obj("keras.regularizers", "L2", {"l2": 0.03}), activity_regularizer=l1,
              kernel_constraint=obj("keras.constraints", "MaxNorm", {"max_value": 2, "axis": 0}),
              bias_constraint=obj("keras.constraints", "NonNeg", {})),
        layer("LeakyReLU", "leaky_re_lu", negative_slope=0.1),
        layer("ReLU", "re_lu", max_value=5.0, negative_slope=0.0, threshold=0.0),
        layer("ELU", "elu", alpha=0.5),
        layer("Dropout", "dropout", rate=0.25, seed=11, noise_shape=[None, 1]),
        layer("Activation", "activation", activation="swish"),
        dense("dense_1", 4, activation=obj("keras.activations", "function", "hard_swish", registered_name=None),
              kernel_initializer=obj("keras.initializers", "Orthogonal", {"seed": None, "gain": 1.5}),
              kernel_constraint=obj("keras.constraints", "MinMaxNorm", {"min_value": 0.1, "max_value": 2.0,
                                                                         "rate": 0.5, "axis": [0]}),
              bias_constraint=obj("keras.constraints", "UnitNorm", {"axis": 0})),
        dense("out", 2, activation=layer("LeakyReLU", "leaky_re_lu_1", negative_slope=0.05), use_bias=False,
              kernel_initializer="he_normal", kernel_regularizer="l1"),
        layer("Softmax", "softmax", axis=-1),
    ]
    stack[1]["config"]["trainable"] = False
    arrays = {"layers/dense/vars/0": np.ones((3, 5)), "layers/dense/vars/1": np.ones(5),
              "layers/dense_1/vars/0": np.ones((5, 4)), "layers/dense_1/vars/1": np.ones(4),
              "layers/dense_2/vars/0": np.ones((4, 2))}
    model = load(archive(sequential(stack), arrays))
    specs = [b.spec for b in model.layers]
    assert specs[1] == layers.Dense(
        5, activation=activations.GELU(), kernel_initializer=initializers.VarianceScaling(2.0, "fan_out", "uniform"),
        bias_initializer=initializers.Constant(0.1), kernel_regularizer=regularizers.L1L2(0.01, 0.02),
        bias_regularizer=regularizers.L2(0.03), activity_regularizer=regularizers.L1(0.001),
        kernel_constraint=constraints.MaxNorm(2.0, 0), bias_constraint=constraints.NonNeg(), given_name="dense")
    assert specs[2] == layers.Activation(activations.LeakyReLU(0.1), given_name="leaky_re_lu", trainable=False)
    assert specs[3] == layers.Activation(activations.ReLU(max_value=5.0), given_name="re_lu")
    assert specs[4] == layers.Activation(activations.ELU(0.5), given_name="elu")
    assert specs[5] == layers.Dropout(0.25, noise_shape=(None, 1), seed=11, given_name="dropout")
    assert specs[6] == layers.Activation(activations.SiLU(), given_name="activation")
    assert specs[7] == layers.Dense(4, activation=activations.HardSiLU(),
                                    kernel_initializer=initializers.Orthogonal(1.5),
                                    kernel_constraint=constraints.MinMaxNorm(0.1, 2.0, 0.5, (0,)),
                                    bias_constraint=constraints.UnitNorm(0), given_name="dense_1")
    assert specs[8] == layers.Dense(2, activation=activations.LeakyReLU(0.05), use_bias=False,
                                    kernel_initializer=initializers.HeNormal(), kernel_regularizer=regularizers.L1(),
                                    given_name="out")
    assert specs[9] == layers.Activation(activations.Softmax(-1), given_name="softmax")
    assert [w.shape for w in model.get_weights()] == [(3, 5), (5,), (5, 4), (4,), (4, 2)]


def test_a_frozen_model_freezes_every_layer():
    config = sequential()
    config["config"]["trainable"] = False
    model = load(archive(config, dict(W)))
    assert not model.trainable and all(not b.trainable for b in model.layers)


@pytest.mark.parametrize("keras_name, expected", [
    ("relu", activations.ReLU()), ("relu6", activations.ReLU6()), ("leaky_relu", activations.LeakyReLU(0.2)),
    ("elu", activations.ELU()), ("selu", activations.SELU()), ("softplus", activations.Softplus()),
    ("softsign", activations.Softsign()), ("silu", activations.SiLU()), ("swish", activations.SiLU()),
    ("gelu", activations.GELU()), ("tanh", activations.Tanh()), ("sigmoid", activations.Sigmoid()),
    ("exponential", activations.Exponential()), ("hard_sigmoid", activations.HardSigmoid()),
    ("hard_silu", activations.HardSiLU()), ("hard_swish", activations.HardSiLU()), ("mish", activations.Mish()),
    ("softmax", activations.Softmax()), ("log_softmax", activations.LogSoftmax()), ("linear", activations.Linear()),
    (None, activations.Linear()),
])
def test_activation_names(keras_name, expected):
    model = load(archive(sequential([dense("dense", 4, keras_name), dense("dense_1", 1)]), dict(W)))
    assert model.layers[1].activation == expected


@pytest.mark.parametrize("keras_initializer, expected", [
    ("zeros", initializers.Zeros()), ("ones", initializers.Ones()), ("glorot_normal", initializers.GlorotNormal()),
    ("lecun_uniform", initializers.LecunUniform()), ("uniform", initializers.RandomUniform()),
    (obj("keras.initializers", "RandomUniform", {"seed": 1, "minval": -1.0, "maxval": 2.0}),
     initializers.RandomUniform(-1.0, 2.0)),
    (obj("keras.initializers", "RandomNormal", {"seed": None, "mean": 1.0, "stddev": 0.5}),
     initializers.RandomNormal(1.0, 0.5)),
    (obj("keras.initializers", "TruncatedNormal", {"seed": None, "mean": 0.0, "stddev": 0.2}),
     initializers.TruncatedNormal(0.0, 0.2)),
    (obj("keras.initializers", "HeUniform", {"seed": None, "input_axes": None, "output_axes": None}),
     initializers.HeUniform()),
    (obj("keras.initializers", "LecunNormal", {"seed": 5}), initializers.LecunNormal()),
    (obj("keras.initializers", "Identity", {}), initializers.Identity()),
])
def test_initializers(keras_initializer, expected):
    model = load(archive(sequential([dense("dense", 4, kernel_initializer=keras_initializer),
                                     dense("dense_1", 1)]), dict(W)))
    assert model.layers[1].kernel_initializer == expected


OPTIMIZER_CASES = [
    (optimizer("SGD", learning_rate=0.05, momentum=0.9, nesterov=True, clipvalue=0.5),
     optimizers.SGD(0.05, momentum=0.9, nesterov=True, clipvalue=0.5)),
    (optimizer("Adam", beta_1=0.8, amsgrad=True, global_clipnorm=1.0),
     optimizers.Adam(float(np.float32(0.001)), beta_1=0.8, amsgrad=True, global_clipnorm=1.0)),
    (optimizer("AdamW", learning_rate=0.002, weight_decay=0.004, beta_1=0.9, beta_2=0.99, epsilon=1e-6,
               amsgrad=False), optimizers.AdamW(0.002, beta_2=0.99, epsilon=1e-6)),
    (optimizer("RMSprop", rho=0.8, momentum=0.5, epsilon=1e-6, centered=True, clipnorm=2.0),
     optimizers.RMSprop(float(np.float32(0.001)), rho=0.8, momentum=0.5, epsilon=1e-6, centered=True, clipnorm=2.0)),
    (optimizer("Adagrad", initial_accumulator_value=0.2, epsilon=1e-6, weight_decay=0.01),
     optimizers.Adagrad(float(np.float32(0.001)), initial_accumulator_value=0.2, epsilon=1e-6, weight_decay=0.01)),
    (optimizer("Adadelta", rho=0.9, epsilon=1e-6), optimizers.Adadelta(float(np.float32(0.001)), 0.9, 1e-6)),
    (optimizer("Adamax", beta_1=0.85, beta_2=0.99, epsilon=1e-6),
     optimizers.Adamax(float(np.float32(0.001)), 0.85, 0.99, 1e-6)),
    (optimizer("Nadam", beta_1=0.85, beta_2=0.99, epsilon=1e-6),
     optimizers.Nadam(float(np.float32(0.001)), 0.85, 0.99, 1e-6)),
    ("rmsprop", optimizers.RMSprop(0.001)),
]


@pytest.mark.parametrize("keras_optimizer, expected", OPTIMIZER_CASES)
def test_optimizers_and_their_hyperparameters(keras_optimizer, expected):
    # Without its variables the optimizer starts afresh, its rate the config's.
    model = load(archive(sequential(compiled=compile_config(optimizer=keras_optimizer)), dict(W)))
    assert model.optimizer.spec == expected
    assert model.iterations == 0


def schedule(class_name: str, **config: Any) -> dict:
    return obj("keras.optimizers.schedules", class_name, {**config, "name": class_name})


@pytest.mark.parametrize("keras_schedule, expected", [
    (schedule("ExponentialDecay", initial_learning_rate=0.1, decay_steps=10, decay_rate=0.9, staircase=True),
     schedules.ExponentialDecay(0.1, 10, 0.9, staircase=True)),
    (schedule("PiecewiseConstantDecay", boundaries=[10, 20], values=[0.1, 0.01, 0.001]),
     schedules.PiecewiseConstantDecay((10, 20), (0.1, 0.01, 0.001))),
    (schedule("InverseTimeDecay", initial_learning_rate=0.01, decay_steps=3, decay_rate=0.37, staircase=False),
     schedules.InverseTimeDecay(0.01, 3, 0.37)),
    (schedule("PolynomialDecay", initial_learning_rate=0.1, decay_steps=10, end_learning_rate=0.001, power=2.0,
              cycle=True), schedules.PolynomialDecay(0.1, 10, 0.001, 2.0, cycle=True)),
    (schedule("CosineDecay", initial_learning_rate=0.1, decay_steps=10, alpha=0.1, warmup_target=0.2,
              warmup_steps=5), schedules.CosineDecay(0.1, 10, 0.1, 0.2, 5)),
])
def test_learning_rate_schedules(keras_schedule, expected):
    arrays = {**W, "optimizer/vars/0": np.array(3, np.int64)}
    for k, path in enumerate(WEIGHT_PATHS):  # no learning-rate variable under a schedule
        arrays[f"optimizer/vars/{1 + 2 * k}"] = np.full(W[path].shape, 1.0)
        arrays[f"optimizer/vars/{2 + 2 * k}"] = np.full(W[path].shape, 2.0)
    model = load(archive(sequential(compiled=compile_config(optimizer=optimizer(learning_rate=keras_schedule))),
                         arrays))
    assert model.optimizer.spec.learning_rate == expected
    assert model.iterations == 3 and np.all(slot(model, 3, "v") == 2.0)


@pytest.mark.parametrize("keras_loss, expected", [
    ("binary_crossentropy", losses.BinaryCrossentropy()), ("mse", losses.MeanSquaredError()),
    ("MAE", losses.MeanAbsoluteError()), ("kld", losses.KLDivergence()), ("huber", losses.Huber()),
    ("CategoricalHinge", losses.CategoricalHinge()), (["log_cosh"], losses.LogCosh()),
    ({"dense_1": "poisson"}, losses.Poisson()),
    (obj("builtins", "function", "mean_squared_logarithmic_error", registered_name="function"),
     losses.MeanSquaredLogarithmicError()),
    (obj("keras.losses", "function", "squared_hinge", registered_name="squared_hinge"), losses.SquaredHinge()),
    (obj("keras.losses", "CategoricalCrossentropy", {"name": "cce", "reduction": "sum", "from_logits": True,
                                                     "label_smoothing": 0.1, "axis": -1}),
     losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1, reduction="sum")),
    (obj("keras.losses", "SparseCategoricalCrossentropy", {"name": "s", "reduction": "mean", "from_logits": False,
                                                           "ignore_class": None}),
     losses.SparseCategoricalCrossentropy(reduction="mean")),
    (obj("keras.losses", "Huber", {"name": "huber_loss", "reduction": "sum_over_batch_size", "delta": 2.0}),
     losses.Huber(2.0)),
    (obj("keras.losses", "CosineSimilarity", {"name": "c", "reduction": "sum_over_batch_size"}),
     losses.CosineSimilarity()),
    (None, None),
])
def test_losses(keras_loss, expected):
    model = load(archive(sequential(compiled=compile_config(loss=keras_loss))))
    assert model.loss == expected


def test_metrics_log_under_keras_names():
    keras_metrics = {"dense_1": [
        "accuracy", "mse", "AUC", obj("builtins", "function", "binary_accuracy", registered_name="function"),
        obj("keras.metrics", "Precision", {"name": "precision", "dtype": "float32", "thresholds": None, "top_k": None,
                                           "class_id": None}),
        obj("keras.metrics", "AUC", {"name": "pr", "dtype": "float32", "num_thresholds": 50, "curve": "PR",
                                     "summation_method": "minoring", "multi_label": False, "num_labels": None,
                                     "label_weights": None, "from_logits": True}),
        obj("keras.metrics", "BinaryCrossentropy", {"name": "binary_crossentropy", "dtype": "float32",
                                                    "from_logits": False, "label_smoothing": 0}),
    ]}
    weighted = [[obj("keras.metrics", "MeanAbsoluteError", {"name": "wmae", "dtype": "float32"}), "acc"]]
    model = load(archive(sequential(compiled=compile_config(metrics=keras_metrics, weighted_metrics=weighted))))
    assert model._compiled.metric_ids == [
        "accuracy", metrics.MeanSquaredError(given_name="mse"), metrics.AUC(given_name="AUC"),
        metrics.BinaryAccuracy(given_name="binary_accuracy"), metrics.Precision(given_name="precision"),
        metrics.AUC(50, "PR", "minoring", from_logits=True, given_name="pr"),
        metrics.BinaryCrossentropy(given_name="binary_crossentropy")]
    assert model._compiled.weighted_ids == [metrics.MeanAbsoluteError(given_name="wmae"), "acc"]
    x, y = RNG.normal(size=(8, 3)), (RNG.random((8, 1)) > 0.5).astype(float)
    logs = model.evaluate(x, y, sample_weight=np.arange(1.0, 9.0), return_dict=True, verbose=0)
    assert list(logs) == ["loss", "accuracy", "mse", "AUC", "binary_accuracy", "precision", "pr",
                          "binary_crossentropy", "wmae", "acc"]


def test_an_imported_model_saves_and_loads_as_polynn_files(tmp_path):
    keras_metrics = ["accuracy", "AUC", obj("keras.metrics", "Precision", {"name": "p", "dtype": "float32"})]
    f64 = "float64"
    config = sequential([dense("dense", 4, layer("LeakyReLU", "leaky_re_lu_1", negative_slope=0.05), f64),
                         layer("ReLU", "re_lu", f64, max_value=2.0), dense("dense_1", 1, "sigmoid", f64)],
                        compiled=compile_config(metrics=keras_metrics, optimizer=optimizer("SGD", momentum=0.5)),
                        dtype="float64")
    arrays = {**W, "optimizer/vars/0": np.array(3), "optimizer/vars/1": np.array(0.01)}
    for k, path in enumerate(WEIGHT_PATHS):
        arrays[f"optimizer/vars/{2 + k}"] = np.full(W[path].shape, k + 0.5)
    model = load(archive(config, arrays))
    model.save(tmp_path / "imported.safetensors")
    again = polynn.load_model(tmp_path / "imported.safetensors")
    assert again.get_config() == model.get_config() and again.iterations == 3
    x, y = RNG.normal(size=(8, 3)), (RNG.random((8, 1)) > 0.5).astype(float)
    np.testing.assert_array_equal(again.predict(x, verbose=0), model.predict(x, verbose=0))
    first = model.fit(x, y, epochs=2, shuffle=False, verbose=0).history
    assert again.fit(x, y, epochs=2, shuffle=False, verbose=0).history == first
    assert list(first) == ["loss", "accuracy", "AUC", "p"]


@pytest.mark.parametrize("steps, expected", [(1, "auto"), (4, 4)])
def test_steps_per_execution(steps, expected):
    model = load(archive(sequential(compiled=compile_config(steps_per_execution=steps))))
    assert model._compiled.steps_per_execution == expected


# ---- optimizer state: each Keras variable to its polynn slot --------------------------------------


def _slot_arrays(layout: list, weights: list[np.ndarray], start: int) -> tuple[dict, dict]:
    """Keras's optimizer variables from index `start` laid out as `layout` says ((weight, name) per
    variable, "u_product" for Nadam's scalar), each filled with its own index."""
    arrays, expected = {}, {}
    for i, entry in enumerate(layout, start):
        if entry == "u_product":
            arrays[f"optimizer/vars/{i}"] = np.array(0.5)
        else:
            arrays[f"optimizer/vars/{i}"] = np.full(weights[entry[0]].shape, float(i))
            expected[entry] = float(i)
    return arrays, expected


def _interleaved(names: tuple, trainable: list[int]) -> list:
    return [(k, name) for k in trainable for name in names]


# Keras's order, read off its optimizers' build() (Keras 3.0 to 3.15): each block's variables
# interleaved per trainable weight, the blocks one after the other.
SLOT_CASES = {
    "sgd_momentum": (optimizer("SGD", momentum=0.9), [("momentum",)]),
    "sgd_plain": (optimizer("SGD"), []),
    "adam_amsgrad": (optimizer("Adam", amsgrad=True), [("m", "v"), ("v_hat",)]),
    "adamw": (optimizer("AdamW", weight_decay=0.004, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False),
              [("m", "v")]),
    "rmsprop_all": (optimizer("RMSprop", momentum=0.5, centered=True),
                    [("velocity",), ("momentum",), ("average_gradient",)]),
    "rmsprop_centered": (optimizer("RMSprop", centered=True), [("velocity",), ("average_gradient",)]),
    "adagrad": (optimizer("Adagrad"), [("accumulator",)]),
    "adadelta": (optimizer("Adadelta"), [("accumulated_grad", "accumulated_delta")]),
    "adamax": (optimizer("Adamax"), [("m", "u")]),
}


@pytest.mark.parametrize("case", list(SLOT_CASES))
def test_optimizer_variables_go_to_their_slots(case):
    keras_optimizer, blocks = SLOT_CASES[case]
    config = sequential(compiled=compile_config(optimizer=keras_optimizer))
    config["config"]["layers"][1]["config"]["trainable"] = False  # the first Dense: no slots in Keras
    weights = list(W.values())
    trainable = [2, 3]
    layout = [entry for block in blocks for entry in _interleaved(block, trainable)]
    arrays, expected = _slot_arrays(layout, weights, 2)
    model = load(archive(config, {**W, "optimizer/vars/0": np.array(7), "optimizer/vars/1": np.array(0.003),
                                  **arrays}))
    assert model.iterations == 7 and model.optimizer.spec.learning_rate == 0.003
    for (k, name), value in expected.items():
        assert np.all(slot(model, k, name) == value), (k, name)
    for k in (0, 1):  # frozen: the slots polynn starts with
        for name, initial in zip(model.optimizer.spec.slot_names(), model.optimizer.spec.slot_initial_values()):
            assert np.all(slot(model, k, name) == np.float32(initial))
    assert set(model.optimizer.spec.slot_names()) == {name for block in blocks for name in block}


@pytest.mark.parametrize("version, product_last", [("3.15.1", True), ("3.10.0", True), ("3.9.2", False),
                                                   ("3.0.0", False)])
def test_nadam_product_position_follows_the_keras_version(version, product_last):
    layout = _interleaved(("m", "v"), [0, 1, 2, 3])
    layout = layout + ["u_product"] if product_last else ["u_product", *layout]
    arrays, expected = _slot_arrays(layout, list(W.values()), 2)
    file = archive(sequential(compiled=compile_config(optimizer=optimizer("Nadam"))),
                   {**W, "optimizer/vars/0": np.array(2), "optimizer/vars/1": np.array(0.001), **arrays},
                   metadata={"keras_version": version})
    model = load(file)
    for (k, name), value in expected.items():
        assert np.all(slot(model, k, name) == value)
    other = "3.9.2" if product_last else "3.15.1"
    file.metadata = {"keras_version": other}
    with pytest.raises(ModelFileError, match=r"optimizer/vars/\d+' has shape"):
        load(file)


def test_optimizer_of_another_size_starts_afresh_as_in_keras():
    arrays = {**W, **adam_vars()}
    del arrays["optimizer/vars/9"]
    with pytest.warns(UserWarning, match="not loaded and training starts it afresh, as Keras does"):
        model = load(archive(arrays=arrays))
    assert model.iterations == 0 and np.all(slot(model, 0, "m") == 0)
    arrays = {**W, "optimizer/vars/0": np.array(0), "optimizer/vars/1": np.array(0.001)}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an optimizer that never stepped: nothing lost, nothing said
        assert load(archive(arrays=arrays)).iterations == 0


# ---- weights only -----------------------------------------------------------------------------


def _polynn_model(**compile_args: Any) -> Sequential:
    model = Sequential([layers.Input((3,)), layers.Dense(4, activation="relu"), layers.Dropout(0.5),
                        layers.Dense(1, activation="sigmoid")])
    if compile_args:
        model.compile(**compile_args)
    return model


@pytest.mark.parametrize("kind", ["weights", "archive"])
def test_load_weights_from_a_weights_file_or_an_archive(kind):
    config = None if kind == "weights" else sequential()
    arrays = {**W, **adam_vars(), "layers/dropout/vars/0": np.array([1, 2], np.int64)}
    model = _polynn_model(loss="mse", dtype="float64")
    load_weights_from_keras(model, FakeFile(config, arrays, kind=kind))
    for got, path in zip(model.get_weights(), WEIGHT_PATHS):
        np.testing.assert_array_equal(got, W[path])


def test_load_weights_refusals():
    with pytest.raises(ModelFileError, match="input shape is unknown"):
        load_weights_from_keras(Sequential([layers.Dense(2)]), FakeFile(None, W, kind="weights"))
    with pytest.raises(ModelFileError, match=r"no variable 'layers/dense_2/vars/0'"):
        load_weights_from_keras(Sequential([layers.Input((3,)), layers.Dense(4), layers.Dense(1), layers.Dense(2)]),
                                FakeFile(None, W, kind="weights"))
    with pytest.raises(ModelFileError, match=r"'layers/conv2d/vars/0' is no weight of the model"):
        load_weights_from_keras(_polynn_model(), FakeFile(None, {**W, "layers/conv2d/vars/0": np.ones(2)},
                                                          kind="weights"))
    with pytest.raises(ModelFileError, match=r"'layers/dense_1/vars/0' has shape \(4, 1\); the model needs \(4, 2\)"):
        load_weights_from_keras(Sequential([layers.Input((3,)), layers.Dense(4), layers.Dense(2)]),
                                FakeFile(None, W, kind="weights"))
    bad = {**W, "layers/dense/vars/1": np.array([1.0, np.nan, 0, 0])}
    with pytest.raises(ModelFileError, match="'layers/dense/vars/1' holds 1 non-finite"):
        load_weights_from_keras(_polynn_model(), FakeFile(None, bad, kind="weights"))
    model = _polynn_model()
    load_weights_from_keras(model, FakeFile(None, bad, kind="weights"), allow_nonfinite=True)
    assert np.isnan(model.get_weights()[1][1])


# ---- refusals ---------------------------------------------------------------------------------


def _edit(path: list, value: Any, config: dict | None = None) -> dict:
    """A copy of `config` (the compiled sequential()) with the item at `path` set (or deleted when
    value is DELETE)."""
    config = copy.deepcopy(sequential(compiled=compile_config()) if config is None else config)
    target = config
    for key in path[:-1]:
        target = target[key]
    if value is DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return config


DELETE = object()
DENSE = ["config", "layers", 1, "config"]
OPT = ["compile_config", "optimizer", "config"]
LAMBDA = {"module": "keras.layers", "class_name": "Lambda", "registered_name": None,
          "config": {"name": "lambda", "function": {"class_name": "__lambda__",
                                                    "config": {"code": "4wEAAAAAAAAA", "defaults": None}}}}

# (name, config, error class, fragments every message must hold)
REFUSALS = [
    ("lambda_layer", _edit(["config", "layers", 1], LAMBDA), ModelFileError,
     ["layers[1]", "Lambda layer holds Python code", "never runs code"]),
    ("lambda_activation", _edit(DENSE + ["activation"], {"class_name": "__lambda__", "config": {"code": "AA=="}}),
     ModelFileError, ["activation", "serialized Python lambda is code"]),
    ("os_module", _edit(["config", "layers", 1, "module"], "os"), ModelFileError,
     ["custom layer", "module 'os'", "never imports or runs code", "'keras.layers'"]),
    ("builtins_class", _edit(["config", "layers", 1, "module"], "builtins"), ModelFileError,
     ["custom layer", "module 'builtins'"]),
    ("registered_name", _edit(["config", "layers", 1, "registered_name"], "MyPackage>MyDense"), ModelFileError,
     ["custom layer", "registered_name 'MyPackage>MyDense'", "registered_name null"]),
    ("custom_function", _edit(DENSE + ["activation"], {"module": "my_package.acts", "class_name": "function",
                                                       "config": "swishy", "registered_name": "my_package>swishy"}),
     ModelFileError, ["custom activation", "module 'my_package.acts'"]),
    ("os_system", _edit(DENSE + ["activation"], {"module": "os", "class_name": "function", "config": "system",
                                                 "registered_name": None}),
     ModelFileError, ["custom activation", "module 'os'", "never imports or runs code"]),
    ("system_by_name", _edit(DENSE + ["activation"], {"module": "builtins", "class_name": "function",
                                                      "config": "system", "registered_name": "function"}),
     UnknownComponentError, ["unknown Keras activation 'system'", "Known Keras activations:", "relu"]),
    ("dotted_class", _edit(["config", "layers", 1, "class_name"], "os.system"), ModelFileError,
     ["names the class 'os.system'", "never a module or a path"]),
    ("list_class", _edit(["config", "layers", 1, "class_name"], ["Dense"]), ModelFileError,
     ["layers[1].class_name names the class ['Dense']", "letters, digits and '_'"]),
    ("object_class", _edit(["class_name"], {"name": "Sequential"}), ModelFileError,
     ["config.json.class_name names the class {'name': 'Sequential'}", "letters, digits and '_'"]),
    ("conv_layer", _edit(["config", "layers", 1, "class_name"], "Conv3D"), UnknownComponentError,
     ["layers[1]", "unknown Keras layer 'Conv3D'", "Known Keras layers:", "Dense", "Dropout"]),
    ("functional", _edit(["class_name"], "Functional"), ModelFileError,
     ["Keras Functional model", "accepted: a Keras Sequential"]),
    ("keras_2", None, ModelFileError, ["keras_version is '2.15.0'", "Keras 3"]),
    ("weights_kind", None, ModelFileError, ["weights file (.weights.h5)", "load_weights"]),
    ("unknown_key", _edit(DENSE + ["mystery"], 1), ModelFileError,
     ["Dense has the config keys ['mystery']", "accepted:", "units"]),
    ("quantization", _edit(DENSE + ["quantization_config"], {"mode": "int8"}), ModelFileError,
     ["quantization_config={'mode': 'int8'}", "polynn does not quantize", "quantization_config=null"]),
    ("lora", _edit(DENSE + ["lora_rank"], 4), ModelFileError, ["lora_rank=4", "LoRA", "lora_rank=null"]),
    ("initializer_axes", _edit(DENSE + ["kernel_initializer", "config", "input_axes"], [0]), ModelFileError,
     ["GlorotUniform has input_axes=[0]", "input_axes=null"]),
    ("orthogonal_regularizer", _edit(DENSE + ["kernel_regularizer"], obj("keras.regularizers",
                                                                          "OrthogonalRegularizer", {"factor": 0.01})),
     UnknownComponentError, ["unknown Keras regularizer 'OrthogonalRegularizer'", "L1L2"]),
    ("mixed_policy", _edit(DENSE + ["dtype", "config", "name"], "mixed_float16"), ModelFileError,
     ["dtype policy 'mixed_float16'", "'float32' or 'float64'"]),
    ("quantized_policy", _edit(DENSE + ["dtype", "class_name"], "QuantizedDTypePolicy"), UnknownComponentError,
     ["unknown Keras dtype policy class 'QuantizedDTypePolicy'"]),
    ("two_dtypes", _edit(DENSE + ["dtype", "config", "name"], "float64"), ModelFileError,
     ["compute in ['float32', 'float64']", "one dtype for every layer"]),
    ("fixed_batch", _edit(["config", "layers", 0, "config", "batch_shape"], [32, 3]), ModelFileError,
     ["batch_shape is [32, 3]", "polynn fixes no batch size"]),
    ("sparse_input", _edit(["config", "layers", 0, "config", "sparse"], True), ModelFileError,
     ["sparse=true", "dense"]),
    ("input_later", _edit(["config", "layers", 2], input_layer(4)), ModelFileError,
     ["an InputLayer after the first layer"]),
    ("compile_config_list", _edit(["compile_config"], []), ModelFileError,
     ["compile_config is []", "accepted: an object"]),
    ("compile_config_false", _edit(["compile_config"], False), ModelFileError,
     ["compile_config is False", "accepted: an object"]),
    ("use_ema", _edit(OPT + ["use_ema"], True), ModelFileError,
     ["Adam has use_ema=true", "moving average", "use_ema=false"]),
    ("gradient_accumulation", _edit(OPT + ["gradient_accumulation_steps"], 2), ModelFileError,
     ["gradient_accumulation_steps=2", "gradient_accumulation_steps=null"]),
    ("loss_scale", _edit(OPT + ["loss_scale_factor"], 128.0), ModelFileError, ["loss_scale_factor=128.0"]),
    ("ftrl", _edit(["compile_config", "optimizer", "class_name"], "Ftrl"), UnknownComponentError,
     ["compile_config.optimizer", "unknown Keras optimizer 'Ftrl'", "Nadam"]),
    ("restarts", _edit(OPT + ["learning_rate"], schedule("CosineDecayRestarts", initial_learning_rate=0.1,
                                                           first_decay_steps=10)),
     UnknownComponentError, ["unknown Keras learning-rate schedule 'CosineDecayRestarts'", "CosineDecay"]),
    ("loss_weights", _edit(["compile_config", "loss_weights"], [1.0]), ModelFileError,
     ["loss_weights=[1.0]", "loss_weights=null"]),
    ("focal_loss", _edit(["compile_config", "loss"], "binary_focal_crossentropy"), UnknownComponentError,
     ["compile_config.loss", "unknown Keras loss 'binary_focal_crossentropy'"]),
    ("ce_loss", _edit(["compile_config", "loss"], "crossentropy"), ModelFileError,
     ["chosen by Keras from the labels' shapes"]),
    ("ignore_class", _edit(["compile_config", "loss"], obj("keras.losses", "SparseCategoricalCrossentropy", {
        "name": "s", "reduction": "sum_over_batch_size", "from_logits": False, "ignore_class": 0})),
     ModelFileError, ["ignore_class=0", "ignore_class=null"]),
    ("reduction_none", _edit(["compile_config", "loss"], obj("keras.losses", "MeanSquaredError", {
        "name": "mse", "reduction": None})), ModelFileError, ["reduction is 'none'"]),
    ("two_losses", _edit(["compile_config", "loss"], ["mse", "mae"]), ModelFileError, ["2 losses"]),
    ("f1_metric", _edit(["compile_config", "metrics"], ["f1_score"]), UnknownComponentError,
     ["compile_config.metrics[0]", "unknown Keras metric 'f1_score'"]),
    ("accuracy_case", _edit(["compile_config", "metrics"], ["Accuracy"]), ModelFileError,
     ["'Accuracy' is Keras's accuracy logged as 'Accuracy'", "'accuracy' or 'acc'"]),
    ("multi_label_auc", _edit(["compile_config", "metrics"], [obj("keras.metrics", "AUC", {
        "name": "auc", "multi_label": True})]), ModelFileError, ["AUC has multi_label=true"]),
    ("top_k_precision", _edit(["compile_config", "metrics"], [obj("keras.metrics", "Precision", {
        "name": "p", "top_k": 3})]), ModelFileError, ["Precision has top_k=3"]),
    ("other_output", _edit(["compile_config", "metrics"], {"head": ["mae"]}), ModelFileError,
     ["maps the outputs ['head']", "the model's one output, 'dense_1'"]),
    ("several_outputs", _edit(["compile_config", "metrics"], [["mae"], ["mse"]]), ModelFileError,
     ["several outputs"]),
    ("steps", _edit(["compile_config", "steps_per_execution"], 0), ModelFileError,
     ["steps_per_execution is 0", "a positive integer"]),
    ("bad_units", _edit(DENSE + ["units"], -2), ModelFileError,
     ["layers[1] (Dense 'dense')", "invalid units=-2", "an integer > 0"]),
    ("long_module", _edit(["config", "layers", 1, "module"], "k" * 100_000), ModelFileError,
     ["custom layer", "characters)"]),
    ("long_name", _edit(DENSE + ["units"], -2, _edit(DENSE + ["name"], "n" * 100_000)), ModelFileError,
     ["invalid units=-2", "characters)"]),
]
REFUSAL_CONFIGS = {name: config for name, config, _, _ in REFUSALS}


def _refused_file(name: str) -> FakeFile:
    if name == "keras_2":
        return archive(metadata={"keras_version": "2.15.0"})
    if name == "weights_kind":
        return archive(kind="weights")
    return archive(REFUSAL_CONFIGS[name])


@pytest.mark.parametrize("name, error, fragments", [(n, e, f) for n, _, e, f in REFUSALS],
                         ids=[n for n, *_ in REFUSALS])
def test_refusals_say_what_and_what_is_accepted(name, error, fragments):
    file = _refused_file(name)
    with pytest.raises(error) as caught:
        load(file)
    assert type(caught.value) is error
    message = str(caught.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    assert len(message) <= MESSAGE_LIMIT
    assert file.reads == []  # refused before any array is read


def test_a_config_of_too_many_layers_is_refused_before_any_is_built(monkeypatch):
    built = []
    monkeypatch.setattr(polynn._keras_import, "layer", lambda *args: built.append(args))
    relu = layer("ReLU", "re_lu")
    file = archive(sequential([relu] * polynn._keras_import.MAX_LAYERS))
    with pytest.raises(ModelFileError) as caught:
        load(file)
    assert f"lists {polynn._keras_import.MAX_LAYERS + 1} layers; accepted: at most" in str(caught.value)
    assert built == [] and file.reads == []


@pytest.mark.parametrize("arrays, fragments", [
    ({**W, **adam_vars(), "layers/conv2d/vars/0": np.ones(3)}, ["'layers/conv2d/vars/0' is no weight"]),
    ({**W, **adam_vars(), "layers/dense/vars/2": np.ones(3)}, ["'layers/dense/vars/2' is no weight"]),
    ({k: v for k, v in {**W, **adam_vars()}.items() if k != "layers/dense_1/vars/1"},
     ["no variable 'layers/dense_1/vars/1', the bias of layer 'dense_1'"]),
    ({**W, **adam_vars(), "layers/dense/vars/0": np.ones((4, 3))},
     ["'layers/dense/vars/0' has shape (4, 3); the model needs (3, 4)"]),
    ({**W, **adam_vars(), "layers/dense/vars/0": np.ones((3, 4), np.int32)},
     ["has dtype 'int32'; accepted: float16, float32, float64"]),
    ({**W, **adam_vars(), "optimizer/inner_optimizer/vars/0": np.ones(1)}, ["not one of a Keras optimizer's"]),
    ({**W, **adam_vars(), "optimizer/vars/0": np.array(1.5)}, ["iteration count", "an integer scalar"]),
    ({**W, **adam_vars(), "optimizer/vars/3": np.ones((4, 3))}, ["'optimizer/vars/3' has shape (4, 3)"]),
])
def test_variables_refused_before_any_is_read(arrays, fragments):
    file = archive(arrays=arrays)
    with pytest.raises(ModelFileError) as caught:
        load(file)
    for fragment in fragments:
        assert fragment in str(caught.value)
    assert file.reads == []


@pytest.mark.parametrize("path, held", [("layers/dense/vars/0", lambda m: m.get_weights()[0]),
                                        ("optimizer/vars/4", lambda m: slot(m, 1, "m"))])
def test_nonfinite_weights_and_slots_are_refused_unless_allowed(path, held):
    arrays = {**W, **adam_vars()}
    arrays[path] = arrays[path].copy()
    arrays[path].flat[0] = np.inf
    with pytest.raises(ModelFileError, match=f"'{path}' holds 1 non-finite"):
        load(archive(arrays=arrays))
    assert np.isinf(held(load(archive(arrays=arrays), allow_nonfinite=True)).flat[0])


def test_a_nonfinite_learning_rate_or_a_negative_count_is_refused():
    arrays = {**W, **adam_vars(), "optimizer/vars/1": np.array(np.nan, np.float32)}
    with pytest.raises(ModelFileError, match="the learning rate"):
        load(archive(arrays=arrays), allow_nonfinite=True)
    with pytest.raises(ModelFileError, match="iteration count, is -1"):
        load(archive(arrays={**W, **adam_vars(iterations=-1)}))


def test_every_keras_optimizer_polynn_has_its_slot_layout():
    for class_name, (spec, _) in OPTIMIZER_CLASSES.items():
        names = {name for block in OPTIMIZER_SLOTS[class_name] for name in block}
        full = {"SGD": {"momentum": 0.9}, "Adam": {"amsgrad": True}, "AdamW": {"amsgrad": True},
                "RMSprop": {"momentum": 0.5, "centered": True}}.get(class_name, {})
        assert set(spec(**full).slot_names()) == names, class_name


# ---- real Keras files, read through polynn.models.load_model and Sequential.load_weights ----------


# Every installed backend but the JAX example's (test_keras_parity's choice: it compiles each model).
from test_keras_parity import BACKENDS  # noqa: E402


@pytest.fixture(scope="module")
def keras():
    if os.environ.setdefault("KERAS_BACKEND", "tensorflow") != "tensorflow":
        pytest.skip("these tests compare with Keras on TensorFlow; KERAS_BACKEND names another backend")
    pytest.importorskip("h5py")
    pytest.importorskip("tensorflow")
    keras = pytest.importorskip("keras")
    if keras.config.backend() != "tensorflow" or not keras.__version__.startswith("3."):
        pytest.skip("these tests read the files of Keras 3 on TensorFlow")
    return keras


def _data(classes: int = 1):
    rng = np.random.default_rng(1000)
    x, x_val = rng.random((48, 6)), rng.random((16, 6))
    if classes == 1:
        return x, (x.sum(1, keepdims=True) > 3).astype(float), x_val, (x_val.sum(1, keepdims=True) > 3).astype(float)
    y = np.eye(classes)[rng.integers(0, classes, 48)]
    return x, y, x_val, np.eye(classes)[rng.integers(0, classes, 16)]


def _keras_model(keras, case: str):
    """A Keras model of `case`, compiled: (model, number of output classes)."""
    L, Opt, R, C = keras.layers, keras.optimizers, keras.regularizers, keras.constraints
    if case == "components":
        model = keras.Sequential([
            keras.Input((6,)),
            L.Dense(8, activation="tanh", kernel_initializer="he_uniform",
                    kernel_regularizer=R.L1L2(0.001, 0.002), bias_regularizer=R.L2(0.003),
                    activity_regularizer=R.L1(0.0005), kernel_constraint=C.MaxNorm(1.5)),
            L.LeakyReLU(0.1),
            L.Dense(8, activation="gelu", kernel_constraint=C.MinMaxNorm(0.1, 1.2, 0.7),
                    bias_constraint=C.NonNeg()),
            L.ELU(0.8),
            L.Dropout(0.0),
            L.Dense(6, activation=L.LeakyReLU(negative_slope=0.05), kernel_constraint=C.UnitNorm(axis=0)),
            L.ReLU(max_value=3.0),
            L.Dense(3, use_bias=False, kernel_initializer=keras.initializers.Orthogonal(seed=2)),
            L.Softmax(),
        ])
        model.compile(optimizer=Opt.Adam(learning_rate=Opt.schedules.InverseTimeDecay(0.01, 3, 0.37), clipnorm=1.0),
                      loss=keras.losses.CategoricalCrossentropy(label_smoothing=0.1),
                      metrics=["accuracy", "mse", keras.metrics.categorical_crossentropy,
                               keras.metrics.RootMeanSquaredError(name="rmse")],
                      weighted_metrics=[keras.metrics.CategoricalAccuracy(name="wacc")])
        return model, 3
    make = {"adam": lambda: Opt.Adam(), "adamw": lambda: Opt.AdamW(learning_rate=0.005),
            "nadam": lambda: Opt.Nadam(learning_rate=0.005),
            "sgd_momentum": lambda: Opt.SGD(learning_rate=0.05, momentum=0.9, nesterov=True),
            "rmsprop": lambda: Opt.RMSprop(learning_rate=0.01, momentum=0.5, centered=True),
            "adagrad": lambda: Opt.Adagrad(learning_rate=0.05), "adadelta": lambda: Opt.Adadelta(learning_rate=1.0),
            "adamax": lambda: Opt.Adamax(learning_rate=0.01),
            "adam_amsgrad_frozen": lambda: Opt.Adam(learning_rate=0.01, amsgrad=True)}[case]
    model = keras.Sequential([keras.Input((6,)), L.Dense(8, activation="relu"), L.Dense(4, activation="tanh"),
                              L.Dense(1, activation="sigmoid")])
    if case == "adam_amsgrad_frozen":
        model.layers[1].trainable = False
    model.compile(optimizer=make(), loss="binary_crossentropy", metrics=["accuracy"])
    return model, 1


@functools.cache
def _keras_run(keras, case: str, dtype: str, folder: str):
    """Train a Keras model of `case` for 2 epochs, save it, then 2 more: (file, predictions at the
    save, History and weights of the 2 epochs after)."""
    # Keras's default layer policy is made from floatx once, then kept: both are set, and put back.
    keras.config.set_floatx(dtype)
    keras.config.set_dtype_policy(dtype)
    try:
        keras.utils.set_random_seed(0)
        model, classes = _keras_model(keras, case)
        x, y, x_val, y_val = _data(classes)
        fit = {"batch_size": 16, "shuffle": False, "validation_data": (x_val, y_val), "verbose": 0}
        model.fit(x, y, epochs=2, **fit)
        path = os.path.join(folder, f"{case}-{dtype}.keras")
        model.save(path)
        model.save_weights(os.path.join(folder, f"{case}-{dtype}.weights.h5"))
        predictions = np.asarray(model.predict(x_val, verbose=0))
        history = model.fit(x, y, epochs=2, **fit).history
        return path, predictions, history, [np.asarray(w) for w in model.get_weights()]
    finally:
        keras.config.set_floatx("float32")
        keras.config.set_dtype_policy("float32")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return str(tmp_path_factory.mktemp("keras_files"))


def _gap(a, b) -> float:
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


TRAIN_CASES = ["adam", "sgd_momentum", "rmsprop", "adamw", "nadam", "adagrad", "adadelta", "adamax",
               "adam_amsgrad_frozen", "components"]


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", TRAIN_CASES)
def test_keras_model_predicts_and_trains_on_as_keras_float64(keras, folder, case, backend):
    path, predictions, history, weights = _keras_run(keras, case, "float64", folder)
    model = load_model(path, backend=backend)
    assert model.dtype == "float64" and model.backend == backend
    classes = 3 if case == "components" else 1
    x, y, x_val, y_val = _data(classes)
    assert _gap(model.predict(x_val, verbose=0), predictions) <= PREDICT_F64_TOLERANCE
    got = model.fit(x, y, batch_size=16, epochs=2, shuffle=False, validation_data=(x_val, y_val), verbose=0).history
    assert set(got) == set(history)
    history_gap = max(_gap(history[key], got[key]) for key in history)
    weight_gap = max(_gap(a, b) for a, b in zip(weights, model.get_weights(), strict=True))
    assert history_gap <= F64_TOLERANCE, f"History {history_gap:.2e} from Keras's"
    assert weight_gap <= F64_TOLERANCE, f"weights {weight_gap:.2e} from Keras's"


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", ["adam", "components"])
def test_keras_model_predicts_and_trains_on_as_keras_float32(keras, folder, case, backend):
    path, predictions, history, weights = _keras_run(keras, case, "float32", folder)
    model = load_model(path, backend=backend)
    assert model.dtype == "float32"
    classes = 3 if case == "components" else 1
    x, y, x_val, y_val = _data(classes)
    assert _gap(model.predict(x_val, verbose=0), predictions) <= F32_TOLERANCE
    got = model.fit(x, y, batch_size=16, epochs=2, shuffle=False, validation_data=(x_val, y_val), verbose=0).history
    assert max(_gap(history[key], got[key]) for key in history) <= F32_TOLERANCE
    assert max(_gap(a, b) for a, b in zip(weights, model.get_weights(), strict=True)) <= F32_TOLERANCE


@pytest.mark.slow
def test_uncompiled_keras_model(keras, folder):
    keras.config.set_floatx("float64")
    keras.config.set_dtype_policy("float64")
    try:
        keras.utils.set_random_seed(0)
        keras_model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(3, activation="elu"),
                                        keras.layers.Dense(2, activation="softmax")])
        path = os.path.join(folder, "uncompiled.keras")
        keras_model.save(path)
        predictions = np.asarray(keras_model.predict(_data()[2], verbose=0))
    finally:
        keras.config.set_floatx("float32")
        keras.config.set_dtype_policy("float32")
    model = load_model(path)
    assert not model.compiled
    model.compile(dtype="float64")
    assert _gap(model.predict(_data()[2], verbose=0), predictions) <= PREDICT_F64_TOLERANCE


@pytest.mark.slow
def test_keras_weights_file_loads_into_a_polynn_model(keras, folder):
    path, predictions, _, _ = _keras_run(keras, "components", "float64", folder)
    model = load_model(path)
    fresh = Sequential.from_config(model.get_config())
    fresh.compile(loss="mse", dtype="float64")
    fresh.load_weights(path.replace(".keras", ".weights.h5"))
    assert _gap(fresh.predict(_data(3)[2], verbose=0), predictions) <= PREDICT_F64_TOLERANCE


# Keras's names of its slot variables, per optimizer class, as polynn's slot names.
KERAS_SLOT_NAMES = {
    "Adam": {"momentum": "m", "velocity": "v", "velocity_hat": "v_hat"},
    "Nadam": {"momentum": "m", "velocity": "v"},
    "Adamax": {"momentum": "m", "norm": "u"},
    "SGD": {"momentum": "momentum"},
    "RMSprop": {"velocity": "velocity", "momentum": "momentum", "average_gradient": "average_gradient"},
    "Adagrad": {"accumulator": "accumulator"},
    "Adadelta": {"accumulated_grad": "accumulated_grad", "accumulated_delta_var": "accumulated_delta"},
}


@pytest.mark.slow
@pytest.mark.parametrize("case", ["adam_amsgrad_frozen", "rmsprop", "nadam", "adadelta", "adamax", "sgd_momentum",
                                  "adagrad"])
def test_each_keras_optimizer_variable_lands_in_its_polynn_slot(keras, folder, case):
    """Keras names a slot variable after its weight's path and the slot (adam/<model>_<layer>_kernel_momentum):
    each one's value, as Keras loads the file, is polynn's slot of that weight and name."""
    path, _, _, _ = _keras_run(keras, case, "float64", folder)
    keras_model = keras.models.load_model(path)
    model = load_model(path)
    names = KERAS_SLOT_NAMES[type(keras_model.optimizer).__name__]
    keys = [w.path.replace("/", "_") + "_" for layer in keras_model.layers for w in layer.weights]
    seen = 0
    for variable in keras_model.optimizer.variables:
        tail = variable.path.split("/", 1)[-1]
        owners = [k for k, key in enumerate(keys) if tail.startswith(key)]
        if not owners:
            continue  # the iteration count, the learning rate, Nadam's product
        k = max(owners, key=lambda k: len(keys[k]))
        np.testing.assert_array_equal(slot(model, k, names[tail[len(keys[k]):]]), np.asarray(variable.numpy()))
        seen += 1
    trainable = sum(len(layer.weights) for layer in keras_model.layers if layer.trainable)
    assert seen == trainable * len(model.optimizer.spec.slot_names()) > 0
