"""Keras's per-layer API: model.layers[i].get_weights()/set_weights()/weights, and trainable=False
freezing a layer in fit on every backend (weights, optimizer slots, penalties), kept in the file."""

from __future__ import annotations

import copy
import dataclasses
import pickle
import warnings
from typing import ClassVar

import numpy as np
import pytest

from polynn import hookimpl, plugins
from polynn.conformance import run_case
from polynn.conformance.freezing import cases as freezing_cases
from polynn.errors import (
    ImmutableSpecError,
    InvalidArgumentError,
    PolynnError,
    ShapeMismatchError,
    UnsupportedComponentError,
)
from polynn.initializers import Ones
from polynn.layers import Dense, Dropout, Input, Layer, WeightSpec
from polynn.models import BoundLayer, Sequential, load_model
from polynn.optimizers import SGD, Adam, AdamW
from polynn.regularizers import L2

BACKENDS = [pytest.param("numpy", id="numpy"), pytest.param("tensorflow", id="tensorflow"),
            pytest.param("torch", id="torch"), pytest.param("jax", id="jax", marks=pytest.mark.slow)]


def _available(backend):
    if backend != "numpy":
        pytest.importorskip(backend, reason=f"engine {backend} is not installed")
        if backend not in {e.name for e in plugins.backend_entries()}:
            pytest.skip(f"no backend {backend!r} registered")


def _data(n=40, features=3):
    rng = np.random.RandomState(5)
    x = rng.normal(size=(n, features))
    return x, np.tanh(x @ rng.normal(size=(features, 1)))


def _model(**first):
    return Sequential([Input((3,)), Dense(4, activation="tanh", **first), Dropout(0.0), Dense(1)])


# ---- model.layers --------------------------------------------------------------------------


def test_layers_read_as_their_specs():
    spec = Dense(4, activation="tanh")
    model = Sequential([Input((3,)), spec, Dense(1)])
    layer = model.layers[1]
    assert isinstance(layer, BoundLayer) and type(layer) is BoundLayer
    assert isinstance(layer, Dense) and isinstance(layer, Layer) and not isinstance(layer, Dropout)
    assert layer.spec is spec and layer == spec and spec == layer
    assert layer.units == 4 and layer.activation.name == "tanh" and layer.name == "dense"
    assert layer.get_config() == spec.get_config() and repr(layer) == repr(spec)
    assert model.layers[1] is layer  # the same object on every call, as Keras's
    assert Sequential.from_config(model.get_config()).layers == model.layers
    assert hash(layer) == hash(model.layers[1]) and layer in {layer}
    with pytest.raises(ImmutableSpecError, match="units=5 cannot be set"):
        layer.units = 5
    # Copying or pickling a model's layer gives its spec; adding it to another model adds the spec.
    assert copy.copy(layer) == spec and type(copy.deepcopy(layer)) is Dense
    assert type(pickle.loads(pickle.dumps(layer))) is Dense
    other = Sequential([Input((3,)), layer])
    assert other.layers[1].spec is spec and other.layers[1] is not layer


def test_a_copied_model_binds_its_own_layers():
    model = _model()
    model.build()
    clone = copy.deepcopy(model)
    assert isinstance(clone.layers[1], BoundLayer) and clone.layers[1] is not model.layers[1]
    clone.layers[1].trainable = False
    clone.layers[1].set_weights([np.zeros((3, 4)), np.ones(4)])
    assert model.layers[1].trainable and not np.array_equal(model.layers[1].get_weights()[1], np.ones(4))
    assert np.array_equal(pickle.loads(pickle.dumps(clone)).layers[1].get_weights()[1], np.ones(4))


def test_a_popped_layer_says_so():
    model = _model()
    last = model.layers[-1]
    model.pop()
    with pytest.raises(PolynnError, match="removed from model 'sequential'"):
        last.get_weights()
    with pytest.raises(PolynnError, match="removed from model 'sequential'"):
        last.trainable = False
    # It still reads as its spec: printing, isinstance and equality never raise.
    assert repr(last) == repr(Dense(1)) and isinstance(last, Dense) and last == Dense(1)
    assert hash(last) == hash(last.spec) or last in {last}


