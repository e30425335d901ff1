"""Model files: one safetensors file holding the spec, weights, optimizer state and metadata.

save() and save_weights() pick the format by the file's name (polynn._formats): Keras 3's under
'.keras' and '.weights.h5' (written by polynn._keras_writing), this module's safetensors format
under any other name but Keras's legacy '.h5' and '.hdf5', which are refused.

The polynn documents travel as JSON strings in the safetensors "__metadata__" map:
  format          "polynn.model" or "polynn.weights" (the file's magic), format_version "1";
  model           {"config": Sequential.get_config(), "input_shape": [...] or null};
  compile         {"optimizer", "loss", "metrics", "weighted_metrics", "steps_per_execution"},
                  components as registry names and configs (model files of compiled models only;
                  "weighted_metrics" may be absent, as in files written before it existed);
  state           {"iterations", "learning_rate" (a callback's override or null), "seed",
                  "optimizer_state" (whether slots are stored)} (model files only);
  info            {"polynn_version", "backend", "engine_version", "dtype"}.
Tensors are "weights.<layer>.<weight>" and "optimizer.<layer>.<weight>.<slot>". Loading names
only registry entries and never unpickles or imports anything; the header (capped in size) and every
document are checked against the model they describe and the file's size before any array the file
describes is allocated, and only the tensors needed are then read. Weights and slots must be finite
unless the caller passes allow_nonfinite=True. Every refusal names the file, in a bounded message.
"""

from __future__ import annotations

import contextlib
import json
import math
import numbers
import os
import re
import warnings
from typing import Any

import numpy as np

from . import _files, _formats, _registry, _safetensors, losses, optimizers, plugins
from . import metrics as metric_specs
from ._spec import check_bool, resolve
from ._version import __version__
from .errors import InvalidArgumentError, ModelFileError, PolynnError, UnknownComponentError

__all__ = ["save_model", "save_weights", "load_model", "load_weights", "MODEL_FORMAT", "WEIGHTS_FORMAT", "MAX_LAYERS"]

MODEL_FORMAT = "polynn.model"
WEIGHTS_FORMAT = "polynn.weights"
FORMAT_VERSION = "1"
_KEYS = {
    MODEL_FORMAT: {"format", "format_version", "model", "compile", "state", "info"},
    WEIGHTS_FORMAT: {"format", "format_version", "model", "info"},
}
_FLOAT_CODES = {"float32": "F32", "float64": "F64"}
# The most layers a model file may ask for, so a small file cannot make polynn build and compile a
# model for minutes (docs/performance.md, "Keras files: caps and costs").
MAX_LAYERS = 2**14
# A registry name: never a dotted module path, a file path or anything that could be imported.
_COMPONENT_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,99}")


# ---- writing ---------------------------------------------------------------------------


def _weight_names(model, input_shape) -> list[tuple[str, tuple]]:
    """(tensor name, shape) of each weight, in the model's weight order."""
    keys = model._weight_keys()  # automatic names: a given name= does not change a file's keys
    return [(f"weights.{keys[index]}.{ws.name}", tuple(ws.shape))
            for index, ws in model._weight_specs(tuple(input_shape))]


def _json(value) -> str:
    return json.dumps(value, separators=(",", ":"), allow_nan=False)


def _model_doc(model) -> dict:
    shape = model.input_shape
    return {"config": model.get_config(), "input_shape": None if shape is None else list(shape)}


def _info(model) -> dict:
    compiled = model._compiled
    if compiled is None:
        return {"polynn_version": __version__, "backend": None, "engine_version": None, "dtype": "float32"}
    return {"polynn_version": __version__, "backend": compiled.backend.name,
            "engine_version": compiled.backend.engine_version(), "dtype": compiled.dtype}


def _serialize_id(identifier, kind: str):
    """A metric as compile() got it: a name stays a name (so 'accuracy' resolves again from the
    data's shapes); an object or a function becomes its registry entry (a function only when it
    was registered by name, else a clear error)."""
    if isinstance(identifier, str):
        return identifier
    return _registry.serialize(resolve(kind, identifier))


