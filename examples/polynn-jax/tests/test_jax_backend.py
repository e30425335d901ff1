"""The JAX backend computes the NumPy reference's numbers where the conformance kit does not look:
regularizers, constraints, layers and their options, user functions, data options, resuming; its
64-bit mode stays inside its calls. Only public APIs: polynn's and the backend's."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")

import polynn  # noqa: E402
from polynn import constraints, losses, metrics, ops, optimizers, plugins, regularizers  # noqa: E402
from polynn.errors import InvalidArgumentError  # noqa: E402
from polynn.hookspecs import COMPUTED_KINDS  # noqa: E402
from polynn.layers import Activation, Dense, Dropout, Input  # noqa: E402
from polynn.models import Sequential, load_model  # noqa: E402

BACKENDS = ("numpy", "jax")


def train_both(build, compile_kwargs, x, y, fit_kwargs=None, dtype="float64", seed=11):
    """Train build() on NumPy and on JAX with the same seed: {backend: {history, weights, model}}."""
    runs = {}
    for backend in BACKENDS:
        model = Sequential(build())
        model.compile(backend=backend, dtype=dtype, seed=seed, **compile_kwargs)
        history = model.fit(x, y, verbose=0, **(fit_kwargs or {}))
        runs[backend] = dict(model=model, history=history.history, weights=model.get_weights())
    return runs["numpy"], runs["jax"]


def assert_same_training(ref, got, rtol=1e-9, atol=1e-9):
    assert got["history"].keys() == ref["history"].keys()
    for key in ref["history"]:
        np.testing.assert_allclose(got["history"][key], ref["history"][key], rtol=rtol, atol=atol, err_msg=key)
    assert len(got["weights"]) == len(ref["weights"])
    for w_got, w_ref in zip(got["weights"], ref["weights"]):
        assert w_got.dtype == w_ref.dtype
        np.testing.assert_allclose(w_got, w_ref, rtol=0, atol=atol)


def _data(samples=40, features=6, units=3, seed=0, classes=False):
    rng = np.random.RandomState(seed)
    x = rng.normal(size=(samples, features))
    y = np.eye(units)[rng.randint(units, size=samples)] if classes else rng.normal(size=(samples, units))
    return x, y


# ---- registration ----------------------------------------------------------------------


def test_registered_through_its_entry_point_without_importing_jax():
    code = ("import sys, polynn_jax\nfrom polynn import plugins\n"
            "entry = {e.name: e for e in plugins.backend_entries()}['jax']\n"
            "print('jax' in sys.modules, entry.distribution, entry.engine, entry.install)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "polynn-jax", "0.1.0", "jax", "polynn-jax"]


def test_backend_supports_every_registered_first_party_component():
    backend = plugins.get_backend("jax")
    for kind in COMPUTED_KINDS:
        for cls in plugins.component_specs(kind):
            if cls.__module__.split(".")[0] == "polynn":
                assert backend.implementation(kind, cls.name) is not None, (kind, cls.name)


def test_64_bit_mode_stays_inside_the_backend():
    before = jax.config.read("jax_enable_x64")
    x, y = _data()
    model = Sequential([Dense(3, input_dim=6)])
    model.compile("sgd", "mse", backend="jax", dtype="float64", seed=1)
    model.fit(x, y, epochs=1, verbose=0)
    assert model.get_weights()[0].dtype == np.float64
    assert jax.config.read("jax_enable_x64") == before
    assert jnp.zeros(1).dtype == (jnp.float64 if before else jnp.float32)


def test_unknown_device_is_refused_naming_the_accepted_ones():
    model = Sequential([Dense(3, input_dim=6)])
    with pytest.raises(InvalidArgumentError, match="'gpu'.*None or 'cpu'"):
        model.compile("sgd", "mse", backend="jax", device="gpu")


# ---- regularizers, constraints and layers ------------------------------------------------


def test_regularizers_and_constraints_float64():
    def build():
        return [
            Dense(8, input_dim=6, activation="tanh", kernel_regularizer=regularizers.L1(0.01),
                  bias_regularizer=regularizers.L2(0.02), activity_regularizer=regularizers.L1L2(l1=0.01, l2=0.01),
                  kernel_constraint=constraints.MaxNorm(0.8), bias_constraint=constraints.NonNeg()),
            Dense(5, activation="relu", kernel_constraint=constraints.UnitNorm(axis=1),
                  kernel_regularizer=regularizers.L1L2(l1=0.003, l2=0.004)),
            Dense(3, kernel_constraint=constraints.MinMaxNorm(0.2, 0.6, rate=0.7, axis=0)),
        ]

    x, y = _data()
    ref, got = train_both(build, dict(optimizer=optimizers.Adam(0.05), loss="mse", metrics=["mae"]), x, y,
                          dict(batch_size=8, epochs=3))
    assert_same_training(ref, got)


def test_dropout_noise_shape_activation_and_input_layers_on_rank_3_inputs():
    def build():
        return [Input((4, 6)), Dense(7, activation="elu"), Dropout(0.3, noise_shape=(None, 1, 7)),
                Activation("softmax"), Dropout(0.25, seed=5), Dense(2, activation="sigmoid")]

    rng = np.random.RandomState(2)
    x = rng.normal(size=(30, 4, 6))
    y = rng.randint(2, size=(30, 4, 2)).astype(np.float64)
    ref, got = train_both(build, dict(optimizer="rmsprop", loss="binary_crossentropy", metrics=["accuracy"]),
                          x, y, dict(batch_size=7, epochs=2))
    assert_same_training(ref, got)
    np.testing.assert_allclose(got["model"].predict(x, verbose=0), ref["model"].predict(x, verbose=0),
                               rtol=0, atol=1e-9)


# ---- user functions written with polynn.ops --------------------------------------------


def _clipped_relu(x):
    return ops.clip(ops.maximum(x, 0.0), 0.0, 1.5)


def _hinge_like(y_true, y_pred):
    # max over the last axis (ties share), abs at 0, where, one_hot and take_along_axis.
    labels = ops.argmax(y_true, axis=-1)
    picked = ops.squeeze(ops.take_along_axis(y_pred, ops.expand_dims(labels, -1), axis=-1), -1)
    others = ops.where(ops.one_hot(labels, 3) > 0.5, -1e9 * ops.ones_like(y_pred), y_pred)
    return ops.maximum(ops.max(others, axis=-1) - picked + 1.0, 0.0) + 0.1 * ops.mean(ops.abs(y_pred), axis=-1)


def _log_ratio(y_true, y_pred):
    return ops.sum(ops.square(ops.log1p(ops.softplus(y_pred)) - ops.sigmoid(y_true)), axis=-1)


def test_custom_activation_loss_and_metric_train_as_on_numpy():
    def build():
        return [Dense(5, input_dim=6, activation=_clipped_relu), Dense(3)]

    x, y = _data(classes=True)
    compile_kwargs = dict(optimizer=optimizers.SGD(0.1, momentum=0.5), loss=losses.CustomLoss(function=_hinge_like),
                          metrics=[metrics.CustomMetric(function=_log_ratio)])
    for dtype, tol in (("float64", 1e-9), ("float32", 2e-5)):
        ref, got = train_both(build, compile_kwargs, x, y, dict(batch_size=10, epochs=3), dtype=dtype)
        assert_same_training(ref, got, rtol=tol, atol=tol)


def test_every_op_is_implemented_extra_ops_natively():
    """Every op, the extra ones too, is JAX's own; their values and gradients at ties and kinks are
    the conformance kit's op cases (test_jax_conformance.py)."""
    backend = plugins.get_backend("jax")
    names = polynn.ops.OP_NAMES + polynn.ops.EXTRA_OP_NAMES
    assert [name for name in names if not callable(getattr(backend.ops, name, None))] == []


