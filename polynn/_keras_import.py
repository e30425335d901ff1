"""Keras 3 files read into polynn: a .keras archive as a compiled Sequential, or weights into a model.

The input is a KerasFile (polynn._keras_archive reads one defensively; any object of its shape
serves): .kind ("archive" or "weights"), .config and .metadata (parsed config.json and
metadata.json, None for a .weights.h5 file), .variables ({path: KerasVariable(path, shape, dtype)}
for every dataset of the weights HDF5) and .read(path) -> numpy array.

Keras's layout (saving_lib, Keras 3.0 to 3.15): a Sequential's layers, the InputLayer left out, are
the HDF5 groups layers/<name>/vars/<i>, <name> the layer's class in snake case numbered per class
in layer order (dense, dense_1, ...; the layers' own names are not used), <i> its variables in
order (Dense: kernel, bias; a recurrent layer's are its cell's, layers/<name>/cell/vars/<i>).
optimizer/vars/<i> are the optimizer's variables: 0 the iteration count, then the learning rate
unless it is a schedule, then the slots of the weights trainable when the optimizer was built, in
build order (OPTIMIZER_SLOTS; Nadam's running product u_product comes before the slots before
Keras 3.10 and after them since, so the archive's keras_version decides).

Everything the file says is checked before any array is read; the arrays read are only those the
model needs, each checked against the shape the config implies, so nothing is allocated beyond
what the file holds. Refusals are ModelFileError (UnknownComponentError for a Keras class or
function polynn lacks); the caller names the file (polynn._saving._naming).
"""

from __future__ import annotations

import dataclasses
import functools
import re
import warnings
from typing import Any

import numpy as np

from . import _saving, layers, optimizers
from ._keras_components import (
    CELLS,
    LAYER_CLASSES,
    OPTIMIZER_SLOTS,
    Field,
    Ignored,
    Off,
    batch_shape,
    input_layer,
    layer,
    loss,
    metric,
    optimizer,
    policy,
    read_object,
    read_options,
    snake_case,
    unknown,
)
from ._safetensors import brief
from .errors import ModelFileError

__all__ = ["model_from_keras", "load_weights_from_keras", "OPTIMIZER_SLOTS", "MAX_LAYERS"]

# Nadam's scalar u_product: first of its variables before Keras 3.10, last from 3.10 on.
_NADAM_PRODUCT_LAST_FROM = (3, 10)

# The most layers a file may ask for, the InputLayer included (polynn's own files have the same cap).
MAX_LAYERS = _saving.MAX_LAYERS
_FLOAT_DTYPES = ("float16", "float32", "float64")
_VAR_INDEX = re.compile(r"0|[1-9][0-9]{0,8}")


# ---- the architecture ----------------------------------------------------------------------


