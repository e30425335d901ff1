"""What a Keras (or PyTorch) user brings by habit, refused early and clearly: another engine's losses,
optimizers, layers and metrics; datasets and dicts as data; Keras's .keras and HDF5 files; Keras's
file names for polynn's safetensors files. And NumPy's bools taken wherever a bool is."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest

import polynn
from polynn import callbacks, errors, metrics, optimizers, plugins
from polynn.layers import Dense, Input
from polynn.models import Sequential, load_model

X = np.random.default_rng(0).normal(size=(12, 3))
Y = np.ones((12, 1))


def compiled(**kwargs) -> Sequential:
    model = Sequential([Input((3,)), Dense(1)])
    model.compile(kwargs.pop("optimizer", "sgd"), kwargs.pop("loss", "mse"), **kwargs)
    return model


def foreign(module: str, name: str, *, instance: bool = True, call=None):
    """A stand-in for another engine's class (or its instance), defined in that engine's module name."""
    namespace = {"__module__": module}
    if call is not None:
        namespace["__call__"] = call
    cls = type(name, (), namespace)
    return cls() if instance else cls


def foreign_function(module: str, name: str):
    def function(y_true, y_pred):
        return y_pred

    function.__module__, function.__name__, function.__qualname__ = module, name, name
    return function


def _loss_call(self, y_true, y_pred):
    return 0.0


# ---- another engine's components, refused at compile (or add) naming polynn's equivalent ------------

@pytest.mark.parametrize("make, where, equivalent", [
    (lambda: foreign("keras.src.losses.losses", "MeanSquaredError", call=_loss_call), "loss",
     r"Keras object \(keras.src.losses.losses.MeanSquaredError\).*polynn.losses.MeanSquaredError\(\) or "
     r"'mean_squared_error'"),
    (lambda: foreign_function("keras.src.losses.losses", "mean_squared_error"), "loss",
     r"polynn.losses.MeanSquaredError\(\) or 'mean_squared_error'"),
    (lambda: foreign("torch.nn.modules.loss", "MSELoss", call=_loss_call), "loss",
     r"PyTorch object \(torch.nn.modules.loss.MSELoss\).*polynn.losses.MeanSquaredError\(\)"),
    (lambda: foreign("torch.nn.modules.loss", "CrossEntropyLoss", call=_loss_call), "loss",
     r"polynn.losses.SparseCategoricalCrossentropy\(from_logits=True\)"),
    (lambda: foreign_function("torch.nn.functional", "binary_cross_entropy_with_logits"), "loss",
     r"polynn.losses.BinaryCrossentropy\(from_logits=True\)"),
    (lambda: foreign("tensorflow.python.keras.losses", "Huber", call=_loss_call), "loss",
     r"TensorFlow object.*polynn.losses.Huber\(\) or 'huber'"),
    (lambda: foreign("tf_keras.src.losses", "SomethingElse", call=_loss_call), "loss",
     r"polynn has no loss of that name; its losses: .*mean_squared_error"),
    (lambda: foreign("keras.src.optimizers.adam", "Adam"), "optimizer",
     r"polynn.optimizers.Adam\(\) or 'adam'"),
    (lambda: foreign("torch.optim.nadam", "NAdam", instance=False), "optimizer",
     r"polynn.optimizers.Nadam\(\) or 'nadam'"),
    (lambda: foreign("keras.src.metrics.confusion_metrics", "AUC", call=_loss_call), "metrics",
     r"invalid metric=.*polynn.metrics.AUC\(\) or 'auc'"),
    (lambda: foreign_function("keras.src.metrics.accuracy_metrics", "binary_accuracy"), "metrics",
     r"polynn.metrics.BinaryAccuracy\(\) or 'binary_accuracy'"),
    (lambda: foreign("keras.src.optimizers.schedules.learning_rate_schedule", "ExponentialDecay"), "schedule",
     r"invalid schedule=.*polynn.schedules.ExponentialDecay\(\)"),
])
def test_another_engines_component_is_refused_at_compile_naming_polynns(make, where, equivalent):
    model = Sequential([Input((3,)), Dense(1)])
    arguments = {"optimizer": "sgd", "loss": "mse"}
    with pytest.raises(errors.InvalidArgumentError, match=equivalent):
        if where == "metrics":
            arguments["metrics"] = [make()]
        elif where == "schedule":  # a learning rate schedule is resolved when the optimizer is made
            arguments["optimizer"] = optimizers.SGD(learning_rate=make())
        else:
            arguments[where] = make()
        model.compile(**arguments)


@pytest.mark.parametrize("make, equivalent", [
    (lambda: foreign("keras.src.layers.core.dense", "Dense"), r"Keras object.*polynn.layers.Dense\(...\)"),
    (lambda: foreign("torch.nn.modules.linear", "Linear"), r"polynn.layers.Dense\(units=out_features\)"),
    (lambda: foreign("torch.nn.modules.activation", "ReLU"), r"polynn.layers.Activation\('relu'\)"),
    (lambda: foreign("keras.src.layers.activations.leaky_relu", "LeakyReLU"),
     r"polynn.layers.Activation\('leaky_relu'\)"),
])
def test_another_engines_layer_is_refused_by_sequential_and_add(make, equivalent):
    with pytest.raises(errors.InvalidArgumentError, match=r"invalid layer=.*" + equivalent):
        Sequential([Input((3,)), make()])
    with pytest.raises(errors.InvalidArgumentError, match=equivalent):
        Sequential([Input((3,))]).add(make())


def test_another_engines_activation_function_is_refused():
    relu = foreign_function("torch", "relu")
    with pytest.raises(errors.InvalidArgumentError, match=r"PyTorch object \(torch.relu\).*polynn.activations.ReLU"):
        Dense(1, activation=relu)


def test_user_functions_and_polynn_objects_still_pass():
    def my_loss(y_true, y_pred):
        return polynn.ops.mean(polynn.ops.square(y_true - y_pred), axis=-1)

    model = compiled(loss=my_loss, metrics=[metrics.mean_squared_error, metrics.AUC(), my_loss])
    assert np.isfinite(model.fit(X, Y, verbose=0).history["loss"][0])


def test_the_refusal_imports_no_engine():
    code = textwrap.dedent("""
        import sys, polynn
        from polynn.models import Sequential
        from polynn.layers import Dense
        Loss = type("MeanSquaredError", (), {"__module__": "keras.src.losses.losses", "__call__": lambda s, a, b: 0})
        try:
            Sequential([Dense(1, input_dim=2)]).compile("sgd", Loss())
        except polynn.errors.InvalidArgumentError:
            pass
        print(sorted({"keras", "tensorflow", "torch", "tf_keras"} & set(sys.modules)))
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch not installed")
def test_real_torch_objects_are_refused_naming_polynns():
    import torch

    with pytest.raises(errors.InvalidArgumentError, match=r"torch.nn.modules.loss.MSELoss.*polynn.losses.Mean"):
        compiled(loss=torch.nn.MSELoss())
    with pytest.raises(errors.InvalidArgumentError, match=r"torch.optim.adam.Adam.*polynn.optimizers.Adam"):
        compiled(optimizer=torch.optim.Adam)
    with pytest.raises(errors.InvalidArgumentError, match=r"polynn.layers.Dense\(units=out_features\)"):
        Sequential([torch.nn.Linear(3, 1)])
    with pytest.raises(errors.InvalidArgumentError, match=r"polynn.activations.Sigmoid\(\) or 'sigmoid'"):
        Dense(1, activation=torch.sigmoid)


