"""The losses and metrics written once on polynn.ops, run on the NumPy backend, against its hand-written overrides."""

from __future__ import annotations

import numpy as np
import pytest

from polynn import _registry, plugins
from polynn.conformance import inputs, options
from polynn.losses import EPSILON
from polynn.metrics import MeanMetric

NUMPY = plugins.get_backend("numpy")
DTYPES = ("float64", "float32")


def _builtins(kind):
    return [cls for cls in _registry.builtin_specs(kind) if not cls.name.startswith("custom_")]


def _variants(kind):
    """(id, spec) for each built-in and each option configuration the conformance kit gives it."""
    out = []
    for cls in _builtins(kind):
        for config in options.configs(kind, cls):
            spec = cls(**dict(config.kwargs))
            out.append((f"{cls.name}{config.label()}", spec))
    return out


LOSSES = _variants("loss")
METRICS = _variants("metric")


def _close(got, want, dtype, what, result_dtype=None):
    """Equal to a few roundings: relative to each value, and to the array's largest magnitude
    (where terms cancel, as in a gradient that sums to nearly 0)."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, what
    assert got.dtype == (result_dtype or dtype), what  # (an override may compute in float64 where the input is float32)
    eps = np.finfo(dtype).eps
    assert np.all(np.isfinite(want)), what
    scale = float(np.max(np.abs(want))) if want.size else 0.0
    np.testing.assert_allclose(got, want, rtol=1e-12 if dtype == "float64" else 8 * eps,
                               atol=8 * eps * scale, err_msg=what)


# ---- inputs: the kit's, then the kinks and bounds of each formula ----------------------------


def _kink_inputs(spec):
    """(y_pred, y_true) pairs exactly at the component's kinks, ties and clip bounds."""
    name = spec.name
    e = EPSILON
    if name == "poisson":
        return [(np.array([[0.0, 1.0, 2.0], [0.5, 3.0, 0.25]]), np.array([[0.0, 1.0, 1.0], [0.0, 2.0, 0.25]]))]
    if name in ("mean_absolute_error", "mean_squared_error", "log_cosh", "root_mean_squared_error"):
        return [(np.array([[0.5, -1.0, 2.0], [0.0, 3.0, 0.25]]), np.array([[0.5, -1.0, 1.0], [0.0, 2.0, 0.25]]))]
    if name == "mean_absolute_percentage_error":
        # p == y, and y == 0 (divided by EPSILON), and |y| exactly EPSILON.
        return [(np.array([[0.5, 0.0, 2.0, e], [1.0, -2.0, 0.3, 0.0]]),
                 np.array([[0.5, 0.0, 1.0, e], [0.0, -2.0, -e, 0.0]]))]
    if name == "mean_squared_logarithmic_error":
        return [(np.array([[e, 0.0, -1.0, 2.0], [e, 1e-9, 0.5, 3.0]]),
                 np.array([[e, 0.0, 1.0, -1.0], [0.5, e, 0.5, 1.0]]))]
    if name == "huber":
        d = spec.delta
        # |d| == delta on both sides, d == 0, and either side of delta.
        return [(np.array([[1.0 + d, 1.0 - d, 0.5, 3.0 * d], [0.0, 2.0, -d, 0.5 * d]]),
                 np.array([[1.0, 1.0, 0.5, 0.0], [0.0, 2.0 + 1.5 * d, 0.0, 0.0]]))]
    if name in ("hinge", "squared_hinge"):
        margin = np.array([[1.0, -1.0, 0.5, 2.0], [-1.0, 1.0, 0.0, -0.5]])
        return [(margin, np.array([[1.0, -1.0, 1.0, -1.0], [-1.0, 1.0, 1.0, 1.0]])),   # y p == 1 at the margin
                (margin, np.array([[1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 1.0, 1.0]])),      # 0/1 labels, mapped
                (margin, np.array([[1.0, 0.0, 0.5, 0.0], [0.0, 1.0, 1.0, 2.0]]))]      # not all 0/1: unchanged
    if name == "categorical_hinge":
        # Row 0: a tie in the max of (1 - y) p; row 1: neg - pos + 1 == 0 exactly; row 2: both.
        return [(np.array([[0.25, 0.75, 0.75, 0.5], [1.5, 0.5, 0.25, 0.0], [2.0, 1.0, 1.0, 0.0]]),
                 np.array([[1.0, 0.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]]))]
    if name == "kl_divergence":
        return [(np.array([[e, 1.0, 0.0, 1.5], [0.25, 0.25, e / 2, 0.5]]),
                 np.array([[0.5, 0.25, 0.25, 0.0], [e, 1.0, 0.5, 0.0]]))]
    if name == "cosine_similarity":
        # A zero vector, one below EPSILON in norm, and ordinary ones.
        return [(np.array([[0.0, 0.0], [1e-8, 2e-8], [0.4, -0.3], [3.0, 4.0]]),
                 np.array([[1.0, 2.0], [0.5, -1.0], [3.0, 1.0], [0.0, 0.0]]))]
    if name in ("binary_crossentropy", "binary_accuracy", "precision", "recall", "auc"):
        if getattr(spec, "from_logits", False):
            p = np.array([[0.0, 0.0, 2.0, -2.0], [30.0, -30.0, 0.5, 0.0]])
        else:
            # The clip bounds exactly, beyond them, and 0.5 / 0.3 (thresholds) exactly.
            p = np.array([[e, 1 - e, 0.0, 1.0], [0.5, 0.3, 1e-9, 0.7], [0.5, 0.5, 0.3, 0.3]])
        y = np.array([[1.0, 0.0, 1.0, 0.0], [1.0, 0.0, 1.0, 1.0], [0.0, 1.0, 1.0, 0.0]])[:len(p)]
        return [(p, y)]
    if "sparse" in name or name in ("categorical_crossentropy", "categorical_accuracy", "top_k_categorical_accuracy"):
        # A tie for the top class, a row at the clip's upper bound (one-hot), zeros (clipped below).
        p = np.array([[0.4, 0.4, 0.2, 0.0], [0.0, 1.0, 0.0, 0.0], [0.25, 0.25, 0.25, 0.25], [0.1, 0.3, 0.3, 0.3]])
        if getattr(spec, "from_logits", False):
            p = np.array([[2.0, 2.0, 0.0, -1.0], [0.0, 0.0, 0.0, 0.0], [30.0, -30.0, 0.0, 1.0], [-1.0, 0.5, 0.5, 0.5]])
        labels = np.array([1, 0, 2, 3])
        y = labels.astype(np.float64) if "sparse" in name else np.eye(4)[labels]
        return [(p, y)]
    if name == "exact_accuracy":
        return [(np.array([[1.0, 0.0, 1.0], [0.0, 0.0, 0.0]]), np.array([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0]]))]
    return []


