"""model.export("x.onnx"): ONNX Runtime runs the graph and matches predict on every backend and dtype it
supports; the refusals (formats, names, arguments, components without a lowering, float64 Erf, an
unbuilt model, a missing onnx) come before anything is written, and a failed write keeps the old file."""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import os
import subprocess
import sys
from typing import ClassVar

import numpy as np
import pytest

from polynn import _onnx_export, activations, ops
from polynn.activations import (
    ELU,
    GELU,
    SELU,
    LeakyReLU,
    Linear,
    LogSoftmax,
    ReLU,
    Softmax,
)
from polynn.errors import (
    FileAccessError,
    InvalidArgumentError,
    MissingExtraError,
    ModelFileError,
    UnsupportedComponentError,
)
from polynn.layers import Activation, Dense, Dropout, Input
from polynn.models import Sequential

TOLERANCE = {"float32": 1e-6, "float64": 1e-12}


def _importable(name):
    try:
        importlib.import_module(name)
    except ImportError:
        return False
    return True


# Every test that writes a file; the refusals come before onnx is imported and run without it.
needs_onnx = pytest.mark.skipif(not (_importable("onnx") and _importable("onnxruntime")),
                                reason="needs onnx and onnxruntime (pip install 'polynn[onnx]' onnxruntime)")


def _backends():
    return [pytest.param(name, marks=() if importlib.util.find_spec(name) else pytest.mark.skip(f"no {name}"))
            for name in ("numpy", "tensorflow", "torch")]


def _onnx():
    return pytest.importorskip("onnx")


def _run(path, x):
    ort = pytest.importorskip("onnxruntime")
    session = ort.InferenceSession(os.fspath(path), providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {"input": x})
    return out


def _grid():
    """Activation inputs: a sweep through both tails, zero's neighbourhood and every kink the options put."""
    values = np.concatenate([
        np.linspace(-30, 30, 121),
        [0.0, -0.0, 1e-7, -1e-7, 1e-3, -1e-3, 0.3, -0.4, 1.5, 2.5, 6.0, -3.0, 3.0, 16.6, -16.6, -17.0, 40.0, -45.0],
    ])
    values = np.concatenate([values, np.zeros(-len(values) % 8)])
    return values.reshape(-1, 8)


# Every built-in activation, each option on and off: (id, spec).
ACTIVATION_CASES = [
    ("linear", Linear()),
    ("relu", ReLU()),
    ("relu-slope", ReLU(negative_slope=0.1)),
    ("relu-max", ReLU(max_value=2.5)),
    ("relu-threshold", ReLU(threshold=0.3)),
    ("relu-all", ReLU(negative_slope=0.2, max_value=1.5, threshold=-0.4)),
    ("sigmoid", activations.Sigmoid()),
    ("tanh", activations.Tanh()),
    ("softmax", Softmax()),
    ("softmax-axis0", Softmax(axis=0)),
    ("log_softmax", LogSoftmax()),
    ("log_softmax-axis0", LogSoftmax(axis=0)),
    ("elu", ELU()),
    ("elu-alpha", ELU(alpha=0.3)),
    ("selu", SELU()),
    ("softplus", activations.Softplus()),
    ("softsign", activations.Softsign()),
    ("gelu", GELU()),
    ("gelu-tanh", GELU(approximate=True)),
    ("silu", activations.SiLU()),
    ("leaky_relu", LeakyReLU()),
    ("leaky_relu-slope", LeakyReLU(negative_slope=0.07)),
    ("relu6", activations.ReLU6()),
    ("exponential", activations.Exponential()),
    ("hard_sigmoid", activations.HardSigmoid()),
    ("hard_silu", activations.HardSiLU()),
    ("mish", activations.Mish()),
]


def test_every_builtin_activation_has_a_lowering_and_a_case():
    builtin = {getattr(activations, name) for name in activations.__all__}
    builtin = {c for c in builtin if isinstance(c, type) and issubclass(c, activations.Activation)}
    builtin -= {activations.Activation, activations.CustomActivation}
    assert set(_onnx_export.ACTIVATIONS) == builtin
    assert {type(spec) for _, spec in ACTIVATION_CASES} == builtin


