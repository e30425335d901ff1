"""ONNX export: a built Sequential's inference graph, lowered layer by layer, written atomically.

The graph is planned in plain Python (nodes as tuples, weights as NumPy arrays), so every refusal
comes before `onnx` is imported or a file is touched; only the last step builds the protobuf with
onnx.helper, checks it with onnx.checker and writes it with polynn._files.atomic_write.

Each lowering restates its spec's formula (polynn.activations) with elementary ONNX ops, constants
included (Keras's float32-formed ones too), rather than ONNX's fused activations (Elu, Softplus,
HardSigmoid...): ONNX Runtime's CPU provider has no float64 kernel for those, and its float32
Sigmoid is an approximation whose error in the tails exceeds the tolerance that predict is matched
to. Dense is Gemm (_dense says why not MatMul). Convolutions and pools run channels first between
Transposes, and in float64, where ONNX Runtime's CPU provider lacks Conv and AveragePool, as sums of
strided Slices. The operators' semantics are opset 13's, so any opset from 13 on describes the
graph; the default is 17, which ONNX Runtime (1.11 on), TensorRT and OpenVINO read, with IR version
8, which older runtimes accept too.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from typing import Any, BinaryIO, NamedTuple

import numpy as np

from . import _files
from . import activations as _act
from . import layers as _layers
from . import ops as _ops
from ._extras import require
from ._spec import FunctionField
from ._version import __version__
from .errors import InvalidArgumentError, UnsupportedComponentError

__all__ = ["export", "DEFAULT_OPSET", "MIN_OPSET", "SUFFIX", "INPUT_NAME", "OUTPUT_NAME"]

FORMAT = "onnx"
SUFFIX = ".onnx"
DEFAULT_OPSET = 17
MIN_OPSET = 13  # the versions of every operator used here (Softmax's single axis, Clip's inputs) date from 13
INPUT_NAME, OUTPUT_NAME, BATCH = "input", "output", "batch"
# The names model files are saved under (Keras's, polynn's safetensors): never an ONNX file under one.
OTHER_SUFFIXES = (".keras", ".h5", ".hdf5", ".safetensors")
# Ops of this graph that ONNX Runtime's CPU provider runs in float32 only: a float64 export using
# one is refused (casting through float32 would make a float64 model compute in float32).
FLOAT32_ONLY_OPS = frozenset({"Erf"})
# A protobuf message cannot exceed 2 GiB; polynn writes no external-data files.
PROTOBUF_LIMIT = 2**31 - 1


class _Node(NamedTuple):
    op: str
    inputs: tuple[str, ...]
    output: str
    attrs: dict[str, Any]
    owner: str  # the layer it lowers, for messages


class _Graph:
    """The graph being planned: nodes in order, weights and scalar constants in the model's dtype."""

    def __init__(self, dtype: np.dtype) -> None:
        self.dtype = dtype
        self.nodes: list[_Node] = []
        self.initializers: dict[str, np.ndarray] = {}
        self._constants: dict[bytes, str] = {}
        self.owner = ""

    def const(self, value: float) -> str:
        """A scalar initializer holding `value` in the model's dtype (one per distinct value)."""
        array = np.asarray(value, dtype=self.dtype)
        key = array.tobytes()
        if key not in self._constants:
            self._constants[key] = f"const_{len(self._constants)}"
            self.initializers[self._constants[key]] = array
        return self._constants[key]

    def shape_const(self, shape: tuple) -> str:
        """An int64 vector initializer: a target shape for Reshape."""
        name = f"shape_{'_'.join(str(d).replace('-', 'm') for d in shape)}"
        self.initializers[name] = np.asarray(shape, dtype=np.int64)
        return name

    def weight(self, name: str, array: np.ndarray) -> str:
        key = f"{self.owner}/{name}"
        self.initializers[key] = np.ascontiguousarray(array, dtype=self.dtype)
        return key

    def op(self, op: str, *inputs: str | float, **attrs: Any) -> str:
        """Add a node; number inputs become constants. Returns its output's name."""
        names = tuple(x if isinstance(x, str) else self.const(x) for x in inputs)
        output = f"{self.owner}/{op}_{len(self.nodes)}"
        self.nodes.append(_Node(op, names, output, attrs, self.owner))
        return output


# ---- activations: each restates its spec's `call` ---------------------------------------------


def _log1p(g: _Graph, t: str) -> str:
    """log(1 + t) to a few units in the last place (Goldberg: t * log(u) / (u - 1), u = 1 + t; t where u == 1)."""
    u = g.op("Add", 1.0, t)
    d = g.op("Sub", u, 1.0)
    return g.op("Where", g.op("Equal", d, 0.0), t, g.op("Mul", t, g.op("Div", g.op("Log", u), d)))