# ---- datasets and dicts as data ------------------------------------------------------------------

DATA_REFUSED = r"accepted: arrays: x and y as NumPy arrays.*datasets, data loaders, generators and dicts are not taken"


def _tf_dataset():
    base = foreign("tensorflow.python.data.ops.dataset_ops", "DatasetV2", instance=False)
    return type("_BatchDataset", (base,), {"__module__": "tensorflow.python.data.ops.batch_op",
                                           "__iter__": lambda self: iter([(X, Y)])})()


def _torch_loader():
    return foreign("torch.utils.data.dataloader", "DataLoader", call=None)


def _keras_py_dataset():
    base = foreign("keras.src.trainers.data_adapters.py_dataset_adapter", "PyDataset", instance=False)
    def batch(self, index):
        if index >= 1:
            raise IndexError(index)
        return X, Y

    return type("MyData", (base,), {"__module__": "__main__", "__len__": lambda self: 1, "__getitem__": batch})()


@pytest.mark.parametrize("make, shown", [
    (_tf_dataset, r"a TensorFlow data set \(tensorflow.python.data.ops.batch_op._BatchDataset\)"),
    (_torch_loader, r"a PyTorch data set \(torch.utils.data.dataloader.DataLoader\)"),
    (_keras_py_dataset, r"a Keras data set \(__main__.MyData\)"),
    (lambda: {"input": X}, r"a dict with keys \['input'\]"),
    (lambda: (row for row in X), r"a generator"),
])
def test_datasets_and_dicts_as_x_are_refused_saying_what_is_taken(make, shown):
    model = compiled()
    with pytest.raises(errors.InvalidArgumentError, match=rf"invalid x=.{shown}.; {DATA_REFUSED}"):
        model.fit(make(), Y, verbose=0)
    with pytest.raises(errors.InvalidArgumentError, match=shown):
        model.evaluate(make(), Y, verbose=0)
    with pytest.raises(errors.InvalidArgumentError, match=shown):
        model.predict(make(), verbose=0)


