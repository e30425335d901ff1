"""polynn models written in Keras 3's formats: save("x.keras"), save_weights("x.weights.h5").

Keras is the outside reference: it loads each file in a process of its own (KERAS_RUNNER) and its
predictions, evaluations, training Histories, weights and optimizer variables come back to be
compared with polynn's. Without Keras, or h5py, those tests skip; the name dispatch, the refusals
and the files' layout are checked here without Keras (the layout with h5py).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import io
import json
import os
import subprocess
import sys
import textwrap
import warnings
import zipfile
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import pytest

import polynn
from polynn import (
    _formats,
    _keras_export,
    activations,
    constraints,
    errors,
    initializers,
    losses,
    metrics,
    optimizers,
    plugins,
    regularizers,
    schedules,
)
from polynn.layers import Activation, Dense, Dropout, Input
from polynn.models import Sequential

# Keras parity tolerances (tests/test_keras_parity.py); predictions in float64 as the issue asks.
F64_TOLERANCE = 1e-10
F32_TOLERANCE = 1e-6
PREDICT_TOLERANCE = 1e-12


def _h5py():
    return pytest.importorskip("h5py")


def _files_in(folder) -> dict[str, tuple[bytes, int]]:
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in folder.iterdir()}


def _small(dtype="float64", optimizer="adam", **compile_kwargs) -> Sequential:
    model = Sequential([Input((4,)), Dense(6, activation="relu"), Dense(1, activation="sigmoid")])
    model.compile(optimizer, "binary_crossentropy", metrics=["accuracy"], dtype=dtype, seed=3, **compile_kwargs)
    return model


def _data(rows=48, features=4, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, features))
    y = (x @ np.linspace(-1.0, 1.0, features) > 0).astype(np.float64).reshape(-1, 1)
    return x, y


# ---- the name picks the format ------------------------------------------------------------------

@pytest.mark.parametrize("name, verb, kind", [
    ("m.keras", "save", _formats.KERAS_MODEL),
    ("dir.keras/m.keras", "save", _formats.KERAS_MODEL),
    ("m.weights.h5", "save_weights", _formats.KERAS_WEIGHTS),
    ("m.safetensors", "save", _formats.SAFETENSORS),
    ("m.safetensors", "save_weights", _formats.SAFETENSORS),
    ("m", "save", _formats.SAFETENSORS),
    ("m.h5.safetensors", "save_weights", _formats.SAFETENSORS),
    ("m.keras", "ModelCheckpoint", _formats.KERAS_MODEL),
    ("m.weights.h5", "ModelCheckpoint", _formats.KERAS_WEIGHTS),
])
def test_the_name_picks_the_format(name, verb, kind):
    assert _formats.check_writable_name(name, verb) == kind


@pytest.mark.parametrize("name, verb, accepted, why", [
    ("m.h5", "save", r"a name ending in '\.keras'", r"'\.h5' is Keras's legacy HDF5 model format, which polynn "
                                                   r"does not write"),
    ("m.hdf5", "save", r"a name ending in '\.keras'", r"'\.hdf5' is Keras's legacy HDF5 model format"),
    ("m.weights.h5", "save", r"a name ending in '\.keras'", r"a '\.weights\.h5' file holds weights only, which "
                                                           r"save_weights\(\) writes"),
    ("M.KERAS", "save", r"a name ending in '\.keras'", r"Keras spells its ending '\.keras' in lower case"),
    ("m.keras", "save_weights", r"a name ending in '\.weights\.h5'", r"a '\.keras' file holds a whole model, "
                                                                    r"which save\(\) writes"),
    ("m.h5", "save_weights", r"a name ending in '\.weights\.h5' .*Keras 3's save_weights takes no other Keras "
                             r"name", r"'\.h5' is Keras's legacy"),
    ("m.hdf5", "save_weights", r"a name ending in '\.weights\.h5'", r"legacy HDF5"),
    ("m.Weights.h5", "save_weights", r"a name ending in '\.weights\.h5'", r"in lower case"),
    ("m.h5", "ModelCheckpoint", r"a name ending in '\.keras' .*, a name ending in '\.weights\.h5'", r"legacy"),
])
def test_other_keras_names_are_refused_naming_the_accepted_ones(name, verb, accepted, why):
    with pytest.raises(errors.InvalidArgumentError) as caught:
        _formats.check_writable_name(name, verb)
    message = str(caught.value)
    assert message.startswith(f"{verb}: invalid filepath={name!r}; accepted: ")
    assert _search(accepted, message) and _search(why, message)
    assert "or any other name (such as 'model.safetensors') for polynn's safetensors format" in message


def _search(pattern: str, text: str) -> bool:
    import re

    return re.search(pattern, text) is not None


@pytest.mark.parametrize("name, saver", [("m.h5", "save"), ("m.hdf5", "save"), ("m.weights.h5", "save"),
                                         ("m.KERAS", "save"), ("m.keras", "save_weights"),
                                         ("m.h5", "save_weights")])
@pytest.mark.parametrize("exists", [False, True])
def test_refused_names_touch_nothing(tmp_path, name, saver, exists):
    model = _small()
    if exists:
        (tmp_path / name).write_bytes(b"someone's Keras file")
    before = _files_in(tmp_path)
    with pytest.raises(errors.InvalidArgumentError, match=rf"{saver}: invalid filepath="):
        getattr(model, saver)(tmp_path / name)
    assert _files_in(tmp_path) == before


def test_model_checkpoint_takes_the_keras_name_of_what_it_saves(tmp_path):
    x, y = _data()
    checkpoint = polynn.callbacks.ModelCheckpoint(str(tmp_path / "best.keras"))
    weights = polynn.callbacks.ModelCheckpoint(str(tmp_path / "ckpt-{epoch:02d}.weights.h5"), save_weights_only=True)
    if importlib.util.find_spec("h5py") is not None:
        model = _small()
        model.fit(x, y, epochs=2, verbose=0, callbacks=[checkpoint, weights])
        assert zipfile.is_zipfile(tmp_path / "best.keras")
        assert {"ckpt-01.weights.h5", "ckpt-02.weights.h5"} <= set(os.listdir(tmp_path))
    with pytest.raises(errors.InvalidArgumentError, match=r"ModelCheckpoint: invalid filepath=.*weights only"):
        polynn.callbacks.ModelCheckpoint(str(tmp_path / "c.weights.h5"))
    with pytest.raises(errors.InvalidArgumentError, match=r"ModelCheckpoint: invalid filepath=.*a whole model"):
        polynn.callbacks.ModelCheckpoint(str(tmp_path / "c.keras"), save_weights_only=True)
    with pytest.raises(errors.InvalidArgumentError, match=r"ModelCheckpoint: invalid filepath=.*legacy"):
        polynn.callbacks.ModelCheckpoint(str(tmp_path / "c.h5"))


# ---- config.json: Keras's structure and spelling ------------------------------------------------

def _every_object(value):
    """Every dict with a 'class_name' in a config, depth first."""
    if isinstance(value, dict):
        if "class_name" in value:
            yield value
        for item in value.values():
            yield from _every_object(item)
    elif isinstance(value, list):
        for item in value:
            yield from _every_object(item)


def test_the_config_is_keras_s_serialization():
    model = Sequential([Input((3,), name="features"),
                        Dense(4, activation=activations.ReLU(max_value=6.0), kernel_regularizer="l2",
                              kernel_constraint=constraints.MaxNorm(1.5, axis=(0,)), name="hidden"),
                        Dropout(0.25, noise_shape=(None, 1), seed=5), Activation("tanh"), Dense(1)])
    model.compile(optimizer=optimizers.Adam(schedules.InverseTimeDecay(0.01, 3, 0.5), clipnorm=1.0),
                  loss=losses.Huber(delta=0.5), metrics=["accuracy", metrics.AUC(num_thresholds=50)],
                  weighted_metrics=["mse"], dtype="float64", steps_per_execution=4)
    config = _keras_export.model_config(model)
    json.dumps(config, allow_nan=False)  # JSON as it is
    for obj in _every_object(config):
        assert set(obj) - {"build_config", "compile_config"} == {"module", "class_name", "config",
                                                                "registered_name"}, obj
        assert obj["module"].startswith("keras") and obj["registered_name"] is None
    assert (config["module"], config["class_name"]) == ("keras", "Sequential")
    inner = config["config"]
    policy = {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float64"}, "registered_name": None}
    assert inner["dtype"] == policy and inner["name"] == "sequential" and inner["build_input_shape"] == [None, 3]
    assert config["build_config"] == {"input_shape": [None, 3]}
    layers = inner["layers"]
    assert [layer["class_name"] for layer in layers] == ["InputLayer", "Dense", "Dropout", "Activation", "Dense"]
    assert layers[0]["config"] == {"batch_shape": [None, 3], "dtype": "float64", "sparse": False, "ragged": False,
                                   "name": "features", "optional": False}
    assert [layer["config"]["name"] for layer in layers[1:]] == ["hidden", "dropout", "activation", "dense"]
    assert all(layer["config"]["dtype"] == policy for layer in layers[1:])
    hidden = layers[1]
    assert hidden["build_config"] == {"input_shape": [None, 3]} and layers[4]["build_config"] == {
        "input_shape": [None, 4]}
    assert hidden["config"]["activation"] == {
        "module": "keras.layers", "class_name": "ReLU", "registered_name": None,
        "config": {"name": "re_lu", "trainable": True, "dtype": policy, "max_value": 6.0, "negative_slope": 0.0,
                   "threshold": 0.0}}
    assert hidden["config"]["kernel_regularizer"]["config"] == {"l2": 0.01}
    assert hidden["config"]["kernel_constraint"]["config"] == {"max_value": 1.5, "axis": [0]}
    assert layers[2]["config"]["noise_shape"] == [None, 1] and layers[2]["config"]["seed"] == 5
    assert layers[3]["config"]["activation"] == "tanh" and layers[4]["config"]["activation"] == "linear"
    compiled = config["compile_config"]
    assert compiled["steps_per_execution"] == 4 and compiled["loss_weights"] is None
    assert compiled["optimizer"]["class_name"] == "Adam"
    assert compiled["optimizer"]["config"]["clipnorm"] == 1.0
    assert compiled["optimizer"]["config"]["learning_rate"] == {
        "module": "keras.optimizers.schedules", "class_name": "InverseTimeDecay", "registered_name": None,
        "config": {"initial_learning_rate": 0.01, "decay_steps": 3, "decay_rate": 0.5, "staircase": False,
                   "name": "InverseTimeDecay"}}
    assert compiled["loss"]["config"] == {"name": "huber_loss", "reduction": "sum_over_batch_size", "delta": 0.5}
    assert compiled["metrics"][0] == "accuracy"
    assert compiled["metrics"][1]["config"]["name"] == "auc" and compiled["metrics"][1]["config"]["dtype"] == "float64"
    assert compiled["weighted_metrics"][0]["class_name"] == "MeanSquaredError"
    assert compiled["weighted_metrics"][0]["config"]["name"] == "mse"


def test_an_uncompiled_or_unbuilt_model_has_keras_s_empty_parts():
    config = _keras_export.model_config(Sequential([Dense(2, input_dim=3)]))
    assert config["compile_config"] == {}
    assert config["config"]["dtype"]["config"]["name"] == "float32"
    assert config["config"]["layers"][0]["config"]["name"] == "input_layer"
    unbuilt = _keras_export.model_config(Sequential([Dense(2)]))
    assert "build_config" not in unbuilt and "build_input_shape" not in unbuilt["config"]
    assert [layer["class_name"] for layer in unbuilt["config"]["layers"]] == ["Dense"]
    assert "build_config" not in unbuilt["config"]["layers"][0]


def test_the_synthesized_input_layer_takes_a_free_name():
    model = Sequential([Dense(2, input_dim=3, name="input_layer"), Dense(1)])
    names = [layer["config"]["name"] for layer in _keras_export.model_config(model)["config"]["layers"]]
    assert names == ["input_layer_1", "input_layer", "dense"]


# ---- refusals: named, and nothing written -------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class PluginCrossentropy(losses.BinaryCrossentropy):
    """A plugin's loss: Keras has no class of this name (its parent's math is not its own)."""

    name: ClassVar[str] = "plugin_crossentropy"
    aliases: ClassVar[tuple] = ()


@dataclasses.dataclass(frozen=True)
class PluginDense(Dense):
    name: ClassVar[str] = "plugin_dense"
    aliases: ClassVar[tuple] = ()


@pytest.fixture
def plugin_components(fresh_plugins):
    class Plugin:
        @polynn.hookimpl
        def polynn_register_components(self, register):
            register(PluginCrossentropy)
            register(PluginDense)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        fresh_plugins.register_plugin(Plugin(), "keras-export-test", "polynn-keras-export-test 1.0")
    yield


def _square(x):
    return x * x


def _refusals():
    """(what, model factory, the refusal's message pattern)."""
    def model(*layers, loss="mse", metric_list=None, optimizer="adam", compile_model=True):
        m = Sequential([Input((3,)), *layers])
        if compile_model:
            m.compile(optimizer, loss, metrics=metric_list, dtype="float64", seed=0)
        return m

    accepted_tail = r"; or save under another name \(such as 'model\.safetensors'\) to write polynn's own format"
    return [
        ("plugin layer", lambda: model(PluginDense(2)),
         r"layer 1 \('plugin_dense'\): PluginDense \(.*test_keras_files_export\.PluginDense, registered by "
         r"plugin 'keras-export-test'\) has no Keras 3 counterpart; accepted in Keras files: Activation, (.*, )?"
         r"Dense, (.*, )?Dropout, (.*, )?InputLayer(, .*)?" + accepted_tail),
        ("plugin loss", lambda: model(Dense(1), loss=PluginCrossentropy()),
         r"the loss PluginCrossentropy \(.*registered by plugin 'keras-export-test'\) has no Keras 3 "
         r"counterpart; accepted in Keras files: .*BinaryCrossentropy.*" + accepted_tail),
        ("user activation", lambda: model(Dense(2, activation=_square), compile_model=False),
         r"layer 'dense''s activation CustomActivation of the user function '_square' has no Keras 3 counterpart; "
         r"accepted in Keras files: elu, exponential, gelu.*" + accepted_tail),
        ("user loss", lambda: model(Dense(1), loss=lambda y, p: (y - p) ** 2),
         r"the loss CustomLoss of the user function '<lambda>' has no Keras 3 counterpart"),
        ("user metric", lambda: model(Dense(1), metric_list=[lambda y, p: (y - p) ** 2]),
         r"the metric '<lambda>': CustomMetric of the user function '<lambda>' has no Keras 3 counterpart"),
        ("approximate gelu", lambda: model(Activation(activations.GELU(approximate=True))),
         r"layer 'activation''s activation GELU with approximate=True cannot be written in Keras's spelling; "
         r"accepted: GELU\(\) \(Keras saves gelu by name only" + r".*" + accepted_tail),
        ("log_softmax axis", lambda: model(Dense(2), Activation(activations.LogSoftmax(axis=0)),
                                           compile_model=False),
         r"LogSoftmax with axis=0 cannot be written in Keras's spelling; accepted: axis=-1"),
        ("negative relu slope", lambda: model(Dense(2, activation=activations.ReLU(negative_slope=-0.5))),
         r"ReLU with negative_slope=-0.5, threshold=0.0 cannot be written in Keras's spelling; accepted: "
         r"negative_slope >= 0 and threshold >= 0 \(Keras's ReLU layer\)"),
        ("negative leaky slope", lambda: model(Dense(2, activation=activations.LeakyReLU(-0.1))),
         r"LeakyReLU with negative_slope=-0.1 cannot be written"),
        ("sparse loss axis", lambda: model(Dense(2), loss=losses.SparseCategoricalCrossentropy(axis=1)),
         r"the loss SparseCategoricalCrossentropy with axis=1 cannot be written in Keras's spelling; accepted: "
         r"axis=-1 \(Keras's SparseCategoricalCrossentropy takes no other\)"),
        ("binary metric axis", lambda: model(Dense(2), metric_list=[metrics.BinaryCrossentropy(axis=1)]),
         r"the metric 'binary_crossentropy': BinaryCrossentropy with axis=1 cannot be written"),
        ("nul in a layer name", lambda: model(Dense(2, name="a\0b")),
         r"layer 1's name 'a\\x00b' holds a NUL character or an unpaired surrogate, which Keras's weights file "
         r"\(UTF-8 HDF5 attributes\) cannot hold; accepted: a name of other characters \(name=\)" + accepted_tail),
        ("surrogate in a layer name", lambda: model(Dense(2, name="\ud800")),
         r"layer 1's name '\\ud800' holds a NUL character or an unpaired surrogate"),
        ("long name of a layer Keras lacks", lambda: model(PluginDense(2, name="n" * 100_000)),
         r"layer 1 \('nnnn.*\(100002 characters\)\): PluginDense"),
    ]


@pytest.mark.parametrize("what, make, message", _refusals(), ids=[r[0] for r in _refusals()])
@pytest.mark.parametrize("exists", [False, True])
def test_what_keras_lacks_is_refused_before_anything_is_written(tmp_path, plugin_components, what, make, message,
                                                                 exists):
    model = make()
    path = tmp_path / "m.keras"
    if exists:
        path.write_bytes(b"an older archive")
    before = _files_in(tmp_path)
    with pytest.raises(errors.ModelFileError) as caught:
        model.save(path)
    text = str(caught.value)
    assert text.startswith(f"cannot save model file {str(path)!r}: "), text
    assert _search(message, text), text
    assert len(text) < 1000
    assert _files_in(tmp_path) == before


def test_weights_only_files_need_keras_s_layers_but_not_its_activations(tmp_path, plugin_components):
    _h5py()
    custom = Sequential([Input((3,)), Dense(2, activation=_square)])
    custom.save_weights(tmp_path / "custom.weights.h5")
    with pytest.raises(errors.ModelFileError, match=r"plugin_dense.* has no Keras 3 counterpart"):
        Sequential([Input((3,)), PluginDense(2)]).save_weights(tmp_path / "plugin.weights.h5")
    assert sorted(os.listdir(tmp_path)) == ["custom.weights.h5"]


def test_weights_only_files_need_the_input_shape(tmp_path):
    with pytest.raises(errors.InvalidArgumentError, match=r"save_weights: invalid model=.*accepted: a model whose "
                                                          r"input shape is known"):
        Sequential([Dense(2)]).save_weights(tmp_path / "m.weights.h5")
    assert not os.listdir(tmp_path)


def test_without_h5py_the_extra_is_named_and_nothing_written(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "h5py", None)
    for saver, name in (("save", "m.keras"), ("save_weights", "m.weights.h5")):
        with pytest.raises(errors.MissingExtraError, match=r"saving Keras files \(\.keras, \.weights\.h5\) needs the "
                                                           r"'h5py' package.*pip install 'polynn\[keras-files\]'"):
            getattr(_small(), saver)(tmp_path / name)
    assert not os.listdir(tmp_path)


# ---- the files' layout (h5py, without Keras) ----------------------------------------------------

def _read_archive(path) -> tuple[dict, dict, dict[str, Any]]:
    """(metadata, config, {group path: (name attribute, [arrays])}) of a .keras file."""
    with zipfile.ZipFile(path) as archive:
        infos = archive.infolist()
        assert [i.filename for i in infos] == ["metadata.json", "config.json", "model.weights.h5"]
        assert all(i.compress_type == zipfile.ZIP_STORED for i in infos)
        meta = json.loads(archive.read("metadata.json"))
        config = json.loads(archive.read("config.json"))
        groups = _read_weights(io.BytesIO(archive.read("model.weights.h5")))
    return meta, config, groups


def _read_weights(source) -> dict[str, tuple[str, list[np.ndarray]]]:
    h5py = _h5py()
    groups = {}
    with h5py.File(source, "r") as file:
        assert dict(file.attrs) == {}

        def visit(name, node):
            if isinstance(node, h5py.Group) and name.split("/")[-1] == "vars":
                arrays = [node[str(i)][()] for i in range(len(node))]
                groups[name[:-len("vars")].rstrip("/")] = (node.attrs["name"], arrays)

        file.visititems(visit)
    return groups


def test_the_archive_holds_keras_s_members_and_weights_layout(tmp_path):
    _h5py()
    x, y = _data()
    model = Sequential([Input((4,)), Dense(5, activation=activations.ELU(0.5), name="hidden"), Dropout(0.2),
                        Dense(3, activation="tanh"), Activation(activations.LeakyReLU(0.3)), Dense(1)])
    model.compile("adam", "mse", dtype="float64", seed=1)
    model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    model.save(tmp_path / "m.keras")
    meta, config, groups = _read_archive(tmp_path / "m.keras")
    assert meta["keras_version"] == _keras_export.KERAS_VERSION and set(meta) == {"keras_version", "date_saved"}
    assert config == json.loads(json.dumps(_keras_export.model_config(model)))
    assert {path: name for path, (name, _) in groups.items()} == {
        "": "sequential", "layers/dense": "hidden", "layers/dense/activation": "elu", "layers/dropout": "dropout",
        "layers/dense_1": "dense", "layers/activation": "activation",  # paths by class, names polynn's
        "layers/activation/activation": "leaky_re_lu", "layers/dense_2": "dense_1", "optimizer": "adam"}
    weights = model.get_weights()
    stored = groups["layers/dense"][1] + groups["layers/dense_1"][1] + groups["layers/dense_2"][1]
    assert all(a.dtype == np.float64 and np.array_equal(a, b) for a, b in zip(stored, weights, strict=True))
    assert not groups["layers/dropout"][1] and not groups["layers/dense/activation"][1]
    optimizer = groups["optimizer"][1]
    assert optimizer[0].dtype == np.int64 and optimizer[0] == model.iterations == 3
    assert optimizer[1].dtype == np.float64 and optimizer[1] == 0.001
    slots = model._compiled.runtime.get_optimizer_state()  # per weight: m, v
    expected = [s for weight_slots in slots for s in weight_slots]  # Keras interleaves m and v per weight
    assert len(optimizer) == 2 + len(expected)
    assert all(np.array_equal(a, b) for a, b in zip(optimizer[2:], expected))


def _slot_orders():
    """(optimizer, the slots of the file's weights, polynn slot names in Keras's order per weight)."""
    return [
        (optimizers.SGD(0.1), []),
        (optimizers.SGD(0.1, momentum=0.9, nesterov=True), [("each", "momentum")]),
        (optimizers.Adam(amsgrad=True), [("each", "m", "v"), ("each", "v_hat")]),
        (optimizers.AdamW(), [("each", "m", "v")]),
        (optimizers.RMSprop(), [("each", "velocity")]),
        (optimizers.RMSprop(momentum=0.5, centered=True),
         [("each", "velocity"), ("each", "momentum"), ("each", "average_gradient")]),
        (optimizers.Adagrad(), [("each", "accumulator")]),
        (optimizers.Adadelta(), [("each", "accumulated_grad", "accumulated_delta")]),
        (optimizers.Adamax(), [("each", "m", "u")]),
        (optimizers.Nadam(), [("each", "m", "v")]),
    ]


@pytest.mark.parametrize("optimizer, order", _slot_orders(),
                         ids=["sgd", "sgd_momentum", "adam_amsgrad", "adamw", "rmsprop", "rmsprop_centered_momentum",
                              "adagrad", "adadelta", "adamax", "nadam"])
def test_optimizer_variables_are_in_keras_s_order(tmp_path, optimizer, order):
    _h5py()
    x, y = _data()
    model = Sequential([Input((4,)), Dense(3, name="frozen"), Dense(2), Dense(1, activation="sigmoid")])
    model.compile(optimizer, "binary_crossentropy", dtype="float64", seed=2)
    model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    model.layers[1].trainable = False  # Keras's optimizer holds slots of trainable weights only
    model.save(tmp_path / "m.keras")
    stored = _read_archive(tmp_path / "m.keras")[2]["optimizer"][1]
    names = optimizer.slot_names()
    state = model._compiled.runtime.get_optimizer_state()[2:]  # the frozen layer's kernel and bias left out
    expected = [np.int64(3), np.float64(optimizer.learning_rate)]
    for call in order:
        for slots in state:
            expected.extend(slots[names.index(name)] for name in call[1:])
    if isinstance(optimizer, optimizers.Nadam):
        # Keras's u_product: the running product of beta_1 * (1 - 0.5 * 0.96**k), k = 1 .. iterations.
        expected.append(np.prod([0.9 * (1 - 0.5 * 0.96 ** k) for k in (1, 2, 3)]))
    assert len(stored) == len(expected)
    for k, (a, b) in enumerate(zip(stored, expected)):
        np.testing.assert_allclose(a, b, rtol=1e-15, err_msg=f"optimizer/vars/{k}")
    assert _read_archive(tmp_path / "m.keras")[1]["config"]["layers"][1]["config"]["trainable"] is False


def test_a_schedule_has_no_learning_rate_variable_and_an_override_is_kept(tmp_path):
    _h5py()
    scheduled = _small(optimizer=optimizers.SGD(schedules.PiecewiseConstantDecay((2.5,), (0.1, 0.01))))
    scheduled.save(tmp_path / "s.keras")
    _, config, groups = _read_archive(tmp_path / "s.keras")
    assert len(groups["optimizer"][1]) == 1  # iterations only: SGD without momentum has no slots
    assert config["compile_config"]["optimizer"]["config"]["learning_rate"]["config"] == {
        "boundaries": [2], "values": [0.1, 0.01], "name": "PiecewiseConstant"}
    model = _small()
    model.learning_rate = 0.25
    model.save(tmp_path / "o.keras")
    _, config, groups = _read_archive(tmp_path / "o.keras")
    assert groups["optimizer"][1][1] == 0.25 and config["compile_config"]["optimizer"]["config"][
        "learning_rate"] == 0.25


def test_uncompiled_models_have_no_optimizer_and_float32_weights(tmp_path):
    _h5py()
    model = Sequential([Dense(2, input_dim=3), Dense(1)])
    model.save(tmp_path / "u.keras")
    _, config, groups = _read_archive(tmp_path / "u.keras")
    assert config["compile_config"] == {} and "optimizer" not in groups
    assert [a.dtype for a in groups["layers/dense"][1]] == [np.float32, np.float32]
    assert all(np.array_equal(a, b) for a, b in zip(groups["layers/dense"][1] + groups["layers/dense_1"][1],
                                                    model.get_weights()))
    unbuilt = Sequential([Dense(2)])
    unbuilt.compile("adam", "mse")
    unbuilt.save(tmp_path / "b.keras")
    groups = _read_archive(tmp_path / "b.keras")[2]
    assert groups["layers/dense"] == ("dense", []) and len(groups["optimizer"][1]) == 2


def test_the_weights_file_is_the_archive_s_weights(tmp_path):
    _h5py()
    model = _small()
    model.fit(*_data(), epochs=1, verbose=0)
    model.save(tmp_path / "m.keras")
    model.save_weights(tmp_path / "m.weights.h5")
    archived = _read_archive(tmp_path / "m.keras")[2]
    alone = _read_weights(tmp_path / "m.weights.h5")
    assert archived.keys() == alone.keys()
    for path, (name, arrays) in archived.items():
        assert alone[path][0] == name
        assert all(np.array_equal(a, b) and a.dtype == b.dtype for a, b in zip(arrays, alone[path][1], strict=True))


def test_overwrite_false_keeps_an_existing_file(tmp_path):
    _h5py()
    for saver, name in (("save", "m.keras"), ("save_weights", "m.weights.h5")):
        path = tmp_path / name
        path.write_bytes(b"old")
        with pytest.raises(errors.InvalidArgumentError, match="a path that does not exist yet, or overwrite=True"):
            getattr(_small(), saver)(path, overwrite=False)
        assert path.read_bytes() == b"old"
        getattr(_small(), saver)(path)
        assert path.read_bytes() != b"old"
    with pytest.raises(errors.InvalidArgumentError, match=r"save: invalid overwrite=1; accepted: True or False"):
        _small().save(tmp_path / "x.keras", overwrite=1)


def test_a_failure_while_building_leaves_the_old_file(tmp_path, monkeypatch):
    h5py = _h5py()
    path = tmp_path / "m.keras"
    _small().save(path)
    before = _files_in(tmp_path)
    created = []
    original = h5py.Group.create_dataset

    def failing(self, name, *args, **kwargs):
        created.append(name)
        if len(created) == 3:
            raise RuntimeError("out of memory halfway")
        return original(self, name, *args, **kwargs)

    monkeypatch.setattr(h5py.Group, "create_dataset", failing)
    with pytest.raises(RuntimeError, match="halfway"):
        _small().save(path)
    assert _files_in(tmp_path) == before


def test_a_failure_while_writing_leaves_the_old_file(tmp_path, monkeypatch):
    _h5py()
    for name, saver in (("m.keras", "save"), ("m.weights.h5", "save_weights")):
        path = tmp_path / name
        getattr(_small(), saver)(path)
        before = _files_in(tmp_path)
        model = _small()
        model.fit(*_data(), epochs=1, verbose=0)

        def crash(fd):
            raise OSError("disk vanished mid-save")

        monkeypatch.setattr(os, "fsync", crash)
        with pytest.raises(errors.FileAccessError, match=rf"{name}.*disk vanished"):
            getattr(model, saver)(path)
        monkeypatch.undo()
        assert _files_in(tmp_path) == before


ROUND_TRIP_OPTIMIZERS = {
    "sgd": lambda: optimizers.SGD(0.05, momentum=0.9, nesterov=True),
    "adam": lambda: optimizers.Adam(0.01, amsgrad=True),
    "adamw": lambda: optimizers.AdamW(0.01, weight_decay=0.01),
    "rmsprop": lambda: optimizers.RMSprop(0.01, momentum=0.5, centered=True),
    "adagrad": lambda: optimizers.Adagrad(0.05),
    "adadelta": lambda: optimizers.Adadelta(1.0),
    "adamax": lambda: optimizers.Adamax(0.01),
    "nadam": lambda: optimizers.Nadam(0.01, clipnorm=0.5),
    "schedule": lambda: optimizers.Adam(schedules.ExponentialDecay(0.01, 3, 0.9)),
}


def _round_trip_backends():
    """NumPy in the default run, test_keras_parity's other backends among the slow tests."""
    from test_keras_parity import BACKENDS

    return [pytest.param(name, marks=() if name == "numpy" else pytest.mark.slow) for name in BACKENDS]


@pytest.mark.parametrize("backend", _round_trip_backends())
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("optimizer", list(ROUND_TRIP_OPTIMIZERS))
def test_a_model_saved_as_keras_loads_back_and_trains_on_exactly(tmp_path, backend, dtype, optimizer):
    """polynn -> .keras -> polynn: weights, optimizer state, learning rate, iterations, evaluation and
    further training are those of the model saved, bit for bit (a frozen layer, sample weights,
    metrics and weighted metrics included; a float32 model's learning rate too, although the file's
    learning-rate variable holds it rounded to float32)."""
    _h5py()
    x, y = _data(rows=40, features=3)
    y = np.hstack([y, 1 - y])
    weights = np.random.default_rng(1).random(40)
    model = Sequential([Input((3,)), Dense(4, activation="tanh"), Dense(3, activation="relu", trainable=False),
                        Dense(2, activation="sigmoid")])
    model.compile(ROUND_TRIP_OPTIMIZERS[optimizer](), "binary_crossentropy", metrics=["accuracy", metrics.AUC()],
                  weighted_metrics=["mse"], backend=backend, dtype=dtype, seed=1)
    fit = dict(sample_weight=weights, epochs=2, batch_size=8, verbose=0, shuffle=False)
    model.fit(x, y, **fit)
    model.save(tmp_path / "m.keras")
    loaded = polynn.models.load_model(tmp_path / "m.keras", backend=backend)
    # (The Input comes back named as Keras names it, 'input_layer'.)
    assert (loaded.dtype, loaded.iterations, loaded.layer_names()[1:]) == (model.dtype, model.iterations,
                                                                             model.layer_names()[1:])
    assert float(loaded.optimizer.learning_rate) == float(model.optimizer.learning_rate)
    for a, b in zip(loaded._compiled.runtime.get_optimizer_state(), model._compiled.runtime.get_optimizer_state(),
                    strict=True):
        assert all(np.array_equal(s, t) for s, t in zip(a, b, strict=True))
    assert np.array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert loaded.evaluate(x, y, sample_weight=weights, verbose=0, return_dict=True) == \
        model.evaluate(x, y, sample_weight=weights, verbose=0, return_dict=True)
    assert loaded.fit(x, y, **fit).history == model.fit(x, y, **fit).history
    assert all(np.array_equal(a, b) for a, b in zip(loaded.get_weights(), model.get_weights(), strict=True))


def test_safetensors_names_are_unchanged(tmp_path):
    model = _small()
    model.save(tmp_path / "m.safetensors")
    model.save_weights(tmp_path / "w.safetensors")
    assert polynn.models.load_model(tmp_path / "m.safetensors").get_weights()[0].tolist() == \
        model.get_weights()[0].tolist()
    for name in ("m.safetensors", "w.safetensors"):
        assert (tmp_path / name).read_bytes()[8:9] == b"{"  # safetensors: a length, then the JSON header


# ---- with Keras itself, in a process of its own -------------------------------------------------

KERAS_RUNNER = textwrap.dedent("""
    import json, os, sys, warnings
    folder, backend = sys.argv[1], sys.argv[2]
    os.environ["KERAS_BACKEND"] = backend
    import numpy as np, keras

    manifest = json.load(open(os.path.join(folder, "manifest.json")))
    report = {}
    for case in manifest:
        keras.config.set_floatx(case["dtype"])
        keras.config.set_dtype_policy(case["dtype"])
        data = dict(np.load(os.path.join(folder, case["name"] + ".data.npz")))
        arrays, doc = {}, {}
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model = keras.models.load_model(os.path.join(folder, case["name"] + ".keras"))
            doc["config"] = json.loads(json.dumps(keras.saving.serialize_keras_object(model)))
            if model.built:
                model.save_weights(os.path.join(folder, case["name"] + f".{backend}.weights.h5"))
                arrays["predict"] = keras.ops.convert_to_numpy(model(data["x"], training=False))
                for k, w in enumerate(model.get_weights()):
                    arrays[f"weight_{k}"] = w
            if getattr(model, "optimizer", None) is not None:
                for k, v in enumerate(model.optimizer.variables):
                    arrays[f"optimizer_{k}"] = keras.ops.convert_to_numpy(v)
                doc["optimizer_count"] = len(model.optimizer.variables)
                rate = model.optimizer._learning_rate
                if isinstance(rate, keras.optimizers.schedules.LearningRateSchedule):
                    arrays["rates"] = np.array([float(rate(keras.ops.convert_to_tensor(np.int64(t))))
                                                for t in range(case.get("rate_steps", 0))])
            doc["gains"] = [float(layer.kernel_initializer.gain) for layer in model.layers
                            if type(getattr(layer, "kernel_initializer", None)).__name__ == "Identity"]
            loss = getattr(model, "loss", None)
            doc["loss_settings"] = dict(getattr(loss, "_fn_kwargs", {}) or {})
            weights = data.get("sample_weight")
            # Training is compared on TensorFlow: Keras on torch computes float64 matmuls in float32.
            if case["evaluate"] and backend == "tensorflow":
                doc["evaluate"] = model.evaluate(data["x"], data["y"], batch_size=16, sample_weight=weights,
                                                 verbose=0, return_dict=True)
            if case["fit"] and backend == "tensorflow":
                history = model.fit(data["x"], data["y"], batch_size=16, epochs=1, shuffle=False, verbose=0,
                                    validation_data=(data["x_val"], data["y_val"]), sample_weight=weights)
                doc["history"] = history.history
                for k, w in enumerate(model.get_weights()):
                    arrays[f"trained_{k}"] = w
            if case["weights_only"]:
                for variable in model.weights + (model.optimizer.variables if model.optimizer else []):
                    variable.assign(keras.ops.zeros(variable.shape, variable.dtype))
                model.load_weights(os.path.join(folder, case["name"] + ".weights.h5"))
                for k, w in enumerate(model.get_weights()):
                    arrays[f"reloaded_{k}"] = w
                if model.optimizer is not None:
                    for k, v in enumerate(model.optimizer.variables):
                        arrays[f"reloaded_optimizer_{k}"] = keras.ops.convert_to_numpy(v)
            if case["by_hand"]:
                hand = keras.Sequential([keras.Input((4,)), keras.layers.Dense(6, activation="relu"),
                                         keras.layers.Dense(1, activation="sigmoid")])
                hand.load_weights(os.path.join(folder, case["name"] + ".weights.h5"))
                arrays["by_hand"] = keras.ops.convert_to_numpy(hand(data["x"], training=False))
        doc["warnings"] = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
        np.savez(os.path.join(folder, case["name"] + f".{backend}.npz"), **arrays)
        report[case["name"]] = doc
    json.dump(report, open(os.path.join(folder, f"report.{backend}.json"), "w"))
""")


@dataclasses.dataclass
class Case:
    """A polynn model saved as .keras after a little training, and what Keras is asked to do with it."""

    name: str
    build: Callable[[], Sequential]  # a compiled (or not) model
    data: str = "binary"  # which labels: binary, regression, positive, categorical, sparse, hinge
    fit: bool = True  # continue training in both
    evaluate: bool = True
    weights_only: bool = False  # also save_weights(.weights.h5) and reload it into Keras's model
    by_hand: bool = False  # and into a Keras model built by hand (the small binary model)
    train_first: bool = True
    rate_steps: int = 0  # evaluate Keras's loaded schedule at steps 0 .. rate_steps - 1
    sample_weight: bool = False
    inputs: tuple = (4,)  # one sample's shape


def _labels(kind: str, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    score = x @ np.linspace(-1.0, 1.0, x.shape[1])
    if kind in ("binary", "logits"):
        return (score > 0).astype(np.float64).reshape(-1, 1)
    if kind == "hinge":
        return np.where(score > 0, 1.0, -1.0).reshape(-1, 1)
    if kind == "regression":
        return (score + 0.1 * rng.normal(size=score.shape)).reshape(-1, 1)
    if kind == "positive":
        return (np.exp(0.3 * score) + 0.5).reshape(-1, 1)
    classes = np.digitize(score, np.quantile(score, [0.33, 0.66]))
    if kind == "sparse":
        return classes.reshape(-1, 1).astype(np.float64)
    return np.eye(3)[classes]  # categorical


def _case_data(case: Case) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(sum(map(ord, case.name)))
    x, x_val = rng.normal(size=(64, *case.inputs)), rng.normal(size=(32, *case.inputs))
    if len(case.inputs) > 1:  # predictions only
        return {"x": x, "y": np.zeros((64, *case.inputs[:-1], 1)), "x_val": x_val,
                "y_val": np.zeros((32, *case.inputs[:-1], 1))}
    data = {"x": x, "y": _labels(case.data, x, rng), "x_val": x_val, "y_val": _labels(case.data, x_val, rng)}
    if case.sample_weight:
        data["sample_weight"] = rng.uniform(0.2, 2.0, size=len(x))
    return data


def _head(data: str) -> Dense:
    return {"binary": Dense(1, activation="sigmoid"), "logits": Dense(1), "hinge": Dense(1, activation="tanh"),
            "regression": Dense(1), "positive": Dense(1, activation="softplus"),
            "categorical": Dense(3, activation="softmax"), "sparse": Dense(3, activation="softmax")}[data]


def _model(*hidden, data="binary", optimizer="adam", loss="binary_crossentropy", metric_list=("accuracy",),
           weighted=None, dtype="float64", backend="numpy", inputs=(4,), **compile_kwargs):
    def build():
        model = Sequential([Input(inputs), *hidden, _head(data)])
        model.compile(optimizer, loss, metrics=list(metric_list) or None, weighted_metrics=weighted, dtype=dtype,
                      seed=11, backend=backend, **compile_kwargs)
        return model

    return build


def _optimizer_cases():
    hidden = (Dense(6, activation="tanh"),)
    return [Case(f"optimizer_{name}", _model(*hidden, optimizer=optimizer))
            for name, optimizer in [
                ("sgd", optimizers.SGD(0.1)), ("sgd_nesterov", optimizers.SGD(0.05, momentum=0.9, nesterov=True)),
                ("adam", optimizers.Adam(0.01)), ("adam_amsgrad", optimizers.Adam(0.01, amsgrad=True)),
                ("adamw", optimizers.AdamW(0.01, weight_decay=0.05)), ("rmsprop", optimizers.RMSprop(0.01)),
                ("rmsprop_centered", optimizers.RMSprop(0.01, momentum=0.5, centered=True)),
                ("adagrad", optimizers.Adagrad(0.1, initial_accumulator_value=0.2)),
                ("adadelta", optimizers.Adadelta(1.0, rho=0.9)), ("adamax", optimizers.Adamax(0.01)),
                ("nadam", optimizers.Nadam(0.01)),
                ("clipnorm", optimizers.SGD(0.1, clipnorm=0.5)), ("clipvalue", optimizers.Adam(0.01, clipvalue=0.1)),
                ("global_clipnorm", optimizers.RMSprop(0.01, global_clipnorm=0.3)),
                ("weight_decay", optimizers.SGD(0.1, momentum=0.5, weight_decay=0.1)),
                ("piecewise", optimizers.SGD(schedules.PiecewiseConstantDecay((3.5, 5), (0.2, 0.05, 0.01)))),
                ("inverse_time", optimizers.Adam(schedules.InverseTimeDecay(0.02, 3, 0.5, staircase=True))),
            ]] + [
        # TensorFlow's float32 pow and cos are not correctly rounded: these schedules' rates differ from
        # Keras's by up to 5e-6 relative (polynn.schedules), so Keras's loaded schedule is compared instead.
        Case(f"schedule_{name}", _model(*hidden, optimizer=optimizers.Adam(schedule)), fit=False, rate_steps=40)
        for name, schedule in [("exponential", schedules.ExponentialDecay(0.02, 7, 0.5, staircase=False)),
                               ("polynomial", schedules.PolynomialDecay(0.02, 9, 0.001, power=0.5, cycle=True)),
                               ("cosine", schedules.CosineDecay(0.01, 20, alpha=0.1, warmup_target=0.03,
                                                                warmup_steps=5))]]


def _loss_cases():
    hidden = (Dense(5, activation="tanh"),)
    return [Case(f"loss_{name}", _model(*hidden, data=data, loss=loss, metric_list=()), data=data)
            for name, data, loss in [
                ("mse", "regression", "mse"), ("mae", "regression", losses.MeanAbsoluteError()),
                ("mape", "positive", "mape"), ("msle", "positive", "msle"),
                ("bce_smoothing", "binary", losses.BinaryCrossentropy(label_smoothing=0.1)),
                ("cce", "categorical", losses.CategoricalCrossentropy(label_smoothing=0.2)),
                ("scce", "sparse", "sparse_categorical_crossentropy"),
                ("huber", "regression", losses.Huber(delta=0.5)), ("log_cosh", "regression", "log_cosh"),
                ("hinge", "hinge", "hinge"), ("squared_hinge", "hinge", "squared_hinge"),
                ("categorical_hinge", "categorical", "categorical_hinge"), ("kld", "categorical", "kld"),
                ("poisson", "positive", "poisson"), ("cosine", "categorical", losses.CosineSimilarity()),
                ("sum", "regression", losses.MeanSquaredError(reduction="sum")),
                ("mean_with_sample_weight", "regression", losses.MeanSquaredError(reduction="mean_with_sample_weight")),
            ]] + [
        Case("loss_bce_from_logits", _model(Dense(5, activation="tanh"), data="logits", loss=losses.BinaryCrossentropy(
            from_logits=True), metric_list=(metrics.BinaryCrossentropy(from_logits=True),)), data="logits"),
        Case("loss_weighted", _model(*hidden, data="regression", loss="mse", metric_list=("mae",),
                                     weighted=["mse", metrics.RootMeanSquaredError()]), data="regression",
             sample_weight=True),
    ]


def _metric_cases():
    hidden = (Dense(5, activation="tanh"),)
    return [
        Case("metrics_binary", _model(*hidden, metric_list=(
            "accuracy", metrics.BinaryAccuracy(threshold=0.3), metrics.Precision(thresholds=0.4), metrics.Recall(),
            metrics.AUC(num_thresholds=50), metrics.AUC(curve="PR", summation_method="majoring", name="pr"),
            metrics.BinaryCrossentropy(label_smoothing=0.1), "mse", metrics.MeanAbsoluteError(name="my_mae")))),
        Case("metrics_categorical", _model(*hidden, data="categorical", loss="categorical_crossentropy",
                                           metric_list=("acc", metrics.CategoricalAccuracy(), metrics.Accuracy(),
                                                        metrics.CategoricalCrossentropy(), metrics.Precision(
                                                            class_id=1))), data="categorical"),
        Case("metrics_sparse", _model(*hidden, data="sparse", loss="sparse_categorical_crossentropy",
                                      metric_list=("accuracy", metrics.SparseCategoricalAccuracy(),
                                                   metrics.SparseCategoricalCrossentropy())), data="sparse"),
        # Keras on TensorFlow computes top-k accuracies in float32 only (tf.math.in_top_k), for its own
        # float64 models too: they are trained on in float32, and loaded only in float64.
        *[Case(f"metrics_top_k_{dtype}", _model(*hidden, data="categorical", loss="categorical_crossentropy",
                                                metric_list=(metrics.TopKCategoricalAccuracy(k=2),), dtype=dtype),
               data="categorical", fit=dtype == "float32", evaluate=dtype == "float32")
          for dtype in ("float32", "float64")],
        Case("metrics_sparse_top_k_float32", _model(*hidden, data="sparse", loss="sparse_categorical_crossentropy",
                                                    metric_list=(metrics.SparseTopKCategoricalAccuracy(k=2),),
                                                    dtype="float32"), data="sparse"),
        Case("metrics_regression", _model(*hidden, data="positive", loss="mse", metric_list=(
            metrics.MeanAbsolutePercentageError(), metrics.RootMeanSquaredError(), "mae"),
            weighted=[metrics.MeanSquaredError()]), data="positive", sample_weight=True),
    ]


def _layer_cases():
    frozen = Dense(5, activation="tanh", name="frozen")
    return [
        Case("layers_initializers_regularizers_constraints", _model(
            Dense(6, kernel_initializer=initializers.HeNormal(), bias_initializer=initializers.Constant(0.1),
                  kernel_regularizer=regularizers.L1L2(0.01, 0.02), bias_regularizer=regularizers.L1(0.01),
                  activity_regularizer=regularizers.L2(0.001), kernel_constraint=constraints.MaxNorm(1.5),
                  bias_constraint=constraints.NonNeg(), name="hidden"),
            Activation("tanh"),
            Dense(5, kernel_initializer=initializers.Orthogonal(gain=1.5), kernel_constraint=constraints.UnitNorm(0),
                  bias_initializer=initializers.RandomUniform(-0.1, 0.2), activation="elu"),
            Dense(5, kernel_initializer=initializers.Identity(gain=2.0),
                  kernel_constraint=constraints.MinMaxNorm(0.1, 1.0, rate=0.8, axis=(0,)),
                  bias_initializer=initializers.RandomNormal(0.1, 0.2), activation="selu"),
            Dense(4, kernel_initializer=initializers.VarianceScaling(2.0, "fan_out", "uniform"),
                  bias_initializer=initializers.TruncatedNormal(0.0, 0.1), use_bias=True, activation="softsign"),
            Dense(3, kernel_initializer="glorot_normal", use_bias=False, bias_initializer="ones",
                  kernel_regularizer="l2"),
            Dense(3, kernel_initializer="lecun_uniform", bias_initializer="zeros", activation="swish"),
            Dense(3, kernel_initializer="lecun_normal", activation="mish"),
            Dense(3, kernel_initializer="he_uniform", activation="gelu"),
            Dense(3, kernel_initializer=initializers.RandomUniform(), activation="hard_silu"),
            Dropout(0.0)), weights_only=True),
        Case("layers_frozen", lambda: _frozen(frozen), weights_only=True),
        Case("layers_dropout_inference", _model(Dense(6, activation="relu"), Dropout(0.3, noise_shape=(None, 1),
                                                                                      seed=3),
                                                Activation(activations.Softmax(axis=1)), Dropout(0.5)), fit=False),
        Case("layers_rank3", _model(Dense(5, activation="relu"), Dense(2), data="binary", inputs=(3, 4)),
             fit=False, evaluate=False, train_first=False, inputs=(3, 4)),
        Case("small_by_hand", _model(Dense(6, activation="relu")), weights_only=True, by_hand=True),
        Case("uncompiled", _uncompiled, fit=False, evaluate=False, train_first=False),
        Case("unbuilt", lambda: (lambda m: (m.compile("adam", "mse"), m)[1])(Sequential([Dense(2), Dense(1)])),
             fit=False, evaluate=False, train_first=False),
        Case("float32", _model(Dense(6, activation="relu"), optimizer=optimizers.Nadam(0.01), dtype="float32"),
             weights_only=True),
        Case("rate_override", lambda: _override(_model(Dense(6, activation="tanh"))())),
        Case("steps_per_execution", _model(Dense(6, activation="tanh"), steps_per_execution=3)),
        Case("named", _named),
    ] + [
        Case(f"activation_{name}", _model(Dense(5, activation=activation), Activation(activation)), fit=False,
             evaluate=False)
        for name, activation in [
            ("linear", "linear"), ("relu", "relu"), ("relu_settings", activations.ReLU(0.1, 1.5, 0.2)),
            ("relu_cap", activations.ReLU(max_value=0.375)), ("sigmoid", "sigmoid"), ("tanh", "tanh"),
            ("softmax", "softmax"), ("log_softmax", "log_softmax"), ("elu", "elu"),
            ("elu_alpha", activations.ELU(0.4)), ("selu", "selu"), ("softplus", "softplus"),
            ("softsign", "softsign"), ("gelu", "gelu"), ("silu", "silu"), ("leaky_relu", "leaky_relu"),
            ("leaky_relu_slope", activations.LeakyReLU(0.05)), ("relu6", "relu6"), ("exponential", "exponential"),
            ("hard_sigmoid", "hard_sigmoid"), ("hard_silu", "hard_silu"), ("mish", "mish")]
    ]


def _named():
    model = Sequential([Input((4,), name="features"), Dense(6, activation="tanh", name="hidden"),
                        Dense(1, activation="sigmoid", name="output")], name="classifier")
    model.compile(optimizers.Adam(0.01), "binary_crossentropy", metrics=[metrics.AUC(name="area")],
                  dtype="float64", seed=5)
    return model


def _uncompiled():
    model = Sequential([Dense(6, input_dim=4, activation="relu"), Dense(1)])
    model.set_weights(model.get_weights())  # weights of its own, which predict's implicit compile keeps
    return model


def _frozen(layer):
    model = _model(layer, Dense(4, activation="relu"), optimizer="adam")()
    model.layers[1].trainable = False
    return model


def _override(model):
    model.learning_rate = 0.02
    return model


def _backend_cases():
    cases = []
    for entry in plugins.backend_entries():
        if entry.name not in ("numpy", "jax") and entry.error is None \
                and importlib.util.find_spec(entry.engine.split(".")[0]) is not None:
            cases.append(Case(f"backend_{entry.name}", _model(Dense(6, activation="tanh"), optimizer="rmsprop",
                                                              backend=entry.name)))
    return cases


def _all_cases() -> list[Case]:
    return _optimizer_cases() + _loss_cases() + _metric_cases() + _layer_cases() + _backend_cases()


@dataclasses.dataclass
class Expected:
    """What polynn did with a case's model: the file's weights and optimizer variables, its predictions
    and evaluation at save time, and the History and weights of one more epoch."""

    dtype: str
    weights: list[np.ndarray]
    optimizer: list[np.ndarray] | None
    predict: np.ndarray | None = None
    evaluate: dict | None = None
    history: dict | None = None
    trained: list[np.ndarray] | None = None
    config: dict | None = None
    rates: np.ndarray | None = None
    folder: Any = None


def _run_polynn(case: Case, folder) -> Expected:
    data = _case_data(case)
    model = case.build()
    weights = data.get("sample_weight")
    if case.train_first:
        model.fit(data["x"], data["y"], batch_size=16, epochs=1, shuffle=False, verbose=0, sample_weight=weights)
    model.save(folder / f"{case.name}.keras")
    if case.weights_only:
        model.save_weights(folder / f"{case.name}.weights.h5")
    np.savez(folder / f"{case.name}.data.npz", **data)
    groups = _read_archive(folder / f"{case.name}.keras")
    optimizer = groups[2].get("optimizer")
    expected = Expected(model.dtype or "float32", model.get_weights(), None if optimizer is None else optimizer[1],
                        config=groups[1], folder=folder)
    if model.input_shape is not None:
        expected.predict = model.predict(data["x"], verbose=0)
    if case.evaluate:
        expected.evaluate = model.evaluate(data["x"], data["y"], batch_size=16, verbose=0, return_dict=True,
                                           sample_weight=weights)
    if case.rate_steps:
        expected.rates = model.optimizer.spec.learning_rate(np.arange(case.rate_steps))
    if case.fit:
        history = model.fit(data["x"], data["y"], batch_size=16, epochs=1, shuffle=False, verbose=0,
                            validation_data=(data["x_val"], data["y_val"]), sample_weight=weights)
        expected.history, expected.trained = history.history, model.get_weights()
    return expected


@pytest.fixture(scope="module")
def keras_runs(tmp_path_factory):
    """Every case saved by polynn, then loaded by Keras on TensorFlow (and on torch where installed):
    (cases, polynn's Expected per case, {backend: (report, arrays per case)})."""
    pytest.importorskip("keras")
    _h5py()
    folder = tmp_path_factory.mktemp("keras_export")
    cases = _all_cases()
    expected = {case.name: _run_polynn(case, folder) for case in cases}
    manifest = [{"name": c.name, "dtype": expected[c.name].dtype, "fit": c.fit, "evaluate": c.evaluate,
                 "weights_only": c.weights_only, "by_hand": c.by_hand, "rate_steps": c.rate_steps} for c in cases]
    (folder / "manifest.json").write_text(json.dumps(manifest))
    runs = {}
    for backend in ("tensorflow", "torch"):
        if importlib.util.find_spec(backend) is None:
            continue
        done = subprocess.run([sys.executable, "-c", KERAS_RUNNER, str(folder), backend], capture_output=True,
                              text=True, timeout=900, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
        assert done.returncode == 0, done.stderr[-5000:]
        report = json.loads((folder / f"report.{backend}.json").read_text())
        runs[backend] = report, {c.name: dict(np.load(folder / f"{c.name}.{backend}.npz")) for c in cases}
    if "tensorflow" not in runs:
        pytest.skip("Keras's reference runs need TensorFlow")
    return {c.name: c for c in cases}, expected, runs


def _ordered(arrays: dict, prefix: str) -> list[np.ndarray]:
    count = sum(1 for key in arrays if key.startswith(prefix) and key[len(prefix):].isdigit())
    return [arrays[f"{prefix}{k}"] for k in range(count)]


def _gap(a, b) -> float:
    return max((float(np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64)), initial=0.0))
                for x, y in zip(a, b, strict=True)), default=0.0)