class _Architecture:
    """A Keras Sequential config as polynn layers: the model (not built), the Keras weight group
    of each layer (None for the Input), the input shape if known and the dtype its policies give."""

    def __init__(self, config: Any, model_class: type) -> None:
        where = "config.json"
        if not isinstance(config, dict):
            raise ModelFileError(f"{where} holds {brief(config, 80)}; accepted: a serialized Keras Sequential")
        extra = sorted(str(k) for k in config if k not in ("module", "class_name", "config", "registered_name",
                                                           "build_config", "compile_config", "shared_object_id"))
        if extra:
            raise ModelFileError(f"{where} has the keys {brief(extra, 120)}; accepted: module, class_name, config, "
                                 f"registered_name, build_config, compile_config")
        top = {k: v for k, v in config.items() if k in ("module", "class_name", "config", "registered_name")}
        class_name, model_config, _ = read_object(top, "model", where)
        if class_name != "Sequential":
            raise ModelFileError(f"{where} holds a Keras {class_name} model; accepted: a Keras Sequential (polynn's "
                                 f"one model)")
        options = read_options(model_config, {
            "name": Field(None), "trainable": Field(True), "dtype": Field(None, convert=policy),
            "layers": Field(), "build_input_shape": Field(None)}, "Sequential", f"{where} config")
        if options["name"] is not None and not isinstance(options["name"], str):
            raise ModelFileError(f"{where} config.name is {brief(options['name'], 80)}; accepted: a string")
        if not isinstance(options["layers"], list):
            raise ModelFileError(f"{where} config.layers is {brief(options['layers'], 80)}; accepted: a list")
        if len(options["layers"]) > MAX_LAYERS:
            raise ModelFileError(f"{where} config.layers lists {len(options['layers'])} layers; accepted: at most "
                                 f"{MAX_LAYERS} (a file may not make polynn build and compile a model of any size)")
        # An uncompiled model's is {} (Keras 3.15) or absent.
        compiled = config.get("compile_config")
        if compiled is not None and not isinstance(compiled, dict):
            raise ModelFileError(f"{where} compile_config is {brief(compiled, 80)}; accepted: an object ({{}} or "
                                 f"absent for a model that was not compiled)")
        self.compile_config = compiled or None
        self.shape: tuple | None = None
        self.groups: list[str | None] = []
        self.names: list[str | None] = []  # each layer's Keras name (the Input's too)
        policies = {options["dtype"]} - {None}
        specs = []
        counts: dict[str, int] = {}
        for index, item in enumerate(options["layers"]):
            at = f"{where} layers[{index}]"
            kind, layer_config, _ = read_object(item, "layer", at)
            if kind not in LAYER_CLASSES:
                raise unknown("layer", kind, sorted(LAYER_CLASSES), at)
            if isinstance(layer_config, dict) and isinstance(layer_config.get("name"), str):
                at = f"{at} ({kind} {brief(layer_config['name'], 60)})"
            if kind == "InputLayer":
                if index != 0:
                    raise ModelFileError(f"{at}: an InputLayer after the first layer; accepted: one, first")
                spec = _saving._guarded(at, input_layer, layer_config, at)
                self.shape = spec.shape
                self.groups.append(None)
            else:
                spec, dtype = _saving._guarded(at, layer, kind, layer_config, at)
                policies |= {dtype} - {None}
                group = snake_case(kind)
                count = counts.get(group, 0)
                counts[group] = count + 1
                self.groups.append(_group(kind, group if count == 0 else f"{group}_{count}"))
            if not options["trainable"]:  # Keras's model.trainable = False freezes every layer
                spec = dataclasses.replace(spec, trainable=False)
            specs.append(spec)
            self.names.append(spec.given_name)
        if len(policies) > 1:
            raise ModelFileError(f"{where}: the layers compute in {sorted(policies)}; accepted: one dtype for every "
                                 f"layer (polynn compiles a model in one dtype)")
        self.dtype = policies.pop() if policies else "float32"
        self.model = _saving._guarded(where, model_class, specs, options["name"])
        if self.shape is None:
            build = options["build_input_shape"]
            if build is None and isinstance(config.get("build_config"), dict):
                build = config["build_config"].get("input_shape")
            if build is not None:
                self.shape = batch_shape(build, f"{where} build_input_shape")
        self.output_name = self.names[-1] if self.names else None


# ---- the compile configuration -------------------------------------------------------------


def _one_output(value: Any, output: str | None, what: str, where: str) -> Any:
    """compile()'s per-output forms for a model of one output: {output_name: x} gives x."""
    if isinstance(value, dict) and "class_name" not in value:
        if len(value) != 1 or next(iter(value)) != output:
            raise ModelFileError(f"{where} maps the outputs {brief(sorted(map(str, value)), 120)} to {what}; "
                                 f"accepted: the model's one output, {output!r}")
        return next(iter(value.values()))
    return value


def _metrics(value: Any, output: str | None, where: str) -> list:
    value = _one_output(value, output, "metrics", where)
    if value is None:
        return []
    if not isinstance(value, list):
        value = [value]
    if len(value) == 1 and isinstance(value[0], list):  # [[...]]: the list of the one output
        value = value[0]
    if any(isinstance(item, list) for item in value):
        raise ModelFileError(f"{where} holds lists of metrics for several outputs; accepted: the metrics of one "
                             f"output (a Sequential model has one)")
    return [metric(item, f"{where}[{i}]") for i, item in enumerate(value)]