def test_a_dict_as_y_or_a_dataset_as_validation_data_is_refused():
    model = compiled()
    with pytest.raises(errors.InvalidArgumentError, match=rf"invalid y=\"a dict with keys \['out'\]\"; {DATA_REFUSED}"):
        model.fit(X, {"out": Y}, verbose=0)
    with pytest.raises(errors.InvalidArgumentError,
                       match=r"invalid validation_data='a TensorFlow data set .*'; accepted: a tuple \(x_val, y_val\)"):
        model.fit(X, Y, validation_data=_tf_dataset(), verbose=0)


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch not installed")
def test_a_real_torch_data_loader_is_refused_and_a_cpu_tensor_taken():
    import torch

    model = compiled()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.tensor(X), torch.tensor(Y)))
    with pytest.raises(errors.InvalidArgumentError, match=r"a PyTorch data set \(torch.utils.data.dataloader"):
        model.fit(loader, verbose=0)
    assert np.isfinite(model.fit(torch.tensor(X), torch.tensor(Y), verbose=0).history["loss"][0])


# ---- Keras's files, recognised when read --------------------------------------------------------

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


def _keras_archive(path):
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("metadata.json", '{"keras_version": "3.15.1"}')
        archive.writestr("config.json", '{"class_name": "Sequential"}')
        archive.writestr("model.weights.h5", HDF5_MAGIC + bytes(100))


def _hdf5(path, offset=0):
    path.write_bytes(bytes(offset) + HDF5_MAGIC + bytes(300))


@pytest.mark.parametrize("name, write, what", [
    ("model.keras", _keras_archive, r"member 'model.weights.h5' is not a readable HDF5 file"),
    ("renamed.bin", _keras_archive, r"member 'model.weights.h5' is not a readable HDF5 file"),
    ("model.h5", _hdf5, r"not a readable HDF5 file"),
    ("model.weights.h5", lambda p: _hdf5(p, 512), r"not a readable HDF5 file"),
    ("other.zip", lambda p: zipfile.ZipFile(p, "w").close(), r"the archive has no member 'config.json'"),
])
@pytest.mark.parametrize("reader", ["load_model", "load_weights"])
def test_a_damaged_keras_file_is_refused_by_the_keras_reader(tmp_path, name, write, what, reader):
    # Told by content, whatever the name: zip and HDF5 files go to the Keras reader, which names the file.
    pytest.importorskip("h5py")
    path = tmp_path / name
    write(path)
    message = rf"cannot read Keras file {str(path)!r}: .*{what}"
    with pytest.raises(errors.ModelFileError, match=message.replace("\\", "\\\\") if os.sep == "\\" else message):
        if reader == "load_model":
            load_model(path)
        else:
            compiled().load_weights(path)


def test_other_unreadable_files_keep_the_safetensors_message(tmp_path):
    path = tmp_path / "junk.safetensors"
    path.write_bytes(b"\xff" * 64)
    with pytest.raises(errors.ModelFileError, match="header length field"):
        load_model(path)


# ---- polynn's files never written under Keras's names --------------------------------------------

@pytest.mark.parametrize("saver, name", [("save", "m.h5"), ("save", "m.hdf5"), ("save", "m.weights.h5"),
                                         ("save", "M.KERAS"), ("save_weights", "m.keras"),
                                         ("save_weights", "M.KERAS"), ("save_weights", "m.h5"),
                                         ("save_weights", "m.hdf5"), ("save_weights", "m.WEIGHTS.H5")])
