"""Conv1D/2D, the pooling layers, Flatten and Reshape: their checks and shapes, configs, summary, model
files on every backend, ONNX export, and their outputs against direct NumPy definitions (loops over
output positions, written from the docstrings)."""

from __future__ import annotations

import importlib.util
import itertools
import json
import math
import os

import numpy as np
import pytest

from polynn import layers
from polynn.errors import InvalidArgumentError, UnknownComponentError
from polynn.layers import (
    AveragePooling1D,
    AveragePooling2D,
    Conv1D,
    Conv2D,
    Dense,
    Flatten,
    GlobalAveragePooling1D,
    GlobalAveragePooling2D,
    GlobalMaxPooling1D,
    GlobalMaxPooling2D,
    Input,
    MaxPooling1D,
    MaxPooling2D,
    Reshape,
)
from polynn.models import Sequential, load_model

BACKENDS = ("numpy", "tensorflow", "torch")
TOLERANCE = {"float64": 1e-12, "float32": 1e-5}


def _installed(backend: str) -> bool:
    return backend == "numpy" or importlib.util.find_spec(backend) is not None


def _backends():
    return [pytest.param(b, marks=() if _installed(b) else pytest.mark.skip(f"no {b}")) for b in BACKENDS]


# ---- direct NumPy definitions --------------------------------------------------------------


def _pairs(padding, n, k, s, d):
    """(before, after) zeros along one axis: TensorFlow's same rule, causal, or none."""
    if padding == "same":
        out = math.ceil(n / s)
        total = max((out - 1) * s + (k - 1) * d + 1 - n, 0)
        return total // 2, total - total // 2
    if padding == "causal":
        return (k - 1) * d, 0
    return 0, 0


def _out_length(n, k, s, d, before, after):
    return (n + before + after - (k - 1) * d - 1) // s + 1


def numpy_conv(x, kernel, bias, strides, padding, dilation, groups):
    """out[b, o, f] = sum over window positions p and the group's channels c of
    x_pad[b, o s + p d, c] kernel[p, c, f] (+ bias[f])."""
    spatial, sizes = x.shape[1:-1], kernel.shape[:-2]
    pads = [_pairs(padding, n, k, s, d) for n, k, s, d in zip(spatial, sizes, strides, dilation)]
    xp = np.pad(x, [(0, 0), *pads, (0, 0)])
    lengths = [_out_length(n, k, s, d, *p) for n, k, s, d, p in zip(spatial, sizes, strides, dilation, pads)]
    per_group, filters = kernel.shape[-2], kernel.shape[-1]
    out = np.zeros((x.shape[0], *lengths, filters))
    for o in itertools.product(*(range(n) for n in lengths)):
        for f in range(filters):
            group = f // (filters // groups)
            channels = slice(group * per_group, (group + 1) * per_group)
            total = np.zeros(x.shape[0])
            for p in itertools.product(*(range(k) for k in sizes)):
                at = tuple(oi * s + pi * d for oi, pi, s, d in zip(o, p, strides, dilation))
                total = total + xp[(slice(None), *at, channels)] @ kernel[(*p, slice(None), f)]
            out[(slice(None), *o, f)] = total + (0.0 if bias is None else bias[f])
    return out


def numpy_pool(x, sizes, strides, padding, mode):
    """Each window's max or mean over its positions inside x (padding takes no part)."""
    spatial = x.shape[1:-1]
    pads = [_pairs(padding, n, k, s, 1) for n, k, s in zip(spatial, sizes, strides)]
    lengths = [_out_length(n, k, s, 1, *p) for n, k, s, p in zip(spatial, sizes, strides, pads)]
    out = np.zeros((x.shape[0], *lengths, x.shape[-1]))
    for o in itertools.product(*(range(n) for n in lengths)):
        index = tuple(slice(max(oi * s - b, 0), min(oi * s - b + k, n))
                      for oi, s, (b, _), k, n in zip(o, strides, pads, sizes, spatial))
        window = x[(slice(None), *index, slice(None))].reshape(x.shape[0], -1, x.shape[-1])
        out[(slice(None), *o, slice(None))] = window.max(axis=1) if mode == "max" else window.mean(axis=1)
    return out