def _loss(value: Any, output: str | None, where: str) -> Any:
    value = _one_output(value, output, "losses", where)
    if isinstance(value, list):
        if len(value) != 1:
            raise ModelFileError(f"{where} holds {len(value)} losses; accepted: one (a Sequential model has one "
                                 f"output)")
        value = value[0]
    if value is None:
        return None
    spec = loss(value, where)
    if spec.reduction == "none":
        raise ModelFileError(f"{where}: the loss's reduction is 'none'; accepted: a reducing reduction for training "
                             f"(sum_over_batch_size, sum, mean, mean_with_sample_weight)")
    return spec


def _steps(value: Any, where: str) -> int | str:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value < 2**63:
        raise ModelFileError(f"{where} is {brief(value, 80)}; accepted: a positive integer")
    return "auto" if value == 1 else value  # Keras's default, one step a call: polynn's "auto" runs the same steps


class _Compile:
    """compile_config as polynn's compile() arguments."""

    def __init__(self, config: Any, output: str | None) -> None:
        where = "config.json compile_config"
        options = read_options(config, {
            "optimizer": Field(), "loss": Field(None), "metrics": Field(None), "weighted_metrics": Field(None),
            "loss_weights": Off(None, why="a Sequential model has one loss, weighted 1"),
            "steps_per_execution": Field(1),
            # how Keras runs the steps, not what they compute
            "run_eagerly": Ignored(), "jit_compile": Ignored(), "auto_scale_loss": Ignored(),
        }, "compile_config", where)
        if options["optimizer"] is None:
            raise ModelFileError(f"{where}.optimizer is null; accepted: a serialized Keras optimizer")
        self.keras_optimizer, self.optimizer = _saving._guarded(f"{where}.optimizer", optimizer,
                                                                options["optimizer"], f"{where}.optimizer")
        self.loss = _saving._guarded(f"{where}.loss", _loss, options["loss"], output, f"{where}.loss")
        self.metrics = _saving._guarded(f"{where}.metrics", _metrics, options["metrics"], output, f"{where}.metrics")
        self.weighted_metrics = _saving._guarded(f"{where}.weighted_metrics", _metrics, options["weighted_metrics"],
                                                 output, f"{where}.weighted_metrics")
        self.steps = _steps(options["steps_per_execution"], f"{where}.steps_per_execution")


# ---- the variables -------------------------------------------------------------------------


def _keras_version(metadata: Any) -> tuple[int, int]:
    version = metadata.get("keras_version") if isinstance(metadata, dict) else None
    match = re.match(r"(\d{1,4})\.(\d{1,4})(\.|$)", version) if isinstance(version, str) else None
    if match is None or match.group(1) != "3":
        raise ModelFileError(f"metadata.json's keras_version is {brief(version, 80)}; accepted: a Keras 3 version "
                             f"(3.x: polynn reads the files Keras 3 writes)")
    return 3, int(match.group(2))


def _check_variable(entry: Any, path: str, shape: tuple, dtypes: tuple[str, ...]) -> None:
    if tuple(entry.shape) != tuple(shape):
        raise ModelFileError(f"variable {path!r} has shape {brief(tuple(entry.shape), 80)}; the model needs "
                             f"{tuple(shape)}")
    if str(entry.dtype) not in dtypes:
        raise ModelFileError(f"variable {path!r} has dtype {brief(entry.dtype, 40)}; accepted: {', '.join(dtypes)}")


# The groups of Keras's weightless layers polynn reads (their datasets, if a Keras version writes
# any, are random-number state, which polynn draws afresh): ignored in a weights file.
_WEIGHTLESS_GROUP = re.compile(r"(dropout|activation|re_lu|leaky_re_lu|elu|softmax)(_[1-9][0-9]*)?")