def _atomic_write(path, tensors: dict, metadata: dict) -> None:
    """Write beside the target, flush and fsync, then rename over it: a crash leaves the old file."""
    _files.atomic_write(path, lambda stream: _safetensors.write(stream, tensors, metadata))


def _check_overwrite(path, overwrite: bool, verb: str) -> str:
    """Before anything is written: overwrite is a bool, the name one polynn writes (its format
    returned: _formats.SAFETENSORS, KERAS_MODEL or KERAS_WEIGHTS), the file absent unless overwrite."""
    overwrite = check_bool(verb, "overwrite", overwrite)
    kind = _formats.check_writable_name(path, verb)
    name = _files.filepath(path)
    if not overwrite and os.path.exists(name):
        raise InvalidArgumentError("filepath", _files.describe(name),
                                   "a path that does not exist yet, or overwrite=True")
    return kind


def _keras_writer():
    """polynn._keras_writing, imported when a Keras file is written (it is not needed otherwise)."""
    from . import _keras_writing

    return _keras_writing


def _weight_tensors(model) -> dict:
    if model.input_shape is None:
        return {}
    weights = model.get_weights()
    dtype = model._compiled.dtype if model._compiled is not None else "float32"
    return {name: np.asarray(w, dtype=dtype) for (name, _), w in zip(_weight_names(model, model.input_shape), weights)}


def save_model(model, path, overwrite: bool = True) -> None:
    """Write the whole model (spec, weights, optimizer state, training position) to `path`: a Keras
    3 archive under a '.keras' name, else polynn's safetensors file."""
    if _check_overwrite(path, overwrite, "save") == _formats.KERAS_MODEL:
        _keras_writer().save_model(model, path)
        return
    compiled = model._compiled
    tensors = _weight_tensors(model)
    metadata = {"format": MODEL_FORMAT, "format_version": FORMAT_VERSION,
                "model": _json(_model_doc(model)), "info": _json(_info(model))}
    if compiled is None:
        metadata["compile"] = _json(None)
        metadata["state"] = _json(None)
    else:
        metric_ids, weighted_ids = model._metric_ids_to_save()
        metadata["compile"] = _json({
            "optimizer": _serialize_id(compiled.optimizer, "optimizer"),
            "loss": None if compiled.loss is None else _serialize_id(compiled.loss, "loss"),
            # metric objects with the names they log under (a loaded model's are new objects)
            "metrics": [_serialize_id(m, "metric") for m in metric_ids],
            "weighted_metrics": [_serialize_id(m, "metric") for m in weighted_ids],
            "steps_per_execution": compiled.steps_per_execution,
        })
        runtime = compiled.runtime
        has_slots = runtime is not None and bool(tensors)
        if has_slots:
            slot_names = compiled.optimizer.slot_names()
            for name, slots in zip(list(tensors), runtime.get_optimizer_state()):
                for slot_name, value in zip(slot_names, slots):
                    tensors[f"optimizer{name[len('weights'):]}.{slot_name}"] = np.asarray(value, dtype=compiled.dtype)
        metadata["state"] = _json({"iterations": int(model._iterations), "learning_rate": compiled.learning_rate,
                                   "seed": int(compiled.seed), "optimizer_state": has_slots})
    _atomic_write(path, tensors, metadata)


def save_weights(model, path, overwrite: bool = True) -> None:
    """Write only the weights to `path`: Keras 3's weights file under a '.weights.h5' name, else
    polynn's safetensors file (with the spec they belong to, for checking)."""
    if _check_overwrite(path, overwrite, "save_weights") == _formats.KERAS_WEIGHTS:
        _keras_writer().save_weights(model, path)
        return
    metadata = {"format": WEIGHTS_FORMAT, "format_version": FORMAT_VERSION,
                "model": _json(_model_doc(model)), "info": _json(_info(model))}
    _atomic_write(path, _weight_tensors(model), metadata)


# ---- reading ---------------------------------------------------------------------------

# A file refusal's message, path aside, is cut to this: a hostile file cannot make it grow.
_MESSAGE_LIMIT = 1000