def _inputs(spec, dtype):
    pairs = [inputs.predictions_and_labels(spec), *_kink_inputs(spec)]
    if getattr(spec, "sparse_labels", False):
        p, y = pairs[0]
        pairs.append((p, y[:, None]))  # labels with a trailing axis of 1
    return [(p.astype(dtype), y.astype(dtype)) for p, y in pairs]


# ---- losses: value and vjp -------------------------------------------------------------------


def test_every_builtin_loss_and_metric_has_a_shared_implementation():
    for kind in ("loss", "metric"):
        for cls in _builtins(kind):
            assert NUMPY.shared_implementation(kind, cls.name) is not None, cls.name


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", [case for case, _ in LOSSES])
def test_shared_loss_matches_the_numpy_override(case, dtype):
    spec = dict(LOSSES)[case]
    own_value, own_vjp = NUMPY.implementations["loss"][spec.name]
    shared_value, shared_vjp = NUMPY.shared_implementation("loss", spec.name)
    for k, (p, y) in enumerate(_inputs(spec, dtype)):
        want = own_value(spec, y, p)
        _close(shared_value(spec, y, p), want, dtype, f"{case} value, inputs {k}")
        g = np.random.default_rng(k).uniform(0.5, 2.0, size=want.shape).astype(dtype)
        want_grad = own_vjp(spec, y, p, g)
        got_grad = shared_vjp(spec, y, p, g)
        assert np.all(np.isfinite(got_grad)), case
        _close(got_grad, want_grad, dtype, f"{case} vjp, inputs {k}")


def test_the_kink_inputs_reach_the_kinks():
    """The gradients the cases above compare differ from a naive formula's exactly at these inputs."""
    from polynn import losses

    shared_vjp = NUMPY.shared_implementation("loss", "binary_crossentropy")[1]
    p, y = np.array([[0.0]]), np.array([[1.0]])
    # sigmoid(0) - y = -1/2; relu and abs would give -1.
    assert shared_vjp(losses.BinaryCrossentropy(from_logits=True), y, p, np.ones(1))[0, 0] == -0.5
    hinge_vjp = NUMPY.shared_implementation("loss", "hinge")[1]
    assert hinge_vjp(losses.Hinge(), np.array([[1.0]]), np.array([[1.0]]), np.ones(1))[0, 0] == 0.0
    bce_vjp = NUMPY.shared_implementation("loss", "binary_crossentropy")[1]
    assert bce_vjp(losses.BinaryCrossentropy(), np.array([[1.0]]), np.array([[EPSILON]]), np.ones(1))[0, 0] != 0.0
    assert bce_vjp(losses.BinaryCrossentropy(), np.array([[1.0]]), np.array([[1e-9]]), np.ones(1))[0, 0] == 0.0


# ---- metrics: per-sample values, or state increments -------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", [case for case, _ in METRICS])
def test_shared_metric_matches_the_numpy_override(case, dtype):
    spec = dict(METRICS)[case]
    own = NUMPY.implementations["metric"][spec.name]
    shared = NUMPY.shared_implementation("metric", spec.name)
    for k, (p, y) in enumerate(_inputs(spec, dtype)):
        if isinstance(spec, MeanMetric):
            _close(shared(spec, y, p), own(spec, y, p), dtype, f"{case}, inputs {k}")
            continue
        weights = np.random.default_rng(k).uniform(0.2, 2.0, len(p)).astype(dtype)
        weights[-1] = 0.0  # Keras accepts a zero weight
        for w in (None, weights):
            want = own(spec, y, p, w)
            got = shared(spec, y, p, w)
            assert got.shape == (spec.state_size,), case
            # Sums of weights in the input's dtype; of 0/1 counts, exact.
            _close(got, want, "float64" if w is None else dtype, f"{case}, inputs {k}, weights {w is not None}",
                   result_dtype="float64")
