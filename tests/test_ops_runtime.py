"""A backend made of an existing ops namespace, polynn.runtime.OpsRuntime and a value-and-gradient
function (torch's ops and torch.autograd.grad) passes the conformance kit; polynn.ops.take, the op the
runtime gathers rows with, agrees between its native versions and its composed fallback."""

from __future__ import annotations

import importlib.metadata
import types

import numpy as np
import pytest

from polynn import conformance, hookimpl
from polynn import ops as polynn_ops
from polynn.backend import Backend
from polynn.runtime import OpsRuntime

torch = pytest.importorskip("torch")

from polynn_torch import ops as torch_ops  # noqa: E402
from polynn_torch.backend import TorchBackend  # noqa: E402

# ---- the test backend: everything it has beyond torch's ops namespace ------------------------


class TorchOpsRuntime(OpsRuntime):
    def value_and_gradients(self, objective, params):
        params = [p.detach().requires_grad_() for p in params]
        loss, aux = objective(params)
        return (loss, aux), list(torch.autograd.grad(loss, params, materialize_grads=True))


class TorchOpsBackend(Backend):
    name = "torch_ops"
    engine = "torch"
    ops = torch_ops

    def __init__(self):
        # torch's implementations of the components whose specs have no shared call yet (layers,
        # losses, metrics, regularizers, constraints, user functions); the optimizers are the shared
        # rules. The table empties as the specs gain shared calls.
        self.implementations = {
            kind: {name: impl for name, impl in table.items() if self.shared_implementation(kind, name) is None}
            for kind, table in TorchBackend.implementations.items() if kind != "optimizer"}

    def run_ops(self, function, like, *args):
        with polynn_ops.using(torch_ops), torch_ops.floats(like.dtype, like.device):
            return function(*args)

    def compile(self, plan):
        self.check_plan(plan)
        return TorchOpsRuntime(self, plan)


class Plugin:
    @hookimpl
    def polynn_register_backends(self, register):
        register("torch_ops", TorchOpsBackend, engine="torch")


@pytest.fixture
def torch_ops_backend(fresh_plugins, monkeypatch):
    # polynn's own components only: another installed plugin's (polynn-extras') come with
    # implementations for the backends it knows, not for this one.
    others = [ep.name for ep in importlib.metadata.entry_points(group="polynn")
              if getattr(getattr(ep, "dist", None), "name", None) != "polynn"]
    monkeypatch.setenv("POLYNN_DISABLE_PLUGINS", ",".join(others))
    fresh_plugins.reset()
    fresh_plugins.register_plugin(Plugin(), "ops_runtime_test")
    torch.set_num_threads(1)  # the kit's models are tiny; other processes share the cores
    return "torch_ops"


PATTERNS = ()  # every case


@pytest.mark.parametrize("dtype", ["float64", pytest.param("float32", marks=pytest.mark.slow)])
def test_a_backend_on_ops_runtime_passes_the_kit(torch_ops_backend, dtype):
    report = conformance.run(torch_ops_backend, dtype, PATTERNS)
    failed = [f"{r.name}: {r.status} {r.message}" for r in report.results if r.status != "pass"]
    assert report.results and not failed, "\n".join(failed)


def test_the_runtime_trains_with_sample_weights_metrics_and_zero_weights(torch_ops_backend):
    """mean_with_sample_weight, with an all-zero batch of weights (a zero loss, never 0/0), weighted and
    unweighted metrics, evaluate and predict: the NumPy reference's numbers."""
    from polynn.layers import Dense
    from polynn.losses import MeanSquaredError
    from polynn.models import Sequential

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(12, 3)), rng.normal(size=(12, 2))
    weights = np.r_[np.zeros(4), rng.uniform(0.5, 2, size=8)]
    runs = {}
    for backend in ("numpy", torch_ops_backend):
        model = Sequential([Dense(4, input_dim=3, activation="tanh"), Dense(2)])
        model.compile(optimizer="adam", loss=MeanSquaredError(reduction="mean_with_sample_weight"),
                      metrics=["mae"], weighted_metrics=["mse"], backend=backend, dtype="float64", seed=3)
        history = model.fit(x, y, sample_weight=weights, batch_size=4, epochs=2, shuffle=False, verbose=0)
        runs[backend] = (model.get_weights(), history.history, model.evaluate(x, y, sample_weight=weights, verbose=0),
                         model.predict(x, verbose=0))
    (w_ref, h_ref, e_ref, p_ref), (w_got, h_got, e_got, p_got) = runs["numpy"], runs[torch_ops_backend]
    assert h_ref["loss"][0] != 0 and set(h_ref) == set(h_got)
    for key in h_ref:
        np.testing.assert_allclose(h_got[key], h_ref[key], rtol=1e-12)
    for ref, got in zip([*w_ref, e_ref, p_ref], [*w_got, e_got, p_got]):
        np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-15)


# ---- polynn.ops.take ------------------------------------------------------------------------


def _composed(namespace):
    """The namespace without its native take, so polynn.ops composes it."""
    return types.SimpleNamespace(**{name: getattr(namespace, name) for name in polynn_ops.OP_NAMES})


def _namespaces():
    from polynn_numpy import ops as numpy_ops

    found = [("numpy", numpy_ops), ("torch", torch_ops)]
    try:
        from polynn_tensorflow import ops as tf_ops
    except ImportError:
        return found
    return found + [("tensorflow", tf_ops)]


@pytest.mark.parametrize("axis, index_shape", [(0, (5,)), (1, (5,)), (-1, (2, 3)), (0, (2, 2))])
@pytest.mark.parametrize("engine", [name for name, _ in _namespaces()])
def test_take_native_and_composed_agree_with_numpy(engine, axis, index_shape):
    namespace = dict(_namespaces())[engine]
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4, 3, 4))
    indices = rng.integers(0, x.shape[axis], size=index_shape)
    indices.flat[0] = indices.flat[-1]  # a repeated index: its gradients add up
    upstream = rng.normal(size=np.take(x, indices, axis=axis).shape)
    expected_grad = np.zeros_like(x)
    np.add.at(np.moveaxis(expected_grad, axis, 0), indices.reshape(-1),
              np.moveaxis(upstream.reshape(x.shape[:axis % 3] + (-1,) + x.shape[axis % 3 + 1:]), axis, 0))
    for ops_namespace in (namespace, _composed(namespace)):
        value, grad = _take_and_gradient(engine, ops_namespace, x, indices, axis, upstream)
        np.testing.assert_array_equal(value, np.take(x, indices, axis=axis))
        np.testing.assert_allclose(grad, expected_grad, rtol=1e-15, atol=0)


def _take_and_gradient(engine, namespace, x, indices, axis, upstream):
    def take(t):
        with polynn_ops.using(namespace):
            return polynn_ops.take(t, indices, axis=axis)

    if engine == "numpy":
        from polynn_numpy import autodiff
        from polynn_numpy import ops as numpy_ops

        with numpy_ops.float_dtype(np.float64):
            value = np.asarray(take(x))
            (grad,) = autodiff.vjp(take, (x,), upstream)
        return value, grad
    if engine == "torch":
        t = torch.tensor(x, requires_grad=True)
        out = take(t)
        out.backward(torch.tensor(upstream))
        return out.detach().numpy(), t.grad.numpy()
    import tensorflow as tf

    t = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(t)
        out = take(t)
    grad = tape.gradient(out, t, output_gradients=tf.constant(upstream))
    return out.numpy(), tf.convert_to_tensor(grad).numpy()