def test_a_frozen_layer_says_so_in_its_repr_and_a_trainable_one_reads_as_before():
    assert "trainable" not in repr(Dense(2))
    assert repr(Dense(2, trainable=False)).endswith("trainable=False)")
    assert repr(Dense(2, trainable=False, name="h")).endswith("name='h', trainable=False)")


def test_get_layer_by_name_or_index_as_keras():
    model = Sequential([Input((3,)), Dense(4, name="hidden"), Dense(1)])
    assert model.get_layer("hidden") is model.layers[1] and model.get_layer("dense") is model.layers[2]
    assert model.get_layer(index=-1) is model.layers[2]
    for bad in ({"name": "nope"}, {"index": 3}, {}, {"name": "hidden", "index": 1}, {"index": "1"}):
        with pytest.raises(InvalidArgumentError):
            model.get_layer(**bad)


def test_model_trainable_reads_from_its_layers_after_loading(tmp_path):
    model = _model()
    model.compile(SGD(), "mse", seed=3)
    model.trainable = False
    assert model.trainable is False
    model.save(tmp_path / "m.safetensors")
    loaded = load_model(tmp_path / "m.safetensors")
    assert loaded.trainable is False and not any(layer.trainable for layer in loaded.layers)
    loaded.layers[1].trainable = True
    assert loaded.trainable is True


def test_layer_weights_are_the_models_slices():
    model = _model()
    model.compile(SGD(), "mse", seed=3)
    weights = model.get_weights()
    assert [len(layer.weights) for layer in model.layers] == [0, 2, 0, 2]
    for got, expected in zip([w for layer in model.layers for w in layer.get_weights()], weights):
        assert got.dtype == np.float32 and np.array_equal(got, expected)
    assert all(isinstance(w, np.ndarray) for w in model.layers[1].weights)
    assert Sequential([Dense(2)]).layers[0].get_weights() == []  # no input shape yet: Keras's unbuilt []


def test_layer_set_weights_changes_that_layer_only_and_keeps_float64():
    model = _model()
    model.build()
    kernel = np.linspace(-1, 1, 12).reshape(3, 4) / 3  # not float32-exact
    before = model._exact_weights()
    model.layers[1].set_weights([kernel, np.arange(4)])  # ints are cast, as model.set_weights does
    model.compile(SGD(), "mse", dtype="float64", seed=3)
    after = model.get_weights()
    assert np.array_equal(after[0], kernel) and np.array_equal(after[1], np.arange(4.0))
    assert all(np.array_equal(a, b) for a, b in zip(after[2:], before[2:]))


@pytest.mark.parametrize("backend", BACKENDS)
def test_layer_set_weights_is_checked_and_atomic(backend):
    _available(backend)
    model = _model()
    model.compile(SGD(), "mse", seed=3, backend=backend)
    model.fit(*_data(), epochs=1, verbose=0)
    before = model.get_weights()
    layer = model.layers[3]
    with pytest.raises(ShapeMismatchError, match=r"layer dense_1: set_weights\(\) got 1 arrays; the layer has 2"):
        layer.set_weights([np.zeros((4, 1))])
    with pytest.raises(ShapeMismatchError, match=r"array 1 \(bias\) has shape \(2,\); expected \(1,\)"):
        layer.set_weights([np.ones((4, 1)), np.zeros(2)])
    with pytest.raises(InvalidArgumentError, match="an array of real numbers"):
        layer.set_weights([np.ones((4, 1)), np.array(["a"])])
    with pytest.raises(InvalidArgumentError, match="a list of arrays"):
        layer.set_weights(np.ones((4, 1)))
    # Ragged nested lists: NumPy's own ValueError used to reach the user, from both set_weights.
    with pytest.raises(InvalidArgumentError, match=r"weights\[0\].*nested lists of one shape"):
        layer.set_weights([[[1.0], [2.0, 3.0]], np.zeros(1)])
    with pytest.raises(InvalidArgumentError, match=r"weights\[2\].*nested lists of one shape"):
        model.set_weights([*before[:2], [[1.0], [2.0, 3.0]], before[3]])
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), before))  # nothing changed
    layer.set_weights([np.full((4, 1), 0.5), np.array([2.0])])
    after = model.get_weights()
    assert np.array_equal(after[2], np.full((4, 1), 0.5, np.float32)) and after[3][0] == 2.0
    assert all(np.array_equal(a, b) for a, b in zip(after[:2], before[:2]))
    assert model.predict(np.zeros((1, 3)), verbose=0)[0, 0] == pytest.approx(2.0 + 0.5 * np.sum(np.tanh(before[1])))


