"""BatchNormalization and LayerNormalization: options and refusals, weights (non-trainable ones too),
training and inference modes, moving statistics on every backend, files, data-parallel refusal,
plugin layers with state, and the runtimes' contract for them.

Expected numbers come from the layers' formulas evaluated here in NumPy on the model's own
inputs, never from a backend."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import warnings
from typing import ClassVar

import numpy as np
import pytest

from polynn import hookimpl, ops, plugins
from polynn.conformance import run_case
from polynn.conformance.components import cases as component_cases
from polynn.conformance.tolerances import component as kit_tolerance
from polynn.distribution import Communicator, DataParallel
from polynn.errors import InvalidArgumentError, UnsupportedComponentError
from polynn.initializers import RandomUniform, Zeros
from polynn.layers import BatchNormalization, Dense, Input, Layer, LayerNormalization, WeightSpec
from polynn.models import Sequential, load_model
from polynn.optimizers import SGD, Adam
from polynn.regularizers import L2

F64 = 1e-12  # one formula on every engine: float64 rounding apart


def _backends(*extra):
    return [pytest.param(name, marks=() if importlib.util.find_spec(engine) else pytest.mark.skip(f"no {engine}"))
            for name, engine in (("numpy", "numpy"), ("tensorflow", "tensorflow"), ("torch", "torch"), *extra)]


BACKENDS = _backends()
# The JAX example runs polynn.runtime.OpsRuntime; it compiles every model, hence slow.
WITH_JAX = [*BACKENDS, pytest.param("jax", marks=[pytest.mark.slow, *(
    () if importlib.util.find_spec("polynn_jax") else (pytest.mark.skip("polynn-jax is not installed"),))])]


def _data(shape=(4,), rows=12, outputs=2, seed=0):
    rng = np.random.RandomState(seed)
    return rng.normal(size=(rows, *shape)), rng.normal(size=(rows, *shape[:-1], outputs))


def _model(layer, backend="numpy", shape=(4,), optimizer=None, dtype="float64", **compile_options):
    model = Sequential([Dense(5, input_shape=shape, activation="tanh"), layer, Dense(2)])
    model.compile(optimizer or SGD(learning_rate=0.0), "mse", backend=backend, dtype=dtype, seed=7, **compile_options)
    return model


def _hidden(model, x):
    """The first Dense's output: the normalization layer's input, computed here."""
    kernel, bias = model.get_weights()[:2]
    return np.tanh(x @ kernel + bias)


def _batch_norm(h, mean, variance, gamma, beta, epsilon):
    inv = gamma / np.sqrt(variance + epsilon)
    return h * inv + (beta - mean * inv)


def _moments(h, axes):
    mean = h.mean(axis=axes, keepdims=True)
    return mean, ((h - mean) ** 2).mean(axis=axes, keepdims=True)


# ---- options, weights, configs -------------------------------------------------------------------


def test_keras_3_defaults():
    bn = BatchNormalization()
    assert (bn.axis, bn.momentum, bn.epsilon, bn.center, bn.scale) == (-1, 0.99, 1e-3, True, True)
    assert [type(i).__name__ for i in (bn.beta_initializer, bn.gamma_initializer, bn.moving_mean_initializer,
                                       bn.moving_variance_initializer)] == ["Zeros", "Ones", "Zeros", "Ones"]
    assert bn.beta_regularizer is bn.gamma_regularizer is bn.beta_constraint is bn.gamma_constraint is None
    ln = LayerNormalization()
    assert (ln.axis, ln.epsilon, ln.center, ln.scale, ln.rms_scaling) == (-1, 1e-3, True, True, False)
    assert [f.name for f in dataclasses.fields(BatchNormalization) if f.init][2:6] == [
        "axis", "momentum", "epsilon", "center"]


@pytest.mark.parametrize(("make", "match"), [
    (lambda: BatchNormalization(axis=(1, 2)), r"BatchNormalization: invalid axis=\(1, 2\); accepted: an integer"),
    (lambda: BatchNormalization(axis=1.5), r"invalid axis=1.5; accepted: an integer"),
    (lambda: BatchNormalization(momentum="high"), r"invalid momentum='high'"),
    (lambda: BatchNormalization(epsilon=0.0), r"invalid epsilon=0.0; accepted: .*> 0"),
    (lambda: LayerNormalization(epsilon=-1e-3), r"LayerNormalization: invalid epsilon=-0.001"),
    (lambda: BatchNormalization(center=1), r"invalid center=1; accepted: True or False"),
    (lambda: LayerNormalization(scale="yes"), r"invalid scale='yes'; accepted: True or False"),
    (lambda: LayerNormalization(rms_scaling=None), r"invalid rms_scaling=None"),
    (lambda: LayerNormalization(axis=()), r"invalid axis=\(\); accepted: an integer or a non-empty tuple"),
    (lambda: LayerNormalization(axis=(1, "2")), r"invalid axis='2'; accepted: an integer"),
    (lambda: BatchNormalization(gamma_regularizer="no_such"), r"no_such"),
])
def test_bad_options_are_refused_with_the_value_and_what_is_accepted(make, match):
    with pytest.raises(Exception, match=match):
        make()


@pytest.mark.parametrize("layer", [BatchNormalization(axis=0), BatchNormalization(axis=3), BatchNormalization(axis=-3),
                                   LayerNormalization(axis=(0, 1)), LayerNormalization(axis=(1, -2)),
                                   LayerNormalization(axis=5)], ids=repr)
def test_axes_must_be_distinct_feature_axes_of_the_input(layer):
    with pytest.raises(InvalidArgumentError, match=r"invalid axis=.*; accepted: (a feature axis of the layer's "
                                                   r"input of rank 3|distinct axes)"):
        Sequential([Input((3, 6)), layer]).build()


@pytest.mark.parametrize(("layer", "expected"), [
    (BatchNormalization(), [("gamma", (6,), True), ("beta", (6,), True), ("moving_mean", (6,), False),
                            ("moving_variance", (6,), False)]),
    (BatchNormalization(axis=1, scale=False), [("beta", (3,), True), ("moving_mean", (3,), False),
                                               ("moving_variance", (3,), False)]),
    (BatchNormalization(center=False, scale=False), [("moving_mean", (6,), False), ("moving_variance", (6,), False)]),
    (LayerNormalization(), [("gamma", (6,), True), ("beta", (6,), True)]),
    (LayerNormalization(axis=(-1, 1), center=False), [("gamma", (3, 6), True)]),
    (LayerNormalization(rms_scaling=True, scale=False), [("gamma", (6,), True)]),
    (LayerNormalization(center=False, scale=False), []),
], ids=repr)
def test_weights_in_keras_order_with_their_trainable_flags(layer, expected):
    assert [(w.name, w.shape, w.trainable) for w in layer.weight_specs((3, 6))] == expected
    assert layer.output_shape((3, 6)) == (3, 6)


def test_weight_spec_keeps_its_five_field_form():
    spec = WeightSpec("kernel", (2, 3), None, None, None)
    assert spec.trainable is True and spec == ("kernel", (2, 3), None, None, None, True)


@pytest.mark.parametrize("layer", [
    BatchNormalization(axis=1, momentum=0.5, epsilon=0.01, center=False, gamma_regularizer=L2(0.1),
                       beta_constraint="non_neg", moving_variance_initializer="random_uniform", name="bn"),
    LayerNormalization(axis=(1, 2), rms_scaling=True, trainable=False),
    LayerNormalization(axis=-2, scale=False, beta_regularizer="l1"),
], ids=lambda layer: layer.name)
def test_config_round_trips_through_json(layer):
    config = json.loads(json.dumps(layer.get_config()))
    assert type(layer).from_config(config) == layer
    model = Sequential([Input((3, 6)), layer])
    assert Sequential.from_config(json.loads(json.dumps(model.get_config()))).get_config() == model.get_config()


def test_summary_counts_moving_statistics_as_non_trainable(capsys):
    model = Sequential([Dense(5, input_dim=4), BatchNormalization(), LayerNormalization(), Dense(2)])
    model.summary()
    text = capsys.readouterr().out
    specs = [ws for _, ws in model._weight_specs((4,))]
    trainable = sum(int(np.prod(ws.shape)) for ws in specs if ws.trainable)
    moving = sum(int(np.prod(ws.shape)) for ws in specs if not ws.trainable)
    assert f" Trainable params: {trainable:,} (" in text and f" Non-trainable params: {moving:,} (" in text
    assert moving == 10
    # Keras's table wraps a name longer than its column onto a second line.
    assert "│ batch_normalization             │" in text and "│ (BatchNormalization)            │" in text


def test_model_and_layer_split_trainable_and_non_trainable_weights_as_keras():
    model = _model(BatchNormalization(momentum=0.5))
    names = [ws.name for _, ws in model._weight_specs((4,))]
    assert names == ["kernel", "bias", "gamma", "beta", "moving_mean", "moving_variance", "kernel", "bias"]
    weights = model.get_weights()
    assert [w.shape for w in model.non_trainable_weights] == [(5,), (5,)]
    np.testing.assert_array_equal(model.non_trainable_weights[1], weights[5])
    assert len(model.trainable_weights) == 6
    bn = model.layers[1]
    assert [w.shape for w in bn.trainable_weights] == [(5,), (5,)] and len(bn.non_trainable_weights) == 2
    bn.trainable = False
    assert bn.trainable_weights == [] and len(bn.non_trainable_weights) == 4
    assert len(model.non_trainable_weights) == 4 and len(model.trainable_weights) == 4


# ---- training and inference -------------------------------------------------------------------------


@pytest.mark.parametrize("backend", WITH_JAX)
def test_each_training_step_moves_the_moving_statistics_by_momentum(backend):
    """Rate 0, so the layer's input is the same in every step: its statistics are computed here."""
    x, y = _data()
    model = _model(BatchNormalization(momentum=0.75), backend)
    h = _hidden(model, x)
    model.fit(x, y, batch_size=6, epochs=1, shuffle=False, verbose=0)
    mean, variance = np.zeros(5), np.ones(5)
    for rows in (slice(0, 6), slice(6, 12)):
        mean = mean * 0.75 + h[rows].mean(axis=0) * (1 - 0.75)
        variance = variance * 0.75 + h[rows].var(axis=0) * (1 - 0.75)  # the biased variance
    moving_mean, moving_variance = model.get_weights()[4:6]
    np.testing.assert_allclose(moving_mean, mean, rtol=0, atol=F64)
    np.testing.assert_allclose(moving_variance, variance, rtol=0, atol=F64)


