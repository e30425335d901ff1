"""The kit catches a wrong slope at a kink or a tie: mutants of the NumPy backend, each differing
from it only there, fail the cases about that op or component; the NumPy backend passes them."""

from __future__ import annotations

import types

import numpy as np
import pytest

from polynn import hookimpl, ops, plugins
from polynn.conformance import run
from polynn.losses import EPSILON
from polynn_numpy import activations as numpy_activations
from polynn_numpy import autodiff
from polynn_numpy import losses as numpy_losses
from polynn_numpy import ops as numpy_ops
from polynn_numpy import regularizers as numpy_regularizers
from polynn_numpy.backend import NumpyBackend

value_of, traced = autodiff.value_of, autodiff.traced


# ---- polynn.ops mutants: user functions run on a namespace with one op changed ----------------


def _namespace(**changed):
    return types.SimpleNamespace(**{**{name: getattr(numpy_ops, name) for name in ops.OP_NAMES}, **changed})


def _custom_activation(namespace):
    """custom_activation's implementation, running the user function on `namespace`."""

    def forward(spec, x):
        with ops.using(namespace), numpy_ops.float_dtype(x.dtype):
            return np.asarray(value_of(spec.function(x))).astype(x.dtype, copy=False)

    def backward(spec, x, y, dy):
        with ops.using(namespace), numpy_ops.float_dtype(x.dtype):
            return autodiff.vjp(spec.function, (x,), dy)[0]

    return forward, backward


def _abs_slope_one_at_zero(x):
    if not traced(x):
        return np.abs(x)
    a = x.value
    return autodiff.unary(x, np.abs(a), np.where(a >= 0, 1, -1).astype(a.dtype))


def _maximum_to_second(x, y):
    return numpy_ops.where(value_of(x) > value_of(y), x, y)


def _maximum_split(x, y):
    # Half of a tie's gradient to each argument (torch.maximum's rule); the values are unchanged.
    return 0.5 * (numpy_ops.maximum(x, y) + _maximum_to_second(x, y))


def _clip_zero_at_bounds(x, x_min, x_max):
    a = value_of(x)
    return numpy_ops.where((a > x_min) & (a < x_max), x, np.clip(a, x_min, x_max))


def _max_to_first(x, axis=None, keepdims=False):
    """A reduced max whose gradient goes to the first of tied elements only."""
    a = value_of(x)
    out = np.max(a, axis=axis, keepdims=keepdims)
    if not traced(x):
        return out
    first = np.zeros_like(a)
    if axis is None:
        first.flat[np.argmax(a)] = 1
    else:
        np.put_along_axis(first, np.expand_dims(np.argmax(a, axis=axis), axis), 1, axis=axis)

    def vjp(g):
        g = g if axis is None or keepdims else np.expand_dims(g, axis)
        return (g * first,)

    return autodiff.node(out, (x,), vjp)


def _sort_ties_reversed(x, axis=-1):
    """Sorted values; tied elements take the sorted positions in reverse order (not stable)."""
    a = value_of(x)
    order = a.shape[axis] - 1 - np.argsort(np.flip(a, axis), axis=axis, kind="stable")
    out = np.take_along_axis(a, order, axis=axis)
    if not traced(x):
        return out

    def vjp(g):
        back = np.zeros_like(a)
        np.put_along_axis(back, order, g, axis=axis)
        return (back,)

    return autodiff.node(out, (x,), vjp)


# ---- component mutants -----------------------------------------------------------------------

_RELU, _RELU_BACKWARD = numpy_activations.IMPLEMENTATIONS["relu"]


def _relu_slope_one_at_threshold(spec, x, y, dy):
    return _RELU_BACKWARD(spec, x, y, dy) + dy * (x == spec.threshold)


def _hinge_active_at_margin(spec, y, p, g):
    """hinge's gradient -y at y * p == 1 too, where the spec says 0."""
    _, vjp = numpy_losses.IMPLEMENTATIONS["hinge"]
    labels = numpy_losses.hinge_labels(y)
    margin = (1 - labels * p) == 0
    return vjp(spec, y, p, g) - g[..., None] / p.shape[-1] * labels * margin


