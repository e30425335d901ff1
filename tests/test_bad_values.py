"""Hostile and unlucky values: each is refused with a polynn error at construction, compile or fit, never
a raw NumPy/engine error and never a silent result; values at the edge of what is accepted train alike
on every backend.

CASES is the probe table of issue 22 (item 7): every float, integer, seed, axis and shape parameter of
every built-in component with a too-large integer, an infinity, a NaN, a bool or a string, plus fit's
arguments, class weights and data shapes. Each case runs its whole path (construct, compile, fit)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from polynn import activations, constraints, initializers, losses, metrics, optimizers, plugins, regularizers, schedules
from polynn.errors import InvalidArgumentError, PolynnError
from polynn.layers import Activation, Dense, Dropout, Input
from polynn.models import Sequential

RNG = np.random.default_rng(0)
X = RNG.normal(size=(8, 4))
Y1 = (X[:, :1] > 0).astype(np.float64)  # binary labels, one unit
Y2 = np.eye(2)[np.arange(8) % 2]  # one-hot, two units
LABELS = (np.arange(8) % 2).astype(np.float64)  # sparse labels of two classes


def train(layers, *, loss="mse", optimizer="sgd", metrics_=None, x=X, y=Y1, backend="numpy", dtype="float32",
          seed=1, epochs=1, **fit_kwargs):
    """Build, compile and fit a model of `layers` (a list, or a callable making it); return the model."""
    model = Sequential(layers() if callable(layers) else layers)
    model.compile(optimizer=optimizer, loss=loss, metrics=metrics_, backend=backend, dtype=dtype, seed=seed)
    model.fit(x, y, epochs=epochs, verbose=0, **{"batch_size": 4, **fit_kwargs})
    return model


# ---- how each kind of component is put to work ------------------------------------------------


def _use_layer(make):
    return lambda backend: train(lambda: [Dense(3, input_dim=4), make(), Dense(1)], backend=backend)


def _use_activation(make):
    return lambda backend: train(lambda: [Dense(3, input_dim=4, activation=make()), Dense(1)], backend=backend)


def _use_loss(make):
    def run(backend):
        loss = make()
        y = LABELS if loss.sparse_labels else Y2
        return train([Dense(2, input_dim=4, activation="softmax")], loss=loss, y=y, backend=backend)
    return run


def _use_metric(make):
    def run(backend):
        metric = make()
        sparse = metric.sparse_labels
        return train([Dense(2, input_dim=4, activation="softmax")], metrics_=[metric],
                     loss="sparse_categorical_crossentropy" if sparse else "categorical_crossentropy",
                     y=LABELS if sparse else Y2, backend=backend)
    return run


def _use_optimizer(make):
    return lambda backend: train([Dense(1, input_dim=4)], optimizer=make(), backend=backend)


def _use_schedule(make):
    return lambda backend: train([Dense(1, input_dim=4)], optimizer=optimizers.SGD(learning_rate=make()),
                                 backend=backend)


def _use_initializer(make):
    return lambda backend: train(lambda: [Dense(3, input_dim=4, kernel_initializer=make()), Dense(1)],
                                 backend=backend)


def _use_regularizer(make):
    return lambda backend: train(lambda: [Dense(3, input_dim=4, kernel_regularizer=make()), Dense(1)],
                                 backend=backend)


def _use_constraint(make):
    return lambda backend: train(lambda: [Dense(3, input_dim=4, kernel_constraint=make()), Dense(1)],
                                 backend=backend)


USE = {"layer": _use_layer, "activation": _use_activation, "loss": _use_loss, "metric": _use_metric,
       "optimizer": _use_optimizer, "schedule": _use_schedule, "initializer": _use_initializer,
       "regularizer": _use_regularizer, "constraint": _use_constraint}

# ---- the parameters, by what they hold ---------------------------------------------------------

FLOAT_FIELDS = [
    (Dropout, "rate"),
    (activations.ReLU, "negative_slope"), (activations.ReLU, "max_value"), (activations.ReLU, "threshold"),
    (activations.ELU, "alpha"), (activations.LeakyReLU, "negative_slope"),
    (losses.BinaryCrossentropy, "label_smoothing"), (losses.CategoricalCrossentropy, "label_smoothing"),
    (losses.Huber, "delta"),
    (metrics.BinaryAccuracy, "threshold"), (metrics.BinaryCrossentropy, "label_smoothing"),
    (metrics.CategoricalCrossentropy, "label_smoothing"), (metrics.Precision, "thresholds"),
    (metrics.Recall, "thresholds"),
    *[(optimizers.SGD, f) for f in ("learning_rate", "momentum", "weight_decay", "clipnorm", "clipvalue",
                                    "global_clipnorm")],
    *[(cls, f) for cls in (optimizers.Adam, optimizers.Adamax, optimizers.Nadam) for f in ("beta_1", "beta_2",
                                                                                          "epsilon")],
    (optimizers.AdamW, "weight_decay"),
    (optimizers.RMSprop, "rho"), (optimizers.RMSprop, "momentum"), (optimizers.RMSprop, "epsilon"),
    (optimizers.Adagrad, "initial_accumulator_value"), (optimizers.Adagrad, "epsilon"),
    (optimizers.Adadelta, "rho"), (optimizers.Adadelta, "epsilon"),
    (schedules.ExponentialDecay, "initial_learning_rate"), (schedules.ExponentialDecay, "decay_rate"),
    (schedules.InverseTimeDecay, "initial_learning_rate"), (schedules.InverseTimeDecay, "decay_rate"),
    (schedules.PolynomialDecay, "initial_learning_rate"), (schedules.PolynomialDecay, "end_learning_rate"),
    (schedules.PolynomialDecay, "power"),
    (schedules.CosineDecay, "initial_learning_rate"), (schedules.CosineDecay, "alpha"),
    (schedules.CosineDecay, "warmup_target"),
    (initializers.Constant, "value"), (initializers.RandomUniform, "minval"), (initializers.RandomUniform, "maxval"),
    (initializers.RandomNormal, "mean"), (initializers.RandomNormal, "stddev"),
    (initializers.TruncatedNormal, "mean"), (initializers.TruncatedNormal, "stddev"),
    (initializers.VarianceScaling, "scale"), (initializers.Orthogonal, "gain"), (initializers.Identity, "gain"),
    (regularizers.L1, "l1"), (regularizers.L2, "l2"), (regularizers.L1L2, "l1"), (regularizers.L1L2, "l2"),
    (constraints.MaxNorm, "max_value"), (constraints.MinMaxNorm, "min_value"), (constraints.MinMaxNorm, "max_value"),
    (constraints.MinMaxNorm, "rate"),
]
BAD_FLOATS = {
    "int-too-large-for-float64": 10**400,
    "int-beyond-float32": 2**128,  # finite in float64, inf in float32
    "float-beyond-float32": 1e39,
    "negative-beyond-float32": -1e39,
    "nan": math.nan,
    "inf": math.inf,
    "bool": True,
    "string": "0.5",
}

INT_FIELDS = [
    (Dense, "units"), (Dense, "input_dim"), (Dropout, "seed"),
    (metrics.AUC, "num_thresholds"), (metrics.TopKCategoricalAccuracy, "k"),
    (metrics.SparseTopKCategoricalAccuracy, "k"), (metrics.Precision, "class_id"), (metrics.Recall, "class_id"),
    (schedules.ExponentialDecay, "decay_steps"), (schedules.InverseTimeDecay, "decay_steps"),
    (schedules.PolynomialDecay, "decay_steps"), (schedules.CosineDecay, "decay_steps"),
    (schedules.CosineDecay, "warmup_steps"),
]
BAD_INTS = {
    "too-large-for-C": 10**400,
    "2**64": 2**64,
    "2**63": 2**63,
    "negative": -1,
    "float": 1.5,
    "nan": math.nan,
    "bool": True,
    "string": "3",
}

AXIS_FIELDS = [
    (activations.Softmax, "axis"), (activations.LogSoftmax, "axis"),
    (losses.BinaryCrossentropy, "axis"), (losses.CategoricalCrossentropy, "axis"),
    (losses.SparseCategoricalCrossentropy, "axis"), (losses.CosineSimilarity, "axis"),
    (metrics.BinaryCrossentropy, "axis"), (metrics.CategoricalCrossentropy, "axis"),
    (metrics.SparseCategoricalCrossentropy, "axis"),
    (constraints.MaxNorm, "axis"), (constraints.UnitNorm, "axis"), (constraints.MinMaxNorm, "axis"),
]
BAD_AXES = {
    "too-large-for-C": 10**400,
    "2**70": 2**70,
    "out-of-range": 2,  # every output here is (batch, units), every kernel 2-D
    "negative-out-of-range": -3,
    "float": 1.0,
    "bool": True,
    "string": "-1",
}
# The batch axis would make a loss's or metric's values per feature, not per sample (activations may
# take it, as Keras's: tests/test_engines.py checks softmax over axis 0 on every backend).
BATCH_AXIS_FIELDS = [f for f in AXIS_FIELDS if f[0].kind in ("loss", "metric")]


def _kind(cls):
    return cls.kind


def _field_cases(fields, values):
    cases = []
    for cls, field in fields:
        for label, value in values.items():
            use = USE[_kind(cls)]
            run = use(lambda cls=cls, field=field, value=value: cls(**{field: value}))
            cases.append(pytest.param(run, id=f"{cls.__name__}.{field}={label}"))
    return cases


def _seed_case(value):
    return lambda backend: train([Dense(1, input_dim=4)], backend=backend, seed=value)


def _noise_case(noise_shape, units=3):
    return lambda backend: train(lambda: [Dense(units, input_dim=4), Dropout(0.5, noise_shape=noise_shape),
                                          Dense(1)], backend=backend)


def _fit_case(**kwargs):
    return lambda backend: train([Dense(1, input_dim=4)], backend=backend, **kwargs)


def _data_case(x, y=Y1, layers=None):
    return lambda backend: train(layers or (lambda: [Dense(1)]), x=x, y=y, backend=backend)


def _class_weight_case(class_weight, units=1):
    def run(backend):
        if units == 1:
            return train([Dense(1, input_dim=4, activation="sigmoid")], loss="binary_crossentropy",
                         backend=backend, class_weight=class_weight)
        return train([Dense(units, input_dim=4, activation="softmax")], loss="categorical_crossentropy",
                     y=np.eye(units)[np.arange(8) % units], backend=backend, class_weight=class_weight)
    return run


def _set_learning_rate(value):
    def run(backend):
        model = train([Dense(1, input_dim=4)], backend=backend)
        model.learning_rate = value
        model.fit(X, Y1, epochs=1, verbose=0)
    return run


def _build(shape):
    def run(backend):
        model = Sequential([Dense(1)])
        model.build(shape)
        model.compile("sgd", "mse", backend=backend)
        model.fit(X[:, :0] if shape == (0,) else X, Y1, verbose=0)
    return run


# Named cases of issue 22 (item 7) and their siblings: what compile and fit see.
NAMED = [
    # Dropout seeds: polynn.random's range is [0, 2**63).
    pytest.param(_use_layer(lambda: Dropout(0.5, seed=2**64)), id="Dropout.seed=2**64"),
    pytest.param(_use_layer(lambda: Dropout(0.5, seed=2**63)), id="Dropout.seed=2**63"),
    pytest.param(_use_layer(lambda: Dropout(0.5, seed=np.uint64(2**63))), id="Dropout.seed=uint64(2**63)"),
    pytest.param(_seed_case(2**64), id="compile.seed=2**64"),
    pytest.param(_seed_case(-1), id="compile.seed=-1"),
    pytest.param(_seed_case(1.5), id="compile.seed=1.5"),
    # noise_shape must broadcast over the layer's input (Keras's rule); the batch entry over every batch.
    pytest.param(_noise_case((None, 5)), id="Dropout.noise_shape=wider-than-input"),
    pytest.param(_noise_case((None, 2)), id="Dropout.noise_shape=narrower-than-input"),
    pytest.param(_noise_case((7, 3)), id="Dropout.noise_shape=fixed-batch"),
    pytest.param(_noise_case((None,)), id="Dropout.noise_shape=rank-too-small"),
    pytest.param(_noise_case((None, 3, 1)), id="Dropout.noise_shape=rank-too-large"),
    pytest.param(_noise_case((None, 2**64)), id="Dropout.noise_shape=2**64"),
    pytest.param(_noise_case((2**62, 1)), id="Dropout.noise_shape=huge-batch"),
    pytest.param(_noise_case((None, 0)), id="Dropout.noise_shape=zero"),
    pytest.param(_noise_case((None, 1.5)), id="Dropout.noise_shape=float"),
    pytest.param(_noise_case("abc"), id="Dropout.noise_shape=string"),
    # Batch axes of losses and activations.
    *[pytest.param(USE[_kind(cls)](lambda cls=cls, a=a: cls(axis=a)), id=f"{cls.__name__}.axis=batch({a})")
      for cls, _ in BATCH_AXIS_FIELDS for a in (0, -2)],
    pytest.param(lambda backend: train(lambda: [Dense(3, input_dim=4), Activation(activations.Softmax(axis=2)),
                                                Dense(1)], backend=backend), id="Activation(softmax).axis=2"),
    pytest.param(lambda backend: train(lambda: [Dense(3, input_dim=4), Activation(activations.LogSoftmax(axis=-3)),
                                                Dense(1)], backend=backend), id="Activation(log_softmax).axis=-3"),
    # Sizes.
    pytest.param(lambda backend: train(lambda: [Dense(2**62, input_dim=4)], backend=backend), id="Dense.units=2**62"),
    pytest.param(lambda backend: train(lambda: [Input((2**64,)), Dense(1)], backend=backend), id="Input.shape=2**64"),
    pytest.param(lambda backend: train(lambda: [Dense(1, input_shape=(2**64,))], backend=backend),
                 id="Dense.input_shape=2**64"),
    pytest.param(_use_metric(lambda: metrics.AUC(num_thresholds=2**62)), id="AUC.num_thresholds=2**62"),
    # Allowed up to 2**58 once: a file could then load and allocate terabytes at the first evaluate.
    pytest.param(_use_metric(lambda: metrics.AUC(num_thresholds=metrics.MAX_AUC_THRESHOLDS + 1)),
                 id="AUC.num_thresholds=2**20+1"),
    pytest.param(_build((0,)), id="build.input_shape=0"),
    pytest.param(_build((2**64,)), id="build.input_shape=2**64"),
    pytest.param(_build((None,)), id="build.input_shape=None"),
    # Zero features on a model without a declared input size (found by hypothesis).
    pytest.param(_data_case(np.zeros((8, 0))), id="x.features=0"),
    pytest.param(_data_case(np.zeros((8, 3, 0))), id="x.features=(3,0)"),
    pytest.param(_data_case(np.zeros((8, 0, 3))), id="x.features=(0,3)"),
    pytest.param(lambda backend: _predict_zero_features(backend), id="predict.features=0"),
    # Class weights: keys are class indices a label can take (Keras ignores other keys; its tf.data
    # path allocates up to the largest key); weights finite and >= 0.
    pytest.param(_class_weight_case({0.5: 1.0}), id="class_weight=float-key"),
    pytest.param(_class_weight_case({True: 1.0}), id="class_weight=bool-key"),
    pytest.param(_class_weight_case({"0": 1.0}), id="class_weight=string-key"),
    pytest.param(_class_weight_case({0: math.nan}), id="class_weight=nan"),
    pytest.param(_class_weight_case({0: math.inf}), id="class_weight=inf"),
    pytest.param(_class_weight_case({0: 1e39}), id="class_weight=beyond-float32"),
    pytest.param(_class_weight_case({0: 10**400}), id="class_weight=int-too-large"),
    pytest.param(_class_weight_case({0: -1.0}), id="class_weight=negative"),
    pytest.param(_class_weight_case({0: "1"}), id="class_weight=string"),
    pytest.param(_class_weight_case([1.0, 2.0]), id="class_weight=list"),
    # fit's arguments.
    pytest.param(_fit_case(validation_split=10**400), id="fit.validation_split=10**400"),
    pytest.param(_fit_case(validation_split=math.nan), id="fit.validation_split=nan"),
    pytest.param(_fit_case(epochs=2**64 + 1, initial_epoch=2**64), id="fit.initial_epoch=2**64"),
    pytest.param(_fit_case(epochs=10**400), id="fit.epochs=10**400"),
    pytest.param(_fit_case(batch_size=10**400), id="fit.batch_size=10**400"),
    pytest.param(_fit_case(validation_freq=10**400, validation_split=0.5), id="fit.validation_freq=10**400"),
    pytest.param(_fit_case(sample_weight=np.full(8, 1e39)), id="fit.sample_weight=beyond-float32"),
    pytest.param(_set_learning_rate(10**400), id="model.learning_rate=10**400"),
    pytest.param(_set_learning_rate(1e39), id="model.learning_rate=beyond-float32"),
    # Schedules' tuples.
    pytest.param(_use_schedule(lambda: schedules.PiecewiseConstantDecay((10**400,), (0.1, 0.01))),
                 id="PiecewiseConstantDecay.boundaries=10**400"),
    pytest.param(_use_schedule(lambda: schedules.PiecewiseConstantDecay((10,), (1e39, 0.01))),
                 id="PiecewiseConstantDecay.values=beyond-float32"),
    pytest.param(_use_schedule(lambda: schedules.PiecewiseConstantDecay((10,), (math.nan, 0.01))),
                 id="PiecewiseConstantDecay.values=nan"),
    pytest.param(_use_schedule(lambda: schedules.PiecewiseConstantDecay((True,), (0.1, 0.01))),
                 id="PiecewiseConstantDecay.boundaries=bool"),
]


def _predict_zero_features(backend):
    model = Sequential([Dense(1)])
    model.compile("sgd", "mse", backend=backend)
    model.predict(np.zeros((4, 0)), verbose=0)


CASES = [
    *NAMED,
    *_field_cases(FLOAT_FIELDS, BAD_FLOATS),
    *_field_cases(INT_FIELDS, BAD_INTS),
    *_field_cases(AXIS_FIELDS, BAD_AXES),
]


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("case", CASES)
def test_a_bad_value_is_refused_with_a_polynn_error(case):
    with pytest.raises(PolynnError) as info:
        case("numpy")
    message = str(info.value)
    assert len(message) < 1000 and any(word in message for word in ("accepted", "expected", "Known")), message


def test_the_probe_table_is_the_size_the_closing_note_reports():
    assert len(CASES) >= 100


# ---- the edges that are accepted train alike on every backend -------------------------------


def _backend(name):
    if name != "numpy":
        pytest.importorskip(name)
        if name not in {entry.name for entry in plugins.backend_entries()}:
            pytest.skip(f"backend {name!r} is not installed")
    return name


BACKENDS = ["numpy", "tensorflow", "torch"]
# Cases whose value passes construction and is refused where the shapes meet (compile or fit):
# every backend must refuse them the same way.
AT_COMPILE_OR_FIT = [p for p in NAMED if any(key in p.id for key in (
    "noise_shape=wider", "noise_shape=narrower", "noise_shape=fixed-batch", "noise_shape=rank",
    "axis=batch(0)", "Activation(", "x.features"))]


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", AT_COMPILE_OR_FIT)
def test_every_backend_refuses_what_the_shapes_rule_out(case, backend):
    with pytest.raises(PolynnError):
        case(_backend(backend))


def _edges(backend, dtype):
    """A model whose every value sits on an accepted edge: seeds at 2**63 - 1, a noise_shape of 1s and
    Nones, integers given for floats (beyond int64 too), float32's largest as a cap, class weights
    for every class."""
    big = 2**100  # an int NumPy and PyTorch arithmetic would refuse: held as a float
    layers = [
        Dense(3, input_dim=4, activation=activations.ReLU(max_value=float(np.finfo(np.float32).max),
                                                         negative_slope=0, threshold=0)),
        Dropout(0.5, noise_shape=(1, None), seed=2**63 - 1),
        Dense(3, activation=activations.LeakyReLU(negative_slope=1), kernel_regularizer=regularizers.L2(1),
              kernel_constraint=constraints.MaxNorm(max_value=big)),
        Dense(2, activation=activations.Softmax(axis=-1)),
    ]
    model = Sequential(layers)
    model.compile(optimizers.SGD(learning_rate=1, clipvalue=big), losses.CategoricalCrossentropy(axis=1),
                  metrics=[metrics.CategoricalCrossentropy(axis=-1)], backend=backend, dtype=dtype, seed=2**63 - 1)
    history = model.fit(X, Y2, epochs=2, batch_size=4, verbose=0, class_weight={0: 1, 1: 2})
    return model.get_weights(), history.history


@pytest.mark.parametrize("backend", ["tensorflow", "torch"])
def test_accepted_edges_train_alike_on_every_backend(backend):
    weights, history = _edges("numpy", "float64")
    other_weights, other_history = _edges(_backend(backend), "float64")
    assert all(np.isfinite(w).all() for w in weights)
    for a, b in zip(weights, other_weights):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9)
    for key in history:
        np.testing.assert_allclose(history[key], other_history[key], rtol=1e-9, atol=1e-9)


def test_integers_given_for_floats_are_held_as_floats():
    assert type(activations.ReLU(negative_slope=2**100).negative_slope) is float
    assert type(optimizers.SGD(learning_rate=1).learning_rate) is float
    assert activations.ReLU(negative_slope=1).get_config()["negative_slope"] == 1.0


def test_class_weights_follow_keras_for_labels_outside_the_keys():
    """Keras weighs a label that class_weight does not name 1: hinge labels -1/1 with {1: 3.0} weigh
    the -1 samples 1 (polynn used to read the -1 as the table's last entry, silently 3.0)."""
    y = np.where(Y1 > 0, 1.0, -1.0)
    weights = np.where(y[:, 0] > 0, 3.0, 1.0)

    def run(**kwargs):
        model = Sequential([Dense(1, input_dim=4)])
        model.compile("sgd", "hinge", dtype="float64", seed=3)
        return model.fit(X, y, epochs=2, batch_size=4, verbose=0, shuffle=False, **kwargs).history["loss"]

    np.testing.assert_allclose(run(class_weight={1: 3.0}), run(sample_weight=weights), rtol=1e-12)
    # And a key for the -1 labels weighs them, as Keras's class_weight.get(label, 1.0) does.
    both = np.where(y[:, 0] > 0, 3.0, 0.5)
    np.testing.assert_allclose(run(class_weight={1: 3.0, -1: 0.5}), run(sample_weight=both), rtol=1e-12)


def test_messages_bound_the_value_they_show():
    with pytest.raises(InvalidArgumentError) as info:
        activations.ReLU(negative_slope=10**5000)  # no repr: Python refuses ints of more than 4300 digits
    assert len(str(info.value)) < 400 and "int of 16610 bits" in str(info.value)
    with pytest.raises(InvalidArgumentError) as info:
        Dense(units=10**400)
    assert len(str(info.value)) < 400 and "(401 characters)" in str(info.value)


# ---- fuzz: configurations and data shapes ------------------------------------------------------

# What a parameter may get: benign values train; each hostile one must be refused. A configuration
# has at most one hostile part (half of them none), so the benign paths are explored too.
HOSTILE_FLOATS = [math.nan, math.inf, -math.inf, 10**400, 2**128, 1e39, True, "1"]
HOSTILE_PARTS = ["float", "noise_shape", "seed", "loss_axis", "softmax_axis", "class_weight", "features"]


@st.composite
def configs(draw):
    part = draw(st.sampled_from([None] * len(HOSTILE_PARTS) + HOSTILE_PARTS))

    def pick(name, benign, hostile):
        return draw(st.sampled_from(hostile if part == name else benign))

    float_names = ["negative_slope", "threshold", "alpha", "rate", "learning_rate"]
    bad_float = draw(st.sampled_from(float_names)) if part == "float" else None

    def number(name, benign):
        return draw(st.sampled_from(HOSTILE_FLOATS if name == bad_float else benign))

    extra = draw(st.sampled_from([(), (), (2,)]))
    features = pick("features", [1, 2, 3], [0])
    if part == "features" and draw(st.booleans()):
        features, extra = 2, (0,)
    units = draw(st.integers(1, 4))
    # The hostile float goes where it is used: an activation that has it, or the dropout or optimizer.
    activation = {"negative_slope": "relu", "threshold": "relu", "alpha": "elu"}.get(
        bad_float, "softmax" if part == "softmax_axis" else draw(st.sampled_from(["relu", "leaky_relu", "elu",
                                                                                   "softmax", "tanh"])))
    softmax_axis = pick("softmax_axis", [-1, -1, 0, len(extra) + 1], [-(len(extra) + 3), len(extra) + 2, 2**70])
    act = {"relu": lambda: activations.ReLU(negative_slope=number("negative_slope", [0.0, 0.1, 1]),
                                            threshold=number("threshold", [0.0, 0.5, -1])),
           "leaky_relu": lambda: activations.LeakyReLU(negative_slope=number("negative_slope", [0.1, 1])),
           "elu": lambda: activations.ELU(alpha=number("alpha", [0.5, 1, 2])),
           "softmax": lambda: activations.Softmax(axis=softmax_axis),
           "tanh": lambda: "tanh"}[activation]
    # Rate 0 is the identity: it draws no mask, so a noise_shape's batch entry is never used (Keras too).
    rate = number("rate", [0.25, 0.5] if part == "noise_shape" else [0.0, 0.25, 0.5])
    middle = (None,) * len(extra)
    noise = pick("noise_shape", [None, (None, *middle, None), (1, *middle, None), (None, *middle, 1),
                                 (None, *middle, units), (1, *middle, 1)],
                 # A batch entry of 7 fits no batch of these fits (batch_size 4): hostile whatever the samples.
                 [(None, *middle, units + 1), (7, *middle, None), (None,), (None, None, None, None)])
    seed = pick("seed", [None, 0, 2**63 - 1], [2**63, 2**64, -1])
    out = draw(st.integers(1, 3))
    loss = draw(st.sampled_from(["mse", "bce", "cce", "scce"]))
    if part == "loss_axis" and loss == "mse":
        loss = "cce"
    # Sparse labels take the class axis last; the other losses any feature axis.
    benign_axes = [-1, len(extra) + 1] + ([] if loss == "scce" else [1])
    loss_axis = pick("loss_axis", benign_axes, [0, -(len(extra) + 2), len(extra) + 2, 2**70])
    learning_rate = number("learning_rate", [0.0, 0.01, 0.1])
    # Keys no label takes are benign, as in Keras (test_class_weight_keys_no_label_takes_are_ignored...).
    class_weight = pick("class_weight", [None, {0: 1.0}, {0: 2.0, 1: 0.5}, {10**12: 1.0}, {-1: 1.0}],
                        [{0: math.nan}, {0.5: 1.0}, {0: -1.0}])
    samples = draw(st.integers(1, 6))
    dtype = draw(st.sampled_from(["float32", "float64"]))
    return dict(features=features, declared=draw(st.booleans()), units=units, act=act, rate=rate, noise=noise,
                seed=seed, out=out, loss=loss, loss_axis=loss_axis, learning_rate=learning_rate,
                class_weight=class_weight, samples=samples, extra=extra, dtype=dtype,
                hostile=[part] if part else [])


def _fuzz_run(c):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(c["samples"], *c["extra"], c["features"]))
    per_sample = (*c["extra"], c["features"])
    out = c["out"]
    labels = rng.integers(0, out, size=(c["samples"], *c["extra"])).astype(np.float64)
    y = labels if c["loss"] == "scce" else np.eye(out)[labels.astype(int)] if out > 1 else labels[..., None]
    if c["loss"] in ("bce", "cce", "scce"):
        loss = {"bce": losses.BinaryCrossentropy, "cce": losses.CategoricalCrossentropy,
                "scce": losses.SparseCategoricalCrossentropy}[c["loss"]](axis=c["loss_axis"])
        head = "sigmoid" if c["loss"] == "bce" else "softmax"
    else:
        loss, head = "mse", None
    first = Dense(c["units"], activation=c["act"](), **({"input_shape": per_sample} if c["declared"] else {}))
    model = Sequential([first, Dropout(c["rate"], noise_shape=c["noise"], seed=c["seed"]), Dense(out, activation=head)])
    model.compile(optimizers.SGD(learning_rate=c["learning_rate"]), loss, dtype=c["dtype"], seed=5)
    model.fit(x, y, epochs=1, batch_size=4, verbose=0, class_weight=c["class_weight"])
    return model.predict(x, verbose=0)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@settings(derandomize=True, max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(configs())
def test_fuzz_configs_and_shapes_train_or_are_refused_by_polynn(config):
    try:
        predictions = _fuzz_run(config)
    except PolynnError:
        return
    # Accepted: no hostile value may pass, and what it computes is finite and shaped as the model says.
    assert not config["hostile"], f"hostile values accepted: {config['hostile']}"
    assert predictions.shape[0] == config["samples"]
    assert np.isfinite(predictions).all()


@pytest.mark.parametrize("extra", [{10**12: 5.0}, {10**30: 5.0}, {2: 5.0}, {-1: 5.0}], ids=str)
def test_class_weight_keys_no_label_takes_are_ignored_as_keras_does(extra):
    """Keras looks each label up (class_weight.get(label, 1.0)): a key for a class this data lacks,
    or one no label can be, changes nothing and allocates nothing. A refusal would break weights
    computed on a whole data set and given to a fit on part of it."""
    def run(class_weight):
        model = Sequential([Dense(1, input_dim=4, activation="sigmoid")])
        model.compile("sgd", "binary_crossentropy", dtype="float64", seed=3)
        history = model.fit(X, Y1, epochs=2, batch_size=4, verbose=0, class_weight=class_weight)
        return history.history["loss"], [w.tolist() for w in model.get_weights()]

    assert run({0: 1.0, 1: 2.0, **extra}) == run({0: 1.0, 1: 2.0})


def test_a_noise_shape_with_the_batch_size_trains_as_keras_documents_it():
    """Keras's docs write noise_shape=(batch_size, 1, features); it fits while every batch has that
    size: as (None, 1, ...) then, the same masks."""
    def run(noise_shape):
        model = Sequential([Dense(3, input_dim=4), Dropout(0.5, noise_shape=noise_shape), Dense(1)])
        model.compile("sgd", "mse", dtype="float64", seed=3)
        model.fit(X, Y1, epochs=2, batch_size=len(X) // 2, verbose=0)
        return [w.tolist() for w in model.get_weights()]

    assert len(X) % 2 == 0
    assert run((len(X) // 2, 1)) == run((None, 1))


def test_a_noise_shape_batch_entry_a_last_batch_breaks_is_refused_before_any_step():
    model = Sequential([Dense(3, input_dim=4), Dropout(0.5, noise_shape=(3, 1)), Dense(1)])
    model.compile("sgd", "mse", dtype="float64", seed=3)
    with pytest.raises(InvalidArgumentError, match=r"noise_shape.*batch of \d"):
        model.fit(X, Y1, epochs=1, batch_size=3, verbose=0)  # the last batch is shorter
    assert model.iterations == 0