def _read(path, expect) -> tuple[dict[str, np.ndarray], Any]:
    """Read a polynn file in two steps: its header and documents, which expect(docs, kind, header)
    checks and turns into (the tensor names to read, its result), and only then those tensors."""
    with _files.reading(path) as (stream, size):
        return _read_stream(stream, size, expect)


def _read_stream(stream, size: int, expect) -> tuple[dict[str, np.ndarray], Any]:
    # Keras's files never get here: polynn._model_files sends them to the Keras reader.
    header = _safetensors.read_header(stream, size)
    docs, kind = _documents(header.metadata)
    names, result = expect(docs, kind, header)
    return {name: _safetensors.read_tensor(stream, header, name) for name in names}, result


def _documents(metadata: dict[str, str]) -> tuple[dict[str, Any], str]:
    """(documents, format) from a header's __metadata__, every document parsed and its names checked."""
    kind = metadata.get("format")
    if kind not in _KEYS:
        raise ModelFileError(
            f"not a polynn file: its __metadata__ 'format' is {_safetensors.brief(kind)}; "
            f"accepted: {MODEL_FORMAT!r} or {WEIGHTS_FORMAT!r}")
    version = metadata.get("format_version")
    if version != FORMAT_VERSION:
        raise ModelFileError(f"format_version {_safetensors.brief(version)}; this polynn reads {FORMAT_VERSION!r}")
    if set(metadata) != _KEYS[kind]:
        raise ModelFileError(f"a {kind} file's __metadata__ has keys {_safetensors.brief(sorted(metadata))}; "
                             f"accepted: exactly {sorted(_KEYS[kind])}")
    docs = {key: _safetensors.parse_json(metadata[key], f"__metadata__[{key!r}]")
            for key in _KEYS[kind] - {"format", "format_version"}}
    for key, doc in docs.items():
        _check_names(doc, key)
    return docs, kind