def _expm1_nonpositive(g: _Graph, m: str) -> str:
    """exp(m) - 1 for m <= 0 to a few units in the last place (Kahan: (u - 1) * m / log(u), u = exp(m);
    m where u == 1). m is raised to -40 first, where exp(m) - 1 is -1 in float32 and float64 alike
    and log(u) stays finite."""
    m = g.op("Max", m, -40.0)
    u = g.op("Exp", m)
    d = g.op("Sub", u, 1.0)
    return g.op("Where", g.op("Equal", d, 0.0), m, g.op("Mul", d, g.op("Div", m, g.op("Log", u))))


def _elu(g: _Graph, x: str, alpha: float) -> str:
    """elu_of: x for x > 0, alpha * expm1(min(x, 0)) otherwise."""
    negative = g.op("Mul", alpha, _expm1_nonpositive(g, g.op("Min", x, 0.0)))
    return g.op("Where", g.op("Greater", x, 0.0), x, negative)


def _sigmoid(g: _Graph, x: str) -> str:
    """1 / (1 + e^-x) for x >= 0, e^x / (1 + e^x) below, from e = exp(-|x|) (no overflow)."""
    e = g.op("Exp", g.op("Neg", g.op("Abs", x)))
    return g.op("Div", g.op("Where", g.op("Less", x, 0.0), e, 1.0), g.op("Add", 1.0, e))


def _softplus(g: _Graph, x: str) -> str:
    """max(x, 0) + log1p(exp(-|x|))."""
    return g.op("Add", g.op("Max", x, 0.0), _log1p(g, g.op("Exp", g.op("Neg", g.op("Abs", x)))))


def _relu6(g: _Graph, x: str) -> str:
    return g.op("Clip", x, 0.0, 6.0)


def _relu(g: _Graph, spec: _act.ReLU, x: str) -> str:
    if spec.plain:
        return g.op("Relu", x)
    y = g.op("Where", g.op("Greater", x, spec.threshold), x, 0.0)
    if spec.max_value is not None:
        y = g.op("Clip", y, 0.0, spec.max_value)
    if spec.negative_slope != 0:
        below = g.op("Where", g.op("Less", x, spec.threshold), g.op("Sub", spec.threshold, x), 0.0)
        y = g.op("Sub", y, g.op("Mul", spec.negative_slope, below))
    return y


def _gelu(g: _Graph, spec: _act.GELU, x: str) -> str:
    half_x = g.op("Mul", 0.5, x)
    if spec.approximate:
        cube = g.op("Mul", g.op("Mul", x, x), x)
        inner = g.op("Mul", _act.GELU_TANH_SCALE, g.op("Add", x, g.op("Mul", _act.GELU_TANH_COEFFICIENT, cube)))
        return g.op("Mul", half_x, g.op("Add", 1.0, g.op("Tanh", inner)))
    return g.op("Mul", half_x, g.op("Add", 1.0, g.op("Erf", g.op("Mul", x, _act.GELU_ERF_SCALE))))


# Exact classes only: a subclass (a plugin's) may compute something else, so it has no lowering.
ACTIVATIONS: dict[type[_act.Activation], Callable[[_Graph, Any, str], str]] = {
    _act.Linear: lambda g, spec, x: x,
    _act.ReLU: _relu,
    _act.Sigmoid: lambda g, spec, x: _sigmoid(g, x),
    _act.Tanh: lambda g, spec, x: g.op("Tanh", x),
    _act.Softmax: lambda g, spec, x: g.op("Softmax", x, axis=spec.axis),
    _act.LogSoftmax: lambda g, spec, x: g.op("LogSoftmax", x, axis=spec.axis),
    _act.ELU: lambda g, spec, x: _elu(g, x, spec.alpha),
    _act.SELU: lambda g, spec, x: g.op("Mul", _act.SELU_SCALE, _elu(g, x, _act.SELU_ALPHA)),
    _act.Softplus: lambda g, spec, x: _softplus(g, x),
    _act.Softsign: lambda g, spec, x: g.op("Div", x, g.op("Add", 1.0, g.op("Abs", x))),
    _act.GELU: _gelu,
    _act.SiLU: lambda g, spec, x: g.op("Mul", x, _sigmoid(g, x)),
    _act.LeakyReLU: lambda g, spec, x: g.op("Where", g.op("Greater", x, 0.0), x,
                                            g.op("Mul", spec.effective_slope, x)),
    _act.ReLU6: lambda g, spec, x: _relu6(g, x),
    _act.Exponential: lambda g, spec, x: g.op("Exp", x),
    _act.HardSigmoid: lambda g, spec, x: g.op("Div", _relu6(g, g.op("Add", x, 3.0)), 6.0),
    _act.HardSiLU: lambda g, spec, x: g.op("Div", g.op("Mul", x, _relu6(g, g.op("Add", x, 3.0))), 6.0),
    _act.Mish: lambda g, spec, x: g.op("Mul", x, g.op("Tanh", _softplus(g, x))),
}


