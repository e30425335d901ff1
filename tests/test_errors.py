"""Every error polynn raises on purpose: its class in polynn.errors and a message naming what was
wrong, the value given and what is accepted."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import polynn
from polynn import errors, losses, metrics, optimizers
from polynn.layers import Dense, Dropout, Input
from polynn.models import Sequential


def compiled(loss="mse", units=1, activation=None, **kwargs):
    model = Sequential([Dense(units, input_dim=3, activation=activation)])
    model.compile(optimizer="sgd", loss=loss, **kwargs)
    return model


def test_hierarchy():
    for cls in (errors.InvalidArgumentError, errors.UnknownComponentError, errors.ShapeMismatchError,
                errors.UnknownBackendError, errors.UnsupportedComponentError, errors.ModelFileError):
        assert issubclass(cls, errors.PolynnError) and issubclass(cls, ValueError)
    assert issubclass(errors.NotCompiledError, RuntimeError)
    assert issubclass(errors.BackendNotInstalledError, ImportError)
    assert issubclass(errors.PluginError, errors.PolynnError)


@pytest.mark.parametrize("get,value,close,known", [
    (optimizers.get, "adamm", "'adam'", "adam, rmsprop, sgd"),
    (losses.get, "binary_crossentropyy", "'binary_crossentropy'", "mean_squared_error"),
    (polynn.activations.get, "rellu", "'relu'", "sigmoid"),
    (polynn.layers.get, "Dence", "'dense'", "dropout"),
    (polynn.initializers.get, "glorot_uniformm", "'glorot_uniform'", "he_normal"),
    (polynn.regularizers.get, "l3", "'l2', 'l1'", "l1_l2"),
    (metrics.get, "accurasy", "'accuracy'", "binary_accuracy"),
])
def test_unknown_component_names_closest_valid_names(get, value, close, known):
    with pytest.raises(errors.UnknownComponentError) as info:
        get(value)
    message = str(info.value)
    assert repr(value) in message
    assert f"Did you mean {close}" in message
    assert known in message


def test_unknown_component_message_plural():
    with pytest.raises(errors.UnknownComponentError, match="Known losses: "):
        losses.get("nope")


def test_unknown_component_inside_compile_and_layer():
    model = Sequential([Dense(1, input_dim=3)])
    with pytest.raises(errors.UnknownComponentError, match=r"unknown optimizer 'adm'.*Did you mean 'adam'"):
        model.compile(optimizer="adm", loss="mse")
    with pytest.raises(errors.UnknownComponentError, match=r"unknown metric 'acuracy'.*Did you mean 'accuracy'"):
        model.compile(optimizer="adam", loss="mse", metrics=["acuracy"])
    with pytest.raises(errors.UnknownComponentError, match=r"unknown activation 'sigmod'.*'sigmoid'"):
        Dense(3, activation="sigmod")


@pytest.mark.parametrize("make,name,value,accepted", [
    (lambda: Dense(0), "units", "0", "an integer > 0"),
    (lambda: Dense(-2), "units", "-2", "an integer > 0"),
    (lambda: Dense(2.5), "units", "2.5", "an integer > 0"),
    (lambda: Dropout(1.0), "rate", "1.0", "< 1.0"),
    (lambda: Dropout(-0.1), "rate", "-0.1", ">= 0.0"),
    (lambda: Dropout(float("nan")), "rate", "nan", ">= 0.0 and < 1.0"),
    (lambda: Input((0, 2)), "shape", "(0, 2)", "positive integers"),
    (lambda: optimizers.Adam(learning_rate=-1.0), "learning_rate", "-1.0", ">= 0"),
    (lambda: optimizers.Adam(beta_1=1.0), "beta_1", "1.0", "< 1.0"),
    (lambda: losses.BinaryCrossentropy(reduction="avg"), "reduction", "'avg'", "'sum_over_batch_size'"),
    (lambda: losses.BinaryCrossentropy(label_smoothing=2.0), "label_smoothing", "2.0", "<= 1.0"),
    (lambda: optimizers.SGD(clipnorm=1.0, clipvalue=1.0), "clipping", "{'clipnorm': 1.0, 'clipvalue': 1.0}",
     "at most one of clipnorm, clipvalue and global_clipnorm"),
])
def test_invalid_component_arguments(make, name, value, accepted):
    with pytest.raises(errors.InvalidArgumentError) as info:
        make()
    message = str(info.value)
    assert f"invalid {name}={value}" in message and accepted in message


@pytest.mark.parametrize("kwargs,name,value", [
    ({"batch_size": 0}, "batch_size", "0"),
    ({"batch_size": -4}, "batch_size", "-4"),
    ({"batch_size": 2.0}, "batch_size", "2.0"),
    ({"epochs": 1.5}, "epochs", "1.5"),  # epochs=0 is accepted, as Keras: no training
    ({"epochs": -1}, "epochs", "-1"),
    ({"verbose": 3}, "verbose", "3"),
    ({"validation_split": 1.0}, "validation_split", "1.0"),
    ({"shuffle": "yes"}, "shuffle", "'yes'"),
])
def test_invalid_fit_arguments(kwargs, name, value):
    model = compiled()
    with pytest.raises(errors.InvalidArgumentError) as info:
        model.fit(np.ones((4, 3)), np.ones((4, 1)), **kwargs)
    assert f"invalid {name}={value}; accepted:" in str(info.value)


def test_invalid_evaluate_and_predict_batch_size():
    model = compiled()
    with pytest.raises(errors.InvalidArgumentError, match=r"invalid batch_size=0; accepted: an integer > 0"):
        model.evaluate(np.ones((4, 3)), np.ones((4, 1)), batch_size=0)
    with pytest.raises(errors.InvalidArgumentError, match=r"invalid batch_size=-1; accepted: an integer > 0"):
        model.predict(np.ones((4, 3)), batch_size=-1)


@pytest.mark.parametrize("action", ["fit", "evaluate"])
def test_use_before_compile(action):
    model = Sequential([Dense(1, input_dim=3)])
    with pytest.raises(errors.NotCompiledError) as info:
        getattr(model, action)(np.ones((4, 3)), np.ones((4, 1)))
    assert f"{action}() was called before compile()" in str(info.value)
    assert "model.compile(" in str(info.value)


def test_fit_without_a_loss():
    model = Sequential([Dense(1, input_dim=3)])
    model.compile(optimizer="sgd")
    with pytest.raises(errors.InvalidArgumentError, match=r"invalid loss=None; accepted: a loss given to compile"):
        model.fit(np.ones((4, 3)), np.ones((4, 1)))


@pytest.mark.parametrize("action", ["fit", "evaluate", "predict"])
def test_input_feature_width_mismatch(action):
    model = compiled()
    args = (np.ones((4, 5)),) if action == "predict" else (np.ones((4, 5)), np.ones((4, 1)))
    with pytest.raises(errors.ShapeMismatchError) as info:
        getattr(model, action)(*args, verbose=0)
    message = str(info.value)
    assert "input feature width" in message and "(5,)" in message and "expects (3,)" in message


def test_x_and_y_lengths_differ():
    with pytest.raises(errors.ShapeMismatchError, match=r"x has 4 samples, y has 5"):
        compiled().fit(np.ones((4, 3)), np.ones((5, 1)))
    with pytest.raises(errors.ShapeMismatchError, match=r"x has 6 samples, y has 2"):
        compiled().evaluate(np.ones((6, 3)), np.ones((2, 1)))


def test_validation_data_checked_like_training_data():
    model = compiled()
    with pytest.raises(errors.ShapeMismatchError, match=r"x has 3 samples, y has 2"):
        model.fit(np.ones((4, 3)), np.ones((4, 1)), validation_data=(np.ones((3, 3)), np.ones((2, 1))), verbose=0)
    with pytest.raises(errors.ShapeMismatchError, match="input feature width"):
        model.fit(np.ones((4, 3)), np.ones((4, 1)), validation_data=(np.ones((3, 2)), np.ones((3, 1))), verbose=0)


def test_y_shape_incompatible_with_the_loss():
    with pytest.raises(errors.ShapeMismatchError) as info:
        compiled().fit(np.ones((4, 3)), np.ones((4, 2)))
    message = str(info.value)
    assert "(4, 2)" in message and "'mean_squared_error'" in message and "(None, 1)" in message
    sparse = compiled("sparse_categorical_crossentropy", units=3, activation="softmax")
    with pytest.raises(errors.ShapeMismatchError) as info:
        sparse.fit(np.ones((4, 3)), np.ones((4, 3)))
    message = str(info.value)
    assert "'sparse_categorical_crossentropy'" in message and "integer labels" in message
    with pytest.raises(errors.InvalidArgumentError, match=r"integer class labels in \[0, 2\]"):
        sparse.fit(np.ones((4, 3)), np.array([0, 1, 2, 3]))


def test_sample_weight_shape():
    with pytest.raises(errors.ShapeMismatchError, match=r"sample_weight has shape \(3,\); expected \(4,\)"):
        compiled().fit(np.ones((4, 3)), np.ones((4, 1)), sample_weight=np.ones(3))


def test_non_numeric_data():
    with pytest.raises(errors.InvalidArgumentError, match=r"invalid x="):
        compiled().fit([["a", "b", "c"]], np.ones((1, 1)))


def test_unknown_backend():
    model = Sequential([Dense(1, input_dim=3)])
    with pytest.raises(errors.UnknownBackendError) as info:
        model.compile(optimizer="sgd", loss="mse", backend="nummpy")
    message = str(info.value)
    assert "'nummpy'" in message and "Did you mean 'numpy'" in message and "Available backends:" in message


def test_unknown_backend_from_environment(monkeypatch):
    monkeypatch.setenv("POLYNN_BACKEND", "no_such_engine")
    with pytest.raises(errors.UnknownBackendError, match="unknown backend 'no_such_engine'"):
        compiled()


def test_unknown_dtype():
    with pytest.raises(errors.InvalidArgumentError,
                       match=r"invalid dtype='float16'; accepted: one of 'float32', 'float64'"):
        compiled(dtype="float16")


def test_set_weights_shape_errors():
    model = compiled()
    with pytest.raises(errors.ShapeMismatchError,
                       match=r"got 1 arrays; the model has 2 with shapes \[\(3, 1\), \(1,\)\]"):
        model.set_weights([np.ones((3, 1))])
    with pytest.raises(errors.ShapeMismatchError, match=r"array 0 has shape \(3, 2\); expected \(3, 1\)"):
        model.set_weights([np.ones((3, 2)), np.ones(1)])
    with pytest.raises(errors.ShapeMismatchError, match=r"array 1 has shape \(2,\); expected \(1,\)"):
        model.set_weights([np.ones((3, 1)), np.ones(2)])
    # nothing changed after the failed calls
    before = model.get_weights()
    with pytest.raises(errors.ShapeMismatchError):
        model.set_weights([np.zeros((3, 1)), np.zeros(5)])
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_set_weights_before_the_shape_is_known():
    model = Sequential([Dense(2)])
    with pytest.raises(errors.InvalidArgumentError, match="only once the input shape is known"):
        model.set_weights([np.ones((3, 2)), np.ones(2)])


BROKEN_ENGINE_PLUGIN = """
from polynn import hookimpl