@pytest.mark.parametrize("backend", BACKENDS)
def test_training_normalizes_by_the_batch_and_inference_by_the_moving_statistics(backend):
    x, y = _data(shape=(3, 4))
    model = _model(BatchNormalization(axis=1, momentum=0.5, epsilon=0.01), backend, shape=(3, 4))
    weights = model.get_weights()
    gamma, beta = (w.reshape(1, 3, 1) for w in weights[2:4])
    dense = weights[6:]
    h = _hidden(model, x)
    trained = _batch_norm(h, *_moments(h, (0, 2)), gamma, beta, 0.01) @ dense[0] + dense[1]
    history = model.fit(x, y, batch_size=12, epochs=1, verbose=0)
    np.testing.assert_allclose(history.history["loss"][0], np.mean((trained - y) ** 2), rtol=F64)
    after = model.get_weights()
    mean, variance = (w.reshape(1, 3, 1) for w in after[4:6])
    inferred = _batch_norm(h, mean, variance, gamma, beta, 0.01) @ dense[0] + dense[1]
    np.testing.assert_allclose(model.predict(x, verbose=0), inferred, rtol=0, atol=F64)
    np.testing.assert_allclose(model.evaluate(x, y, verbose=0), np.mean((inferred - y) ** 2), rtol=F64)
    # evaluate and predict update nothing
    for before, now in zip(after, model.get_weights()):
        np.testing.assert_array_equal(before, now)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_frozen_batch_normalization_runs_in_inference_mode_and_keeps_its_weights(backend):
    x, y = _data()
    model = _model(BatchNormalization(momentum=0.5, trainable=False, moving_mean_initializer=RandomUniform(-0.5, 0.5),
                                      moving_variance_initializer=RandomUniform(0.5, 1.5)), backend,
                   optimizer=Adam(learning_rate=0.1))
    before = model.get_weights()
    inference_loss = model.evaluate(x, y, batch_size=12, verbose=0)
    history = model.fit(x, y, batch_size=12, epochs=3, verbose=0)
    assert history.history["loss"][0] == pytest.approx(inference_loss, rel=F64)
    after = model.get_weights()
    for k in range(2, 6):
        np.testing.assert_array_equal(after[k], before[k])
    assert not np.allclose(after[0], before[0])