# ---- layers -------------------------------------------------------------------------------------


def _activation(g: _Graph, spec: _act.Activation, x: str) -> str:
    lowering = ACTIVATIONS.get(type(spec))
    if lowering is None:
        raise _no_lowering("activation", _describe(spec), g.owner)
    return lowering(g, spec, x)


def _dense(g: _Graph, layer: _layers.Dense, weights: list[np.ndarray], x: str, shape: tuple) -> str:
    """Gemm, through a 2-D view of x where a sample has more than one axis: never MatMul, which ONNX
    Runtime (1.30) fuses with a neighbouring Mul or Div by a scalar into a FusedMatMul whose scale
    is a float32 attribute, off by 1e-8 in a float64 graph (after selu, say)."""
    kernel = g.weight("kernel", weights[0])
    inputs = (kernel, g.weight("bias", weights[1])) if layer.use_bias else (kernel,)
    if len(shape) == 1:
        return _activation(g, layer.activation, g.op("Gemm", x, *inputs))
    flat = g.op("Reshape", x, g.shape_const((-1, shape[-1])))
    z = g.op("Reshape", g.op("Gemm", flat, *inputs), g.shape_const((-1, *shape[:-1], layer.units)))
    return _activation(g, layer.activation, z)


# ---- normalization layers: their inference formula, in polynn.layers.normalization's order ---------


def _broadcast_weight(g: _Graph, name: str, array: np.ndarray, axes: tuple[int, ...], rank: int) -> str:
    """A weight of the normalized axes' sizes, as an initializer shaped to broadcast over x."""
    shape = [1] * rank
    for a, n in zip(axes, array.shape):
        shape[a] = n
    return g.weight(name, array.reshape(shape))


def _mean(g: _Graph, x: str, axes: tuple[int, ...], shape: tuple) -> str:
    """The mean over `axes` (kept), as a sum divided by the count: ReduceSum takes its axes as an
    input from opset 13 on, where ReduceMean's moved there only in 18."""
    count = int(np.prod([shape[a - 1] for a in axes]))
    total = g.op("ReduceSum", x, g.shape_const(axes), keepdims=1)
    return g.op("Div", total, float(count))


def _normalize(g: _Graph, x: str, mean: str, variance: str, gamma: str | None, beta: str | None,
               epsilon: float) -> str:
    """x * inv + (beta - mean * inv), inv = gamma / sqrt(variance + epsilon): normalization's _normalize."""
    inv = g.op("Div", 1.0, g.op("Sqrt", g.op("Add", variance, epsilon)))
    if gamma is not None:
        inv = g.op("Mul", inv, gamma)
    shift = g.op("Mul", g.op("Neg", mean), inv)
    if beta is not None:
        shift = g.op("Add", shift, beta)
    return g.op("Add", g.op("Mul", x, inv), shift)


def _batch_normalization(g: _Graph, layer: _layers.BatchNormalization, weights: list[np.ndarray], x: str,
                         shape: tuple) -> str:
    """Inference: the moving statistics, as predict uses them."""
    rank = len(shape) + 1
    axes = (layer.axis % rank,)
    names = [name for flag, name in ((layer.scale, "gamma"), (layer.center, "beta")) if flag]
    names += ["moving_mean", "moving_variance"]
    given = {name: _broadcast_weight(g, name, w, axes, rank) for name, w in zip(names, weights)}
    return _normalize(g, x, given["moving_mean"], given["moving_variance"], given.get("gamma"), given.get("beta"),
                      layer.epsilon)


def _layer_normalization(g: _Graph, layer: _layers.LayerNormalization, weights: list[np.ndarray], x: str,
                         shape: tuple) -> str:
    rank = len(shape) + 1
    axes = tuple(sorted(a % rank for a in (layer.axis if isinstance(layer.axis, tuple) else (layer.axis,))))
    params = [_broadcast_weight(g, f"weight_{k}", w, axes, rank) for k, w in enumerate(weights)]
    mean = _mean(g, x, axes, shape)
    centered = g.op("Sub", x, mean)
    variance = _mean(g, g.op("Mul", centered, centered), axes, shape)
    if layer.rms_scaling:
        y = g.op("Mul", x, g.op("Div", 1.0, g.op("Sqrt", g.op("Add", variance, layer.epsilon))))
        return g.op("Mul", y, params[0]) if params else y
    gamma = params[0] if layer.scale else None
    beta = params[-1] if layer.center else None
    return _normalize(g, x, mean, variance, gamma, beta, layer.epsilon)