def _normalized(value, drop: dict[str, set] | None = None, class_name=None):
    """A config for comparison: Keras's shared_object_id left out, numbers rounded to float32 (Keras
    keeps L1's factor as a float32 tensor), and the keys `drop` names for a class left out."""
    if isinstance(value, dict):
        name = value.get("class_name", class_name)
        gone = (drop or {}).get(name, set()) if "class_name" not in value else set()
        out = {}
        for key, item in value.items():
            if key == "shared_object_id" or key in gone:
                continue
            out[key] = _normalized(item, drop, name if key == "config" else None)
        if str(out.get("module")).startswith("keras.src.backend.torch.optimizers."):
            # Keras on torch serializes its optimizers as its own classes of the same names
            out["module"], out["registered_name"] = "keras.optimizers", None
        return out
    if isinstance(value, list):
        return [_normalized(v, drop) for v in value]
    if isinstance(value, float):
        return float(np.float32(value))
    return value


def _differences(a, b, where="") -> list[str]:
    """Where two configs differ: 'path: a != b' lines."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [line for key in sorted(set(a) | set(b), key=str)
                for line in _differences(a.get(key, "<absent>"), b.get(key, "<absent>"), f"{where}/{key}")]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [line for k, (x, y) in enumerate(zip(a, b)) for line in _differences(x, y, f"{where}[{k}]")]
    return [] if a == b else [f"{where}: {a!r} != {b!r}"]


# Settings Keras 3.15.1's own get_config leaves out although its classes take them (they are checked
# through what Keras computes with them instead).
KERAS_FORGETS = {"Huber": {"delta"}, "CosineSimilarity": {"axis"}, "Identity": {"gain"}}


def _names(kind):
    return [c.name for c in _all_cases() if kind(c)]


@pytest.mark.slow
@pytest.mark.parametrize("name", _names(lambda c: True))
def test_keras_loads_the_file_as_written(keras_runs, name):
    """Keras's own serialization of the loaded model is the config written; the weights and optimizer
    variables are those written, none skipped."""
    cases, expected, runs = keras_runs
    mine = expected[name]
    for backend, (report, arrays) in runs.items():
        doc, got = report[name], arrays[name]
        assert not [w for w in doc["warnings"] if "Skipping" in w or "optimizer" in w], doc["warnings"]
        differences = _differences(_normalized(doc["config"]), _normalized(mine.config, KERAS_FORGETS))
        assert not differences, (backend, differences[:10])
        weights = _ordered(got, "weight_")
        if mine.predict is not None:
            assert len(weights) == len(mine.weights)
            assert all(np.array_equal(a, b) and a.dtype == b.dtype for a, b in zip(weights, mine.weights)), backend
        if mine.optimizer is not None:
            loaded = _ordered(got, "optimizer_")
            assert doc["optimizer_count"] == len(mine.optimizer), backend
            assert all(np.array_equal(a, b) for a, b in zip(loaded, mine.optimizer)), backend


@pytest.mark.slow
@pytest.mark.parametrize("name", _names(lambda c: c.name != "unbuilt"))
def test_keras_writes_the_weights_layout_written(keras_runs, name, tmp_path):
    """The weights file Keras writes for the model it loaded is the one polynn wrote: the same groups,
    names, datasets, dtypes and values."""
    cases, expected, runs = keras_runs
    folder = expected[name].folder
    with zipfile.ZipFile(folder / f"{name}.keras") as archive:
        mine = _read_weights(io.BytesIO(archive.read("model.weights.h5")))
    for backend in runs:
        keras_file = _read_weights(folder / f"{name}.{backend}.weights.h5")
        assert {p: n for p, (n, _) in keras_file.items()} == {p: n for p, (n, _) in mine.items()}, backend
        for path, (_, arrays) in keras_file.items():
            kinds = [(a.shape, a.dtype) for a in arrays]
            if backend == "torch" and path == "optimizer":
                # Keras on torch keeps the iteration count in int32; polynn writes what Keras on TensorFlow
                # writes, int64, which Keras on torch loads as well.
                kinds[0] = ((), np.dtype(np.int64)) if kinds[0] == ((), np.dtype(np.int32)) else kinds[0]
            assert kinds == [(a.shape, a.dtype) for a in mine[path][1]], (backend, path)
            assert all(np.array_equal(a, b) for a, b in zip(arrays, mine[path][1])), (backend, path)


@pytest.mark.slow
@pytest.mark.parametrize("name", _names(lambda c: c.name != "unbuilt"))
def test_keras_predicts_as_polynn(keras_runs, name):
    cases, expected, runs = keras_runs
    mine = expected[name]
    report, arrays = runs["tensorflow"]
    tolerance = PREDICT_TOLERANCE if mine.dtype == "float64" else F32_TOLERANCE
    gap = _gap([arrays[name]["predict"]], [mine.predict])
    assert gap <= tolerance, f"predictions {gap:.2e} from polynn's on Keras/TensorFlow"
    if "torch" in runs:
        # Keras on torch computes float64 matmuls in float32 (its dtype promotion demotes 64-bit types on
        # every backend but TensorFlow), so its float64 predictions are float32's.
        gap = _gap([runs["torch"][1][name]["predict"]], [mine.predict])
        assert gap <= F32_TOLERANCE, f"predictions {gap:.2e} from polynn's on Keras/torch"


@pytest.mark.slow
@pytest.mark.parametrize("name", _names(lambda c: c.evaluate))
def test_keras_evaluates_as_polynn(keras_runs, name):
    """Losses (with the regularizers' penalties) and metrics, as compile_config has them."""
    cases, expected, runs = keras_runs
    mine = expected[name]
    evaluated = runs["tensorflow"][0][name]["evaluate"]
    assert set(evaluated) == set(mine.evaluate)
    tolerance = F64_TOLERANCE if mine.dtype == "float64" else F32_TOLERANCE
    for key, value in mine.evaluate.items():
        assert abs(evaluated[key] - value) <= tolerance * max(1.0, abs(value)), (key, evaluated[key], value)


@pytest.mark.slow
@pytest.mark.parametrize("name", _names(lambda c: c.fit))
def test_keras_trains_on_as_polynn(keras_runs, name):
    """One more epoch in Keras from the file, and in polynn from where it saved: the same History and
    weights (optimizer state, iteration count and learning rate carried over)."""
    cases, expected, runs = keras_runs
    mine = expected[name]
    report, arrays = runs["tensorflow"]
    history = report[name]["history"]
    tolerance = F64_TOLERANCE if mine.dtype == "float64" else F32_TOLERANCE
    assert set(history) == set(mine.history)
    history_gap = max(abs(a - b) for key in history for a, b in zip(history[key], mine.history[key], strict=True))
    weight_gap = _gap(_ordered(arrays[name], "trained_"), mine.trained)
    assert history_gap <= tolerance, f"History {history_gap:.2e} from polynn's"
    assert weight_gap <= tolerance, f"weights {weight_gap:.2e} from polynn's"


@pytest.mark.slow
@pytest.mark.parametrize("name", _names(lambda c: c.weights_only))
def test_keras_reads_the_weights_file(keras_runs, name):
    """keras_model.load_weights("x.weights.h5") sets every weight and optimizer variable written."""
    cases, expected, runs = keras_runs
    mine = expected[name]
    for backend, (_, arrays) in runs.items():
        assert all(np.array_equal(a, b) for a, b in zip(_ordered(arrays[name], "reloaded_"), mine.weights,
                                                        strict=True)), backend
        assert all(np.array_equal(a, b) for a, b in zip(_ordered(arrays[name], "reloaded_optimizer_"),
                                                        mine.optimizer, strict=True)), backend
        if cases[name].by_hand:
            tolerance = PREDICT_TOLERANCE if backend == "tensorflow" else F32_TOLERANCE
            assert _gap([arrays[name]["by_hand"]], [mine.predict]) <= tolerance, backend


@pytest.mark.slow
def test_keras_keeps_the_settings_its_configs_leave_out(keras_runs):
    cases, expected, runs = keras_runs
    report = runs["tensorflow"][0]
    assert report["layers_initializers_regularizers_constraints"]["gains"] == [2.0]
    assert report["loss_huber"]["loss_settings"] == {"delta": 0.5}
    assert report["loss_cosine"]["loss_settings"] == {"axis": -1}


@pytest.mark.slow
@pytest.mark.parametrize("name", _names(lambda c: c.rate_steps))
def test_keras_s_loaded_schedule_gives_polynn_s_rates(keras_runs, name):
    """polynn computes these schedules in float32 as Keras on TensorFlow does, but with correctly
    rounded powers and cosines, which TensorFlow's float32 kernels are not: within 5e-6 relative
    (polynn.schedules' measured bound)."""
    cases, expected, runs = keras_runs
    rates = runs["tensorflow"][1][name]["rates"]
    np.testing.assert_allclose(rates, expected[name].rates, rtol=5e-6, atol=0)