@pytest.mark.parametrize("backend", BACKENDS)
def test_freezing_after_compile_stops_the_updates_even_without_gamma_and_beta(backend):
    x, y = _data()
    model = _model(BatchNormalization(momentum=0.5, center=False, scale=False), backend)
    model.fit(x, y, batch_size=6, epochs=1, verbose=0)
    moved = model.get_weights()[2:4]
    model.layers[1].trainable = False
    model.fit(x, y, batch_size=6, epochs=1, verbose=0)
    for now, then in zip(model.get_weights()[2:4], moved):
        np.testing.assert_array_equal(now, then)
    model.layers[1].trainable = True
    model.fit(x, y, batch_size=6, epochs=1, verbose=0)
    assert not np.allclose(model.get_weights()[2], moved[0])


@pytest.mark.parametrize("backend", BACKENDS)
def test_no_optimizer_slot_penalty_or_constraint_reaches_the_moving_statistics(backend):
    x, y = _data()
    layer = BatchNormalization(momentum=0.5, gamma_regularizer=L2(0.5), beta_constraint="non_neg")
    model = _model(layer, backend, optimizer=Adam(learning_rate=0.1))
    model.fit(x, y, batch_size=6, epochs=2, verbose=0)
    slots = model._compiled.runtime.get_optimizer_state()
    for k in (4, 5):  # moving_mean, moving_variance: Adam's slots as they started
        for slot in slots[k]:
            np.testing.assert_array_equal(slot, np.zeros(5))
    for k in (2, 3):
        assert any(np.any(slot != 0) for slot in slots[k])
    assert np.all(model.get_weights()[3] >= 0)  # beta projected
    # The loss holds the gamma penalty and nothing for the moving statistics.
    gamma = model.get_weights()[2]
    loss = model.evaluate(x, y, verbose=0)
    without = _model(dataclasses.replace(layer, gamma_regularizer=None), backend)
    without.set_weights(model.get_weights())
    np.testing.assert_allclose(loss - without.evaluate(x, y, verbose=0), 0.5 * np.sum(gamma ** 2), rtol=1e-10)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_step_with_a_nonfinite_loss_rolls_the_moving_statistics_back_too(backend):
    x, y = _data()
    y_bad = y.copy()
    y_bad[8] = 1e200  # the second batch of 6: its squared error overflows
    model = _model(BatchNormalization(momentum=0.5), backend, optimizer=SGD(learning_rate=0.1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(x, y_bad, batch_size=6, epochs=1, shuffle=False, verbose=0)
    reference = _model(BatchNormalization(momentum=0.5), backend, optimizer=SGD(learning_rate=0.1))
    reference.fit(x[:6], y[:6], batch_size=6, epochs=1, shuffle=False, verbose=0)
    for got, want in zip(model.get_weights(), reference.get_weights()):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("backend", BACKENDS)
def test_layer_normalization_computes_its_formula_in_training_and_inference(backend):
    x, y = _data(shape=(3, 4))
    for layer, axes in ((LayerNormalization(axis=(1, 2), epsilon=0.1), (1, 2)),
                        (LayerNormalization(axis=1, center=False), (1,)),
                        (LayerNormalization(rms_scaling=True), (2,))):
        model = _model(layer, backend, shape=(3, 4), optimizer=SGD(learning_rate=0.0))
        rng = np.random.RandomState(3)
        model.set_weights([w + rng.uniform(-0.5, 0.5, size=w.shape) for w in model.get_weights()])
        weights = model.get_weights()
        h = _hidden(model, x)
        shape = [1, 3, 5]
        gamma = weights[2].reshape([n if a in axes else 1 for a, n in enumerate(shape)])
        mean, variance = _moments(h, axes)
        if layer.rms_scaling:
            z = h / np.sqrt(variance + layer.epsilon) * gamma
        else:
            beta = weights[3].reshape(gamma.shape) if layer.center else 0.0
            z = _batch_norm(h, mean, variance, gamma, beta, layer.epsilon)
        expected = z @ weights[-2] + weights[-1]
        np.testing.assert_allclose(model.predict(x, verbose=0), expected, rtol=0, atol=F64)
        history = model.fit(x, y, batch_size=12, epochs=1, verbose=0)
        np.testing.assert_allclose(history.history["loss"][0], np.mean((expected - y) ** 2), rtol=F64)


# ---- files ----------------------------------------------------------------------------------------------


def _trained(backend="numpy"):
    x, y = _data(shape=(3, 4))
    model = Sequential([Dense(5, input_shape=(3, 4), activation="tanh"), BatchNormalization(axis=1, momentum=0.5),
                        LayerNormalization(axis=(1, 2)), Dense(2)])
    model.compile(Adam(learning_rate=0.05), "mse", backend=backend, dtype="float64", seed=5)
    model.fit(x, y, batch_size=4, epochs=2, verbose=0)
    return model, x, y


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", ["model.safetensors", "model.keras"])
def test_the_moving_statistics_survive_a_file_and_training_resumes_on_another_backend(tmp_path, backend, name):
    if name.endswith(".keras"):
        pytest.importorskip("h5py")
    model, x, y = _trained()
    path = tmp_path / name
    model.save(path)
    loaded = load_model(path, backend=backend)
    assert loaded.backend == backend
    for got, want in zip(loaded.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=0, atol=F64)
    model.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    loaded.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    for got, want in zip(loaded.get_weights(), model.get_weights()):
        np.testing.assert_allclose(got, want, rtol=0, atol=F64)


def test_weights_files_hold_the_moving_statistics(tmp_path):
    model, x, _ = _trained()
    fresh = Sequential.from_config(model.get_config())
    fresh.compile(Adam(), "mse", dtype="float64")
    fresh.build((3, 4))
    fresh.load_weights(_saved_weights(model, tmp_path / "w.safetensors"))
    for got, want in zip(fresh.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(got, want)


def _saved_weights(model, path):
    model.save_weights(path)
    return path


needs_onnx = pytest.mark.skipif(not (importlib.util.find_spec("onnx") and importlib.util.find_spec("onnxruntime")),
                                reason="needs onnx and onnxruntime")


@needs_onnx
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("layer", [
    BatchNormalization(momentum=0.5), BatchNormalization(axis=1, momentum=0.3, center=False),
    LayerNormalization(), LayerNormalization(axis=(1, 2), scale=False), LayerNormalization(axis=1, rms_scaling=True),
    LayerNormalization(center=False, scale=False)], ids=repr)
def test_onnx_runtime_computes_what_predict_does(tmp_path, layer, dtype):
    import onnxruntime

    x, y = _data(shape=(3, 4), rows=24)
    model = Sequential([Dense(5, input_shape=(3, 4), activation="tanh"), layer, Dense(2)])
    model.compile(Adam(learning_rate=0.05), "mse", dtype=dtype, seed=3)
    model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    path = tmp_path / "m.onnx"
    model.export(path, opset_version=21)  # ReduceSum's axes input holds at every opset from 13 on
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"input": x.astype(dtype)})
    want = model.predict(x, verbose=0)
    # float32: ONNX Runtime sums a mean in its own order, as torch and TensorFlow do: the kit's
    # float32 prediction tolerance, which every engine meets against NumPy.
    tolerance = kit_tolerance(dtype, "layer", ["predictions"])["predictions"]
    rtol, atol = (0.0, F64) if dtype == "float64" else (tolerance.rtol, tolerance.atol)
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)