# ---- the trainable field -----------------------------------------------------------------


def test_trainable_is_a_keyword_field_in_the_config():
    frozen = Dense(4, "relu", trainable=False)  # positional arguments keep their places
    assert frozen.units == 4 and frozen.activation.name == "relu" and not frozen.trainable
    assert Dense(4).trainable is True and list(Dense(4).get_config())[0] == "trainable"  # first, as Keras's
    assert frozen.get_config()["trainable"] is False and Dense.from_config(frozen.get_config()) == frozen
    assert Dropout(0.5, trainable=np.bool_(False)).trainable is False
    with pytest.raises(InvalidArgumentError, match="invalid trainable='no'; accepted: True or False"):
        Dense(4, trainable="no")
    config = Dense(4).get_config()
    del config["trainable"]  # a config (or file) from before the field: trainable
    assert Dense.from_config(config).trainable is True


def test_setting_trainable_on_a_layer_replaces_its_spec():
    model = _model()
    layer = model.layers[1]
    layer.trainable = False
    assert layer.trainable is False and model.get_config()["layers"][1]["config"]["trainable"] is False
    assert layer.trainable_weights == [] and len(layer.non_trainable_weights) == 2
    with pytest.raises(InvalidArgumentError, match="dense: invalid trainable=1"):
        layer.trainable = 1
    model.trainable = True
    assert all(layer.trainable for layer in model.layers)
    model.trainable = False
    assert not any(layer.trainable for layer in model.layers) and model.trainable is False
    assert len(model.non_trainable_weights) == 4 and model.trainable_weights == []


def test_summary_splits_trainable_and_non_trainable_params():
    model = Sequential([Input((3,)), Dense(4, trainable=False), Dense(1)])
    lines = []
    model.summary(print_fn=lines.append)
    assert " Total params: 21 (84.00 B)" in lines  # Keras 3: 16 non-trainable, 5 trainable
    assert " Trainable params: 5 (20.00 B)" in lines and " Non-trainable params: 16 (64.00 B)" in lines


def test_the_file_keeps_trainable_and_old_files_load_trainable(tmp_path):
    model = _model(trainable=False)
    model.compile(Adam(), "mse", seed=3)
    model.fit(*_data(), epochs=1, verbose=0)
    model.save(tmp_path / "m.safetensors")
    loaded = load_model(tmp_path / "m.safetensors")
    assert [layer.trainable for layer in loaded.layers] == [True, False, True, True]
    assert all(np.array_equal(a, b) for a, b in zip(loaded.get_weights(), model.get_weights()))
    frozen = loaded.get_weights()[:2]
    loaded.fit(*_data(), epochs=1, verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(loaded.get_weights()[:2], frozen))
    # A file from before the field, its layer configs without "trainable", loads every layer trainable.
    config = _model().get_config()
    for layer in config["layers"]:
        del layer["config"]["trainable"]
    assert all(layer.trainable for layer in Sequential.from_config(config).layers)