def numpy_layer(layer, weights, x):
    """The layer's output on x by its NumPy definition."""
    if isinstance(layer, (Conv1D, Conv2D)):
        z = numpy_conv(x, weights[0], weights[1] if layer.use_bias else None, layer.strides, layer.padding,
                       layer.dilation_rate, layer.groups)
        return np.asarray(layer.activation(z))
    if isinstance(layer, (MaxPooling1D, MaxPooling2D)):
        return numpy_pool(x, layer.pool_size, layer.strides, layer.padding, "max")
    if isinstance(layer, (AveragePooling1D, AveragePooling2D)):
        return numpy_pool(x, layer.pool_size, layer.strides, layer.padding, "mean")
    axes = tuple(range(1, x.ndim - 1))
    if isinstance(layer, (GlobalAveragePooling1D, GlobalAveragePooling2D)):
        return x.mean(axis=axes, keepdims=layer.keepdims)
    if isinstance(layer, (GlobalMaxPooling1D, GlobalMaxPooling2D)):
        return x.max(axis=axes, keepdims=layer.keepdims)
    if isinstance(layer, Flatten):
        return x.reshape(len(x), -1)
    return x.reshape(len(x), *layer.target_shape)


# (layer, per-sample input shape, expected output shape)
CASES = [
    (Conv1D(3, 3), (9, 2), (7, 3)),
    (Conv1D(4, 2, strides=2, padding="same", activation="relu"), (9, 2), (5, 4)),
    (Conv1D(2, 3, padding="causal", dilation_rate=2), (9, 2), (9, 2)),
    (Conv1D(4, 3, padding="same", groups=2, use_bias=False), (8, 6), (8, 4)),
    (Conv2D(3, 3), (6, 5, 2), (4, 3, 3)),
    (Conv2D(4, (2, 3), strides=(2, 1), padding="same", activation="tanh"), (7, 5, 2), (4, 5, 4)),
    (Conv2D(2, 3, dilation_rate=(2, 1), padding="same"), (7, 6, 3), (7, 6, 2)),
    (Conv2D(6, 2, strides=3, groups=3), (8, 7, 3), (3, 2, 6)),
    (MaxPooling1D(), (7, 3), (3, 3)),
    (MaxPooling1D(3, strides=2, padding="same"), (8, 3), (4, 3)),
    (AveragePooling1D(3, strides=1), (7, 3), (5, 3)),
    (AveragePooling1D(2, padding="same"), (7, 3), (4, 3)),
    (MaxPooling2D(), (5, 7, 2), (2, 3, 2)),
    (MaxPooling2D((3, 2), strides=1, padding="same"), (5, 4, 2), (5, 4, 2)),
    (AveragePooling2D(3, strides=2, padding="same"), (6, 5, 2), (3, 3, 2)),
    (AveragePooling2D((1, 2)), (3, 5, 2), (3, 2, 2)),
    (GlobalAveragePooling1D(), (5, 3), (3,)),
    (GlobalAveragePooling1D(keepdims=True), (5, 3), (1, 3)),
    (GlobalMaxPooling1D(), (5, 3), (3,)),
    (GlobalAveragePooling2D(keepdims=True), (4, 3, 2), (1, 1, 2)),
    (GlobalMaxPooling2D(), (4, 3, 2), (2,)),
    (GlobalMaxPooling2D(keepdims=True), (4, 3, 2), (1, 1, 2)),
    (Flatten(), (4, 3, 2), (24,)),
    (Reshape((-1, 2)), (4, 3), (6, 2)),
    (Reshape((2, 3, 2)), (12,), (2, 3, 2)),
]
IDS = [f"{type(layer).__name__}-{i}" for i, (layer, _, _) in enumerate(CASES)]


def _random_weights(model, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=w.shape) for w in model.get_weights()]


@pytest.mark.parametrize(("layer", "shape", "expected"), CASES, ids=IDS)
def test_forward_matches_the_numpy_definition(layer, shape, expected):
    assert layer.output_shape(shape) == expected
    model = Sequential([Input(shape), layer])
    model.compile("sgd", "mse", backend="numpy", dtype="float64", seed=0)
    weights = _random_weights(model)
    model.set_weights(weights)
    x = np.random.default_rng(1).normal(size=(3, *shape))
    y = model.predict(x, verbose=0)
    assert y.shape == (3, *expected)
    np.testing.assert_allclose(y, numpy_layer(layer, weights, x), rtol=1e-12, atol=1e-12)