def _group(keras_class: str, group: str) -> str:
    """Where a Keras layer's variables are, below layers/: its group, or its cell's (CELLS)."""
    return f"{group}/{CELLS[keras_class][0]}" if keras_class in CELLS else group


def _dense_groups(model: Any, specs: list) -> list[str | None]:
    """The Keras weight group of each of a polynn model's layers, as Keras names those of a Sequential of
    the same layers: its class in snake case, numbered per class in layer order (None for the weightless
    ones). A layer with weights must be one of Keras's classes polynn has (its own class, not a subclass)."""
    groups: list[str | None] = []
    owners = {owner for owner, _ in specs}
    counts: dict[str, int] = {}
    for index, spec in enumerate(model._layers):
        keras_class: str | None = type(spec).__name__
        if keras_class not in LAYER_CLASSES or getattr(layers, keras_class, None) is not type(spec):
            keras_class = None
        if keras_class is None and index in owners:
            raise ModelFileError(f"layer {model.layer_names()[index]!r} ({type(spec).__name__}) has weights whose "
                                 f"place in Keras's files polynn does not know; accepted: weights of Keras's layers "
                                 f"polynn has ({', '.join(LAYER_CLASSES)})")
        if keras_class is None:
            groups.append(None)
            continue
        group = snake_case(keras_class)
        count = counts.get(group, 0)
        counts[group] = count + 1
        groups.append(_group(keras_class, group if count == 0 else f"{group}_{count}")
                      if index in owners else None)
    return groups


def _weight_paths(model: Any, shape: tuple, groups: list[str | None] | None, file_variables: dict) -> list:
    """(path, shape, trainable) of each weight of `model` built for `shape`, in get_weights() order,
    checked against the file's variables under layers/: present, of that shape, nothing left over.
    `groups`: each layer's Keras group (from the config), or None to derive them from the model."""
    specs = _saving._guarded("config.json", model._weight_specs, tuple(shape))
    from_config = groups is not None
    groups = groups if groups is not None else _dense_groups(model, specs)
    out = []
    positions: dict[int, int] = {}
    for owner, ws in specs:
        k = positions.get(owner, 0)
        positions[owner] = k + 1
        path = f"layers/{groups[owner]}/vars/{k}"
        if path not in file_variables:
            raise ModelFileError(f"the file has no variable {path!r}, the {ws.name} of layer "
                                 f"{model.layer_names()[owner]!r}; accepted: a file of this model's weights")
        _check_variable(file_variables[path], path, ws.shape, _FLOAT_DTYPES)
        out.append((path, ws.shape, model._layers[owner].trainable and ws.trainable))
    expected = {path for path, _, _ in out}
    weighted = {groups[owner] for owner, _ in specs}
    for path in file_variables:
        if not path.startswith("layers/") or path in expected:
            continue
        group = path.split("/")[1]
        weightless = group in groups if from_config else bool(_WEIGHTLESS_GROUP.fullmatch(group))
        if group in weighted or not weightless:
            raise ModelFileError(f"the file's variable {brief(path, 120)} is no weight of the model; accepted: "
                                 f"exactly the variables of its layers (layers/<group>/vars/<i>)")
    return out


def _optimizer_paths(file_variables: dict) -> list[str]:
    """optimizer/vars/0 .. N-1, the only datasets accepted under optimizer/."""
    indices = []
    for path in file_variables:
        if path.startswith("optimizer/"):
            parts = path.split("/")
            if len(parts) != 3 or parts[1] != "vars" or not _VAR_INDEX.fullmatch(parts[2]):
                raise ModelFileError(f"the file's variable {brief(path, 120)} is not one of a Keras optimizer's; "
                                     f"accepted: optimizer/vars/<i>")
            indices.append(int(parts[2]))
    indices.sort()
    if indices != list(range(len(indices))):
        raise ModelFileError(f"the optimizer's variables are numbered {brief(indices, 80)}; accepted: 0 to N-1")
    return [f"optimizer/vars/{i}" for i in indices]