# ---- convolution, pooling and reshaping --------------------------------------------------------
# ONNX's Conv and pools take channels first: a Transpose on each side. ONNX Runtime's CPU provider has
# Conv and AveragePool in float32 only, so a float64 graph sums the windows' strided slices instead
# (each window position's slice times its kernel matrix, by Gemm), in float64 throughout.


def _to_channels_first(g: _Graph, x: str, rank: int) -> str:
    return g.op("Transpose", x, perm=[0, rank + 1, *range(1, rank + 1)])


def _to_channels_last(g: _Graph, x: str, rank: int) -> str:
    return g.op("Transpose", x, perm=[0, *range(2, rank + 2), 1])


def _padding(padding: str, shape: tuple, sizes: tuple, strides: tuple, dilations: tuple) -> tuple:
    """(before, after) zeros along each spatial axis, as the spec's padding puts them."""
    if padding == "causal":
        return (((sizes[0] - 1) * dilations[0], 0),)
    return _ops.window_padding(padding, shape, sizes, strides, dilations)


def _pads(padding: tuple) -> list[int]:
    """ONNX's pads attribute: every axis's before, then every axis's after."""
    return [before for before, _ in padding] + [after for _, after in padding]


def _windows(g: _Graph, x: str, shape: tuple, sizes: tuple, strides: tuple, dilations: tuple,
             padding: tuple, lengths: tuple) -> list[tuple[tuple, str]]:
    """For each position in the window (row-major), the strided slice of the zero-padded x that it
    meets at every output position: (position, a tensor (batch, *lengths, channels))."""
    rank = len(sizes)
    if any(before or after for before, after in padding):
        pads = [0, *(b for b, _ in padding), 0, 0, *(a for _, a in padding), 0]
        x = g.op("Pad", x, g.shape_const(tuple(pads)))
    axes = g.shape_const(tuple(range(1, rank + 1)))
    steps = g.shape_const(tuple(strides))
    out = []
    for position in itertools.product(*(range(k) for k in sizes)):
        starts = tuple(p * d for p, d in zip(position, dilations))
        ends = tuple(start + (n - 1) * s + 1 for start, n, s in zip(starts, lengths, strides))
        out.append((position, g.op("Slice", x, g.shape_const(starts), g.shape_const(ends), axes, steps)))
    return out


def _conv(g: _Graph, layer: Any, weights: list[np.ndarray], x: str, shape: tuple) -> str:
    """Conv between two Transposes, the kernel (*k, in / groups, filters) as ONNX's (filters, in /
    groups, *k); in float64 the sum over window positions of slice @ kernel[position] (block-diagonal
    over the groups), then the bias."""
    rank, (*lengths, filters) = layer.rank, layer.output_shape(shape)
    padding = _padding(layer.padding, shape[:-1], layer.kernel_size, layer.strides, layer.dilation_rate)
    kernel = weights[0]
    if g.dtype != np.float64:
        inputs = [g.weight("kernel", np.transpose(kernel, (rank + 1, rank, *range(rank))))]
        if layer.use_bias:
            inputs.append(g.weight("bias", weights[1]))
        z = g.op("Conv", _to_channels_first(g, x, rank), *inputs, kernel_shape=list(layer.kernel_size),
                 strides=list(layer.strides), dilations=list(layer.dilation_rate), pads=_pads(padding),
                 group=layer.groups)
        return _activation(g, layer.activation, _to_channels_last(g, z, rank))
    channels, per_group = shape[-1], kernel.shape[-2]
    out_per_group = filters // layer.groups
    terms = []
    for position, window in _windows(g, x, shape[:-1], layer.kernel_size, layer.strides, layer.dilation_rate,
                                     padding, tuple(lengths)):
        matrix = np.zeros((channels, filters), dtype=kernel.dtype)
        for group in range(layer.groups):
            matrix[group * per_group:(group + 1) * per_group, group * out_per_group:(group + 1) * out_per_group] = \
                kernel[position][:, group * out_per_group:(group + 1) * out_per_group]
        name = "kernel_" + "_".join(map(str, position))
        terms.append(g.op("Gemm", g.op("Reshape", window, g.shape_const((-1, channels))), g.weight(name, matrix)))
    z = terms[0] if len(terms) == 1 else g.op("Sum", *terms)
    if layer.use_bias:
        z = g.op("Add", z, g.weight("bias", weights[1]))
    return _activation(g, layer.activation, g.op("Reshape", z, g.shape_const((-1, *lengths, filters))))


