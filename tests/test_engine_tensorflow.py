"""What only the TensorFlow backend does: its fused Adam kernel, tracing once, and eager ops as traced ones.

What every engine must do is in test_engines.py; per-component agreement is the conformance kit's.
"""

from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
pytest.importorskip("polynn_tensorflow")

from test_engines import BATCH, FEATURES, blog_data, blog_model, mlp, regression_data  # noqa: E402

from polynn import constraints, optimizers  # noqa: E402
from polynn.layers import Dense  # noqa: E402
from polynn.models import Sequential  # noqa: E402

# ---- the fused Adam kernel ----------------------------------------------------------------------

FUSED_OPTIMIZERS = {
    "adam": optimizers.Adam(learning_rate=0.01),
    "adam_amsgrad": optimizers.Adam(learning_rate=0.01, amsgrad=True),
    "clipnorm": optimizers.Adam(learning_rate=0.01, clipnorm=0.1),
    "weight_decay": optimizers.Adam(learning_rate=0.01, weight_decay=0.05),
    "adamw": optimizers.AdamW(learning_rate=0.01),
    "adam_clipvalue": optimizers.Adam(learning_rate=0.01, clipvalue=0.05),
    "adam_global_clipnorm": optimizers.Adam(learning_rate=0.01, global_clipnorm=0.2),
    "max_norm": optimizers.Adam(learning_rate=0.05),
}
FUSED_CASES = sorted(FUSED_OPTIMIZERS)


def _trained_fused(case, dtype, fused, monkeypatch):
    """Weights and slots after a short fit, with the fused Adam update (FUSED_MIN_SIZE 0) or without."""
    from polynn_tensorflow import optimizers as tf_optimizers

    monkeypatch.setattr(tf_optimizers, "FUSED_MIN_SIZE", 0 if fused else float("inf"))
    x, y = regression_data()
    if case == "max_norm":
        model = Sequential([Dense(6, input_dim=FEATURES, activation="tanh", kernel_constraint=constraints.MaxNorm(0.5)),
                            Dense(3, bias_constraint=constraints.NonNeg())])
    else:
        model = mlp(3)()
    model.compile(optimizer=FUSED_OPTIMIZERS[case], loss="mse", backend="tensorflow", dtype=dtype, seed=11)
    model.fit(x, y, batch_size=BATCH, epochs=2, verbose=0)
    runtime = model._compiled.runtime
    assert (runtime.fused_update is not None) == fused
    return model.get_weights() + [slot for slots in runtime.get_optimizer_state() for slot in slots]


@pytest.mark.parametrize("case", FUSED_CASES)
def test_fused_adam_gives_the_traced_bits_in_float64(case, monkeypatch):
    """ResourceApplyAdam, given alpha and beta powers of 0, computes the traced rule's operations in
    the traced rule's order: the same bits, clipping, weight decay and constraints included."""
    traced = _trained_fused(case, "float64", False, monkeypatch)
    fused = _trained_fused(case, "float64", True, monkeypatch)
    for want, got in zip(traced, fused, strict=True):
        assert want.tobytes() == got.tobytes()


@pytest.mark.parametrize("case", FUSED_CASES)
def test_fused_adam_agrees_in_float32(case, monkeypatch):
    """In float32 the kernel forms 1 - beta in float32 (1 - 0.999 is 1.3e-5 off the rounded double),
    so the fused update agrees to rounding (measured after 2 epochs: 6.9e-7 at most)."""
    traced = _trained_fused(case, "float32", False, monkeypatch)
    fused = _trained_fused(case, "float32", True, monkeypatch)
    for want, got in zip(traced, fused, strict=True):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)


def test_fused_adam_is_chosen_for_large_weights_and_faithful_constants_only():
    """The fused kernel runs for Adam on a model with a weight of FUSED_MIN_SIZE elements or more,
    unless the kernel's float32 1 - beta_2 lies too far from the formula's (1.7e-4 at 0.9999)."""
    from polynn_tensorflow import optimizers as tf_optimizers

    side = int(tf_optimizers.FUSED_MIN_SIZE ** 0.5)
    for width, optimizer, dtype, fused in ((side, "adam", "float32", True), (side - 1, "adam", "float32", False),
                                           (side, "rmsprop", "float32", False),
                                           (side, optimizers.Adam(beta_2=0.9999), "float32", False),
                                           (side, optimizers.Adam(beta_2=0.9999), "float64", True)):
        model = Sequential([Dense(width, input_dim=side), Dense(1)])
        model.compile(optimizer=optimizer, loss="mse", backend="tensorflow", dtype=dtype)
        assert (model._compiled.runtime.fused_update is not None) == fused, (width, optimizer, dtype)


# ---- graph compilation -----------------------------------------------------------------------


def test_a_whole_fit_traces_each_compiled_function_once():
    """Full blocks and the epoch's short last block share one trace, so later epochs never retrace."""
    x, y, x_val, y_val, _, _ = blog_data(1000, 100)
    model = blog_model(dropout=True)
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"], backend="tensorflow", seed=2)
    model.fit(x, y, epochs=3, batch_size=48, validation_data=(x_val, y_val), verbose=0)
    model.fit(x, y, epochs=1, batch_size=64, validation_data=(x_val, y_val), verbose=0)
    functions = model._compiled.runtime._functions
    assert {key[0] for key in functions} == {"train", "test"}
    assert all(f.experimental_get_tracing_count() == 1 for f in functions.values())


def test_ops_compute_eagerly_what_they_compute_in_a_tf_function():
    """The runtime runs ops inside tf.function, where the conformance kit's op cases check them;
    called eagerly (a component or user function outside a model), each op case's function gives
    the same values and gradients, at the same ties and kinks, in float64."""
    import polynn
    from polynn.conformance import inputs, op_functions
    from polynn_tensorflow import ops as tf_ops

    def value_and_gradient(function, args, seed):
        with polynn.ops.using(tf_ops), tf_ops.floats(tf.float64), tf.GradientTape() as tape:
            tape.watch(args[-1])
            value = function(*args)
        return value, tape.gradient(value, args[-1], output_gradients=seed,
                                    unconnected_gradients=tf.UnconnectedGradients.ZERO)

    traced = tf.function(value_and_gradient, autograph=False)
    for entry in op_functions.functions():
        if entry.harness == "loss":
            p, y = inputs.op_probabilities(units=op_functions.UNITS)
            args = [tf.constant(y), tf.constant(p)]
        else:
            args = [tf.constant(inputs.op_grid(entry.domain, units=op_functions.UNITS, held=op_functions.HELD))]
        with polynn.ops.using(tf_ops), tf_ops.floats(tf.float64):
            shape = entry.function(*args).shape
        seed = tf.constant(np.random.default_rng(0).uniform(-2.0, 2.0, shape))
        eager = value_and_gradient(entry.function, args, seed)
        graph = traced(entry.function, args, seed)
        for got, want, what in zip(eager, graph, ("value", "gradient")):
            assert got.dtype == want.dtype == tf.float64, (entry.op, what)
            # Grappler may reorder a sum in the graph: a few ulps apart.
            np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-14, atol=1e-14, err_msg=f"{entry.op} {what}")