class _OptimizerState:
    """Where each of a Keras optimizer's variables goes: the iteration count, the learning rate,
    and each slot (trainable weight k, slot name) of polynn's optimizer."""

    def __init__(self, keras_class: str, spec: Any, weights: list, file_variables: dict,
                 version: tuple[int, int]) -> None:
        paths = _optimizer_paths(file_variables)
        trainable = [k for k, (_, _, is_trainable) in enumerate(weights) if is_trainable]
        names = spec.slot_names()
        layout: list[tuple[str, Any]] = [("iterations", None)]
        if not isinstance(spec.learning_rate, optimizers.LearningRateSchedule):
            layout.append(("learning_rate", None))
        base = len(layout)
        slots: list[tuple[str, Any]] = [
            ("slot", (k, name)) for block in OPTIMIZER_SLOTS[keras_class] for k in trainable for name in block
            if name in names]
        if keras_class == "Nadam":
            product = [("u_product", None)]
            slots = slots + product if version >= _NADAM_PRODUCT_LAST_FROM else product + slots
        layout += slots
        loaded = len(paths) == len(layout)
        self.layout = list(zip(paths, layout)) if loaded else []
        if not loaded and len(paths) not in (0, base):
            # Keras too starts such an optimizer afresh (load_own_variables warns and skips).
            warnings.warn(f"the file's {keras_class} optimizer has {len(paths)} variables where one over the "
                          f"model's {len(trainable)} trainable weights has {len(layout)} (a layer frozen or "
                          f"unfrozen after training?); its state is not loaded and training starts it afresh, "
                          f"as Keras does", UserWarning, stacklevel=4)
        for path, (what, detail) in self.layout:
            entry = file_variables[path]
            if what == "iterations":
                if tuple(entry.shape) != () or not np.issubdtype(np.dtype(str(entry.dtype)), np.integer):
                    raise ModelFileError(f"variable {path!r}, the optimizer's iteration count, has shape "
                                         f"{brief(tuple(entry.shape), 80)} and dtype {brief(entry.dtype, 40)}; "
                                         f"accepted: an integer scalar")
            elif what in ("learning_rate", "u_product"):
                _check_variable(entry, path, (), _FLOAT_DTYPES)
            else:
                _check_variable(entry, path, weights[detail[0]][1], _FLOAT_DTYPES)

    def read(self, keras_file: Any, allow_nonfinite: bool, spec: Any) -> tuple[Any, int, dict]:
        """Read the state; returns (optimizer spec with the stored learning rate, iterations, slots
        {(weight, name): array})."""
        iterations, slots = 0, {}
        for path, (what, detail) in self.layout:
            value = np.asarray(keras_file.read(path))
            if what == "iterations":
                iterations = int(value)
                if not 0 <= iterations <= optimizers.MAX_ITERATIONS:
                    raise ModelFileError(f"variable {path!r}, the iteration count, is {iterations}; accepted: "
                                         f"0 to {optimizers.MAX_ITERATIONS}")
            elif what == "learning_rate" and np.asarray(spec.learning_rate, value.dtype) != value:
                # Kept from the config where it is the variable's value rounded to the variable's
                # dtype (a float32 variable holds 0.01 as 0.009999999776...): the config's is exact.
                spec = _saving._guarded(f"variable {path!r} (the learning rate)",
                                        functools.partial(dataclasses.replace, spec, learning_rate=float(value)))
            elif what == "slot":
                slots[detail] = (path, value)
        _saving._check_finite({path: array for path, array in slots.values()}, allow_nonfinite)
        return spec, iterations, {key: array for key, (_, array) in slots.items()}


# ---- entry points --------------------------------------------------------------------------