def _pool(g: _Graph, layer: Any, weights: list[np.ndarray], x: str, shape: tuple) -> str:
    """MaxPool or AveragePool (count_include_pad=0: a window divides by its real elements) between
    two Transposes; a float64 average is the sum of the windows' slices divided by those counts."""
    rank, (*lengths, _) = layer.rank, layer.output_shape(shape)
    ones = (1,) * rank
    padding = _padding(layer.padding, shape[:-1], layer.pool_size, layer.strides, ones)
    average = isinstance(layer, (_layers.AveragePooling1D, _layers.AveragePooling2D))
    if average and g.dtype == np.float64:
        windows = _windows(g, x, shape[:-1], layer.pool_size, layer.strides, ones, padding, tuple(lengths))
        total = g.op("Sum", *(window for _, window in windows)) if len(windows) > 1 else windows[0][1]
        # Each output's count of real elements: the product over axes of its window's overlap with the input.
        counts = np.ones(tuple(lengths), dtype=np.float64)
        for axis, (n, k, s, (before, _)) in enumerate(zip(shape[:-1], layer.pool_size, layer.strides, padding)):
            start = np.arange(lengths[axis]) * s - before
            overlap = np.minimum(start + k, n) - np.maximum(start, 0)
            counts = counts * overlap.reshape([-1 if a == axis else 1 for a in range(rank)])
        return g.op("Div", total, g.weight("counts", counts[..., np.newaxis]))
    attrs: dict[str, Any] = {"kernel_shape": list(layer.pool_size), "strides": list(layer.strides),
                             "pads": _pads(padding)}
    if average:
        attrs["count_include_pad"] = 0
    y = g.op("AveragePool" if average else "MaxPool", _to_channels_first(g, x, rank), **attrs)
    return _to_channels_last(g, y, rank)


def _global_pool(g: _Graph, layer: Any, weights: list[np.ndarray], x: str, shape: tuple) -> str:
    """The average as ReduceSum / n (ReduceSum's form is the same from opset 13 on, ReduceMean's
    changes at 18); the maximum as a MaxPool over every position, channels first."""
    rank = layer.rank
    if isinstance(layer, (_layers.GlobalAveragePooling1D, _layers.GlobalAveragePooling2D)):
        total = g.op("ReduceSum", x, g.shape_const(tuple(range(1, rank + 1))), keepdims=int(layer.keepdims))
        return g.op("Div", total, float(np.prod(shape[:-1])))
    y = g.op("MaxPool", _to_channels_first(g, x, rank), kernel_shape=list(shape[:-1]))
    if layer.keepdims:
        return _to_channels_last(g, y, rank)
    return g.op("Reshape", y, g.shape_const((-1, shape[-1])))


def _reshape(g: _Graph, layer: Any, weights: list[np.ndarray], x: str, shape: tuple) -> str:
    return g.op("Reshape", x, g.shape_const((-1, *layer.output_shape(shape))))


# ---- Embedding and the recurrent layers -----------------------------------------------------

_INT64 = 7  # onnx.TensorProto.INT64, without importing onnx before the graph is planned


def _int64(g: _Graph, value: Any) -> str:
    """An int64 initializer (a scalar or a vector): an index, or Slice's starts, ends and axes."""
    array = np.asarray(value, dtype=np.int64)
    name = f"int64_{'_'.join(str(v) for v in array.reshape(-1))}{'_v' if array.ndim else ''}"
    g.initializers[name] = array
    return name


def _embedding(g: _Graph, layer: _layers.Embedding, weights: list[np.ndarray], x: str, shape: tuple) -> str:
    """Gather of the table's rows at x truncated to integers (Cast, toward 0, as the layer's cast)."""
    return g.op("Gather", g.weight("embeddings", weights[0]), g.op("Cast", x, to=_INT64), axis=0)


def _blocks(g: _Graph, z: str, count: int, units: int) -> list[str]:
    """z's columns as `count` blocks of `units` (Slice on the last axis)."""
    return [g.op("Slice", z, _int64(g, [k * units]), _int64(g, [(k + 1) * units]), _int64(g, [-1]))
            for k in range(count)]


def _matmul(g: _Graph, x: str, w: str, bias: str | None = None) -> str:
    """x @ w (+ bias) of a 2-D x as Gemm (see _dense)."""
    return g.op("Gemm", x, w) if bias is None else g.op("Gemm", x, w, bias)


def _simple_rnn_step(g: _Graph, layer: Any, w: dict[str, str], x: str, state: Any) -> tuple[str, Any]:
    z = _matmul(g, x, w["kernel"], w.get("bias"))
    if state is not None:
        z = g.op("Add", z, _matmul(g, state, w["recurrent_kernel"]))
    h = _activation(g, layer.activation, z)
    return h, h