def test_weights_are_in_keras_order_and_shapes():
    """Keras's: the kernel (*kernel_size, channels / groups, filters), then the bias (filters,)."""
    model = Sequential([Input((6, 5, 4)), Conv2D(6, (3, 2), groups=2), MaxPooling2D(), Flatten(), Dense(2)])
    model.build()
    assert [w.shape for w in model.get_weights()] == [(3, 2, 2, 6), (6,), (24, 2), (2,)]
    assert [ws.name for ws in model.layers[1].spec.weight_specs((6, 5, 4))] == ["kernel", "bias"]
    conv1d = Sequential([Input((5, 3)), Conv1D(4, 2, use_bias=False)])
    conv1d.build()
    assert [w.shape for w in conv1d.get_weights()] == [(2, 3, 4)]


# A stack of every kind, on every backend.
def _stack():
    return [Input((9, 8, 2)), Conv2D(4, 3, padding="same", activation="relu"), MaxPooling2D(),
            Conv2D(4, 2, groups=2, dilation_rate=1), AveragePooling2D(2, padding="same"),
            GlobalMaxPooling2D(keepdims=True), Reshape((4, 1)), Conv1D(3, 2, padding="causal"),
            MaxPooling1D(2, padding="same"), Flatten(), Reshape((3, 2)), Dense(2)]


def _numpy_stack(model, x):
    weights, k = model.get_weights(), 0
    for bound in model.layers[1:]:
        spec = bound.spec
        count = len(spec.weight_specs(x.shape[1:]))
        x = numpy_layer(spec, weights[k:k + count], x) if not isinstance(spec, Dense) \
            else x @ weights[k] + weights[k + 1]
        k += count
    return x


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("backend", _backends())
def test_a_stack_of_every_kind_matches_numpy_on_every_backend(backend, dtype):
    model = Sequential(_stack())
    model.compile("sgd", "mse", backend=backend, dtype=dtype, seed=3)
    x = np.random.default_rng(4).normal(size=(5, 9, 8, 2))
    expected = _numpy_stack(model, x.astype(dtype).astype(np.float64))
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, rtol=TOLERANCE[dtype],
                               atol=TOLERANCE[dtype])


@pytest.mark.parametrize("backend", _backends())
def test_training_single_filter_convolutions_matches_numpy(backend):
    """A filter axis of 1 (Conv2D's and Conv1D's default filters) trains as on the reference."""
    def trained(name):
        model = Sequential([Input((6, 5, 2)), Conv2D(activation="tanh"), Reshape((-1, 1)), Conv1D(), Flatten(),
                            Dense(2)])
        model.compile("sgd", "mse", backend=name, dtype="float64", seed=11)
        rng = np.random.default_rng(12)
        model.fit(rng.normal(size=(8, 6, 5, 2)), rng.normal(size=(8, 2)), batch_size=4, epochs=1, verbose=0)
        return model.get_weights()

    for got, expected in zip(trained(backend), trained("numpy"), strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("backend", _backends())
@pytest.mark.parametrize(("pool", "shape"), [(MaxPooling1D(2), (2, 3)), (MaxPooling2D(2, padding="same"), (2, 1, 3)),
                                             (AveragePooling1D(3, padding="same"), (2, 3))])
def test_a_pooling_to_one_position_then_flatten(backend, pool, shape):
    """Flatten and Reshape read the sample's shape off the tensor: every engine keeps it static
    through a pooling, even one that leaves a single position."""
    model = Sequential([Input(shape), pool, Flatten(), Reshape((-1, 1))])
    model.compile("sgd", "mse", backend=backend, dtype="float64", seed=0)
    x = np.random.default_rng(2).normal(size=(4, *shape))
    expected = numpy_layer(pool, [], x).reshape(4, -1, 1)
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, rtol=1e-12, atol=1e-12)


# ---- argument checks -----------------------------------------------------------------------