def _check_names(value, where: str) -> None:
    """Every class_name in a document must be a plain registry name, never a module path."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if "class_name" in item:
                _check_component_name(item["class_name"], where)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _check_component_name(name, where: str) -> None:
    if not isinstance(name, str) or not _COMPONENT_NAME.fullmatch(name):
        raise ModelFileError(
            f"{where} names the component {_safetensors.brief(name)}; accepted: a registered component name "
            f"(letters, digits and '_'); model files never name modules or paths")


def _doc(docs: dict, key: str, fields: set, nullable: bool = False, optional: frozenset = frozenset()) -> Any:
    """The parsed JSON object docs[key], checked to hold `fields` (None where nullable)."""
    doc = docs[key]
    if doc is None and nullable:
        return None
    if not isinstance(doc, dict) or not fields <= set(doc) <= fields | optional:
        found = _safetensors.brief(sorted(doc)) if isinstance(doc, dict) else type(doc).__name__
        also = f" (and optionally {sorted(optional)})" if optional else ""
        raise ModelFileError(f"__metadata__[{key!r}] has {found}; "
                             f"accepted: an object with exactly {sorted(fields)}{also}")
    return doc


def _int(value, what: str, low: int = 0, high: int = 2**63) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value < high:
        raise ModelFileError(f"{what} is {_safetensors.brief(value)}; accepted: an integer in [{low}, {high})")
    return value


def _guarded(what: str, build, *args):
    """Build specs from file documents: bad values become ModelFileError naming where they came from."""
    try:
        return build(*args)
    except ModelFileError:
        raise
    except UnknownComponentError as error:
        # A dotted or path-like name is refused as such: it can only be an attempt to name code.
        _check_component_name(error.value, what)
        raise
    except PolynnError as error:
        raise ModelFileError(f"{what}: {error}") from None
    except (TypeError, ValueError, KeyError, IndexError, AttributeError, OverflowError, RecursionError) as error:
        raise ModelFileError(f"{what} is malformed: {type(error).__name__}: {error}") from None


def _model_from_doc(docs: dict, model_class):
    doc = _doc(docs, "model", {"config", "input_shape"})
    layers = doc["config"].get("layers") if isinstance(doc["config"], dict) else None
    if isinstance(layers, list) and len(layers) > MAX_LAYERS:
        raise ModelFileError(f"the model config lists {len(layers)} layers; accepted: at most {MAX_LAYERS} (a file "
                             f"may not make polynn build and compile a model of any size)")
    model = _guarded("the model config", model_class.from_config, doc["config"])
    shape = doc["input_shape"]
    if shape is not None:
        if not isinstance(shape, list) or not shape or len(shape) > _safetensors.MAX_RANK:
            raise ModelFileError(f"the model's input_shape is {_safetensors.brief(shape)}; "
                                 f"accepted: a list of positive integers or null")
        shape = tuple(_int(d, "an input_shape dimension", 1) for d in shape)
        declared = model.layers[0].declared_input_shape if model.layers else None
        if declared is not None and tuple(declared) != shape:
            raise ModelFileError(f"the model's input_shape {list(shape)} "
                                 f"contradicts its first layer's {list(declared)}")
    return model, shape if shape is not None else model.input_shape


def _expected_weights(model, shape) -> list[tuple[str, tuple]]:
    if shape is None:
        return []
    return _guarded("the model config", _weight_names, model, shape)


def _check_tensors(entries: dict, expected: list[tuple[str, tuple]], codes: set, what: str) -> list[str]:
    """The names of `expected`, once the header's `entries` match them exactly: names, shapes, dtypes."""
    names = [name for name, _ in expected]
    missing = [name for name in names if name not in entries]
    unexpected = sorted(set(entries) - set(names))
    if missing or unexpected:
        raise ModelFileError(
            f"{what} do not match the model: missing {_safetensors.brief(missing)}, unexpected "
            f"{_safetensors.brief(unexpected)}; accepted: exactly {_safetensors.brief(names)}")
    for name, shape in expected:
        entry = entries[name]
        if tuple(entry.shape) != tuple(shape):
            raise ModelFileError(f"tensor {name!r} has shape {entry.shape}; the model spec needs {tuple(shape)}")
        if entry.code not in codes:
            raise ModelFileError(f"tensor {name!r} has dtype {entry.code}; accepted: {', '.join(sorted(codes))}")
    return names


def _check_finite(tensors: dict[str, np.ndarray], allow_nonfinite: bool) -> None:
    """Refuse NaN and infinities in the weights and slots read, first tensor first, unless allowed."""
    if allow_nonfinite:
        return
    for name, array in tensors.items():
        finite = np.isfinite(array)
        if not finite.all():
            bad = int(finite.size - np.count_nonzero(finite))
            raise ModelFileError(
                f"tensor {name!r} holds {bad} non-finite values (NaN or infinity) of {array.size}; accepted: "
                f"finite values, or allow_nonfinite=True to load them as they are")


def _check_flag(allow_nonfinite, owner: str) -> bool:
    return check_bool(owner, "allow_nonfinite", allow_nonfinite)


def _choose_backend(requested, recorded):
    """The backend asked for, else the recorded one if installed, else None (compile's default)."""
    if requested is not None:
        return requested
    for entry in plugins.backend_entries():
        if entry.name == recorded and entry.engine_installed():
            return recorded
    # stacklevel: the caller of polynn.load_model, through load_model's two wrappers.
    warnings.warn(f"the model was trained on backend {recorded!r}, which is not installed here; "
                  f"loading it on the default backend (pass backend= to choose)", RuntimeWarning, stacklevel=6)
    return None


def _bounded(message: str) -> str:
    if len(message) <= _MESSAGE_LIMIT:
        return message
    return f"{message[:_MESSAGE_LIMIT]}... (message cut: {len(message)} characters)"


@contextlib.contextmanager
def _naming(path):
    """Every polynn error raised while reading `path` and acting on what it says names the file,
    with a message of bounded length; its class stays (UnknownComponentError, say)."""
    try:
        yield
    except PolynnError as error:
        where = _files.describe(_files.filepath(path))
        message = str(error)
        named = _bounded(message) if where in message or repr(os.fspath(path)) in message \
            else f"{where}: {_bounded(message)}"
        if type(error) is ModelFileError:
            raise ModelFileError(named) from error
        # Other classes keep their identity and attributes (callers catch UnknownComponentError).
        error.args = (named,)
        raise