def _compiled(layers, backend, dtype, seed=3):
    model = Sequential(layers)
    model.compile(optimizer="adam", loss="mse", backend=backend, dtype=dtype, seed=seed)
    return model


def _check_against_predict(model, x, path, dtype):
    model.export(path)
    _onnx().checker.check_model(os.fspath(path), full_check=True)
    x = x.astype(dtype)
    got = _run(path, x)
    want = model.predict(x, batch_size=len(x), verbose=0)
    assert got.dtype == want.dtype == np.dtype(dtype)
    np.testing.assert_allclose(got, want, rtol=TOLERANCE[dtype], atol=TOLERANCE[dtype])


@needs_onnx
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("backend", _backends())
@pytest.mark.parametrize("case", [spec for _, spec in ACTIVATION_CASES], ids=[name for name, _ in ACTIVATION_CASES])
def test_each_activation_matches_predict(tmp_path, backend, dtype, case):
    if dtype == "float64" and isinstance(case, GELU) and not case.approximate:
        pytest.skip("refused in float64 (test_float64_erf_is_refused)")
    model = _compiled([Input((8,)), Activation(case)], backend, dtype)
    _check_against_predict(model, _grid(), tmp_path / "act.onnx", dtype)


@needs_onnx
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("backend", _backends())
def test_a_trained_model_of_every_layer_matches_predict(tmp_path, backend, dtype):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(64, 5)), rng.normal(size=(64, 3))
    model = _compiled([Input((5,)), Dense(16, activation="gelu" if dtype == "float32" else "selu"),
                       Dropout(0.4), Dense(8, activation=ReLU(max_value=3.0), use_bias=False),
                       Activation("mish"), Dense(3), Activation(Softmax())], backend, dtype)
    model.fit(x, y, batch_size=16, epochs=2, verbose=0)
    path = tmp_path / "model.onnx"
    _check_against_predict(model, x, path, dtype)
    ops_used = {node.op_type for node in _onnx().load(os.fspath(path)).graph.node}
    assert "Dropout" not in ops_used and "RandomUniformLike" not in ops_used


@needs_onnx
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("backend", _backends())
def test_a_dense_on_a_rank_3_input_with_an_inner_softmax_axis(tmp_path, backend, dtype):
    x = np.random.default_rng(1).normal(size=(6, 4, 5))
    model = _compiled([Dense(3, activation=LogSoftmax(axis=1), input_shape=(4, 5)), Dense(2, activation="tanh")],
                      backend, dtype)
    _check_against_predict(model, x, tmp_path / "rank3.onnx", dtype)


@needs_onnx
@pytest.mark.parametrize("sample_shape", [(5,), (2, 5)], ids=["rank2", "rank3"])
@pytest.mark.parametrize("activation", ["selu", "hard_silu", "hard_sigmoid"])
def test_a_scaling_activation_before_a_dense_keeps_float64(tmp_path, activation, sample_shape):
    # ONNX Runtime 1.30 fuses MatMul with a scalar Mul or Div next to it, its scale a float32
    # attribute; Dense as Gemm leaves nothing to fuse.
    x = np.random.default_rng(3).normal(size=(16, *sample_shape)) * 3
    model = _compiled([Input(sample_shape), Dense(6, activation=activation), Dense(4, use_bias=False),
                       Activation(activation), Dense(2)], "numpy", "float64")
    _check_against_predict(model, x, tmp_path / "scaled.onnx", "float64")