@pytest.mark.parametrize("exists", [False, True])
def test_saving_under_a_keras_name_it_does_not_write_is_refused_and_touches_nothing(tmp_path, name, saver, exists):
    model = compiled()
    path = tmp_path / name
    if exists:
        path.write_bytes(b"someone's Keras file")
        os.utime(path, (1_000_000_000, 1_000_000_000))
    before = {p.name: (p.read_bytes(), p.stat().st_mtime) for p in tmp_path.iterdir()}
    with pytest.raises(errors.InvalidArgumentError,
                       match=rf"{saver}: invalid filepath=.*{name}'; accepted: a name ending in '\.(keras|weights\.h5)'"
                             rf".*, or any other name \(such as 'model\.safetensors'\) for polynn's safetensors "
                             rf"format: "):
        getattr(model, saver)(path)
    assert {p.name: (p.read_bytes(), p.stat().st_mtime) for p in tmp_path.iterdir()} == before


@pytest.mark.parametrize("saver, name, magic", [("save", "m.keras", b"PK\x03\x04"),
                                                ("save_weights", "m.weights.h5", HDF5_MAGIC)])
def test_keras_names_get_keras_s_formats(tmp_path, saver, name, magic):
    pytest.importorskip("h5py")
    getattr(compiled(), saver)(tmp_path / name)
    assert (tmp_path / name).read_bytes().startswith(magic)  # never a polynn file under a Keras name


@pytest.mark.parametrize("name", ["m.safetensors", "m.polynn", "m", "keras.safetensors", "m.h5.safetensors"])
def test_other_names_are_written(tmp_path, name):
    model = compiled()
    model.save(tmp_path / name)
    assert load_model(tmp_path / name).get_weights()[0].tolist() == model.get_weights()[0].tolist()


@pytest.mark.parametrize("name, weights_only", [("best.h5", False), ("ckpt-{epoch:02d}.weights.h5", False),
                                                ("best.keras", True), ("best.hdf5", True)])
def test_a_model_checkpoint_under_a_keras_name_it_cannot_write_is_refused_when_made(name, weights_only):
    with pytest.raises(errors.InvalidArgumentError, match=r"ModelCheckpoint: invalid filepath="):
        callbacks.ModelCheckpoint(name, save_weights_only=weights_only)


@pytest.mark.parametrize("name, weights_only", [("best.keras", False), ("ckpt-{epoch:02d}.weights.h5", True)])
def test_a_model_checkpoint_takes_keras_s_names(name, weights_only):
    assert callbacks.ModelCheckpoint(name, save_weights_only=weights_only).filepath == name


# ---- NumPy's bools are bools ---------------------------------------------------------------------

def test_fit_takes_a_numpy_bool_for_shuffle():
    runs = []
    for shuffle in (False, np.bool_(False)):
        model = compiled(seed=3)
        runs.append((model.fit(X, Y, epochs=2, shuffle=shuffle, verbose=0).history, model.get_weights()))
    assert runs[0][0] == runs[1][0]
    np.testing.assert_array_equal(runs[0][1][0], runs[1][1][0])


def test_files_take_numpy_bools(tmp_path):
    model = compiled()
    path = tmp_path / "m.safetensors"
    model.save(path, overwrite=np.bool_(True))
    with pytest.raises(errors.InvalidArgumentError, match="a path that does not exist yet"):
        model.save(path, overwrite=np.bool_(False))
    model.save_weights(tmp_path / "w.safetensors", overwrite=np.bool_(True))
    load_model(path, allow_nonfinite=np.bool_(True))
    model.load_weights(tmp_path / "w.safetensors", allow_nonfinite=np.bool_(False))
    with pytest.raises(errors.InvalidArgumentError, match=r"save: invalid overwrite=1; accepted: True or False"):
        model.save(path, overwrite=1)


def test_callbacks_take_numpy_bools_as_bools(tmp_path):
    flags = [callbacks.EarlyStopping(restore_best_weights=np.bool_(True)).restore_best_weights,
             callbacks.ModelCheckpoint(str(tmp_path / "c.safetensors"), save_best_only=np.bool_(True),
                                       save_weights_only=np.bool_(False)).save_best_only,
             callbacks.CSVLogger(str(tmp_path / "log.csv"), append=np.bool_(True)).append]
    assert flags == [True, True, True] and all(type(flag) is bool for flag in flags)


def _bool_fields():
    """Every bool field of every registered component (polynn's and plugins'), with the arguments
    its class needs besides."""
    needs = {"Dense": {"units": 1}, "Input": {"shape": (3,)}}
    for kind in ("layer", "activation", "loss", "metric", "optimizer", "schedule", "initializer", "regularizer",
                 "constraint"):
        for cls in plugins.component_specs(kind):
            # polynn's own; a plugin's fields are its own to check (polynn-extras tests its own).
            if not dataclasses.is_dataclass(cls) or not cls.__module__.startswith("polynn."):
                continue
            for field in dataclasses.fields(cls):
                if field.type in ("bool", bool):
                    yield pytest.param(cls, field.name, needs.get(cls.__name__, {}), id=f"{cls.__name__}.{field.name}")