REFUSED = [
    (Conv2D, {"filters": 0}, "filters=0"),
    (Conv2D, {"filters": 2.0}, "filters=2.0"),
    (Conv2D, {"kernel_size": (3, 3, 3)}, r"kernel_size=\(3, 3, 3\).*tuple of 2"),
    (Conv2D, {"kernel_size": 0}, "kernel_size=0"),
    (Conv1D, {"kernel_size": (2, 2)}, r"kernel_size=\(2, 2\); accepted: an integer > 0$"),
    (Conv2D, {"strides": (1, 0)}, "strides"),
    (Conv2D, {"dilation_rate": True}, "dilation_rate=True"),
    (Conv2D, {"padding": "causal"}, "padding='causal'.*'valid', 'same'$"),
    (Conv2D, {"padding": "full"}, "padding='full'"),
    (Conv1D, {"padding": "full"}, "'valid', 'same', 'causal'"),
    (Conv2D, {"data_format": "channels_first"}, "data_format='channels_first'.*channels_last"),
    (Conv2D, {"strides": 2, "dilation_rate": 2}, r"dilation_rate=\(2, 2\).*not both"),
    (Conv2D, {"filters": 3, "groups": 2}, "groups=2.*divisor of filters=3"),
    (Conv2D, {"groups": 0}, "groups=0"),
    (Conv2D, {"use_bias": 1}, "use_bias=1"),
    (Conv2D, {"input_shape": (3, 3)}, r"input shape=\(3, 3\); accepted: a per-sample shape of 3 axes"),
    (MaxPooling2D, {"pool_size": (2, 0)}, "pool_size"),
    (MaxPooling1D, {"strides": -1}, "strides=-1"),
    (AveragePooling2D, {"padding": "causal"}, "padding='causal'"),
    (AveragePooling1D, {"data_format": "channels_first"}, "data_format"),
    (GlobalMaxPooling2D, {"keepdims": "yes"}, "keepdims='yes'"),
    (GlobalAveragePooling1D, {"data_format": "NHWC"}, "data_format='NHWC'"),
    (Flatten, {"data_format": "channels_first"}, "data_format"),
    (Reshape, {"target_shape": (-1, -1)}, "target_shape=.*one of which may be -1"),
    (Reshape, {"target_shape": (2, 0)}, "target_shape"),
    (Reshape, {"target_shape": ()}, "target_shape"),
    (Reshape, {"target_shape": 4}, "target_shape=4"),
]


@pytest.mark.parametrize(("cls", "kwargs", "match"), REFUSED,
                         ids=[f"{cls.__name__}-{'-'.join(kwargs)}" for cls, kwargs, _ in REFUSED])
def test_bad_arguments_are_refused_naming_the_layer_and_value(cls, kwargs, match):
    with pytest.raises(InvalidArgumentError, match=match) as caught:
        cls(**kwargs)
    assert cls.__name__ in str(caught.value)


def test_an_unknown_activation_is_refused():
    with pytest.raises(UnknownComponentError, match="no_such"):
        Conv2D(activation="no_such")


def test_keras_spellings_are_normalized():
    assert Conv2D(2, 3) == Conv2D(2, (3, 3), strides=(1, 1), padding="VALID", data_format="channels_last")
    assert Conv1D(2, padding="Causal").padding == "causal"
    assert MaxPooling2D(3).strides == (3, 3)  # strides None means pool_size, as Keras
    assert MaxPooling2D(3) == MaxPooling2D((3, 3), strides=3)
    assert Flatten().data_format == "channels_last"
    assert Reshape([3, -1]).target_shape == (3, -1)
    assert layers.MaxPool2D is MaxPooling2D and layers.AvgPool1D is AveragePooling1D
    assert layers.get("maxpool2d") == MaxPooling2D() and layers.get("Conv2D") == Conv2D()
    assert layers.get("global_average_pooling1d") == GlobalAveragePooling1D()


SHAPE_REFUSED = [
    (Conv2D(2, 3), (8, 3), r"Conv2D: invalid input shape=\(8, 3\); accepted: a per-sample shape of 3 axes"),
    (Conv1D(2, 3), (4, 4, 1), r"Conv1D: invalid input shape=\(4, 4, 1\).*of 2 axes, \(steps, channels\)"),
    (Conv2D(2, 3), (2, 5, 1), r"Conv2D: invalid input shape=\(2, 5, 1\).*dilated kernel's \(3, 3\)"),
    (Conv1D(2, 3, dilation_rate=3), (6, 1), r"Conv1D: invalid input shape=\(6, 1\).*\(7,\)"),
    (Conv2D(4, 1, groups=2), (3, 3, 3), r"Conv2D: invalid input shape=\(3, 3, 3\).*3 channels divide into groups=2"),
    (MaxPooling2D(3), (2, 5, 1), r"MaxPooling2D: invalid input shape=\(2, 5, 1\).*at least pool_size \(3, 3\)"),
    (AveragePooling1D(2), (5,), r"AveragePooling1D: invalid input shape=\(5,\)"),
    (GlobalMaxPooling2D(), (5, 2), r"GlobalMaxPooling2D: invalid input shape=\(5, 2\)"),
    (GlobalAveragePooling1D(), (5, 2, 2), r"GlobalAveragePooling1D: invalid input shape=\(5, 2, 2\)"),
    (Reshape((5, 2)), (3, 3), r"Reshape: invalid input shape=\(3, 3\).*10 elements.*it has 9"),
    (Reshape((4, -1)), (3, 3), r"Reshape: invalid input shape=\(3, 3\).*9 elements divide.*multiple of 4"),
]


