"""Embedding, SimpleRNN, LSTM and GRU: their options and refusals, shapes and weights, the forward pass
against a direct NumPy loop on every installed backend, integer inputs end to end, and the files they
travel in (polynn's own, .keras read back by polynn, ONNX). Keras itself: test_keras_parity_recurrent."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os

import numpy as np
import pytest

from polynn import initializers, plugins
from polynn.errors import InvalidArgumentError, ModelFileError, ShapeMismatchError
from polynn.layers import GRU, LSTM, Dense, Embedding, Input, SimpleRNN, get
from polynn.models import Sequential, load_model

BACKENDS = [pytest.param(name, marks=() if importlib.util.find_spec(name) else pytest.mark.skip(f"no {name}"))
            for name in ("numpy", "torch", "tensorflow")]
RECURRENT = (SimpleRNN, LSTM, GRU)


# ---- a direct NumPy loop: Keras's cells, written out ------------------------------------------------


def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


def _loop(x, go_backwards, return_sequences, step, state):
    outputs = []
    for t in (range(x.shape[1] - 1, -1, -1) if go_backwards else range(x.shape[1])):
        h, state = step(x[:, t], state)
        outputs.append(h)
    return np.stack(outputs, axis=1) if return_sequences else outputs[-1]


def simple_rnn_reference(x, kernel, recurrent, bias, go_backwards=False, return_sequences=False):
    def step(xt, h):
        h = np.tanh(xt @ kernel + bias + h @ recurrent)
        return h, h

    return _loop(x, go_backwards, return_sequences, step, np.zeros((len(x), recurrent.shape[0])))


def lstm_reference(x, kernel, recurrent, bias, go_backwards=False, return_sequences=False):
    units = recurrent.shape[0]

    def step(xt, state):
        h, c = state
        i, f, g, o = np.split(xt @ kernel + h @ recurrent + bias, 4, axis=1)
        c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
        h = _sigmoid(o) * np.tanh(c)
        return h, (h, c)

    zeros = np.zeros((len(x), units))
    return _loop(x, go_backwards, return_sequences, step, (zeros, zeros))


def gru_reference(x, kernel, recurrent, bias, reset_after=True, go_backwards=False, return_sequences=False):
    units = recurrent.shape[0]
    input_bias, recurrent_bias = (bias[0], bias[1]) if reset_after else (bias, np.zeros(3 * units))

    def step(xt, h):
        x_z, x_r, x_h = np.split(xt @ kernel + input_bias, 3, axis=1)
        h_z, h_r, h_h = np.split(h @ recurrent + recurrent_bias, 3, axis=1)
        z, r = _sigmoid(x_z + h_z), _sigmoid(x_r + h_r)
        hh = np.tanh(x_h + r * h_h) if reset_after else np.tanh(x_h + (r * h) @ recurrent[:, 2 * units:])
        h = z * h + (1 - z) * hh
        return h, h

    return _loop(x, go_backwards, return_sequences, step, np.zeros((len(x), units)))


def _random_weights(model, seed=0):
    """Weights of every layer drawn afresh (biases too, so that every term counts)."""
    rng = np.random.default_rng(seed)
    return [rng.normal(scale=0.5, size=w.shape) for w in model.get_weights()]


def _compiled(layers, backend="numpy", dtype="float64", optimizer="sgd"):
    model = Sequential(layers)
    model.compile(optimizer=optimizer, loss="mse", backend=backend, dtype=dtype, seed=3)
    return model


# ---- options, refusals, configs -----------------------------------------------------------------


@pytest.mark.parametrize("cls", RECURRENT)
def test_keras_defaults(cls):
    layer = cls(8)
    assert (layer.units, layer.activation.name, layer.use_bias) == (8, "tanh", True)
    assert (layer.kernel_initializer.name, layer.recurrent_initializer.name, layer.bias_initializer.name) == \
        ("glorot_uniform", "orthogonal", "zeros")
    assert (layer.return_sequences, layer.go_backwards, layer.dropout, layer.recurrent_dropout) == \
        (False, False, 0.0, 0.0)
    if cls is not SimpleRNN:
        assert layer.recurrent_activation.name == "sigmoid"
    assert LSTM().unit_forget_bias is True and GRU().reset_after is True
    assert get("lstm") == LSTM() and get("gru") == GRU() and get("simple_rnn") == SimpleRNN()


def test_embedding_defaults():
    layer = Embedding(100, 8)
    assert (layer.input_dim, layer.output_dim, layer.mask_zero) == (100, 8, False)
    assert layer.embeddings_initializer == initializers.RandomUniform(minval=-0.05, maxval=0.05)
    assert get("embedding") == Embedding()


@pytest.mark.parametrize("cls", RECURRENT)
@pytest.mark.parametrize("option, value, match", [
    ("dropout", 0.2, r"dropout=0\.2; accepted: 0\.0 .*no dropout: it is not supported"),
    ("recurrent_dropout", 0.1, r"recurrent_dropout=0\.1; accepted: 0\.0 .*not supported"),
    ("dropout", 1.5, r"dropout=1\.5; accepted: 0\.0 .*not supported"),
    ("return_state", True, r"return_state=True; accepted: False .*return_state is not supported"),
    ("stateful", True, r"stateful=True; accepted: False .*stateful is not supported"),
    ("units", 0, r"units=0"),
    ("go_backwards", "yes", r"go_backwards='yes'; accepted: True or False"),
    ("seed", -1, r"seed=-1"),
])
def test_options_polynn_lacks_are_refused_by_name(cls, option, value, match):
    with pytest.raises(InvalidArgumentError, match=match):
        cls(4, **{option: value})


@pytest.mark.parametrize("cls", [LSTM, GRU])
def test_use_cudnn_true_is_refused(cls):
    assert cls(2, use_cudnn=False).use_cudnn is False
    with pytest.raises(InvalidArgumentError, match=r"use_cudnn=True; accepted: 'auto' or False .*not supported"):
        cls(2, use_cudnn=True)


@pytest.mark.parametrize("kwargs, match", [
    ({"mask_zero": True}, r"mask_zero=True; accepted: False \(polynn has no masks: mask_zero is not supported"),
    ({"input_dim": 0}, r"input_dim=0"),
    ({"input_dim": 2**31}, r"input_dim=2147483648; accepted: a positive integer <= 2\*\*31 - 1"),
    ({"output_dim": 0}, r"output_dim=0"),
])
def test_embedding_refusals(kwargs, match):
    with pytest.raises(InvalidArgumentError, match=match):
        Embedding(**kwargs)


def test_options_keras_has_but_polynn_does_not_name_are_refused():
    with pytest.raises(InvalidArgumentError, match="time_major"):
        LSTM(4, time_major=True)
    with pytest.raises(InvalidArgumentError, match="weights"):
        Embedding(4, 2, weights=[np.zeros((4, 2))])


@pytest.mark.parametrize("layer", [
    SimpleRNN(3, activation="relu", use_bias=False, return_sequences=True, unroll=True, kernel_regularizer="l2"),
    LSTM(5, recurrent_activation="hard_sigmoid", unit_forget_bias=False, go_backwards=True,
         recurrent_constraint="non_neg", seed=4, name="encoder"),
    GRU(2, reset_after=False, activation=None, bias_initializer="ones", use_cudnn=False, input_shape=(7, 2)),
    Embedding(50, 6, embeddings_regularizer="l1", embeddings_constraint="max_norm", input_shape=(9,),
              trainable=False),
])
def test_config_round_trips_through_json(layer):
    config = json.loads(json.dumps(layer.get_config()))
    assert type(layer).from_config(config) == layer
    assert get({"class_name": layer.name, "config": config}) == layer


def test_activation_none_is_linear_as_keras():
    assert GRU(2, activation=None, recurrent_activation=None).activation.name == "linear"
    assert GRU(2, recurrent_activation=None).recurrent_activation.name == "linear"


# ---- shapes and weights -------------------------------------------------------------------------


@pytest.mark.parametrize("layer, weights", [
    (SimpleRNN(4), [("kernel", (3, 4)), ("recurrent_kernel", (4, 4)), ("bias", (4,))]),
    (LSTM(4), [("kernel", (3, 16)), ("recurrent_kernel", (4, 16)), ("bias", (16,))]),
    (GRU(4), [("kernel", (3, 12)), ("recurrent_kernel", (4, 12)), ("bias", (2, 12))]),
    (GRU(4, reset_after=False), [("kernel", (3, 12)), ("recurrent_kernel", (4, 12)), ("bias", (12,))]),
    (LSTM(4, use_bias=False), [("kernel", (3, 16)), ("recurrent_kernel", (4, 16))]),
])
def test_weights_in_keras_order_and_shapes(layer, weights):
    assert [(w.name, w.shape) for w in layer.weight_specs((7, 3))] == weights
    assert layer.output_shape((7, 3)) == (4,)
    assert type(layer)(**{**layer.get_config(), "return_sequences": True}).output_shape((7, 3)) == (7, 4)


def test_embedding_shapes():
    layer = Embedding(20, 5)
    assert [(w.name, w.shape) for w in layer.weight_specs((7,))] == [("embeddings", (20, 5))]
    assert layer.output_shape((7,)) == (7, 5)
    assert layer.output_shape((2, 3)) == (2, 3, 5)


@pytest.mark.parametrize("cls", RECURRENT)
@pytest.mark.parametrize("shape", [(6,), (2, 3, 4)])
def test_recurrent_layers_need_sequences(cls, shape):
    with pytest.raises(InvalidArgumentError, match=r"input shape=.*\(timesteps, features\) per sample"):
        cls(2).output_shape(shape)
    with pytest.raises(InvalidArgumentError, match=r"\(timesteps, features\)"):
        cls(2, input_shape=shape)
    model = Sequential([Input(shape), cls(2)])
    with pytest.raises(InvalidArgumentError, match=r"\(timesteps, features\)"):
        model.compile(loss="mse")
        model.predict(np.zeros((1, *shape)), verbose=0)


def test_a_softmax_activation_names_an_axis_of_the_step():
    assert LSTM(3, activation="softmax").output_shape((5, 2)) == (3,)
    with pytest.raises(InvalidArgumentError, match="axis"):
        LSTM(3, activation={"class_name": "softmax", "config": {"axis": 2}}).output_shape((5, 2))


def test_lstm_draws_its_forget_bias_as_ones_and_the_rest_from_the_initializer():
    model = _compiled([Input((4, 3)), LSTM(5, bias_initializer="random_normal")])
    bias = model.get_weights()[2]
    assert np.array_equal(bias[5:10], np.ones(5))
    assert np.all(bias[:5] != 0) and np.all(bias[10:] != 0)
    plain = _compiled([Input((4, 3)), LSTM(5, unit_forget_bias=False)]).get_weights()[2]
    assert np.array_equal(plain, np.zeros(20))


@pytest.mark.parametrize("layer, params", [
    (SimpleRNN(4), 3 * 4 + 4 * 4 + 4),
    (LSTM(4), 4 * (3 * 4 + 4 * 4 + 4)),
    (GRU(4), 3 * (3 * 4 + 4 * 4 + 2 * 4)),
    (GRU(4, reset_after=False), 3 * (3 * 4 + 4 * 4 + 4)),
])
def test_summary_counts_keras_params(layer, params, capsys):
    model = Sequential([Input((6, 3)), layer])
    model.summary()
    out = capsys.readouterr().out
    assert f"{params:,}" in out and type(layer).__name__ in out


# ---- the forward pass against a direct loop ----------------------------------------------------


def _sequences(shape=(5, 6, 3), seed=1):
    return np.random.default_rng(seed).normal(size=shape)


@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("layer, reference", [
    (SimpleRNN, simple_rnn_reference),
    (LSTM, lstm_reference),
    (GRU, gru_reference),
    (lambda units, **kw: GRU(units, reset_after=False, **kw),
     lambda *a, **kw: gru_reference(*a, reset_after=False, **kw)),
], ids=["simple_rnn", "lstm", "gru", "gru-reset_before"])
def test_forward_matches_a_numpy_loop(layer, reference, go_backwards, return_sequences):
    x = _sequences()
    model = _compiled([Input(x.shape[1:]), layer(4, go_backwards=go_backwards, return_sequences=return_sequences)])
    weights = _random_weights(model)
    model.set_weights(weights)
    expected = reference(x, *weights, go_backwards=go_backwards, return_sequences=return_sequences)
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, rtol=1e-13, atol=1e-14)


def test_without_bias_the_loop_has_no_bias():
    x = _sequences()
    for layer, reference, bias in [(LSTM(3, use_bias=False), lstm_reference, np.zeros(12)),
                                   (GRU(3, use_bias=False), gru_reference, np.zeros((2, 9))),
                                   (SimpleRNN(3, use_bias=False), simple_rnn_reference, np.zeros(3))]:
        model = _compiled([Input(x.shape[1:]), layer])
        weights = _random_weights(model)
        model.set_weights(weights)
        np.testing.assert_allclose(model.predict(x, verbose=0), reference(x, *weights, bias), rtol=1e-13, atol=1e-14)


def test_a_recurrent_activation_with_an_axis_acts_on_each_gate():
    """softmax over each gate's units (Keras's), not over the step's blocks of every gate."""
    def softmax(z):
        e = np.exp(z - z.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)

    x = _sequences()
    model = _compiled([Input(x.shape[1:]), LSTM(3, recurrent_activation="softmax")])
    kernel, recurrent, bias = weights = _random_weights(model)
    model.set_weights(weights)
    h = c = np.zeros((len(x), 3))
    for t in range(x.shape[1]):
        i, f, g, o = np.split(x[:, t] @ kernel + h @ recurrent + bias, 4, axis=1)
        c = softmax(f) * c + softmax(i) * np.tanh(g)
        h = softmax(o) * np.tanh(c)
    np.testing.assert_allclose(model.predict(x, verbose=0), h, rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("spec", [
    SimpleRNN(3, return_sequences=True), LSTM(3, go_backwards=True), GRU(3, return_sequences=True),
    GRU(3, reset_after=False, go_backwards=True), LSTM(2, recurrent_activation="hard_sigmoid", use_bias=False),
], ids=lambda spec: spec.name)
def test_numpy_gradients_match_finite_differences(spec):
    """The shared call, differentiated by NumPy's autodiff: input and weight gradients of <r, y>."""
    backend = plugins.get_backend("numpy")
    layer = backend.implementation("layer", spec.name)(backend, spec)
    rng = np.random.default_rng(5)
    x = rng.normal(size=(3, 4, 2))
    params = [rng.normal(scale=0.5, size=w.shape) for w in spec.weight_specs((4, 2))]
    y, cache = layer.forward(params, x)
    r = rng.normal(size=y.shape)
    dx, grads = layer.backward(params, cache, r)

    def total(arrays):
        return float(np.sum(r * layer.forward(arrays[1:], arrays[0])[0]))

    arrays = [x, *params]
    for k, analytic in enumerate([dx, *grads]):
        numeric = np.zeros_like(arrays[k])
        for index in np.ndindex(arrays[k].shape):
            shifted = [a.copy() for a in arrays]
            shifted[k][index] += 1e-6
            up = total(shifted)
            shifted[k][index] -= 2e-6
            numeric[index] = (up - total(shifted)) / 2e-6
        np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-7)