@hookimpl
def polynn_register_backends(register):
    def load():
        import polynn_missing_engine_xyz
    register("fancy", load, engine="polynn_missing_engine_xyz", install="polynn[fancy]")
"""


def test_backend_whose_engine_is_not_installed(install_plugin):
    install_plugin("polynn-fancy", "fancy", "polynn_fancy_plugin", BROKEN_ENGINE_PLUGIN)
    model = Sequential([Dense(1, input_dim=3)])
    with pytest.raises(errors.BackendNotInstalledError) as info:
        model.compile(optimizer="sgd", loss="mse", backend="fancy")
    message = str(info.value)
    assert "'fancy'" in message and "'polynn_missing_engine_xyz'" in message
    assert "pip install 'polynn[fancy]'" in message
    # the reference backend is unaffected
    model.compile(optimizer="sgd", loss="mse", backend="numpy")
    assert model.backend == "numpy"


@pytest.mark.parametrize("build,message", [
    (lambda: optimizers.Adam(name="foo"),
     r"Adam: invalid keyword name='foo'; accepted: keywords learning_rate, .*taken by layers and metrics"),
    (lambda: optimizers.Adam(lr=0.01), r"Adam: invalid keyword lr=0.01; accepted: .*learning_rate, as in Keras 3"),
    (lambda: Dense(3, unts=4), r"invalid keyword unts=4; .*did you mean 'units'"),
    (lambda: losses.MeanSquaredError("sum", 1, 2), r"invalid positional arguments='3 given'; accepted: at most 1"),
    (lambda: Dense(3, units=4),
     r"invalid keyword units=4; accepted: units given once: it is also positional argument 1"),
    # no rate hint for a layer
    (lambda: Dense(3, lr=4), r"invalid keyword lr=4; accepted: keywords units, [a-z_, ]*input_shape, name, trainable$"),
])
def test_spec_constructors_name_the_unknown_argument_and_the_accepted_ones(build, message):
    with pytest.raises(errors.InvalidArgumentError, match=message):
        build()


@pytest.mark.parametrize("call,message", [
    (lambda m: m.compile(loss="mse", jit_compile=True),
     r"compile: invalid keyword jit_compile=True; .*how they compile"),
    (lambda m: m.compile(loss="mse", metrcs=["mae"]), r"did you mean 'metrics'"),
    (lambda m: m.fit(np.ones((4, 3)), np.ones(4), steps_per_epoch=2), r"fit: invalid keyword steps_per_epoch=2"),
    (lambda m: m.evaluate(np.ones((4, 3)), np.ones(4), steps=2), r"evaluate: invalid keyword steps=2"),
    (lambda m: m.predict(np.ones((4, 3)), steps=2), r"predict: invalid keyword steps=2"),
])
def test_model_methods_refuse_keras_arguments_they_lack_clearly(call, message):
    with pytest.raises(errors.InvalidArgumentError, match=message):
        call(compiled())


def test_specs_are_immutable_and_the_error_says_what_to_do():
    model = compiled()
    with pytest.raises(errors.ImmutableSpecError,
                       match=r"learning_rate=0.5 cannot be set; accepted: set model.optimizer.learning_rate"):
        model.optimizer.spec.learning_rate = 0.5
    with pytest.raises(errors.ImmutableSpecError, match=r"momentum=0.5 cannot be set; .*replace\(spec, momentum=...\)"):
        model.optimizer.momentum = 0.5  # the live view passes other fields' assignments to the spec
    with pytest.raises(dataclasses.FrozenInstanceError, match=r"dataclasses.replace\(spec, units=...\)"):
        Dense(3).units = 4  # still the dataclass error too, for code that catches that


# TensorFlow checks while tracing, where the batch size is None: any leading size matches it there.
@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_a_custom_loss_must_give_one_value_per_sample_or_one_per_batch(backend):
    pytest.importorskip(backend)
    model = Sequential([Dense(1, input_dim=3)])
    # One value per output unit (the batch axis reduced away) is neither.
    model.compile(optimizer="sgd", loss=lambda y_true, y_pred: polynn.ops.mean(y_pred - y_true, axis=0),
                  backend=backend)
    with pytest.raises(errors.InvalidArgumentError,
                       match=r"values of custom loss <lambda>='shape \(1,\)'; accepted: one value per sample: "
                             r"shape \(10,\) .*or one value for the batch: shape \(\)"):
        model.fit(np.ones((10, 3)), np.ones(10), batch_size=10, verbose=0)


def test_a_plugin_checks_custom_values_with_the_public_check_values():
    """polynn.backend.check_values, for a plugin backend's custom_loss and custom_metric; the name in
    polynn._custom, which plugins imported before, is the same function and warns that it moved."""
    from polynn import _custom, backend, losses

    with pytest.warns(DeprecationWarning, match="import polynn.backend.check_values"):
        assert backend.check_values is _custom.check_values
    spec = losses.CustomLoss(function=lambda y_true, y_pred: y_pred)
    backend.check_values(spec, (4,), (4, 2))
    backend.check_values(spec, (), (4, 2))  # one value for the batch, as Keras 3 takes it
    with pytest.raises(errors.InvalidArgumentError, match=r"values of custom loss <lambda>='shape \(2,\)'; "
                                                          r"accepted: one value per sample: shape \(4,\)"):
        backend.check_values(spec, (2,), (4, 2))
    metric = metrics.CustomMetric(function=lambda y_true, y_pred: y_pred)
    backend.check_values(metric, (4,), (4, 2), weighted=True)
    with pytest.raises(errors.InvalidArgumentError, match=r"values of custom metric <lambda>, weighted by sample "
                                                          r"or class weights='one value per batch"):
        backend.check_values(metric, (), (4, 2), weighted=True)


@pytest.mark.parametrize("kind", ["loss", "metrics"])
def test_a_custom_loss_or_metric_of_one_argument_is_refused_at_compile(kind):
    model = Sequential([Dense(1, input_dim=3)])
    arguments = {"loss": lambda y: y} if kind == "loss" else {"loss": "mse", "metrics": [lambda y: y]}
    with pytest.raises(errors.InvalidArgumentError, match=r"a function of 2 positional arguments \(y_true, y_pred\)"):
        model.compile(optimizer="sgd", **arguments)


def test_a_generator_as_data_is_refused_clearly():
    model = compiled()
    with pytest.raises(errors.InvalidArgumentError, match=r"invalid x='a generator'; accepted: arrays.*generators"):
        model.fit((row for row in np.ones((4, 3))), np.ones(4), verbose=0)


def test_set_weights_refuses_non_numbers():
    model = compiled()
    with pytest.raises(errors.InvalidArgumentError, match=r"set_weights: invalid weights\[0\]='array of dtype <U1'"):
        model.set_weights([np.array([["a"], ["b"], ["c"]]), np.zeros(1)])


def test_an_attribute_error_inside_a_property_is_not_reported_as_a_missing_property():
    class Broken(Sequential):
        @property
        def output_shape(self):
            raise AttributeError("the real cause")

    with pytest.raises(AttributeError, match="the real cause"):
        Broken([Dense(1, input_dim=3)]).output_shape  # noqa: B018  (the access is what raises)


def test_keras_model_attributes_polynn_lacks_say_what_to_use():
    model = compiled()
    with pytest.raises(errors.NotSupportedError, match=r"Sequential has no 'train_on_batch'.*fit\(x, y, batch_size"):
        model.train_on_batch(np.ones((2, 3)), np.ones(2))
    assert not hasattr(model, "metrics_names")  # still an AttributeError, so hasattr() and getattr(..., default) work
    with pytest.raises(AttributeError, match="has no attribute 'no_such_thing'"):
        model.no_such_thing  # noqa: B018  (the access is what raises)