@pytest.mark.parametrize(("layer", "shape", "match"), SHAPE_REFUSED, ids=[m.split(":")[0] + str(s)
                                                                         for _, s, m in SHAPE_REFUSED])
def test_inputs_of_the_wrong_rank_or_too_small_are_refused(layer, shape, match):
    with pytest.raises(InvalidArgumentError, match=match):
        layer.output_shape(shape)
    if isinstance(layer, (Conv1D, Conv2D)):  # checked before any weight is made
        with pytest.raises(InvalidArgumentError, match=match):
            layer.weight_specs(shape)
    model = Sequential([Input(shape), layer])
    with pytest.raises(InvalidArgumentError, match=match):
        model.build()


def test_same_padding_fits_any_input_a_valid_one_refuses():
    assert Conv2D(2, 5, padding="same").output_shape((2, 3, 1)) == (2, 3, 2)
    assert MaxPooling1D(4, padding="same").output_shape((3, 1)) == (1, 1)


# ---- configs, summary, model files ---------------------------------------------------------


@pytest.mark.parametrize(("layer", "shape", "expected"), CASES, ids=IDS)
def test_config_json_round_trip(layer, shape, expected):
    config = json.loads(json.dumps(layer.get_config()))
    again = type(layer).from_config(config)
    assert again == layer and again.output_shape(shape) == expected
    assert layers.get({"class_name": layer.name, "config": config}) == layer
    named = type(layer).from_config({**config, "name": "mine"})
    assert named.given_name == "mine" and named.get_config()["name"] == "mine"


def test_summary_lists_shapes_and_parameters(capsys):
    model = Sequential(_stack())
    model.build()
    model.summary()
    out = capsys.readouterr().out
    assert "conv2d (Conv2D)" in out and "(None, 9, 8, 4)" in out
    assert str(3 * 3 * 2 * 4 + 4) in out  # the first Conv2D's kernel and bias
    assert "max_pooling2d (MaxPooling2D)" in out and "(None, 4, 4, 4)" in out
    assert "reshape (Reshape)" in out and "(None, 4, 1)" in out and "(None, 3, 2)" in out
    assert f"Total params: {model.count_params()}" in out


@pytest.mark.parametrize("target", _backends())
def test_model_files_round_trip_onto_every_backend(tmp_path, target):
    model = Sequential(_stack())
    model.compile("adam", "mse", backend="numpy", dtype="float64", seed=5)
    rng = np.random.default_rng(6)
    x, y = rng.normal(size=(16, 9, 8, 2)), rng.normal(size=(16, 3, 2))
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    path = tmp_path / "convnet.safetensors"
    model.save(path)
    loaded = load_model(path, backend=target)
    assert [b.spec for b in loaded.layers] == [b.spec for b in model.layers]
    for a, b in zip(loaded.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-12, atol=1e-12)
    # Training goes on from the same optimizer state on the target backend.
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    loaded.fit(x, y, batch_size=8, epochs=1, verbose=0)
    for a, b in zip(loaded.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9)


# ---- ONNX ----------------------------------------------------------------------------------

needs_onnx = pytest.mark.skipif(importlib.util.find_spec("onnx") is None
                                or importlib.util.find_spec("onnxruntime") is None,
                                reason="needs onnx and onnxruntime")