def _lstm_step(g: _Graph, layer: Any, w: dict[str, str], x: str, state: Any) -> tuple[str, Any]:
    z = _matmul(g, x, w["kernel"])
    if state is not None:
        z = g.op("Add", z, _matmul(g, state[0], w["recurrent_kernel"]))
    if "bias" in w:
        z = g.op("Add", z, w["bias"])
    z_i, z_f, z_g, z_o = _blocks(g, z, 4, layer.units)
    i, f, o = (_activation(g, layer.recurrent_activation, t) for t in (z_i, z_f, z_o))
    ig = g.op("Mul", i, _activation(g, layer.activation, z_g))
    c = ig if state is None else g.op("Add", g.op("Mul", f, state[1]), ig)
    h = g.op("Mul", o, _activation(g, layer.activation, c))
    return h, (h, c)


def _gru_step(g: _Graph, layer: Any, w: dict[str, str], x: str, state: Any) -> tuple[str, Any]:
    u, rec = layer.units, layer.recurrent_activation
    x_z, x_r, x_h = _blocks(g, _matmul(g, x, w["kernel"], w.get("input_bias")), 3, u)
    if state is None:
        inner = w.get("recurrent_bias")
    else:
        inner = _matmul(g, state, w["recurrent_kernel"], w.get("recurrent_bias"))
    if inner is None:
        z, r = _activation(g, rec, x_z), _activation(g, rec, x_r)
    else:
        parts = _blocks(g, inner, 3 if layer.reset_after else 2, u)
        z, r = (_activation(g, rec, g.op("Add", a, b)) for a, b in ((x_z, parts[0]), (x_r, parts[1])))
    if layer.reset_after:
        candidate = x_h if inner is None else g.op("Add", x_h, g.op("Mul", r, parts[2]))
    else:
        candidate = x_h if state is None else g.op("Add", x_h, _matmul(g, g.op("Mul", r, state), w["recurrent_h"]))
    hh = _activation(g, layer.activation, candidate)
    kept = g.op("Mul", g.op("Sub", 1.0, z), hh)
    h = kept if state is None else g.op("Add", g.op("Mul", z, state), kept)
    return h, h


def _recurrent_weights(g: _Graph, layer: Any, weights: list[np.ndarray]) -> dict[str, str]:
    units = layer.units
    named = dict(zip(("kernel", "recurrent_kernel", "bias"), weights))
    if isinstance(layer, _layers.GRU):
        bias = named.pop("bias", None)
        if bias is not None and layer.reset_after:
            named["input_bias"], named["recurrent_bias"] = bias[0], bias[1]
        elif bias is not None:
            named["input_bias"] = bias
        if not layer.reset_after:
            recurrent = named["recurrent_kernel"]
            named["recurrent_kernel"], named["recurrent_h"] = recurrent[:, :2 * units], recurrent[:, 2 * units:]
    return {name: g.weight(name, array) for name, array in named.items()}


_STEPS: dict[type, Callable[[_Graph, Any, dict[str, str], str, Any], tuple[str, Any]]] = {
    _layers.SimpleRNN: _simple_rnn_step, _layers.LSTM: _lstm_step, _layers.GRU: _gru_step}


def _recurrent(g: _Graph, layer: Any, weights: list[np.ndarray], x: str, shape: tuple) -> str:
    """The layer's loop written out step by step (the number of steps is the model's): each step
    Gathers x's time step and computes the layer's `call` from the same products and gates."""
    w = _recurrent_weights(g, layer, weights)
    step = _STEPS[type(layer)]
    order = range(shape[0] - 1, -1, -1) if layer.go_backwards else range(shape[0])
    state: Any = None
    outputs = []
    for t in order:
        h, state = step(g, layer, w, g.op("Gather", x, _int64(g, t), axis=1), state)
        outputs.append(h)
    if not layer.return_sequences:
        return outputs[-1]
    axis = _int64(g, [1])
    return g.op("Concat", *(g.op("Unsqueeze", h, axis) for h in outputs), axis=1)


# Each takes (graph, layer, its weights, x, x's shape without the batch axis).
LAYERS: dict[type[_layers.Layer], Callable[[_Graph, Any, list[np.ndarray], str, tuple], str]] = {
    _layers.Input: lambda g, layer, weights, x, shape: x,
    _layers.Dense: _dense,
    _layers.Dropout: lambda g, layer, weights, x, shape: x,  # inference: the identity
    _layers.Activation: lambda g, layer, weights, x, shape: _activation(g, layer.activation, x),
    _layers.BatchNormalization: _batch_normalization,
    _layers.LayerNormalization: _layer_normalization,
    # convolution, pooling and reshaping
    _layers.Conv1D: _conv, _layers.Conv2D: _conv,
    **{cls: _pool for cls in (_layers.MaxPooling1D, _layers.MaxPooling2D, _layers.AveragePooling1D,
                              _layers.AveragePooling2D)},
    **{cls: _global_pool for cls in (_layers.GlobalAveragePooling1D, _layers.GlobalAveragePooling2D,
                                     _layers.GlobalMaxPooling1D, _layers.GlobalMaxPooling2D)},
    _layers.Flatten: _reshape, _layers.Reshape: _reshape,
    _layers.Embedding: _embedding,
    _layers.SimpleRNN: _recurrent,
    _layers.LSTM: _recurrent,
    _layers.GRU: _recurrent,
}