def test_embedding_gradient_adds_up_repeated_indices():
    backend = plugins.get_backend("numpy")
    layer = backend.implementation("layer", "embedding")(backend, Embedding(4, 2))
    table = np.arange(8.0).reshape(4, 2)
    x = np.array([[0.0, 2.0, 0.0]])
    y, cache = layer.forward([table], x)
    assert np.array_equal(y, table[[[0, 2, 0]]])
    _, (grad,) = layer.backward([table], cache, np.ones_like(y))
    assert np.array_equal(grad, [[2, 2], [0, 0], [1, 1], [0, 0]])


def _stack():
    """Every recurrent layer and option at once, on an Embedding's vectors."""
    return [Input((6,)), Embedding(11, 3), LSTM(4, return_sequences=True, go_backwards=True),
            GRU(3, return_sequences=True), GRU(3, reset_after=False, return_sequences=True, go_backwards=True),
            SimpleRNN(2), Dense(2)]


def _stack_reference(x, weights):
    h = weights[0][x]
    h = lstm_reference(h, *weights[1:4], go_backwards=True, return_sequences=True)
    h = gru_reference(h, *weights[4:7], return_sequences=True)
    h = gru_reference(h, *weights[7:10], reset_after=False, go_backwards=True, return_sequences=True)
    h = simple_rnn_reference(h, *weights[10:13])
    return h @ weights[13] + weights[14]


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_backend_computes_the_loop_and_trains_alike(backend):
    x = np.random.default_rng(2).integers(11, size=(12, 6))
    y = np.random.default_rng(3).normal(size=(12, 2))
    runs = {}
    for name in ("numpy", backend):
        model = _compiled(_stack(), backend=name, optimizer="adam")
        weights = _random_weights(model)
        model.set_weights(weights)
        np.testing.assert_allclose(model.predict(x, verbose=0), _stack_reference(x, weights), rtol=1e-12,
                                   atol=1e-13)
        history = model.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0).history["loss"]
        runs[name] = (history, model.get_weights())
    np.testing.assert_allclose(runs[backend][0], runs["numpy"][0], rtol=1e-12)
    for a, b in zip(runs[backend][1], runs["numpy"][1], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


# ---- integer inputs ----------------------------------------------------------------------------


def _embedding_model(backend="numpy", dtype="float64", input_dim=7):
    return _compiled([Input((4,)), Embedding(input_dim, 3), SimpleRNN(2)], backend=backend, dtype=dtype)


@pytest.mark.parametrize("int_dtype", [np.int32, np.int64, np.uint8])
def test_integer_arrays_fit_evaluate_and_predict(int_dtype):
    x = np.random.default_rng(0).integers(7, size=(10, 4)).astype(int_dtype)
    y = np.random.default_rng(1).normal(size=(10, 2))
    model = _embedding_model()
    table = model.get_weights()[0]
    np.testing.assert_allclose(model.layers[1].spec.call([table], x.astype(np.float64)), table[x.astype(np.int64)])
    history = model.fit(x, y, epochs=2, verbose=0, validation_data=(x, y))
    assert np.all(np.isfinite(history.history["loss"]))
    assert np.isfinite(model.evaluate(x, y, verbose=0))
    assert np.array_equal(model.predict(x, verbose=0), model.predict(x.astype(np.float64), verbose=0))


def test_float_indices_are_truncated_as_keras_casts_them():
    model = _embedding_model()
    x = np.array([[0, 1, 2, 6]])
    assert np.array_equal(model.predict(x + 0.75, verbose=0), model.predict(x, verbose=0))
    assert np.array_equal(model.predict(np.array([[-0.5, 1, 2, 6]]), verbose=0), model.predict(x, verbose=0))


@pytest.mark.parametrize("bad, shown", [
    ([[0, 1, 7, 2]], r"indices in \[0, 7\]"),
    ([[0, -1, 3, 2]], r"indices in \[-1, 3\]"),
    ([[0, 1, 2, 7.5]], r"indices in \[0, 7\.5\]"),
])
def test_indices_outside_the_table_are_refused_before_any_engine(bad, shown):
    model = _embedding_model()
    good, y = np.zeros((1, 4)), np.zeros((1, 2))
    accepted = rf"invalid x='{shown}'; accepted: indices in \[0, 6\] \(the model's first layer is an Embedding " \
               rf"with input_dim=7\)"
    for call in (lambda: model.predict(np.array(bad), verbose=0),
                 lambda: model.fit(np.array(bad), y, verbose=0),
                 lambda: model.evaluate(np.array(bad), y, verbose=0),
                 lambda: model.fit(good, y, validation_data=(np.array(bad), y), verbose=0)):
        with pytest.raises(InvalidArgumentError, match=accepted):
            call()
    assert model.iterations == 0


def test_float32_refuses_indices_it_cannot_hold():
    # Without an Input the table is drawn once data fixes the shape: the refusal comes first.
    model = _compiled([Embedding(2**24 + 8, 1), SimpleRNN(2)], dtype="float32")
    x = np.array([[0, 1, 2, 2**24 + 2]])
    with pytest.raises(InvalidArgumentError, match=r"indices below 2\*\*24, which float32 holds exactly"):
        model.predict(x, verbose=0)


def test_indices_must_still_have_the_models_shape():
    with pytest.raises(ShapeMismatchError):
        _embedding_model().predict(np.zeros((2, 5)), verbose=0)


# ---- files ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_polynn_model_files_keep_the_layers(tmp_path, backend):
    x = np.random.default_rng(4).integers(11, size=(5, 6))
    model = _compiled(_stack(), backend=backend, optimizer="adam")
    model.fit(x, np.ones((5, 2)), epochs=1, verbose=0)
    model.save(tmp_path / "m.safetensors")
    loaded = load_model(tmp_path / "m.safetensors", backend=backend)
    assert [type(layer.spec) for layer in loaded.layers] == [type(layer.spec) for layer in model.layers]
    assert [layer.spec for layer in loaded.layers] == [layer.spec for layer in model.layers]
    assert np.array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def test_keras_files_round_trip_in_polynn(tmp_path):
    x = np.random.default_rng(4).integers(11, size=(5, 6))
    model = _compiled(_stack(), optimizer="adam")
    model.fit(x, np.ones((5, 2)), epochs=1, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = load_model(tmp_path / "m.keras")
    # The file names every layer as Keras does (the Input 'input_layer'); the specs are otherwise the same.
    assert loaded.layer_names() == ["input_layer", *model.layer_names()[1:]]
    assert [dataclasses.replace(layer.spec, given_name=None) for layer in loaded.layers] == \
        [layer.spec for layer in model.layers]
    assert np.array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    for a, b in zip(loaded._compiled.runtime.get_optimizer_state(), model._compiled.runtime.get_optimizer_state(),
                    strict=True):
        assert all(np.array_equal(s, t) for s, t in zip(a, b, strict=True))
    model.save_weights(tmp_path / "w.weights.h5")
    fresh = _compiled(_stack())
    fresh.build((6,))
    fresh.load_weights(tmp_path / "w.weights.h5")
    assert all(np.array_equal(a, b) for a, b in zip(fresh.get_weights(), model.get_weights(), strict=True))


def test_keras_files_take_recurrent_activations_by_name_only(tmp_path):
    model = _compiled([Input((4, 3)), LSTM(2, activation={"class_name": "elu", "config": {"alpha": 0.5}})])
    with pytest.raises(ModelFileError, match=r"layer 'lstm''s activation ELU with settings other than Keras's "
                                             r"defaults cannot be written in Keras's spelling; accepted: an "
                                             r"activation Keras names alone"):
        model.save(tmp_path / "m.keras")
    assert not (tmp_path / "m.keras").exists()


def _onnx_run(path, x):
    ort = pytest.importorskip("onnxruntime")
    session = ort.InferenceSession(os.fspath(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"input": x})[0]


@pytest.mark.parametrize("dtype, tolerance", [("float64", 1e-12), ("float32", 1e-6)])
def test_onnx_graph_matches_predict(tmp_path, dtype, tolerance):
    onnx = pytest.importorskip("onnx")
    x = np.random.default_rng(5).integers(11, size=(7, 6))
    layers = _stack()
    layers[3] = GRU(3, return_sequences=True, use_bias=False)
    layers.insert(4, LSTM(3, use_bias=False, return_sequences=True, recurrent_activation="hard_sigmoid"))
    model = _compiled(layers, dtype=dtype, optimizer="adam")
    model.fit(x, np.ones((7, 2)), epochs=2, verbose=0)
    model.export(tmp_path / "m.onnx")
    onnx.checker.check_model(os.fspath(tmp_path / "m.onnx"), full_check=True)
    got = _onnx_run(tmp_path / "m.onnx", x.astype(dtype))
    np.testing.assert_allclose(got, model.predict(x, verbose=0), rtol=tolerance, atol=tolerance)
    assert got.dtype == np.dtype(dtype)


# ---- TensorFlow: written out over short sequences, a tf.while_loop over long ones ---------------


@pytest.mark.parametrize("written_out_steps, loops", [(0, True), (6, False)])
def test_tensorflow_runs_both_of_its_forms_as_numpy(monkeypatch, written_out_steps, loops):
    """The kit's sequences are short: with the bound at 0 every layer runs in the loop."""
    if importlib.util.find_spec("tensorflow") is None:
        pytest.skip("no tensorflow")
    from polynn_tensorflow import recurrent

    monkeypatch.setattr(recurrent, "WRITTEN_OUT_STEPS", written_out_steps)
    looped = []
    original = recurrent.Recurrent._loop
    monkeypatch.setattr(recurrent.Recurrent, "_loop", lambda self, *a: looped.append(1) or original(self, *a))
    test_every_backend_computes_the_loop_and_trains_alike("tensorflow")
    assert bool(looped) is loops


def test_tensorflow_writes_out_a_layer_with_unroll(monkeypatch):
    if importlib.util.find_spec("tensorflow") is None:
        pytest.skip("no tensorflow")
    from polynn_tensorflow import recurrent

    monkeypatch.setattr(recurrent, "WRITTEN_OUT_STEPS", 0)
    monkeypatch.setattr(recurrent.Recurrent, "_loop", lambda self, *a: pytest.fail("the loop ran"))
    x = np.random.default_rng(0).normal(size=(4, 5, 3))
    predictions = {}
    for backend in ("numpy", "tensorflow"):
        model = _compiled([Input((5, 3)), LSTM(3, unroll=True), Dense(1)], backend=backend)
        model.set_weights(_random_weights(model))
        predictions[backend] = model.predict(x, verbose=0)
    np.testing.assert_allclose(predictions["tensorflow"], predictions["numpy"], rtol=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_tensorflow_loop_passes_the_kits_recurrent_cases(monkeypatch, dtype):
    if importlib.util.find_spec("tensorflow") is None:
        pytest.skip("no tensorflow")
    from polynn import conformance
    from polynn_tensorflow import recurrent

    monkeypatch.setattr(recurrent, "WRITTEN_OUT_STEPS", 0)
    report = conformance.run("tensorflow", dtype, ["layer.lstm*", "layer.gru*", "layer.simple_rnn*"])
    assert report.results and report.count("pass") == len(report.results), "\n".join(report.problem_lines())