ONNX_STACKS = {
    "2d": lambda: _stack(),
    "2d-valid": lambda: [Input((9, 8, 4)), Conv2D(6, 3, dilation_rate=2, use_bias=False, activation="selu"),
                         AveragePooling2D((2, 1)), MaxPooling2D(3, strides=1, padding="same"),
                         Conv2D(4, (2, 3), strides=2, padding="same", groups=2), AveragePooling2D(3, 2, "same"),
                         GlobalAveragePooling2D(), Dense(3)],
    "1d": lambda: [Input((11, 3)), Conv1D(4, 3, padding="causal", dilation_rate=2, activation="tanh"),
                   AveragePooling1D(2, padding="same"), Conv1D(2, 2, strides=2, padding="same"),
                   MaxPooling1D(3, padding="same", strides=2), GlobalAveragePooling1D(keepdims=True), Flatten(),
                   Dense(2)],
    "1d-global": lambda: [Input((6, 4)), Conv1D(4, 2), GlobalMaxPooling1D(), Reshape((2, 2)),
                          GlobalMaxPooling1D(keepdims=True), Flatten()],
}


@needs_onnx
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("stack", list(ONNX_STACKS))
def test_onnx_export_matches_predict(tmp_path, stack, dtype):
    import onnx
    import onnxruntime as ort

    model = Sequential(ONNX_STACKS[stack]())
    model.compile("adam", "mse", backend="numpy", dtype=dtype, seed=8)
    model.set_weights(_random_weights(model, 9))
    x = np.random.default_rng(10).normal(size=(7, *model.input_shape)).astype(dtype)
    path = tmp_path / "model.onnx"
    model.export(path)
    session = ort.InferenceSession(os.fspath(path), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"input": x})
    assert got.dtype == np.dtype(dtype)
    tolerance = {"float32": 1e-5, "float64": 1e-12}[dtype]
    np.testing.assert_allclose(got, model.predict(x, verbose=0), rtol=tolerance, atol=tolerance)
    used = {node.op_type for node in onnx.load(os.fspath(path)).graph.node}
    # ONNX Runtime's CPU provider has Conv and AveragePool in float32 only.
    if dtype == "float64":
        assert not used & {"Conv", "AveragePool"}
    elif stack != "1d-global":
        assert "Conv" in used


@needs_onnx
def test_onnx_export_of_the_conv_family_takes_opsets_on_either_side_of_18(tmp_path):
    import onnxruntime as ort

    model = Sequential(ONNX_STACKS["1d"]())
    model.compile("adam", "mse", backend="numpy", dtype="float64", seed=8)
    x = np.random.default_rng(10).normal(size=(3, *model.input_shape))
    expected = model.predict(x, verbose=0)
    # 18 changes ReduceMean's and ReduceMax's form (the lowerings use neither).
    for opset in (13, 18):
        path = tmp_path / f"m{opset}.onnx"
        model.export(path, opset_version=opset)
        session = ort.InferenceSession(os.fspath(path), providers=["CPUExecutionProvider"])
        np.testing.assert_allclose(session.run(None, {"input": x})[0], expected, rtol=1e-12, atol=1e-12)


# ---- the kit -------------------------------------------------------------------------------


def test_the_kit_exercises_every_layer_and_option():
    from polynn.conformance import components, options

    family = [Conv1D, Conv2D, MaxPooling1D, MaxPooling2D, AveragePooling1D, AveragePooling2D, GlobalAveragePooling1D,
              GlobalAveragePooling2D, GlobalMaxPooling1D, GlobalMaxPooling2D, Flatten, Reshape]
    assert all(options.layer_input_shape(cls()) is not None for cls in family)
    cases = [case for case in components.cases(["layer"]) if any(case.name.startswith(f"layer.{cls.name}")
                                                                  for cls in family)]
    # Every configuration builds (a refused one would have no component).
    assert all(case.components for case in cases)
    names = {case.name for case in cases}
    assert {"layer.conv1d(padding=causal)", "layer.conv1d(padding=causal, dilation_rate=2)",
            "layer.conv2d(strides=2, padding=same)", "layer.conv2d(dilation_rate=2)",
            "layer.conv2d(filters=4, groups=2)", "layer.conv2d(kernel_regularizer=l2)",
            "layer.max_pooling2d(pool_size=3, strides=1)",
            "layer.average_pooling1d(pool_size=3, strides=2, padding=same)",
            "layer.global_max_pooling2d(keepdims=True)", "layer.reshape(target_shape=(2, -1))",
            "layer.flatten"} <= names
    # Causal padding is Conv1D's alone: the configuration names its class.
    assert not any("causal" in name for name in names if not name.startswith("layer.conv1d"))
