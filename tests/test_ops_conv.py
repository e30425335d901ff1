"""polynn.ops.conv, max_pool and average_pool: values against loops over the definitions, gradients
against finite differences, the composed ops against the NumPy backend's, every engine against NumPy,
the errors for bad arguments, and the kit's cases catching a wrong rule."""

from __future__ import annotations

import itertools
import math
import types

import numpy as np
import pytest

from polynn import hookimpl, ops, plugins
from polynn.conformance import run
from polynn.errors import InvalidArgumentError
from polynn_numpy import autodiff
from polynn_numpy import ops as numpy_ops
from polynn_numpy.backend import NumpyBackend

WINDOW_OPS = ("conv", "max_pool", "average_pool")


# ---- the definitions, as loops ---------------------------------------------------------------


def _pairs(padding, spatial, window, strides, dilation):
    if padding == "valid":
        return [(0, 0)] * len(spatial)
    if padding == "same":
        pairs = []
        for n, k, s, d in zip(spatial, window, strides, dilation):
            total = max((math.ceil(n / s) - 1) * s + (k - 1) * d + 1 - n, 0)
            pairs.append((total // 2, total - total // 2))
        return pairs
    return list(padding)


def _out_sizes(spatial, window, strides, dilation, pairs):
    return [(n + b + a - (k - 1) * d - 1) // s + 1 for n, k, s, d, (b, a) in zip(spatial, window, strides, dilation,
                                                                               pairs)]


def loop_conv(x, kernel, strides, padding, dilation):
    """out[b, o, f] = sum over k, c of xp[b, o * s + k * d, c] kernel[k, c, f], xp x padded with zeros."""
    dims = x.ndim - 2
    window = kernel.shape[:dims]
    pairs = _pairs(padding, x.shape[1:-1], window, strides, dilation)
    xp = np.pad(x, [(0, 0), *pairs, (0, 0)])
    sizes = _out_sizes(x.shape[1:-1], window, strides, dilation, pairs)
    out = np.zeros((x.shape[0], *sizes, kernel.shape[-1]))
    for b, o in itertools.product(range(x.shape[0]), itertools.product(*map(range, sizes))):
        for k in itertools.product(*map(range, window)):
            at = tuple(o[i] * strides[i] + k[i] * dilation[i] for i in range(dims))
            out[(b, *o)] += xp[(b, *at)] @ kernel[k]
    return out


def loop_pool(x, window, strides, padding, kind, upstream=None):
    """The pooled values, and the gradient for `upstream`: all of a max window's to its first
    largest real element in row-major order, an average window's shared by its real elements."""
    dims = x.ndim - 2
    ones = (1,) * dims
    pairs = _pairs(padding, x.shape[1:-1], window, strides, ones)
    sizes = _out_sizes(x.shape[1:-1], window, strides, ones, pairs)
    values, grad = np.zeros((x.shape[0], *sizes, x.shape[-1])), np.zeros_like(x)
    for b, c, o in itertools.product(range(x.shape[0]), range(x.shape[-1]), itertools.product(*map(range, sizes))):
        at = [tuple(o[i] * strides[i] + k[i] - pairs[i][0] for i in range(dims))
              for k in itertools.product(*map(range, window))]
        positions = [p for p in at if all(0 <= p[i] < x.shape[1 + i] for i in range(dims))]
        elements = [x[(b, *p, c)] for p in positions]
        g = 0.0 if upstream is None else upstream[(b, *o, c)]
        if kind == "max":
            values[(b, *o, c)] = max(elements)
            grad[(b, *positions[elements.index(max(elements))], c)] += g  # index(): the first of ties
        else:
            values[(b, *o, c)] = sum(elements) / len(elements)
            for p in positions:
                grad[(b, *p, c)] += g / len(elements)
    return values, grad


# ---- configurations --------------------------------------------------------------------------

RNG = np.random.default_rng(7)
# (spatial shape, kernel or pool shape, strides, padding, dilation)
CONVS = [
    ((7,), (3,), (1,), "valid", (1,)),
    ((7,), (4,), (2,), "same", (1,)),
    ((8,), (2,), (1,), ((2, 0),), (2,)),  # Conv1D's causal padding
    ((6, 5), (3, 2), (1, 1), "valid", (1, 1)),
    ((6, 5), (2, 3), (2, 2), "same", (1, 1)),
    ((6, 7), (2, 2), (1, 1), "same", (2, 3)),
    ((6, 5), (2, 3), (2, 1), ((1, 0), (0, 2)), (1, 1)),
    ((7, 6), (2, 2), (2, 2), "same", (2, 2)),  # strides and dilation both above 1
    ((4, 3, 5), (2, 2, 3), (2, 1, 1), "same", (1, 1, 1)),
    ((4, 4, 4), (2, 1, 2), (1, 2, 1), ((0, 1), (1, 1), (0, 0)), (2, 1, 1)),
]
POOLS = [
    ((7,), (2,), (2,), "valid"),
    ((7,), (3,), (2,), "same"),
    ((8,), (2,), (1,), "same"),
    ((6, 5), (2, 2), (2, 2), "valid"),
    ((6, 5), (3, 3), (2, 2), "same"),
    ((6, 5), (2, 3), (1, 2), "same"),
    ((4, 3, 5), (2, 2, 2), (2, 2, 2), "same"),
]


def _conv_arrays(spatial, window, in_channels=3, out_channels=2, batch=2):
    return RNG.normal(size=(batch, *spatial, in_channels)), RNG.normal(size=(*window, in_channels, out_channels))


def _id(config):
    return "-".join(str(part).replace(" ", "") for part in config)


def _finite_difference(f, x, upstream, h=1e-6):
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        step = np.zeros_like(x)
        step[i] = h
        grad[i] = np.sum(upstream * (np.asarray(f(x + step)) - np.asarray(f(x - step)))) / (2 * h)
    return grad


# ---- values and gradients on the NumPy backend -----------------------------------------------


@pytest.mark.parametrize("config", CONVS, ids=_id)
def test_conv_values_are_the_definitions(config):
    spatial, window, strides, padding, dilation = config
    x, kernel = _conv_arrays(spatial, window)
    got = ops.conv(x, kernel, strides=strides, padding=padding, dilation_rate=dilation)
    np.testing.assert_allclose(got, loop_conv(x, kernel, strides, padding, dilation), rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("kind", ["max", "average"])
@pytest.mark.parametrize("config", POOLS, ids=_id)
def test_pool_values_and_gradients_are_the_definitions(config, kind):
    spatial, window, strides, padding = config
    x = RNG.normal(size=(2, *spatial, 3)) - 3.0  # all negative: padding taking part would show
    op = ops.max_pool if kind == "max" else ops.average_pool
    got = op(x, window, strides=strides, padding=padding)
    upstream = RNG.normal(size=np.shape(got))
    want, want_grad = loop_pool(x, window, strides, padding, kind, upstream)
    np.testing.assert_allclose(got, want, rtol=1e-14, atol=1e-14)
    (grad,) = autodiff.vjp(lambda t: op(t, window, strides=strides, padding=padding), (x,), upstream)
    np.testing.assert_allclose(grad, want_grad, rtol=1e-14, atol=1e-14)


@pytest.mark.parametrize("config", CONVS, ids=_id)
def test_conv_gradients_are_finite_differences(config):
    spatial, window, strides, padding, dilation = config
    x, kernel = _conv_arrays(spatial, window, batch=1)

    def f(x, kernel):
        return ops.conv(x, kernel, strides=strides, padding=padding, dilation_rate=dilation)

    upstream = RNG.normal(size=np.shape(f(x, kernel)))
    d_x, d_kernel = autodiff.vjp(f, (x, kernel), upstream)
    # Central differences of a function linear in each argument: exact but for rounding.
    np.testing.assert_allclose(d_x, _finite_difference(lambda t: f(t, kernel), x, upstream), atol=1e-8)
    np.testing.assert_allclose(d_kernel, _finite_difference(lambda t: f(x, t), kernel, upstream), atol=1e-8)


@pytest.mark.parametrize("config", [c for c in POOLS if c[3] == "same"], ids=_id)
def test_pool_gradients_are_finite_differences(config):
    spatial, window, strides, padding = config
    x = RNG.normal(size=(1, *spatial, 2))  # distinct values: no tie, a derivative everywhere
    for op in (ops.max_pool, ops.average_pool):
        def f(t, op=op):
            return op(t, window, strides=strides, padding=padding)

        upstream = RNG.normal(size=np.shape(f(x)))
        (grad,) = autodiff.vjp(f, (x,), upstream)
        np.testing.assert_allclose(grad, _finite_difference(f, x, upstream), atol=1e-8)


def test_max_pool_sends_a_tie_to_the_first_largest_element_in_row_major_order():
    x = np.array([[1.0, 3.0, 3.0, 0.0], [3.0, 2.0, 3.0, 3.0]]).reshape(1, 2, 4, 1)
    (grad,) = autodiff.vjp(lambda t: ops.max_pool(t, 2), (x,), np.ones((1, 1, 2, 1)))
    # Window [[1, 3], [3, 2]]: the 3 of row 0; window [[3, 0], [3, 3]]: the 3 at its top left.
    np.testing.assert_array_equal(grad[0, :, :, 0], [[0, 1, 1, 0], [0, 0, 0, 0]])
    # Overlapping windows of equal elements: each window's first.
    line = np.array([3.0, 3.0, 3.0, 1.0]).reshape(1, 4, 1)
    (grad,) = autodiff.vjp(lambda t: ops.max_pool(t, 2, strides=1), (line,), np.ones((1, 3, 1)))
    np.testing.assert_array_equal(grad.ravel(), [1, 1, 1, 0])


def test_float32_stays_float32():
    x, kernel = (a.astype(np.float32) for a in _conv_arrays((6, 5), (3, 3)))
    assert ops.conv(x, kernel, padding="same").dtype == np.float32
    assert ops.max_pool(x, 2, padding="same").dtype == ops.average_pool(x, 3, padding="same").dtype == np.float32
    d_x, d_kernel = autodiff.vjp(lambda a, k: ops.conv(a, k, strides=2), (x, kernel), np.ones((2, 2, 2, 2), np.float32))
    assert d_x.dtype == d_kernel.dtype == np.float32


# ---- the composed ops, for a namespace without them ------------------------------------------


def _without_window_ops(namespace):
    names = [n for n in (*ops.OP_NAMES, *ops.EXTRA_OP_NAMES) if n not in WINDOW_OPS and hasattr(namespace, n)]
    return types.SimpleNamespace(**{name: getattr(namespace, name) for name in names})


def _window_calls():
    for spatial, window, strides, padding, dilation in CONVS:
        yield "conv", _conv_arrays(spatial, window), dict(strides=strides, padding=padding, dilation_rate=dilation)
    for spatial, window, strides, padding in POOLS:
        x = RNG.normal(size=(2, *spatial, 3))
        x[0, ..., 0] = 1.0  # a tie in every window of a channel
        for op in ("max_pool", "average_pool"):
            yield op, (x,), dict(pool_size=window, strides=strides, padding=padding)


WINDOW_CALLS = list(_window_calls())


def _numpy_value_and_gradients(namespace, op, arrays, options, dtype=np.float64):
    arrays = [a.astype(dtype) for a in arrays]

    def f(*tensors):
        with ops.using(namespace):
            return getattr(ops, op)(*tensors, **options)

    value = np.asarray(f(*arrays))
    upstream = np.random.default_rng(3).normal(size=value.shape).astype(dtype)
    return value, autodiff.vjp(f, arrays, upstream)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_the_composed_ops_are_the_numpy_backends(dtype):
    composed = _without_window_ops(numpy_ops)
    tol = 1e-13 if dtype == np.float64 else 2e-6
    for op, arrays, options in WINDOW_CALLS:
        value, grads = _numpy_value_and_gradients(numpy_ops, op, arrays, options, dtype)
        got_value, got_grads = _numpy_value_and_gradients(composed, op, arrays, options, dtype)
        assert got_value.dtype == value.dtype
        np.testing.assert_allclose(got_value, value, rtol=tol, atol=tol, err_msg=f"{op} {options}")
        for got, want in zip(got_grads, grads):
            np.testing.assert_allclose(got, want, rtol=tol, atol=tol, err_msg=f"{op} {options} gradient")


def test_a_native_returning_not_implemented_gets_the_composed_op():
    calls = []

    def declining(*args, **kwargs):
        calls.append(kwargs)
        return NotImplemented

    namespace = types.SimpleNamespace(**vars(_without_window_ops(numpy_ops)), conv=declining)
    x, kernel = _conv_arrays((6, 5), (3, 3))
    with ops.using(namespace):
        got = ops.conv(x, kernel, strides=2, padding="SAME")
    np.testing.assert_allclose(got, ops.conv(x, kernel, strides=2, padding="same"), rtol=1e-13, atol=1e-13)
    # The native saw the arguments normalized.
    assert calls == [dict(strides=(2, 2), padding="same", dilation_rate=(1, 1))]


# ---- every engine against NumPy --------------------------------------------------------------


def _engine_value_and_gradients(engine, op, arrays, options):
    def f(*tensors):
        return getattr(ops, op)(*tensors, **options)

    if engine == "torch":
        torch = pytest.importorskip("torch")
        from polynn_torch import ops as torch_ops

        tensors = [torch.tensor(a, requires_grad=True) for a in arrays]
        with ops.using(torch_ops), torch_ops.floats(torch.float64, "cpu"):
            out = f(*tensors)
        upstream = np.random.default_rng(3).normal(size=tuple(out.shape))
        out.backward(torch.tensor(upstream))
        return out.detach().numpy(), [t.grad.numpy() for t in tensors]
    if engine == "tensorflow":
        tf = pytest.importorskip("tensorflow")
        from polynn_tensorflow import ops as tf_ops

        tensors = [tf.constant(a) for a in arrays]
        with ops.using(tf_ops), tf_ops.floats(tf.float64), tf.GradientTape() as tape:
            tape.watch(tensors)
            out = f(*tensors)
        upstream = np.random.default_rng(3).normal(size=tuple(out.shape))
        return out.numpy(), [g.numpy() for g in tape.gradient(out, tensors, output_gradients=tf.constant(upstream))]
    jax = pytest.importorskip("jax")
    pytest.importorskip("polynn_jax")
    from polynn_jax import ops as jax_ops
    from polynn_jax.precision import x64

    with x64(), ops.using(jax_ops), jax_ops.floats(jax.numpy.float64):
        tensors = [jax.numpy.asarray(a) for a in arrays]
        out, vjp = jax.vjp(f, *tensors)
        upstream = np.random.default_rng(3).normal(size=tuple(out.shape))
        return np.asarray(out), [np.asarray(g) for g in vjp(jax.numpy.asarray(upstream))]


@pytest.mark.parametrize("engine", ["torch", "tensorflow", "jax"])
def test_every_engine_computes_the_numpy_values_and_gradients(engine):
    for op, arrays, options in WINDOW_CALLS:
        want_value, want_grads = _numpy_value_and_gradients(numpy_ops, op, arrays, options)
        value, grads = _engine_value_and_gradients(engine, op, arrays, options)
        np.testing.assert_allclose(value, want_value, rtol=1e-13, atol=1e-13, err_msg=f"{op} {options}")
        for got, want in zip(grads, want_grads):
            np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-13, err_msg=f"{op} {options} gradient")


# ---- bad arguments ---------------------------------------------------------------------------

X = np.zeros((2, 6, 5, 3))
KERNEL = np.zeros((3, 3, 3, 4))


@pytest.mark.parametrize(("call", "words"), [
    (lambda: ops.conv(np.zeros((6, 5)), KERNEL), ["polynn.ops.conv", "x.shape=(6, 5)", "1 to 3 spatial"]),
    (lambda: ops.conv(X, np.zeros((3, 3, 4))), ["kernel.shape=(3, 3, 4)", "in_channels=3"]),
    (lambda: ops.conv(X, np.zeros((3, 3, 2, 4))), ["kernel.shape=(3, 3, 2, 4)", "in_channels=3"]),
    (lambda: ops.conv(X, KERNEL, padding="full"), ["padding='full'", '"valid" or "same"', "pairs (before, after)"]),
    (lambda: ops.conv(X, KERNEL, padding=((1, 1),)), ["padding=((1, 1),)", "2 pairs"]),
    (lambda: ops.conv(X, KERNEL, padding=((1, -1), (0, 0))), ["padding=((1, -1), (0, 0))", "ints >= 0"]),
    (lambda: ops.conv(X, KERNEL, strides=0), ["strides=0", "a positive int, or a tuple of 2 positive ints"]),
    (lambda: ops.conv(X, KERNEL, strides=(1, -2)), ["strides=(1, -2)", "positive"]),
    (lambda: ops.conv(X, KERNEL, strides=(1, 1, 1)), ["strides=(1, 1, 1)", "tuple of 2"]),
    (lambda: ops.conv(X, KERNEL, strides=1.5), ["strides=1.5"]),
    (lambda: ops.conv(X, KERNEL, dilation_rate=0), ["dilation_rate=0", "positive"]),
    (lambda: ops.conv(X, KERNEL, dilation_rate=3), ["x.shape=(2, 6, 5, 3)", "(7, 7)"]),
    (lambda: ops.max_pool(np.zeros((2, 3)), 2), ["polynn.ops.max_pool", "x.shape=(2, 3)"]),
    (lambda: ops.max_pool(X, 0), ["pool_size=0", "positive"]),
    (lambda: ops.max_pool(X, 2, strides=0), ["strides=0"]),
    (lambda: ops.max_pool(X, 2, padding=((1, 1), (1, 1))), ["padding=((1, 1), (1, 1))", '"valid" or "same"']),
    (lambda: ops.average_pool(X, 7), ["polynn.ops.average_pool", "x.shape=(2, 6, 5, 3)", "(7, 7)"]),
    (lambda: ops.average_pool(X, (2, True)), ["pool_size=(2, True)"]),
])
def test_bad_arguments_are_polynn_errors_saying_what_is_accepted(call, words):
    with pytest.raises(InvalidArgumentError) as caught:
        call()
    for word in words:
        assert word in str(caught.value)


def test_same_padding_never_needs_a_larger_input():
    # "same" pads up to a whole window: one element is enough.
    assert ops.conv(np.ones((1, 1, 1, 1)), np.ones((3, 3, 1, 1)), padding="same").shape == (1, 1, 1, 1)
    assert ops.max_pool(np.ones((1, 1, 1)), 4, padding="same").shape == (1, 1, 1)


def test_window_padding_is_tensorflows_same_rule():
    # total = max((ceil(n / s) - 1) s + (k - 1) d + 1 - n, 0), the odd one after.
    assert ops.window_padding("same", (5, 6, 7), (4, 3, 2), (2, 1, 3), (1, 2, 1)) == ((1, 2), (2, 2), (0, 1))
    assert ops.window_padding("valid", (5,), (3,), (1,)) == ((0, 0),)
    assert ops.window_padding(((2, 0),), (5,), (3,), (1,)) == ((2, 0),)


# ---- the kit's cases catch a wrong rule ------------------------------------------------------


def _max_pool_ties_to_last(x, pool_size, strides, padding):
    """max_pool whose gradient goes to the LAST largest element of a window (the value is right)."""
    flipped = tuple(slice(None, None, -1) if 0 < axis < len(pool_size) + 1 else slice(None)
                    for axis in range(len(pool_size) + 2))
    if any(n % s or k != s for n, k, s in zip(autodiff.value_of(x).shape[1:-1], pool_size, strides)) \
            or padding != "valid":
        # Flipping is only exact for windows that tile the input; elsewhere keep the right rule.
        return numpy_ops.max_pool(x, pool_size, strides, padding)
    return numpy_ops.max_pool(x[flipped], pool_size, strides, padding)[flipped]


def _average_pool_counting_padding(x, pool_size, strides, padding):
    """average_pool dividing by the whole window, padding included (torch's count_include_pad)."""
    pads = ops.window_padding(padding, autodiff.value_of(x).shape[1:-1], pool_size, strides)
    summed = numpy_ops.average_pool(x, pool_size, strides, padding)
    a = autodiff.value_of(x)
    from polynn_numpy import windows

    mask = windows.pad(np.ones((1, *a.shape[1:-1], 1)), pads, 0)
    counts = np.sum(windows.view(mask, pool_size, strides, (1,) * len(pool_size)),
                    axis=tuple(range(1 + len(pool_size), 1 + 2 * len(pool_size))))
    return summed * (counts / math.prod(pool_size))


def _conv_same_extra_before(x, kernel, strides, padding, dilation_rate):
    """conv padding "same" with the odd element before, not after."""
    if padding == "same":
        a = autodiff.value_of(x)
        pairs = ops.window_padding(padding, a.shape[1:-1], np.shape(autodiff.value_of(kernel))[:-2], strides,
                                   dilation_rate)
        padding = tuple((after, before) for before, after in pairs)
    return numpy_ops.conv(x, kernel, strides, padding, dilation_rate)


def _mutant(name, doc, **changed):
    names = [n for n in (*ops.OP_NAMES, *ops.EXTRA_OP_NAMES) if hasattr(numpy_ops, n)]
    namespace = types.SimpleNamespace(**{**{n: getattr(numpy_ops, n) for n in names},
                                         **changed})
    forward_backward = _custom_activation(namespace)
    table = NumpyBackend.implementations
    return type(f"Mutant_{name}", (NumpyBackend,), {
        "__doc__": doc, "name": f"window_{name}",
        "implementations": {**table, "activation": {**table["activation"], "custom_activation": forward_backward}},
    })


def _custom_activation(namespace):
    def forward(spec, x):
        with ops.using(namespace), numpy_ops.float_dtype(x.dtype):
            return np.asarray(autodiff.value_of(spec.function(x))).astype(x.dtype, copy=False)

    def backward(spec, x, y, dy):
        with ops.using(namespace), numpy_ops.float_dtype(x.dtype):
            return autodiff.vjp(spec.function, (x,), dy)[0]

    return forward, backward


MUTANTS = {
    "ties_to_last": _mutant("ties_to_last", "max_pool's gradient to the last largest element.",
                            max_pool=_max_pool_ties_to_last),
    "count_padding": _mutant("count_padding", "average_pool counting the padding.",
                             average_pool=_average_pool_counting_padding),
    "same_before": _mutant("same_before", "conv's odd 'same' padding element before.", conv=_conv_same_extra_before),
}


class _MutantsPlugin:
    @hookimpl
    def polynn_register_backends(self, register):
        for cls in MUTANTS.values():
            register(cls.name, cls, engine="numpy", install="polynn", dtypes=cls.dtypes)


@pytest.fixture(scope="module")
def mutants():
    plugins.reset()
    plugins.register_plugin(_MutantsPlugin(), name="window-op-mutants")
    yield
    plugins.reset()


# (mutant, cases it fails, the observations failing, cases it passes)
EXPECTED = [
    ("ties_to_last", ["op.max_pool(1d, ties)"], {"gradient"}, ["op.max_pool(1d, pool_size=2, padding=same)"]),
    ("count_padding", ["op.average_pool(2d, pool_size=3, strides=2, padding=same)",
                       "op.average_pool(1d, pool_size=2, strides=1, padding=same)"], {"forward", "gradient"},
     ["op.average_pool"]),
    ("same_before", ["op.conv(1d, strides=2, padding=same)", "op.conv(2d, padding=same, dilation_rate=(2, 3))"],
     {"forward", "gradient"}, ["op.conv", "op.conv(1d, padding=((2, 0),), dilation_rate=2)"]),
]


@pytest.mark.parametrize(("mutant", "failing", "observations", "passing"), EXPECTED, ids=[e[0] for e in EXPECTED])
def test_a_wrong_rule_fails_its_cases(mutants, mutant, failing, observations, passing):
    results = {r.name: r for r in run(MUTANTS[mutant].name, "float64", [*failing, *passing]).results}
    for name in failing:
        result = results[name]
        assert result.status == "fail", (name, result.status, result.message)
        assert {c.name for c in result.checks if not c.passed} == observations, name
    for name in passing:
        assert results[name].status == "pass", (name, results[name].message)