@needs_onnx
def test_the_graph_has_one_input_and_one_output_with_a_dynamic_batch(tmp_path):
    onnx = _onnx()
    model = _compiled([Input((5,)), Dense(3, activation="relu")], "numpy", "float64")
    path = tmp_path / "m.onnx"
    model.export(path)
    proto = onnx.load(os.fspath(path))
    assert proto.opset_import[0].version == _onnx_export.DEFAULT_OPSET
    assert proto.producer_name == "polynn"
    (graph_input,), (graph_output,) = proto.graph.input, proto.graph.output
    assert graph_input.name == "input" and graph_output.name == "output"
    for value, size in ((graph_input, 5), (graph_output, 3)):
        tensor = value.type.tensor_type
        assert tensor.elem_type == onnx.TensorProto.DOUBLE
        assert [d.dim_param or d.dim_value for d in tensor.shape.dim] == ["batch", size]
    weights = {init.name: onnx.numpy_helper.to_array(init) for init in proto.graph.initializer}
    kernel, bias = model.get_weights()
    np.testing.assert_array_equal(weights["dense/kernel"], kernel)
    np.testing.assert_array_equal(weights["dense/bias"], bias)
    for batch in (1, 7):
        x = np.random.default_rng(batch).normal(size=(batch, 5))
        np.testing.assert_allclose(_run(path, x), model.predict(x, verbose=0), rtol=1e-12, atol=1e-12)


@needs_onnx
def test_every_backend_writes_the_same_file(tmp_path):
    backends = [b for b in ("numpy", "tensorflow", "torch") if importlib.util.find_spec(b)]
    layers = [Input((4,)), Dense(6, activation="softplus"), Dropout(0.2), Dense(2, activation="sigmoid")]
    reference = _compiled(layers, "numpy", "float32")
    files = []
    for backend in backends:
        model = _compiled(layers, backend, "float32", seed=11)
        model.set_weights(reference.get_weights())
        path = tmp_path / f"{backend}.onnx"
        model.export(path)
        files.append(path.read_bytes())
    reference.export(tmp_path / "again.onnx")
    assert all(data == files[0] for data in files[1:])
    assert (tmp_path / "again.onnx").read_bytes() == files[0]


@needs_onnx
def test_an_identity_model_still_has_a_node(tmp_path):
    model = _compiled([Input((3,)), Dropout(0.5), Activation("linear")], "numpy", "float32")
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    _check_against_predict(model, x, tmp_path / "id.onnx", "float32")


@needs_onnx
def test_an_uncompiled_model_exports_float32_with_its_weights(tmp_path):
    model = Sequential([Dense(2, input_dim=3, activation="elu")])
    weights = [np.full((3, 2), 0.5), np.array([-1.0, 2.0])]
    model.set_weights(weights)
    path = tmp_path / "u.onnx"
    model.export(path)
    x = np.linspace(-2, 2, 9, dtype=np.float32).reshape(3, 3)
    got = _run(path, x)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, model.predict(x, verbose=0), rtol=1e-6, atol=1e-6)


# ---- arguments ----------------------------------------------------------------------------------


@needs_onnx
def test_opset_version_and_input_signature(tmp_path):
    onnx = _onnx()
    model = _compiled([Input((3,)), Dense(2, activation="hard_silu")], "numpy", "float32")
    x = np.random.default_rng(2).normal(size=(4, 3)).astype(np.float32)
    path = tmp_path / "old.onnx"
    model.export(path, opset_version=13)
    assert onnx.load(os.fspath(path)).opset_import[0].version == 13
    np.testing.assert_allclose(_run(path, x), model.predict(x, verbose=0), rtol=1e-6, atol=1e-6)
    path = tmp_path / "fixed.onnx"
    model.export(path, format="onnx", input_signature=(4, 3))
    dims = onnx.load(os.fspath(path)).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dims] == [4, 3]
    np.testing.assert_allclose(_run(path, x), model.predict(x, verbose=0), rtol=1e-6, atol=1e-6)
    model.export(tmp_path / "dynamic.onnx", input_signature=[None, 3])
    dims = onnx.load(os.fspath(tmp_path / "dynamic.onnx")).graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch"


@needs_onnx
@pytest.mark.parametrize("opset", [12, 10**6, "17", True, 17.0])
def test_opset_outside_the_range_is_refused(tmp_path, opset):
    model = _compiled([Dense(2, input_dim=3)], "numpy", "float32")
    with pytest.raises(InvalidArgumentError, match="opset_version.*from 13"):
        model.export(tmp_path / "m.onnx", opset_version=opset)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("signature", [(None, 4), (3,), (None, 3, 1), (0, 3), (True, 3), (-1, 3), "(None, 3)",
                                       {"shape": (None, 3)}, (None, None)])
