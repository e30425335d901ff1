"""polynn.ops.unstack: each engine's native op and the composed fallback (a take per slice) agree with
NumPy in values and gradients, unused and repeated slices included; bad arguments get polynn errors."""

from __future__ import annotations

import importlib.util
import types

import numpy as np
import pytest

from polynn import ops
from polynn.errors import InvalidArgumentError
from polynn_numpy import autodiff
from polynn_numpy import ops as numpy_ops

ENGINES = ["numpy"] + [name for name, module in (("torch", "torch"), ("tensorflow", "tensorflow"))
                       if importlib.util.find_spec(module) is not None]


def _namespace(engine):
    if engine == "numpy":
        return numpy_ops
    if engine == "torch":
        from polynn_torch import ops as torch_ops

        return torch_ops
    from polynn_tensorflow import ops as tf_ops

    return tf_ops


def _composed(namespace):
    """The namespace without its native unstack, so polynn.ops composes it of take."""
    names = [n for n in (*ops.OP_NAMES, *ops.EXTRA_OP_NAMES) if n != "unstack" and hasattr(namespace, n)]
    return types.SimpleNamespace(**{name: getattr(namespace, name) for name in names})


def _use(slices):
    """A function of the slices: slice 1 twice, the last one not at all, the others once each, weighted."""
    return slices[0] * 0.5 + slices[1] * slices[1] + sum(slices[2:-1]) * 2.0


def _value_and_gradient(engine, namespace, x, axis, upstream):
    def f(t):
        with ops.using(namespace):
            slices = ops.unstack(t, axis=axis)
            return _use(slices), len(slices)

    if engine == "numpy":
        value, count = f(x)
        (grad,) = autodiff.vjp(lambda t: f(t)[0], (x,), upstream)
        return np.asarray(value), count, grad
    if engine == "torch":
        import torch

        t = torch.tensor(x, requires_grad=True)
        out, count = f(t)
        out.backward(torch.tensor(upstream))
        return out.detach().numpy(), count, t.grad.numpy()
    import tensorflow as tf

    t = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(t)
        out, count = f(t)
    grad = tape.gradient(out, t, output_gradients=tf.constant(upstream))
    return out.numpy(), count, tf.convert_to_tensor(grad).numpy()  # a composed take gives IndexedSlices


@pytest.mark.parametrize("axis", [0, 1, -1, 2])
@pytest.mark.parametrize("engine", ENGINES)
def test_native_and_composed_unstack_agree_with_numpy(engine, axis):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(4, 3, 5))
    slices = list(np.moveaxis(x, axis, 0))
    expected = _use(slices)
    upstream = rng.normal(size=expected.shape)
    # d/dx of the slices: 0.5, 2 x_1, 2 for the middle ones, 0 for the last.
    moved = np.zeros_like(np.moveaxis(x, axis, 0))
    moved[0] = 0.5 * upstream
    moved[1] = 2 * slices[1] * upstream
    moved[2:-1] = 2.0 * upstream
    expected_grad = np.moveaxis(moved, 0, axis)
    namespace = _namespace(engine)
    for ops_namespace in (namespace, _composed(namespace)):
        value, count, grad = _value_and_gradient(engine, ops_namespace, x, axis, upstream)
        assert count == x.shape[axis]
        np.testing.assert_allclose(value, expected, rtol=1e-15, atol=0)
        np.testing.assert_allclose(grad, expected_grad, rtol=1e-15, atol=0)


def test_unstack_outside_a_model_gives_arrays_and_keeps_float32():
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    slices = ops.unstack(x, axis=1)
    assert isinstance(slices, list) and len(slices) == 3
    assert all(s.dtype == np.float32 and s.shape == (2,) for s in slices)
    np.testing.assert_array_equal(np.stack(slices, axis=1), x)


@pytest.mark.parametrize("axis", [2, -3, 1.0, True])
def test_unstack_refuses_an_axis_x_lacks(axis):
    with pytest.raises(InvalidArgumentError, match="polynn.ops.unstack.*axis"):
        ops.unstack(np.zeros((2, 3)), axis=axis)


@pytest.mark.skipif("tensorflow" not in ENGINES, reason="needs TensorFlow for a traced unknown length")
def test_unstack_refuses_a_length_unknown_when_traced():
    import tensorflow as tf

    from polynn_tensorflow import ops as tf_ops

    seen = []

    @tf.function(input_signature=[tf.TensorSpec((None, 3))])
    def along_batch(x):
        with ops.using(tf_ops):
            try:
                ops.unstack(x, axis=0)
            except InvalidArgumentError as error:
                seen.append(str(error))
        return x

    along_batch(tf.zeros((2, 3)))
    assert seen and "known when the op is traced" in seen[0] and "(None, 3)" in seen[0]


def test_unstack_refuses_a_scalar():
    with pytest.raises(InvalidArgumentError, match=r"polynn.ops.unstack.*x.shape=\(\).*a scalar has no axis"):
        ops.unstack(np.float64(2.0))


@pytest.mark.skipif("tensorflow" not in ENGINES, reason="needs TensorFlow for a traced unknown batch")
def test_the_composed_unstack_needs_only_the_unstacked_length_static():
    """A namespace of OP_NAMES alone (no take, no unstack) unstacks steps of a batch of unknown length."""
    import tensorflow as tf

    from polynn_tensorflow import ops as tf_ops

    bare = types.SimpleNamespace(**{name: getattr(tf_ops, name) for name in ops.OP_NAMES})
    x = np.random.default_rng(4).normal(size=(2, 3, 5))

    @tf.function(input_signature=[tf.TensorSpec((None, 3, 5), tf.float64)])
    def steps(t):
        with ops.using(bare):
            return tf.stack(ops.unstack(t, axis=-2), axis=0)

    np.testing.assert_array_equal(steps(tf.constant(x)).numpy(), np.moveaxis(x, 1, 0))