def model_from_keras(keras_file: Any, model_class: type, backend: str | None = None, dtype: str | None = None,
                     allow_nonfinite: bool = False, **session: Any) -> Any:
    """A Sequential of `model_class` from a Keras 3 .keras archive: its architecture, its weights,
    and, when it was compiled, compiled as Keras was (optimizer with its hyperparameters, loss,
    metrics, steps_per_execution) with the optimizer's state and iteration count restored, so fit()
    continues as Keras's would. backend: compile()'s (None: the default); dtype: None compiles
    in the layers' dtype policy (float32 or float64). allow_nonfinite: load NaN or infinite weights
    and slots as they are (else refused). Refusals: ModelFileError or UnknownComponentError."""
    allow_nonfinite = _saving._check_flag(allow_nonfinite, "load_model")
    if getattr(keras_file, "kind", None) != "archive":
        raise ModelFileError("this is a Keras weights file (.weights.h5), without the model's architecture; "
                             "accepted: a .keras archive, or model.load_weights() for a weights file")
    version = _keras_version(keras_file.metadata)
    arch = _Architecture(keras_file.config, model_class)
    compiled = None if arch.compile_config is None else _Compile(arch.compile_config, arch.output_name)
    model, variables = arch.model, keras_file.variables
    weights = [] if arch.shape is None else _weight_paths(model, arch.shape, arch.groups, variables)
    state = None if compiled is None else _OptimizerState(compiled.keras_optimizer, compiled.optimizer, weights,
                                                          variables, version)
    if arch.shape is None and any(path.startswith("layers/") for path in variables):
        raise ModelFileError("the file holds layer weights, but its config gives no input shape to build the model "
                             "with; accepted: an InputLayer or a build_input_shape")
    # Everything is checked: now the arrays.
    arrays = {path: np.asarray(keras_file.read(path)) for path, _, _ in weights}
    _saving._check_finite(arrays, allow_nonfinite)
    if arch.shape is not None:
        model.build(arch.shape)
    if compiled is None or state is None:
        if arrays:
            model.set_weights(list(arrays.values()))
        return model
    spec, iterations, slots = state.read(keras_file, allow_nonfinite, compiled.optimizer)
    model.compile(optimizer=spec, loss=compiled.loss, metrics=compiled.metrics,
                  weighted_metrics=compiled.weighted_metrics, backend=backend, dtype=dtype or arch.dtype,
                  steps_per_execution=compiled.steps, **session)
    # Set after compile(), as polynn's own loader does: weights kept across compile() pass through float32.
    if arrays:
        model.set_weights(list(arrays.values()))
    runtime = model._compiled.runtime
    if runtime is not None and slots:
        names = spec.slot_names()
        current = runtime.get_optimizer_state()
        for (k, name), value in slots.items():
            current[k][names.index(name)] = value
        runtime.set_optimizer_state([[np.asarray(s, dtype=model.dtype) for s in weight] for weight in current])
    model._iterations = iterations
    return model


def load_weights_from_keras(model: Any, keras_file: Any, allow_nonfinite: bool = False) -> None:
    """Set `model`'s weights from a Keras .weights.h5 file (save_weights) or a .keras archive, laid
    out as Keras lays out a Sequential of the same layers: its Dense layers' kernels and biases, in
    order, of the same shapes. The model's input shape must be known (built, or declared)."""
    allow_nonfinite = _saving._check_flag(allow_nonfinite, "load_weights")
    if getattr(keras_file, "kind", None) not in ("weights", "archive"):
        raise ModelFileError(f"the file is of kind {brief(getattr(keras_file, 'kind', None), 40)}; accepted: a "
                             f"Keras .weights.h5 file or .keras archive")
    shape = model.input_shape
    if shape is None:
        raise ModelFileError("the model's input shape is unknown, and a Keras weights file does not say it; "
                             "accepted: a model built first (model.build(input_shape)) or declaring its input")
    weights = _weight_paths(model, shape, None, keras_file.variables)
    arrays = {path: np.asarray(keras_file.read(path)) for path, _, _ in weights}
    _saving._check_finite(arrays, allow_nonfinite)
    model.set_weights(list(arrays.values()))