# ---- data options, schedules, blocks of steps and resuming ------------------------------


def test_sample_weights_class_weights_and_validation_split():
    def build():
        return [Dense(6, input_dim=6, activation="gelu"), Dense(3, activation="softmax")]

    x, y = _data(60, classes=True)
    w = np.random.RandomState(4).uniform(0.0, 2.0, len(x))
    compile_kwargs = dict(optimizer=optimizers.Nadam(0.01), loss=losses.CategoricalCrossentropy(label_smoothing=0.1),
                          metrics=["accuracy", metrics.AUC(num_thresholds=9), metrics.Precision(class_id=1)],
                          weighted_metrics=["accuracy", metrics.AUC(num_thresholds=9)])
    ref, got = train_both(build, compile_kwargs, x, y,
                          dict(batch_size=9, epochs=2, sample_weight=w, class_weight={0: 2.0, 2: 0.5},
                               validation_split=0.25))
    assert_same_training(ref, got)
    for backend_run in (ref, got):
        backend_run["evaluated"] = backend_run["model"].evaluate(x, y, batch_size=11, sample_weight=w, verbose=0)
    np.testing.assert_allclose(got["evaluated"], ref["evaluated"], rtol=1e-9, atol=1e-9)


def test_a_custom_loss_must_give_one_value_per_sample_or_one_per_batch():
    model = Sequential([Dense(1, input_dim=3)])
    model.compile(optimizer="sgd", loss=lambda y_true, y_pred: ops.mean(y_pred - y_true, axis=0), backend="jax")
    with pytest.raises(InvalidArgumentError, match=r"values of custom loss <lambda>='shape \(1,\)'; "
                                                   r"accepted: one value per sample"):
        model.fit(np.ones((10, 3)), np.ones(10), batch_size=10, verbose=0)


@pytest.mark.parametrize("steps_per_execution", [1, 3, "auto"])
def test_blocks_of_any_size_and_a_learning_rate_schedule(steps_per_execution):
    def build():
        return [Dense(4, input_dim=6, activation="selu"), Dense(3)]

    x, y = _data(50)
    schedule = polynn.schedules.ExponentialDecay(0.05, decay_steps=4, decay_rate=0.7)
    compile_kwargs = dict(optimizer=optimizers.AdamW(schedule, amsgrad=True, global_clipnorm=1.0), loss="huber",
                          steps_per_execution=steps_per_execution)
    ref, got = train_both(build, compile_kwargs, x, y, dict(batch_size=8, epochs=2))
    assert_same_training(ref, got)


def test_resuming_from_a_saved_model_continues_exactly(tmp_path):
    def build():
        return [Dense(5, input_dim=6, activation="mish"), Dense(3)]

    x, y = _data()
    compile_kwargs = dict(optimizer=optimizers.Adadelta(1.0), loss="mae")
    ref, straight = train_both(build, compile_kwargs, x, y, dict(batch_size=8, epochs=2))
    assert_same_training(ref, straight)

    model = Sequential(build())
    model.compile(backend="jax", dtype="float64", seed=11, **compile_kwargs)
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    model.save(tmp_path / "half.polynn")
    resumed = load_model(tmp_path / "half.polynn", backend="jax")
    resumed.fit(x, y, batch_size=8, epochs=2, initial_epoch=1, verbose=0)
    for a, b in zip(resumed.get_weights(), straight["weights"]):
        np.testing.assert_array_equal(a, b)