def _categorical_hinge(active_at_margin=False, ties_to_first=False):
    """categorical_hinge's gradient, with the margin counted as active or a tie for the max sent to
    the first tied class; the spec gives 0 at the margin and shares ties evenly."""

    def vjp(spec, y, p, g):
        v = (1 - y) * p
        if ties_to_first:
            top = np.zeros_like(v)
            np.put_along_axis(top, np.argmax(v, axis=-1)[..., None], 1, axis=-1)
        else:
            top = v == np.max(v, axis=-1, keepdims=True)
            top = top / np.sum(top, axis=-1, keepdims=True)
        margin = np.max(v, axis=-1) - np.sum(y * p, axis=-1) + 1
        active = (margin >= 0 if active_at_margin else margin > 0)[..., None]
        return g[..., None] * active * (top * (1 - y) - y)

    return vjp


def _bce_zero_at_bounds(spec, y, p, g):
    _, vjp = numpy_losses.IMPLEMENTATIONS["binary_crossentropy"]
    at_bound = (p == EPSILON) | (p == 1 - EPSILON)
    return vjp(spec, y, p, g) * ~at_bound


def _cce_zero_at_bounds(spec, y, p, g):
    """categorical_crossentropy (probabilities) with the clip passing its gradient on the open
    interval (EPSILON, 1 - EPSILON), where the spec says the closed one."""
    _, vjp = numpy_losses.IMPLEMENTATIONS["categorical_crossentropy"]
    if spec.from_logits:
        return vjp(spec, y, p, g)
    if spec.label_smoothing:
        y = y * (1 - spec.label_smoothing) + spec.label_smoothing / y.shape[-1]
    total = np.sum(p, axis=-1, keepdims=True)
    q = p / total
    dq = -g[..., None] * y / np.clip(q, EPSILON, 1 - EPSILON) * ((q > EPSILON) & (q < 1 - EPSILON))
    return (dq - np.sum(dq * q, axis=-1, keepdims=True)) / total


def _l1_slope_at_zero(spec, w):
    """l1's gradient l1 at w == 0, where the spec says l1 * sign(0) = 0."""
    return spec.l1 * np.where(w >= 0, 1, -1).astype(w.dtype)


def _mutant(name, kind, implementation, doc):
    table = NumpyBackend.implementations
    return type(f"Mutant_{name}", (NumpyBackend,), {
        "__doc__": doc, "name": f"kink_{name}",
        "implementations": {**table, kind: {**table[kind], **implementation}},
    })


def _op_mutant(name, doc, **changed):
    return _mutant(name, "activation", {"custom_activation": _custom_activation(_namespace(**changed))}, doc)


_loss = dict(numpy_losses.IMPLEMENTATIONS)
_L1_PENALTY = numpy_regularizers.IMPLEMENTATIONS["l1"][0]
MUTANTS = {
    "abs": _op_mutant("abs", "ops.abs with slope 1 at 0.", abs=_abs_slope_one_at_zero),
    "maximum_second": _op_mutant("maximum_second", "ops.maximum sends a tie's gradient to y.",
                                 maximum=_maximum_to_second),
    "maximum_split": _op_mutant("maximum_split", "ops.maximum splits a tie's gradient.", maximum=_maximum_split),
    "clip": _op_mutant("clip", "ops.clip passes no gradient at its bounds.", clip=_clip_zero_at_bounds),
    "max": _op_mutant("max", "ops.max sends a tie's gradient to the first tied element.", max=_max_to_first),
    "sort": _op_mutant("sort", "ops.sort places ties in reverse order.", sort=_sort_ties_reversed),
    "relu": _mutant("relu", "activation", {"relu": (_RELU, _relu_slope_one_at_threshold)},
                    "relu with slope 1 at its threshold (0 by default)."),
    "hinge": _mutant("hinge", "loss", {"hinge": (_loss["hinge"][0], _hinge_active_at_margin)},
                     "hinge's gradient at the margin is the active side's."),
    "categorical_hinge_margin": _mutant(
        "categorical_hinge_margin", "loss",
        {"categorical_hinge": (_loss["categorical_hinge"][0], _categorical_hinge(active_at_margin=True))},
        "categorical_hinge's gradient at the margin is the active side's."),
    "categorical_hinge_tie": _mutant(
        "categorical_hinge_tie", "loss",
        {"categorical_hinge": (_loss["categorical_hinge"][0], _categorical_hinge(ties_to_first=True))},
        "categorical_hinge's max sends a tie's gradient to the first class."),
    "bce": _mutant("bce", "loss", {"binary_crossentropy": (_loss["binary_crossentropy"][0], _bce_zero_at_bounds)},
                   "binary_crossentropy's clip passes no gradient at its bounds."),
    "cce": _mutant("cce", "loss",
                   {"categorical_crossentropy": (_loss["categorical_crossentropy"][0], _cce_zero_at_bounds)},
                   "categorical_crossentropy's clip passes no gradient at its bounds."),
    "l1": _mutant("l1", "regularizer", {"l1": (_L1_PENALTY, _l1_slope_at_zero)},
                  "l1's gradient at w == 0 is l1 (the biases start at 0)."),
}