def load_model(path, model_class, backend: str | None = None, dtype: str | None = None,
               allow_nonfinite: bool = False, **session: Any):
    """A model saved by save_model, compiled (if it was) with its weights and training state, built
    with model_class.from_config (polynn.models.Sequential, which imports this module)."""
    allow_nonfinite = _check_flag(allow_nonfinite, "load_model")
    with _naming(path):
        return _load_model(path, model_class, backend, dtype, allow_nonfinite, session)


class _ModelPlan:
    """What a model file's documents say, checked before any tensor is read."""

    def __init__(self, docs: dict, kind: str, header, model_class) -> None:
        if kind != MODEL_FORMAT:
            raise ModelFileError(f"the file holds weights only ({kind}); load it with model.load_weights()")
        self.model, self.shape = _model_from_doc(docs, model_class)
        info = _doc(docs, "info", {"polynn_version", "backend", "engine_version", "dtype"})
        recorded_dtype = info["dtype"]
        if not isinstance(recorded_dtype, str) or recorded_dtype not in _FLOAT_CODES:
            raise ModelFileError(f"the recorded dtype is {_safetensors.brief(recorded_dtype)}; "
                                 f"accepted: {', '.join(_FLOAT_CODES)}")
        if info["backend"] is not None and not isinstance(info["backend"], str):
            raise ModelFileError(f"the recorded backend is {_safetensors.brief(info['backend'])}; "
                                 f"accepted: a backend name or null")
        self.recorded_dtype, self.recorded_backend = recorded_dtype, info["backend"]
        compile_doc = _doc(docs, "compile", {"optimizer", "loss", "metrics", "steps_per_execution"}, nullable=True,
                           optional=frozenset({"weighted_metrics"}))
        state = _doc(docs, "state", {"iterations", "learning_rate", "seed", "optimizer_state"}, nullable=True)
        if (compile_doc is None) != (state is None):
            raise ModelFileError(
                "__metadata__ 'compile' and 'state' must be both null (an uncompiled model) or both set")
        self.compiled = compile_doc is not None

        self.weights = _expected_weights(self.model, self.shape)
        expected = list(self.weights)
        self.slots: list[list[str]] = []
        if compile_doc is not None:
            self._check_compile(compile_doc, state)
            if self.optimizer_state:
                slot_names = self.optimizer.slot_names()
                self.slots = [[f"optimizer{name[len('weights'):]}.{slot}" for slot in slot_names]
                              for name, _ in self.weights]
                expected += [(slot, s) for (_, s), slots in zip(self.weights, self.slots) for slot in slots]
        self.names = _check_tensors(header.entries, expected, {_FLOAT_CODES[recorded_dtype]}, "the file's tensors")

    def _check_compile(self, compile_doc: dict, state: dict) -> None:
        self.optimizer, self.loss, self.metrics, self.weighted_metrics = _compile_components(compile_doc)
        if not isinstance(state["optimizer_state"], bool):
            raise ModelFileError(f"state.optimizer_state is {_safetensors.brief(state['optimizer_state'])}; "
                                 f"accepted: true or false")
        self.optimizer_state = state["optimizer_state"]
        # Training refuses to pass MAX_ITERATIONS, so every count a save writes loads again.
        self.iterations = _int(state["iterations"], "state.iterations", 0, optimizers.MAX_ITERATIONS + 1)
        self.seed = _int(state["seed"], "state.seed")
        learning_rate = state["learning_rate"]
        if learning_rate is not None:
            if isinstance(learning_rate, bool) or not isinstance(learning_rate, numbers.Real) \
                    or not math.isfinite(learning_rate) or learning_rate < 0:
                raise ModelFileError(f"state.learning_rate is {_safetensors.brief(learning_rate)}; "
                                     f"accepted: null or a finite number >= 0")
            if not isinstance(self.optimizer.learning_rate, numbers.Real):
                raise ModelFileError("state.learning_rate overrides a learning-rate schedule; accepted: null there")
            learning_rate = float(learning_rate)
        self.learning_rate = learning_rate
        steps = compile_doc["steps_per_execution"]
        self.steps = steps if steps == "auto" else _int(steps, "compile.steps_per_execution", 1)