def _describe(spec: Any) -> str:
    if isinstance(spec, _act.CustomActivation):
        return f"{spec.name} ({FunctionField.display_name(spec)}, a Python function)"
    cls = type(spec)
    return f"{spec.name} ({cls.__module__}.{cls.__qualname__})"


def _no_lowering(kind: str, what: str, layer: str) -> UnsupportedComponentError:
    error = UnsupportedComponentError(kind, what, "onnx")
    names = sorted(c.name for c in (ACTIVATIONS if kind == "activation" else LAYERS))
    error.args = (f"ONNX export: {kind} {what} of layer {layer!r} has no ONNX lowering; accepted: polynn's "
                  f"built-in {kind}s {', '.join(names)}",)
    return error


# ---- arguments ----------------------------------------------------------------------------------


def _check_format(filepath: object, fmt: Any, owner: str) -> str:
    name = _files.filepath(filepath)
    lowered = os.path.basename(name).lower()
    if fmt is None:
        if not lowered.endswith(SUFFIX):
            raise InvalidArgumentError(
                "filepath", name, f"a name ending in {SUFFIX!r} when format=None (polynn exports ONNX only), "
                f"or format='onnx'", owner=owner)
    elif fmt != FORMAT:
        raise InvalidArgumentError(
            "format", fmt, "'onnx', or None for a filepath ending in '.onnx' (polynn exports ONNX only; "
            "Keras's tf_saved_model, openvino, litert and torch formats need Keras)", owner=owner)
    other = next((s for s in OTHER_SUFFIXES if lowered.endswith(s)), None)
    if other is not None:
        raise InvalidArgumentError(
            "filepath", name, f"a name for an ONNX file, such as 'model.onnx' (not {other}, a name model files "
            f"of another format are saved under)", owner=owner)
    return name


def _check_signature(signature: Any, input_shape: tuple, owner: str) -> Any:
    """The graph input's batch dimension: the symbolic 'batch', or the size input_signature fixes."""
    if signature is None:
        return BATCH
    accepted = (f"None (the model's input shape {input_shape}, batch dynamic), or a shape (batch, "
                f"{', '.join(map(str, input_shape))}) with batch None or a positive int")
    if not isinstance(signature, (tuple, list)) or len(signature) != len(input_shape) + 1:
        raise InvalidArgumentError("input_signature", signature, accepted, owner=owner)
    batch, *rest = signature
    valid_batch = batch is None or (isinstance(batch, (int, np.integer)) and not isinstance(batch, bool)
                                    and batch > 0)
    if not valid_batch or tuple(rest) != tuple(input_shape):
        raise InvalidArgumentError("input_signature", signature, accepted, owner=owner)
    return BATCH if batch is None else int(batch)


def _check_opset(opset: Any, latest: int, owner: str) -> int:
    if opset is None:
        return DEFAULT_OPSET
    if isinstance(opset, bool) or not isinstance(opset, (int, np.integer)) or not MIN_OPSET <= opset <= latest:
        raise InvalidArgumentError("opset_version", opset, f"None ({DEFAULT_OPSET}) or an int from {MIN_OPSET} "
                                   f"to {latest} (the installed onnx package's newest)", owner=owner)
    return int(opset)


# ---- the graph ----------------------------------------------------------------------------------


def _check_names(model: Any, owner: str) -> None:
    """The model's and its layers' names name the graph, its nodes and weights: ONNX's strings are UTF-8."""
    for what, name in (("model", model.name), *(("layer", name) for name in model.layer_names())):
        try:
            name.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidArgumentError("name", name, f"a {what} name encodable as UTF-8 (without unpaired "
                                       f"surrogates), as ONNX's names are", owner=owner) from None


def _input_shape(model: Any, owner: str) -> tuple:
    if model.input_shape is None or not model.layers:
        raise InvalidArgumentError(
            "input_shape", None, "a model whose input shape is known (input_dim=, input_shape= or an Input "
            "layer, build(), or a fit/predict) and that has layers", owner=owner)
    return tuple(model.input_shape)