# ---- data-parallel training ---------------------------------------------------------------------------


class _Alone(Communicator):
    """A job of one process (the sum over one is the array itself)."""

    engine = "threads"

    def __init__(self):
        super().__init__(0, 1, 0)

    def all_reduce_sum(self, array):
        pass


def test_data_parallel_training_refuses_batch_normalization_naming_it():
    model = Sequential([Dense(5, input_dim=4), BatchNormalization(), Dense(2)])
    with pytest.raises(InvalidArgumentError, match=r"layer batch_normalization: invalid distribution='data_parallel'; "
                                                   r"accepted: None with layer batch_normalization "
                                                   r"\(BatchNormalization\): .*statistics of the whole batch.*freeze"):
        model.compile("sgd", "mse", distribution=DataParallel(_Alone()))
    assert not model.compiled


def test_data_parallel_training_takes_a_frozen_batch_normalization_and_refuses_it_unfrozen():
    x, y = _data()
    frozen = _model(BatchNormalization(trainable=False, moving_mean_initializer="random_uniform"),
                    distribution=DataParallel(_Alone()), optimizer=SGD(0.1))
    alone = _model(BatchNormalization(trainable=False, moving_mean_initializer="random_uniform"), optimizer=SGD(0.1))
    frozen.fit(x, y, batch_size=6, epochs=1, shuffle=False, verbose=0)
    alone.fit(x, y, batch_size=6, epochs=1, shuffle=False, verbose=0)
    for got, want in zip(frozen.get_weights(), alone.get_weights()):
        np.testing.assert_allclose(got, want, rtol=0, atol=F64)
    frozen.layers[1].trainable = True
    with pytest.raises(InvalidArgumentError, match="layer batch_normalization"):
        frozen.fit(x, y, verbose=0)