def _load_model(path, model_class, backend, dtype, allow_nonfinite, session):
    def expect(docs, kind, header):
        plan = _ModelPlan(docs, kind, header, model_class)
        return plan.names, plan

    tensors, plan = _read(path, expect)
    _check_finite(tensors, allow_nonfinite)
    model, weights = plan.model, plan.weights
    if weights:
        _guarded("the model config", model.build, plan.shape)
    if not plan.compiled:
        if weights:
            model.set_weights([tensors[name] for name, _ in weights])
        return model

    model.compile(optimizer=plan.optimizer, loss=plan.loss, metrics=plan.metrics,
                  weighted_metrics=plan.weighted_metrics,
                  backend=_choose_backend(backend, plan.recorded_backend),
                  dtype=dtype or plan.recorded_dtype, seed=plan.seed, steps_per_execution=plan.steps, **session)
    # Set after compile(): weights kept across compile() pass through float32 there, which would
    # round a float64 file.
    if weights:
        model.set_weights([tensors[name] for name, _ in weights])
    runtime = model._compiled.runtime
    if runtime is not None and plan.optimizer_state:
        runtime.set_optimizer_state([[tensors[slot].astype(model.dtype) for slot in slots] for slots in plan.slots])
    model._iterations = plan.iterations
    model._compiled.learning_rate = plan.learning_rate
    return model


def _compile_components(doc: dict):
    for key in ("optimizer", "loss"):
        if isinstance(doc[key], str):
            _check_component_name(doc[key], f"compile.{key}")
    if doc["optimizer"] is None:
        raise ModelFileError("compile.optimizer is null; accepted: an optimizer name or {class_name, config}")
    optimizer = _guarded("compile.optimizer", optimizers.get, doc["optimizer"])
    loss = None if doc["loss"] is None else _guarded("compile.loss", losses.get, doc["loss"])
    return optimizer, loss, _metric_ids(doc["metrics"], "compile.metrics"), \
        _metric_ids(doc.get("weighted_metrics", []), "compile.weighted_metrics")


def _metric_ids(entries, what: str) -> list:
    if not isinstance(entries, list):
        raise ModelFileError(f"{what} is {_safetensors.brief(entries)}; accepted: a list")
    metrics = []
    for entry in entries:
        if isinstance(entry, str):
            # A metric given by name keeps its name: it labels the logs.
            _check_component_name(entry, what)
            if entry.lower() not in ("accuracy", "acc"):
                _guarded(what, metric_specs.get, entry)
            metrics.append(entry)
        else:
            metrics.append(_guarded(what, metric_specs.get, entry))
    return metrics


def load_weights(model, path, allow_nonfinite: bool = False) -> None:
    """Set `model`'s weights from a weights file or a model file; names and shapes must match."""
    allow_nonfinite = _check_flag(allow_nonfinite, "load_weights")
    with _naming(path):
        _load_weights(model, path, allow_nonfinite)


def _load_weights(model, path, allow_nonfinite: bool) -> None:
    def expect(docs, kind, header):
        shape = model.input_shape
        if shape is None:
            _, shape = _model_from_doc(docs, type(model))
            if shape is None:
                raise ModelFileError("the file holds no weights and the model's input shape is unknown")
        weights = _expected_weights(model, shape)
        stored = {name: entry for name, entry in header.entries.items() if name.startswith("weights.")}
        return _check_tensors(stored, weights, {"F16", "F32", "F64"}, "the file's weights"), (shape, weights)

    tensors, (shape, weights) = _read(path, expect)
    _check_finite(tensors, allow_nonfinite)
    if model.input_shape is None:
        model.build(shape)
    model.set_weights([tensors[name] for name, _ in weights])