def _plan(model: Any, input_shape: tuple) -> tuple[_Graph, tuple]:
    """The model's graph, every component lowered, and its output shape (batch excluded)."""
    dtype = np.dtype(model.dtype or "float32")  # before compile, predict and get_weights use float32
    specs = [bound.spec for bound in model.layers]
    names = model.layer_names()
    weights = model.get_weights()
    g = _Graph(dtype)
    x, shape, taken = INPUT_NAME, input_shape, 0
    for name, spec in zip(names, specs):
        g.owner = name
        lowering = LAYERS.get(type(spec))
        if lowering is None:
            raise _no_lowering("layer", _describe(spec), name)
        count = len(spec.weight_specs(shape))
        x = lowering(g, spec, weights[taken:taken + count], x, shape)
        taken += count
        shape = spec.output_shape(shape)
    if dtype == np.float64:
        for node in g.nodes:
            if node.op in FLOAT32_ONLY_OPS:
                raise _float64_refusal(node, specs[names.index(node.owner)])
    g.owner = ""
    if g.nodes and g.nodes[-1].output == x:
        last = g.nodes[-1]
        g.nodes[-1] = last._replace(output=OUTPUT_NAME)
    else:  # the model computes the identity: the output still needs a node
        g.nodes.append(_Node("Identity", (x,), OUTPUT_NAME, {}, names[-1]))
    return g, tuple(shape)


def _float64_refusal(node: _Node, spec: Any) -> UnsupportedComponentError:
    activation = getattr(spec, "activation", spec)
    error = UnsupportedComponentError("activation", activation.name, "onnx")
    error.args = (f"ONNX export: layer {node.owner!r} uses {activation!r}, whose ONNX op {node.op} ONNX Runtime "
                  f"runs in float32 only, so a float64 graph of it would not load there; accepted in float64: every "
                  f"other activation (gelu with approximate=True too); or export the model compiled in float32",)
    return error


def _proto(g: _Graph, input_shape: tuple, output_shape: tuple, batch: Any, opset: int, model_name: str,
           owner: str) -> Any:
    """The planned graph as an onnx.ModelProto, checked by onnx.checker."""
    onnx = require("onnx", "onnx", "ONNX export")
    from onnx import helper, numpy_helper

    elem = helper.np_dtype_to_tensor_dtype(g.dtype)
    nodes = [helper.make_node(n.op, list(n.inputs), [n.output], name=n.output, **n.attrs) for n in g.nodes]
    graph = helper.make_graph(
        nodes, model_name,
        [helper.make_tensor_value_info(INPUT_NAME, elem, [batch, *input_shape])],
        [helper.make_tensor_value_info(OUTPUT_NAME, elem, [batch, *output_shape])],
        [numpy_helper.from_array(array, name) for name, array in g.initializers.items()])
    opsets = [helper.make_opsetid("", opset)]
    # The IR version the opset needs, not the onnx package's newest, which older runtimes refuse.
    proto = helper.make_model(graph, opset_imports=opsets, ir_version=helper.find_min_ir_version_for(opsets),
                              producer_name="polynn", producer_version=__version__)
    size = proto.ByteSize()
    if size > PROTOBUF_LIMIT:
        raise InvalidArgumentError("model", f"an ONNX graph of {size} bytes", "a graph under 2 GiB, protobuf's "
                                   "limit (polynn writes no external-data files)", owner=owner)
    onnx.checker.check_model(proto)
    return proto


def export(model: Any, filepath: object, format: Any = None, verbose: Any = None,  # noqa: A002 (Keras's name)
           input_signature: Any = None, opset_version: Any = None) -> None:
    """Write `model`'s inference graph to `filepath` as ONNX (see Sequential.export)."""
    owner = f"{model.name}.export"
    name = _check_format(filepath, format, owner)
    if verbose is not None and not isinstance(verbose, bool):
        raise InvalidArgumentError("verbose", verbose, "None, True or False", owner=owner)
    input_shape = _input_shape(model, owner)
    _check_names(model, owner)
    batch = _check_signature(input_signature, input_shape, owner)
    g, output_shape = _plan(model, input_shape)
    onnx = require("onnx", "onnx", "ONNX export")
    opset = _check_opset(opset_version, onnx.defs.onnx_opset_version(), owner)
    proto = _proto(g, input_shape, output_shape, batch, opset, model.name, owner)
    data = proto.SerializeToString()

    def write(stream: BinaryIO) -> None:
        stream.write(data)

    _files.atomic_write(name, write)
    if verbose:
        print(f"Saved the ONNX graph of {model.name!r} (opset {opset}, {len(g.nodes)} nodes, {g.dtype.name}, "
              f"input {INPUT_NAME!r} of shape {[batch, *input_shape]}) to {_files.describe(name)}")