# ---- the runtime contract, and plugin layers with state ---------------------------------------------------


def _numpy_variant(name, runtime_class):
    from polynn_numpy.backend import NumpyBackend

    class Variant(NumpyBackend):
        def compile(self, plan):
            self.check_plan(plan)
            return runtime_class(self, plan)

    Variant.name = name

    class Plugin:
        @hookimpl
        def polynn_register_backends(self, register):
            register(name, Variant, engine="numpy")

    plugins.register_plugin(Plugin(), name, "polynn-test-normalization 1.0")


def _momentum_case():
    (case,) = [c for c in component_cases(["layer"]) if c.name == "layer.batch_normalization(momentum=0.5)"]
    return case


def test_a_runtime_that_does_not_say_it_updates_state_is_refused(fresh_plugins):
    from polynn_numpy.runtime import NumpyRuntime

    class Unaware(NumpyRuntime):
        supports_state_updates = False

    _numpy_variant("unaware", Unaware)
    with pytest.raises(UnsupportedComponentError, match=r"cannot train layers with state: its runtime .*Unaware does "
                                                        r"not set supports_state_updates, and layer "
                                                        r"batch_normalization updates"):
        _model(BatchNormalization(), "unaware")
    _model(BatchNormalization(trainable=False), "unaware").fit(*_data(), verbose=0)  # inference only: no state
    result = run_case(_momentum_case(), "unaware", "float64")
    assert result.status == "unsupported" and "supports_state_updates" in result.message


