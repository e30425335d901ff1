"""User losses and metrics giving one value per batch (shape ()), with Keras 3's semantics: a metric is
averaged over batches and takes no sample weights; a loss is the batch's loss, and with sample weights
it stands for every sample. Checked against the documented formula in NumPy and against Keras itself."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from polynn import errors, ops, plugins
from polynn.layers import Dense, Input
from polynn.losses import CustomLoss
from polynn.models import Sequential
from polynn.optimizers import SGD


def _installed(name: str) -> bool:
    engine = name != "numpy" and importlib.util.find_spec(name) is None
    return not engine and name in {entry.name for entry in plugins.backend_entries()}


BACKENDS = [pytest.param(name, marks=[pytest.mark.skipif(not _installed(name), reason=f"{name} not installed"),
                                      *([pytest.mark.slow] if name == "jax" else [])])
            for name in ("numpy", "tensorflow", "torch", "jax")]
DTYPES = ["float32", "float64"]
RTOL = {"float32": 2e-6, "float64": 1e-12}

RNG = np.random.default_rng(18)
X = RNG.normal(size=(50, 3))
Y = (RNG.random((50, 1)) > 0.5).astype(np.float64)
W = RNG.random(50) * 2
KERNEL, BIAS = RNG.normal(size=(3, 1)), RNG.normal(size=(1,))
BATCH = 16  # batches of 16, 16, 16 and 2


def hits(y_true, y_pred):
    """The share of right 0.5-threshold calls in the batch: one number, no axis."""
    right = ops.equal(y_true, ops.cast(ops.greater(y_pred, 0.5), ops.dtype(y_true)))
    return ops.mean(ops.cast(right, ops.dtype(y_pred)))


def batch_mse(y_true, y_pred):
    return ops.mean(ops.square(y_true - y_pred))


def spread_mse(y_true, y_pred):
    """batch_mse's value given to every sample: what one value per batch stands for under weights."""
    return batch_mse(y_true, y_pred) * ops.ones_like(y_pred[:, 0])


def model(backend, dtype, loss, **compile_kwargs):
    built = Sequential([Input((3,)), Dense(1, activation="sigmoid")])
    built.compile(SGD(0.1), loss, backend=backend, dtype=dtype, **compile_kwargs)
    built.set_weights([KERNEL, BIAS])
    return built


def batches(*arrays):
    for start in range(0, len(arrays[0]), BATCH):
        yield tuple(a[start:start + BATCH] for a in arrays)


def logged(values, sizes):
    """Keras's logged loss: the batch losses' mean weighted by batch size."""
    return float(np.dot(values, sizes) / np.sum(sizes))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("backend", BACKENDS)