class _MutantsPlugin:
    @hookimpl
    def polynn_register_backends(self, register):
        for cls in MUTANTS.values():
            register(cls.name, cls, engine="numpy", install="polynn", dtypes=cls.dtypes)


@pytest.fixture(scope="module")
def mutants():
    plugins.reset()
    plugins.register_plugin(_MutantsPlugin(), name="conformance-kink-mutants")
    yield
    plugins.reset()


# (mutant, the cases it must fail on the gradient alone, cases it must pass); l1's cases observe
# training runs, so they fail on what the gradient moves.
EXPECTED = [
    ("abs", ["op.abs"], ["op.sign", "op.square"]),
    ("maximum_second", ["op.maximum"], ["op.minimum", "op.clip"]),
    ("maximum_split", ["op.maximum"], ["op.minimum", "op.clip"]),
    ("clip", ["op.clip"], ["op.maximum", "op.minimum"]),
    ("max", ["op.max"], ["op.min", "op.sum"]),
    ("sort", ["op.sort"], ["op.cumsum"]),
    ("relu", ["activation.relu", "activation.relu(negative_slope=0.2)", "activation.relu(max_value=4.0)",
              "activation.relu(threshold=0.5)"], ["activation.leaky_relu", "activation.relu6"]),
    ("hinge", ["loss.hinge"], ["loss.squared_hinge", "loss.categorical_hinge"]),
    ("categorical_hinge_margin", ["loss.categorical_hinge"], ["loss.hinge"]),
    ("categorical_hinge_tie", ["loss.categorical_hinge"], ["loss.hinge"]),
    ("bce", ["loss.binary_crossentropy", "loss.binary_crossentropy(label_smoothing=0.1)"],
     ["loss.binary_crossentropy(from_logits=True)"]),
    ("cce", ["loss.categorical_crossentropy", "loss.categorical_crossentropy(label_smoothing=0.1)"],
     ["loss.categorical_crossentropy(from_logits=True)", "loss.sparse_categorical_crossentropy"]),
    ("l1", ["regularizer.l1", "regularizer.l1(l1=0.05)", "layer.dense(bias_regularizer=l1)"],
     ["regularizer.l2", "regularizer.l1_l2(l1=0.01, l2=0.02)"]),
]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize(("mutant", "failing", "passing"), EXPECTED, ids=[e[0] for e in EXPECTED])
def test_a_wrong_slope_at_a_kink_fails_its_cases(mutants, mutant, failing, passing, dtype):
    results = {r.name: r for r in run(MUTANTS[mutant].name, dtype, [*failing, *passing]).results}
    for name in failing:
        result = results[name]
        assert result.status == "fail", (name, result.status, result.message)
        failed = {c.name for c in result.checks if not c.passed}
        if mutant != "l1":
            assert failed == {"gradient"}, (name, failed)  # the values at the kink agree
    for name in passing:
        assert results[name].status == "pass", (name, results[name].message)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_the_unmutated_backend_passes_the_kink_cases(dtype):
    cases = sorted({name for _, failing, passing in EXPECTED for name in (*failing, *passing)})
    report = run("numpy", dtype, cases)
    assert report.passed and report.count("pass") == len(cases)