def test_the_kit_fails_a_runtime_that_skips_the_state_updates(fresh_plugins):
    from polynn_numpy.runtime import NumpyRuntime

    class Careless(NumpyRuntime):
        """Says it updates layer state, then never does."""

        def __init__(self, backend, plan):
            super().__init__(backend, plan)
            self.layer_state = {}

    _numpy_variant("careless", Careless)
    assert run_case(_momentum_case(), "careless", "float64").status == "fail"
    assert run_case(_momentum_case(), "numpy", "float64").status == "pass"


@dataclasses.dataclass(frozen=True)
class StepCounter(Layer):
    """y = 2 x in training, x in inference; `steps` (non-trainable) counts the training steps."""

    name: ClassVar[str] = "step_counter_test"

    def weight_specs(self, input_shape):
        return [WeightSpec("steps", (1,), Zeros(), None, None, trainable=False)]

    def call(self, params, x, mask=None, activation=None, training=False):
        return x * 2.0 if training else x

    def state_updates(self, params, x):
        return [params[0] + ops.ones_like(params[0])]


class _CounterPlugin:
    @hookimpl
    def polynn_register_components(self, register):
        register(StepCounter)


@pytest.mark.parametrize("backend", WITH_JAX)
def test_a_plugin_layer_with_a_training_mode_and_state_runs_on_every_backend(fresh_plugins, backend):
    plugins.register_plugin(_CounterPlugin(), "step-counter", "polynn-test-counter 1.0")
    x, y = _data()
    model = Sequential([Input((4,)), StepCounter(), Dense(2, use_bias=False)])
    model.compile(SGD(learning_rate=0.0), "mse", backend=backend, dtype="float64", seed=2)
    kernel = model.get_weights()[1]
    history = model.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0)
    assert model.get_weights()[0].tolist() == [6.0]
    np.testing.assert_allclose(history.history["loss"][0], np.mean((2 * x @ kernel - y) ** 2), rtol=F64)
    np.testing.assert_allclose(model.predict(x, verbose=0), x @ kernel, rtol=0, atol=F64)
    model.evaluate(x, y, verbose=0)
    assert model.get_weights()[0].tolist() == [6.0]
    model.layers[1].trainable = False  # frozen: no state updates (Keras 3)
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    assert model.get_weights()[0].tolist() == [6.0]