def test_a_signature_other_than_the_models_shape_is_refused(tmp_path, signature):
    model = _compiled([Dense(2, input_dim=3)], "numpy", "float32")
    with pytest.raises(InvalidArgumentError, match=r"input_signature.*batch None or a positive int"):
        model.export(tmp_path / "m.onnx", input_signature=signature)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("name", "fmt", "match"), [
    ("m.onnx", "tf_saved_model", "format='tf_saved_model'.*'onnx'"),
    ("m.onnx", "openvino", "format='openvino'.*'onnx'"),
    ("m.onnx", "ONNX", "format='ONNX'"),
    ("m", None, r"ending in '\.onnx'"),
    ("m.pb", None, r"ending in '\.onnx'"),
    ("m.keras", "onnx", r"not \.keras"),
    ("m.weights.h5", "onnx", r"not \.h5"),
    ("m.safetensors", "onnx", r"not \.safetensors"),
])
def test_other_formats_and_names_are_refused(tmp_path, name, fmt, match):
    model = _compiled([Dense(2, input_dim=3)], "numpy", "float32")
    with pytest.raises(InvalidArgumentError, match=match):
        model.export(tmp_path / name, format=fmt)
    assert list(tmp_path.iterdir()) == []


@needs_onnx
def test_format_onnx_takes_any_other_name(tmp_path):
    model = _compiled([Dense(2, input_dim=3)], "numpy", "float32")
    model.export(tmp_path / "model.bin", format="onnx")
    x = np.ones((1, 3), np.float32)
    np.testing.assert_allclose(_run(tmp_path / "model.bin", x), model.predict(x, verbose=0), rtol=1e-6, atol=1e-6)


def test_keyword_arguments_other_than_keras_onnx_ones_are_refused(tmp_path):
    model = _compiled([Dense(2, input_dim=3)], "numpy", "float32")
    with pytest.raises(InvalidArgumentError, match="is_static"):
        model.export(tmp_path / "m.onnx", is_static=True)
    with pytest.raises(InvalidArgumentError, match="verbose='yes'"):
        model.export(tmp_path / "m.onnx", verbose="yes")
    assert list(tmp_path.iterdir()) == []


@needs_onnx
def test_verbose_says_where_the_file_went(tmp_path, capsys):
    model = _compiled([Dense(2, input_dim=3)], "numpy", "float32")
    model.export(tmp_path / "quiet.onnx")
    assert capsys.readouterr().out == ""
    model.export(tmp_path / "loud.onnx", verbose=True)
    out = capsys.readouterr().out
    assert "loud.onnx" in out and "opset 17" in out


# ---- refusals: the model ------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class PluginDense(Dense):
    """A plugin's layer: a Dense subclass, so it may compute anything; it has no lowering."""

    name: ClassVar[str] = "plugin_dense"
    aliases: ClassVar[tuple] = ()


@dataclasses.dataclass(frozen=True)
class Squareplus(activations.Activation):
    name: ClassVar[str] = "squareplus_test"

    def call(self, x):
        return (x + ops.sqrt(x * x + 4.0)) / 2


@dataclasses.dataclass(frozen=True)
class ShiftedReLU(ReLU):
    """A subclass of a built-in activation with a call of its own: not the built-in's lowering."""

    name: ClassVar[str] = "shifted_relu_test"

    def call(self, x):
        return ops.relu(x) + 1.0


@pytest.mark.parametrize(("layers", "match"), [
    ([PluginDense(2, input_dim=3)], r"layer plugin_dense \(.*PluginDense\) of layer 'plugin_dense'"),
    ([Dense(4, input_dim=3), Activation(Squareplus())], r"activation squareplus_test .* of layer 'activation'"),
    ([Dense(4, input_dim=3, activation=ShiftedReLU())], r"activation shifted_relu_test .* of layer 'dense'"),
    ([Dense(4, input_dim=3, activation=lambda x: ops.tanh(x) * 2)], r"activation custom_activation .*Python"),
])
def test_a_component_without_a_lowering_is_refused_before_writing(tmp_path, layers, match):
    model = Sequential(layers)
    path = tmp_path / "m.onnx"
    path.write_bytes(b"previous")
    with pytest.raises(UnsupportedComponentError, match=match) as caught:
        model.export(path)
    assert "accepted: polynn's built-in" in str(caught.value)
    assert path.read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]