# ---- freezing in fit -----------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_a_frozen_layer_keeps_its_weights_and_slots(backend, dtype):
    _available(backend)
    x, y = _data()
    model = Sequential([Input((3,)), Dense(4, activation="tanh", kernel_regularizer="l2", kernel_constraint="non_neg",
                                           trainable=False), Dense(1, kernel_regularizer="l2")])
    model.compile(AdamW(0.05, weight_decay=0.5, global_clipnorm=0.1), "mse", seed=3, backend=backend, dtype=dtype)
    start = model.get_weights()
    model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    end = model.get_weights()
    slots = model._compiled.runtime.get_optimizer_state()
    assert all(np.array_equal(a, b) for a, b in zip(end[:2], start[:2]))
    assert all(np.all(s == 0) for per_weight in slots[:2] for s in per_weight)
    assert not np.array_equal(end[2], start[2]) and all(np.any(s != 0) for s in slots[2])
    # The frozen kernel's l2 penalty is not in the loss (Keras 3); the trainable one's is.
    penalty = L2().l2_factor * np.sum(end[2].astype(np.float64) ** 2)  # Keras's float32-rounded 0.01
    p = model.predict(x, verbose=0).astype(np.float64)
    expected = np.mean((p - y) ** 2) + penalty
    assert model.evaluate(x, y, verbose=0) == pytest.approx(expected, rel=1e-5 if dtype == "float32" else 1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_trainable_changed_after_compile_takes_effect_at_the_next_fit(backend):
    _available(backend)
    x, y = _data()
    model = _model()
    model.compile(Adam(0.05), "mse", seed=3, backend=backend, dtype="float64")
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    runtime = model._compiled.runtime
    weights, slots = model.get_weights(), runtime.get_optimizer_state()
    model.layers[1].trainable = False
    model.evaluate(x, y, verbose=0)  # a new runtime, with the weights and optimizer state moved over
    assert model._compiled.runtime is not runtime and model.iterations == 5
    moved = model._compiled.runtime.get_optimizer_state()
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), weights))
    assert all(np.array_equal(a, b) for k in range(4) for a, b in zip(moved[k], slots[k]))
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    after, after_slots = model.get_weights(), model._compiled.runtime.get_optimizer_state()
    assert all(np.array_equal(a, b) for a, b in zip(after[:2], weights[:2]))
    assert all(np.array_equal(a, b) for k in (0, 1) for a, b in zip(after_slots[k], slots[k]))
    assert not np.array_equal(after[2], weights[2]) and model.iterations == 10


def test_a_layer_frozen_by_a_callback_waits_for_the_next_fit():
    from polynn.callbacks import Callback

    class Freeze(Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 0:
                self.model.layers[1].trainable = False
                self.model.evaluate(x, y, verbose=0)  # the fit's runtime stays the model's

    x, y = _data()
    model = _model()
    model.compile(SGD(0.1), "mse", seed=3)
    model.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[Freeze()])
    runtime = model._compiled.runtime
    trained = model.get_weights()
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert model._compiled.runtime is not runtime
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights()[:2], trained[:2]))