def test_a_batch_metric_is_averaged_over_batches(backend, dtype):
    built = model(backend, dtype, "mse", metrics=[hits], weighted_metrics=[hits])
    p = built.predict(X, batch_size=BATCH, verbose=0).astype(np.float64)
    expected = np.mean([np.mean(y == (q > 0.5)) for y, q in batches(Y, p)])
    # compile's metrics ignore the weights; a weighted metric without weights is the same mean.
    got = built.evaluate(X, Y, batch_size=BATCH, verbose=0, return_dict=True)
    np.testing.assert_allclose([got["hits"], got["weighted_hits"]], [expected] * 2, rtol=RTOL[dtype])
    assert expected != pytest.approx(np.mean(Y == (p > 0.5)))  # a batch mean, not a sample mean

    unweighted = model(backend, dtype, "mse", metrics=[hits])
    got = unweighted.evaluate(X, Y, batch_size=BATCH, sample_weight=W, verbose=0, return_dict=True)
    np.testing.assert_allclose(got["hits"], expected, rtol=RTOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("reduction", ["sum_over_batch_size", "sum", "mean_with_sample_weight"])
def test_a_batch_loss_is_the_batch_loss_and_stands_for_each_weighted_sample(backend, dtype, reduction):
    built = model(backend, dtype, CustomLoss(function=batch_mse, reduction=reduction))
    p = built.predict(X, batch_size=BATCH, verbose=0).astype(np.float64)
    parts = list(batches(Y, p, W))
    sizes = [len(y) for y, _, _ in parts]
    batch_losses = np.array([np.mean((y - q) ** 2) for y, q, _ in parts])
    # Without weights the value is the batch's loss, whatever the reduction (Keras returns a scalar as is).
    got = built.evaluate(X, Y, batch_size=BATCH, verbose=0)
    np.testing.assert_allclose(got, logged(batch_losses, sizes), rtol=RTOL[dtype])
    # With weights it is sum_i(w_i * l) over the reduction's divisor.
    divisor = {"sum_over_batch_size": np.array(sizes, float), "sum": np.ones(len(parts)),
               "mean_with_sample_weight": np.array([np.sum(w) for _, _, w in parts])}[reduction]
    weighted = np.array([np.sum(w * loss) for (_, _, w), loss in zip(parts, batch_losses)]) / divisor
    got = built.evaluate(X, Y, batch_size=BATCH, sample_weight=W, verbose=0)
    np.testing.assert_allclose(got, logged(weighted, sizes), rtol=RTOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("backend", BACKENDS)
def test_a_batch_loss_trains_as_its_value_given_to_every_sample(backend, dtype):
    """The gradient too: under sample and class weights a batch loss trains as the per-sample loss
    that gives each sample the batch's value."""
    runs = []
    for loss in (batch_mse, spread_mse):
        built = model(backend, dtype, loss)
        history = built.fit(X, Y, batch_size=BATCH, epochs=2, shuffle=False, verbose=0, sample_weight=W,
                            class_weight={0: 0.5, 1: 2.0}).history
        runs.append((history["loss"], built.get_weights()))
    (loss_a, weights_a), (loss_b, weights_b) = runs
    rtol = {"float32": 1e-5, "float64": 1e-12}[dtype]
    np.testing.assert_allclose(loss_a, loss_b, rtol=rtol)
    for a, b in zip(weights_a, weights_b):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol)
    assert not np.allclose(weights_a[0], KERNEL)  # it trained


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_weighted_batch_metric_is_refused_as_keras_refuses_it(backend):
    built = model(backend, "float64", "mse", weighted_metrics=[hits])
    message = (r"values of custom metric hits, weighted by sample or class weights='one value per batch "
               r"\(shape \(\)\)'; accepted: one value per sample, shape \((16|None),\)")
    with pytest.raises(errors.InvalidArgumentError, match=message):
        built.fit(X, Y, batch_size=BATCH, sample_weight=W, verbose=0)
    with pytest.raises(errors.InvalidArgumentError, match=message):
        built.fit(X, Y, batch_size=BATCH, class_weight={0: 1.0, 1: 2.0}, verbose=0)
    with pytest.raises(errors.InvalidArgumentError, match=message):
        built.evaluate(X, Y, batch_size=BATCH, sample_weight=W, verbose=0)


def test_standalone_a_batch_loss_and_metric_follow_keras():
    from polynn.metrics import CustomMetric

    y, p, w = Y[:8], RNG.random((8, 1)), W[:8]
    value = np.mean((y - p) ** 2)
    np.testing.assert_allclose(CustomLoss(function=batch_mse)(y, p), value, rtol=1e-15)
    np.testing.assert_allclose(CustomLoss(function=batch_mse)(y, p, sample_weight=w), np.sum(w * value) / 8,
                               rtol=1e-15)
    np.testing.assert_allclose(CustomLoss(function=batch_mse, reduction="none")(y, p, sample_weight=w), w * value,
                               rtol=1e-15)
    metric = CustomMetric(function=hits)
    metric.update_state(y, p)
    metric.update_state(Y[8:10], p[:2])
    np.testing.assert_allclose(metric.result(), (np.mean(y == (p > 0.5)) + np.mean(Y[8:10] == (p[:2] > 0.5))) / 2,
                               rtol=1e-15)
    with pytest.raises(errors.InvalidArgumentError, match="one value per batch"):
        metric.update_state(y, p, sample_weight=w)


# ---- against Keras 3 itself ------------------------------------------------------------------------

KERAS_RUN = textwrap.dedent("""
    import json, os, sys
    os.environ["KERAS_BACKEND"] = "tensorflow"
    import numpy as np, keras
    from keras import ops
    keras.backend.set_floatx("float64")
    x, y, w, kernel, bias = (np.asarray(a) for a in json.loads(sys.stdin.read()))

    def hits(y_true, y_pred):
        return ops.mean(ops.cast(ops.equal(y_true, ops.cast(y_pred > 0.5, y_true.dtype)), y_pred.dtype))

    def batch_mse(y_true, y_pred):
        return ops.mean(ops.square(y_true - y_pred))

    out = {}
    for name, fit in (("plain", {}), ("sample_weight", {"sample_weight": w}),
                      ("class_weight", {"class_weight": {0: 0.5, 1: 2.0}})):
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1, activation="sigmoid")])
        model.compile(keras.optimizers.SGD(0.1), batch_mse, metrics=[hits])
        model.set_weights([kernel, bias])
        history = model.fit(x, y, batch_size=32, epochs=2, shuffle=False, verbose=0, **fit).history
        evaluated = model.evaluate(x, y, batch_size=32, verbose=0, return_dict=True,
                                   sample_weight=fit.get("sample_weight"))
        out[name] = {"history": history, "weights": [a.tolist() for a in model.get_weights()],
                     "evaluated": evaluated}
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1, activation="sigmoid")])
    model.compile("sgd", "mse", weighted_metrics=[hits])
    try:
        model.fit(x, y, batch_size=32, sample_weight=w, verbose=0)
        out["weighted_refused"] = False
    except Exception:
        out["weighted_refused"] = True
    print("RESULT" + json.dumps(out))
""")


@pytest.fixture(scope="module")
def keras_run():
    pytest.importorskip("keras")
    pytest.importorskip("tensorflow")
    rng = np.random.default_rng(7)
    x, y = rng.normal(size=(100, 3)), (rng.random((100, 1)) > 0.5).astype(np.float64)
    w = rng.random(100) * 2
    kernel, bias = rng.normal(size=(3, 1)), rng.normal(size=(1,))
    import json

    # Keras runs in its own process: its import changes TensorFlow's global state for the tests after.
    done = subprocess.run([sys.executable, "-c", KERAS_RUN], capture_output=True, text=True, timeout=300,
                          input=json.dumps([a.tolist() for a in (x, y, w, kernel, bias)]),
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.split("RESULT", 1)[1])
    return (x, y, w, kernel, bias), result


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", ["plain", "sample_weight", "class_weight"])
def test_batch_loss_and_metric_match_keras(keras_run, backend, case):
    (x, y, w, kernel, bias), keras = keras_run
    fit = {"plain": {}, "sample_weight": {"sample_weight": w}, "class_weight": {"class_weight": {0: 0.5, 1: 2.0}}}
    built = Sequential([Input((3,)), Dense(1, activation="sigmoid")])
    built.compile(SGD(0.1), batch_mse, metrics=[hits], backend=backend, dtype="float64")
    built.set_weights([kernel, bias])
    history = built.fit(x, y, batch_size=32, epochs=2, shuffle=False, verbose=0, **fit[case]).history
    evaluated = built.evaluate(x, y, batch_size=32, verbose=0, return_dict=True,
                               sample_weight=fit[case].get("sample_weight"))
    expected = keras[case]
    np.testing.assert_allclose(history["loss"], expected["history"]["loss"], rtol=1e-10)
    np.testing.assert_allclose(history["hits"], expected["history"]["hits"], rtol=1e-12)
    for got, want in zip(built.get_weights(), expected["weights"]):
        np.testing.assert_allclose(got, want, rtol=1e-10)
    np.testing.assert_allclose([evaluated["loss"], evaluated["hits"]],
                               [expected["evaluated"]["loss"], expected["evaluated"]["hits"]], rtol=1e-10)


@pytest.mark.slow
def test_keras_refuses_a_weighted_batch_metric_too(keras_run):
    assert keras_run[1]["weighted_refused"]