def _schedule_needs(cls):
    defaults = {"ExponentialDecay": (0.1, 10, 0.5), "InverseTimeDecay": (0.1, 10, 0.5), "PolynomialDecay": (0.1, 10)}
    return defaults.get(cls.__name__, ())


@pytest.mark.parametrize("cls, field, needs", list(_bool_fields()))
def test_every_bool_field_of_a_component_takes_a_numpy_bool(cls, field, needs):
    default = next(f.default for f in dataclasses.fields(cls) if f.name == field)
    flipped = not default if isinstance(default, bool) else True
    try:
        spec = cls(*_schedule_needs(cls), **needs, **{field: np.bool_(flipped)})
    except errors.InvalidArgumentError as error:
        # A Keras option polynn accepts only where it changes nothing (LSTM's stateful): its default, then.
        assert "not supported" in str(error), error
        flipped = default
        spec = cls(*_schedule_needs(cls), **needs, **{field: np.bool_(flipped)})
    assert getattr(spec, field) is flipped
    assert cls.from_config(spec.get_config()) == spec


# ---- with Keras itself (its own process: importing it costs seconds) ----------------------------

KERAS_HABITS = textwrap.dedent("""
    import json, os, sys
    os.environ["KERAS_BACKEND"] = "tensorflow"
    import numpy as np, keras, tensorflow as tf
    import polynn
    from polynn.layers import Dense
    from polynn.models import Sequential
    folder = sys.argv[1]
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(loss="mse")
    model.save(os.path.join(folder, "k.keras"))
    model.save_weights(os.path.join(folder, "k.weights.h5"))
    x, y = np.ones((4, 3)), np.ones((4, 1))
    attempts = {
        "loss": lambda: Sequential([Dense(1, input_dim=3)]).compile("sgd", keras.losses.MeanSquaredError()),
        "optimizer": lambda: Sequential([Dense(1, input_dim=3)]).compile(keras.optimizers.Adam(), "mse"),
        "metric": lambda: Sequential([Dense(1, input_dim=3)]).compile("sgd", "mse", metrics=[keras.metrics.AUC()]),
        "layer": lambda: Sequential([keras.layers.Dense(1)]),
        "dataset": lambda: (lambda m: (m.compile("sgd", "mse"),
                                       m.fit(tf.data.Dataset.from_tensor_slices((x, y)), verbose=0)))(
            Sequential([Dense(1, input_dim=3)])),
    }
    out = {}
    for name, attempt in attempts.items():
        try:
            attempt()
            out[name] = "accepted"
        except polynn.errors.PolynnError as error:
            out[name] = f"{type(error).__name__}: {error}"
    out["predict"] = model.predict(x, verbose=0).tolist()
    print("RESULT" + json.dumps(out))
""")


@pytest.mark.slow
def test_real_keras_objects_and_files_are_recognised(tmp_path):
    pytest.importorskip("keras")
    pytest.importorskip("h5py")
    done = subprocess.run([sys.executable, "-c", KERAS_HABITS, str(tmp_path)], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.split("RESULT", 1)[1])
    assert seen["loss"].startswith("InvalidArgumentError") and "polynn.losses.MeanSquaredError()" in seen["loss"]
    assert "polynn.optimizers.Adam() or 'adam'" in seen["optimizer"]
    assert "polynn.metrics.AUC() or 'auc'" in seen["metric"]
    assert "polynn.layers.Dense(...)" in seen["layer"]
    assert "a TensorFlow data set" in seen["dataset"] and "datasets, data loaders" in seen["dataset"]
    # Keras's own files load (they were refused, naming what they are, before polynn read them).
    loaded = load_model(tmp_path / "k.keras")
    x = np.ones((4, 3))
    np.testing.assert_allclose(loaded.predict(x, verbose=0), seen["predict"], rtol=1e-6, atol=1e-6)
    weights_only = Sequential([Dense(1, input_dim=3)])
    weights_only.load_weights(tmp_path / "k.weights.h5")
    for a, b in zip(weights_only.get_weights(), loaded.get_weights(), strict=True):
        assert np.array_equal(a, b)