def test_a_callbacks_own_fit_does_not_end_the_outer_fits_runtime():
    # The inner fit used to end the outer fit's hold: the next evaluate or predict then rebuilt the
    # runtime for the frozen layer, and the outer fit's later epochs trained the dropped one.
    from polynn.callbacks import Callback

    seen = []

    class FreezeAndFit(Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 0:
                self.model.layers[1].trainable = False
                self.model.fit(x, y, batch_size=8, epochs=1, verbose=0)
            elif epoch == 1:
                self.model.predict(x, verbose=0)
            seen.append(self.model.get_weights())

    x, y = _data()
    model = _model()
    model.compile(SGD(0.1), "mse", seed=3)
    model.fit(x, y, batch_size=8, epochs=3, verbose=0, callbacks=[FreezeAndFit()])
    assert model.iterations == 4 * 5
    # The outer fit's last epoch moved the model's weights: its runtime is still the model's.
    assert not np.array_equal(seen[1][-1], seen[2][-1])
    assert np.array_equal(model.get_weights()[-1], seen[2][-1])


# ---- a runtime that cannot freeze ------------------------------------------------------------


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

    plugins.register_plugin(Plugin(), name, "polynn-test-freezing 1.0")


def test_a_runtime_that_does_not_say_it_freezes_is_refused(fresh_plugins):
    from polynn_numpy.runtime import NumpyRuntime

    class Unaware(NumpyRuntime):
        supports_frozen_weights = False

    _numpy_variant("unaware", Unaware)
    model = _model(trainable=False)
    with pytest.raises(UnsupportedComponentError, match=r"backend 'unaware' from plugin 'unaware' \(polynn-test-"
                       r"freezing 1.0\) cannot freeze layers: its runtime .*Unaware does not set "
                       r"supports_frozen_weights, and layer dense has trainable=False"):
        model.compile(SGD(), "mse", backend="unaware")
    assert not model.compiled
    unfrozen = _model()
    unfrozen.compile(SGD(), "mse", backend="unaware", seed=1)
    unfrozen.fit(*_data(), verbose=0)
    unfrozen.layers[1].trainable = False
    with pytest.raises(UnsupportedComponentError, match="cannot freeze layers"):
        unfrozen.fit(*_data(), verbose=0)
    # The kit reports it unsupported, not passed.
    result = run_case(freezing_cases()[0], "unaware", "float64")
    assert result.status == "unsupported" and "cannot freeze layers" in result.message


def test_the_kit_fails_a_runtime_that_trains_frozen_weights(fresh_plugins):
    from polynn_numpy.runtime import NumpyRuntime

    class Careless(NumpyRuntime):
        """Says it freezes, then builds its buffers as if nothing were frozen."""

        def __init__(self, backend, plan):
            super().__init__(backend, dataclasses.replace(plan, frozen_weights=()))
            self.plan = plan

    _numpy_variant("careless", Careless)
    for case in freezing_cases():
        for dtype in ("float64", "float32"):
            result = run_case(case, "careless", dtype)
            assert result.status == "fail", (case.name, dtype, result.message)
            assert "frozen_weights" in result.message


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_freezing_cases_pass(backend):
    _available(backend)
    for case in freezing_cases():
        result = run_case(case, backend, "float64")
        assert result.status == "pass", (case.name, result.message)


# ---- the rename of Layer.weights(input_shape) ----------------------------------------------


def test_weight_specs_and_the_deprecated_name():
    spec = Dense(4, use_bias=False)
    assert [w.name for w in spec.weight_specs((3,))] == ["kernel"]
    with pytest.warns(DeprecationWarning, match=r"renamed weight_specs\(input_shape\)"):
        assert spec.weights((3,)) == spec.weight_specs((3,))


def test_an_old_style_subclass_extending_a_layer_with_super_weights():
    # weights() calling super().weights() reached Layer.weights, which called weight_specs, the
    # subclass's own weights() again: a RecursionError where 24eac91 gave Dense's weights.
    with pytest.warns(DeprecationWarning, match=r"renamed weight_specs"):
        @dataclasses.dataclass(frozen=True)
        class KernelOnly(Dense):
            def weights(self, input_shape):
                return super().weights(input_shape)[:1]

        @dataclasses.dataclass(frozen=True)
        class KernelOnlyNew(KernelOnly):  # a newer subclass of it, with the new name
            def weight_specs(self, input_shape):
                return super().weight_specs(input_shape)

    for layer in (KernelOnly(4), KernelOnlyNew(4)):
        with pytest.warns(DeprecationWarning, match=r"renamed weight_specs"):
            assert [w.name for w in layer.weight_specs((3,))] == ["kernel"]
            assert [w.name for w in layer.weights((3,))] == ["kernel"]
    with pytest.warns(DeprecationWarning, match=r"renamed weight_specs"):
        assert Dense(4).weights((3,)) == Dense(4).weight_specs((3,))


def _scale_call(self, params, x, mask=None, activation=None):
    return x * params[0]


def test_an_old_style_plugin_layer_still_works_and_warns(fresh_plugins):
    with pytest.warns(DeprecationWarning, match=r"OldScale defines weights\(input_shape\), renamed weight_specs"):
        @dataclasses.dataclass(frozen=True)
        class OldScale(Layer):
            name: ClassVar[str] = "old_scale"

            def weights(self, input_shape):
                return [WeightSpec("scale", (input_shape[-1],), Ones(), None, None)]

            call = _scale_call

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # defining the new name warns nothing

        @dataclasses.dataclass(frozen=True)
        class NewScale(Layer):
            name: ClassVar[str] = "new_scale"

            def weight_specs(self, input_shape):
                return [WeightSpec("scale", (input_shape[-1],), Ones(), None, None)]

            call = _scale_call

    class Plugin:
        @hookimpl
        def polynn_register_components(self, register):
            register(OldScale)
            register(NewScale)

    plugins.register_plugin(Plugin(), "scales", "polynn-scales 1.0")
    x, y = _data()
    runs = []
    for layer in (OldScale(), NewScale()):
        model = Sequential([Input((3,)), layer, Dense(1)])
        model.compile(SGD(0.1), "mse", seed=3)
        model.fit(x, y, epochs=2, verbose=0)
        runs.append(model.get_weights())
        assert len(model.layers[1].weights) == 1 and model.count_params() == 7
    assert all(np.array_equal(a, b) for a, b in zip(*runs))