@pytest.mark.parametrize("model", [
    lambda: Sequential([Input((3,)), Dense(2, name="\ud800")]),
    lambda: Sequential([Input((3,)), Dense(2)], name="m\udfff"),
], ids=["layer", "model"])
def test_a_name_onnx_cannot_encode_is_refused_before_writing(tmp_path, model):
    with pytest.raises(InvalidArgumentError, match=r"export: invalid name='.*'; accepted: a (layer|model) name "
                       r"encodable as UTF-8 \(without unpaired surrogates\)"):
        model().export(tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []


def _exact_gelu_model(dtype):
    return _compiled([Input((3,)), Dense(4, activation="gelu", name="hidden"), Dense(1)], "numpy", dtype)


def test_float64_erf_is_refused(tmp_path):
    with pytest.raises(UnsupportedComponentError, match=r"layer 'hidden' uses GELU.*Erf.*float32 only"):
        _exact_gelu_model("float64").export(tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []


@needs_onnx
def test_float64_erf_exports_once_compiled_in_float32(tmp_path):
    model = _exact_gelu_model("float64")
    model.compile(loss="mse", dtype="float32")  # the accepted way: the same weights, in float32
    _check_against_predict(model, np.ones((2, 3)), tmp_path / "m.onnx", "float32")


@pytest.mark.parametrize("layers", [[], [Dense(2)], [Dense(2), Dense(1)]])
def test_a_model_without_an_input_shape_is_refused(tmp_path, layers):
    with pytest.raises(InvalidArgumentError, match="export: invalid input_shape=None; accepted: a model whose input"):
        Sequential(layers).export(tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []


# ---- the extra, and the file --------------------------------------------------------------------


def test_a_missing_onnx_names_the_extra(tmp_path, monkeypatch):
    model = _compiled([Dense(2, input_dim=3)], "numpy", "float32")
    for name in [n for n in sys.modules if n == "onnx" or n.startswith("onnx.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx raises ImportError
    with pytest.raises(MissingExtraError, match=r"ONNX export needs the 'onnx' package.*pip install 'polynn\[onnx\]'"):
        model.export(tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []


def test_import_polynn_and_export_imports_no_onnx():
    code = ("import sys, polynn, polynn._onnx_export; from polynn.models import Sequential; "
            "Sequential().export; assert 'onnx' not in sys.modules and 'onnxruntime' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, env=os.environ.copy())


@needs_onnx
def test_a_failed_write_leaves_the_previous_file(tmp_path, monkeypatch):
    model = _compiled([Dense(2, input_dim=3, activation="tanh")], "numpy", "float32")
    path = tmp_path / "m.onnx"
    model.export(path)
    before = path.read_bytes()
    model.set_weights([w + 1 for w in model.get_weights()])

    def crash(fd):
        raise OSError("disk vanished mid-write")

    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(FileAccessError, match="m.onnx.*disk vanished"):
        model.export(path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]
    model.export(path)
    assert path.read_bytes() != before


@needs_onnx
def test_a_graph_over_protobufs_limit_is_refused(tmp_path, monkeypatch):
    model = _compiled([Dense(2, input_dim=3)], "numpy", "float32")
    monkeypatch.setattr(_onnx_export, "PROTOBUF_LIMIT", 100)
    with pytest.raises(InvalidArgumentError, match="under 2 GiB"):
        model.export(tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []


@needs_onnx
def test_an_unwritable_target_is_a_model_file_error(tmp_path):
    model = _compiled([Dense(2, input_dim=3)], "numpy", "float32")
    with pytest.raises(InvalidArgumentError, match="existing directory"):
        model.export(tmp_path / "missing" / "m.onnx")
    (tmp_path / "d.onnx").mkdir()
    with pytest.raises((InvalidArgumentError, ModelFileError), match="not a directory"):
        model.export(tmp_path / "d.onnx")
