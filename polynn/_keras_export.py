"""polynn models in Keras 3's spelling: a .keras archive's config.json and the variables of its weights file.

Pure translation (no h5py, no Keras): polynn._keras_writing turns what this gives into files.
The config is what Keras 3.15.1's serialize_keras_object writes for the same model (KERAS_VERSION):
"module", "class_name", "config", "registered_name" for every object, an InputLayer with
batch_shape, build_config, a DTypePolicy of the model's dtype on every layer, the layers' names,
and the compile_config (optimizer with its schedule, loss, metrics, weighted_metrics,
steps_per_execution). Keras 3.15.1 leaves three settings out of its own configs although its
classes take them (Huber's delta, CosineSimilarity's axis, Identity's gain): they are written, so
Keras builds the same object. polynn's seed and session settings (backend, device,
nonfinite_loss) are not written: Keras draws its own random streams.

The variables are Keras's: "layers/<class>[_n]/vars/<i>" (the layer's class name in snake case,
numbered per class, as Keras's saving_lib paths its layers; a recurrent layer's in its cell's group,
"layers/<class>[_n]/cell/vars/<i>", its own group empty), and "optimizer/vars/<i>": the
iteration count (int64), the learning rate when it is not a schedule, then the slots of the
trainable weights in the order Keras's optimizer builds them (Nadam's running product last).

Everything is checked before anything is returned: a component Keras lacks (a plugin's, a user
function) or a setting Keras cannot express raises ModelFileError naming it and what is accepted.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from . import activations as _act
from . import constraints as _con
from . import initializers as _ini
from . import layers as _lay
from . import losses as _los
from . import metrics as _met
from . import optimizers as _opt
from . import regularizers as _reg
from . import schedules as _sch
from ._keras_components import CELLS, OPTIMIZER_SLOTS, snake_case
from ._registry import source_of
from ._safetensors import brief
from ._spec import FunctionField
from .errors import ModelFileError

__all__ = ["KERAS_VERSION", "Group", "metadata", "model_config", "model_dtype", "variable_groups"]

# The Keras release whose .keras layout and configs this module writes (metadata.json says so).
KERAS_VERSION = "3.15.1"
_INSTEAD = ("save under another name (such as 'model.safetensors') to write polynn's own format, which "
            "holds every polynn component")


class Group(NamedTuple):
    """One group of a Keras weights file: "<path>/vars" (the root "vars" when path is ""), its
    "name" attribute, and its datasets "0", "1", ... in order."""

    path: str
    name: str
    arrays: list[np.ndarray]


def metadata() -> dict[str, str]:
    """metadata.json, as Keras writes it."""
    return {"keras_version": KERAS_VERSION, "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S")}


def _obj(module: str, class_name: str, config: Any) -> dict[str, Any]:
    return {"module": module, "class_name": class_name, "config": config, "registered_name": None}


def _policy(dtype: str) -> dict[str, Any]:
    return _obj("keras", "DTypePolicy", {"name": dtype})


def _describe(component: Any) -> str:
    cls = type(component)
    function = getattr(component, "function", None)
    if function is not None:
        name = getattr(function, "__name__", None) or type(function).__name__
        return f"{cls.__name__} of the user function {name!r}"
    source = source_of(cls)
    origin = "" if source == "polynn" else f", registered by {source}"
    return f"{cls.__name__} ({cls.__module__}.{cls.__qualname__}{origin})"


def _refuse(where: str, component: Any, accepted: list[str]) -> ModelFileError:
    return ModelFileError(f"{where} {_describe(component)} has no Keras 3 counterpart; accepted in Keras files: "
                          f"{', '.join(sorted(set(accepted)))}; or {_INSTEAD}")


def _unexpressible(where: str, component: Any, setting: str, accepted: str) -> ModelFileError:
    return ModelFileError(f"{where} {type(component).__name__} with {setting} cannot be written in Keras's "
                          f"spelling; accepted: {accepted}; or {_INSTEAD}")


def _storable(name: str, what: str) -> str:
    """A name as Keras's weights file holds it, in a UTF-8 HDF5 attribute: without NUL characters or
    unpaired surrogates."""
    try:
        name.encode("utf-8")
        encodable = True
    except UnicodeEncodeError:
        encodable = False
    if "\0" in name or not encodable:
        raise ModelFileError(f"{what} {brief(name, 80)} holds a NUL character or an unpaired surrogate, which "
                             f"Keras's weights file (UTF-8 HDF5 attributes) cannot hold; accepted: a name of "
                             f"other characters (name=); or {_INSTEAD}")
    return name


def _plain(value: Any) -> Any:
    """A field's value as JSON: tuples become lists."""
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def _floats(component: Any, *names: str) -> dict[str, Any]:
    return {name: float(getattr(component, name)) for name in names}


def _lookup(component: Any, table: dict, where: str, also: tuple[str, ...] = ()) -> tuple:
    """The table's entry for the component's exact class (a subclass, a plugin's, is not Keras's)."""
    entry = table.get(type(component))
    if entry is None:
        raise _refuse(where, component, [keras for keras, *_ in table.values()] + list(also))
    return entry


# ---- initializers, regularizers, constraints ------------------------------------------

_INITIALIZERS: dict[type, tuple[str, Callable[[Any], dict]]] = {
    _ini.Zeros: ("Zeros", lambda c: {}),
    _ini.Ones: ("Ones", lambda c: {}),
    _ini.Constant: ("Constant", lambda c: _floats(c, "value")),
    _ini.RandomUniform: ("RandomUniform", lambda c: {"seed": None, **_floats(c, "minval", "maxval")}),
    _ini.RandomNormal: ("RandomNormal", lambda c: {"seed": None, **_floats(c, "mean", "stddev")}),
    _ini.TruncatedNormal: ("TruncatedNormal", lambda c: {"seed": None, **_floats(c, "mean", "stddev")}),
    _ini.VarianceScaling: ("VarianceScaling", lambda c: {"seed": None, **_floats(c, "scale"), "mode": c.mode,
                                                         "distribution": c.distribution, "input_axes": None,
                                                         "output_axes": None}),
    **{cls: (cls.__name__, lambda c: {"seed": None, "input_axes": None, "output_axes": None})
       for cls in (_ini.GlorotUniform, _ini.GlorotNormal, _ini.HeUniform, _ini.HeNormal, _ini.LecunUniform,
                   _ini.LecunNormal)},
    _ini.Orthogonal: ("Orthogonal", lambda c: {"seed": None, **_floats(c, "gain")}),
    _ini.Identity: ("Identity", lambda c: _floats(c, "gain")),
}

_REGULARIZERS: dict[type, tuple[str, Callable[[Any], dict]]] = {
    _reg.L1: ("L1", lambda c: _floats(c, "l1")),
    _reg.L2: ("L2", lambda c: _floats(c, "l2")),
    _reg.L1L2: ("L1L2", lambda c: _floats(c, "l1", "l2")),
}

_CONSTRAINTS: dict[type, tuple[str, Callable[[Any], dict]]] = {
    _con.MaxNorm: ("MaxNorm", lambda c: {**_floats(c, "max_value"), "axis": _plain(c.axis)}),
    _con.NonNeg: ("NonNeg", lambda c: {}),
    _con.UnitNorm: ("UnitNorm", lambda c: {"axis": _plain(c.axis)}),
    _con.MinMaxNorm: ("MinMaxNorm", lambda c: {**_floats(c, "min_value", "max_value", "rate"), "axis": _plain(c.axis)}),
}


def _simple(component: Any, table: dict, module: str, where: str) -> dict | None:
    if component is None:
        return None
    class_name, config = _lookup(component, table, where)
    return _obj(module, class_name, config(component))


# ---- activations ----------------------------------------------------------------------

_ACTIVATION_NAMES = {
    _act.Linear: "linear", _act.Sigmoid: "sigmoid", _act.Tanh: "tanh", _act.SELU: "selu",
    _act.Softplus: "softplus", _act.Softsign: "softsign", _act.SiLU: "silu", _act.ReLU6: "relu6",
    _act.Exponential: "exponential", _act.HardSigmoid: "hard_sigmoid", _act.HardSiLU: "hard_silu",
    _act.Mish: "mish",
}
# Activations with settings: the plain function's name at Keras's defaults, else one of Keras's
# activation layers (ReLU, ELU, LeakyReLU, Softmax), which Keras takes as a layer's activation.
_ACTIVATION_LAYER_NAMES = {"ReLU": "re_lu", "ELU": "elu", "LeakyReLU": "leaky_re_lu", "Softmax": "softmax"}


class _ActivationLayer(NamedTuple):
    class_name: str
    config: dict[str, Any]


def _activation_entry(spec: Any, where: str) -> str | _ActivationLayer:
    """The Keras name of an activation, or the Keras activation layer that computes it."""
    cls = type(spec)
    if cls in _ACTIVATION_NAMES:
        return _ACTIVATION_NAMES[cls]
    if cls is _act.ReLU:
        if spec.plain:
            return "relu"
        if spec.negative_slope < 0 or spec.threshold < 0:
            raise _unexpressible(where, spec, f"negative_slope={spec.negative_slope}, threshold={spec.threshold}",
                                 "negative_slope >= 0 and threshold >= 0 (Keras's ReLU layer)")
        return _ActivationLayer("ReLU", {"max_value": None if spec.max_value is None else float(spec.max_value),
                                         "negative_slope": float(spec.negative_slope),
                                         "threshold": float(spec.threshold)})
    if cls is _act.ELU:
        return "elu" if spec.alpha == 1.0 else _ActivationLayer("ELU", {"alpha": float(spec.alpha)})
    if cls is _act.LeakyReLU:
        if spec.negative_slope == 0.2:
            return "leaky_relu"
        if spec.negative_slope < 0:
            raise _unexpressible(where, spec, f"negative_slope={spec.negative_slope}",
                                 "negative_slope >= 0 (Keras's LeakyReLU layer)")
        return _ActivationLayer("LeakyReLU", {"negative_slope": float(spec.negative_slope)})
    if cls is _act.Softmax:
        return "softmax" if spec.axis == -1 else _ActivationLayer("Softmax", {"axis": spec.axis})
    if cls is _act.GELU:
        if spec.approximate:
            raise _unexpressible(where, spec, "approximate=True", "GELU() (Keras saves gelu by name only, which "
                                 "is its exact form, and has no GELU layer)")
        return "gelu"
    if cls is _act.LogSoftmax:
        if spec.axis != -1:
            raise _unexpressible(where, spec, f"axis={spec.axis}", "axis=-1 (Keras saves log_softmax by name "
                                 "only and has no LogSoftmax layer)")
        return "log_softmax"
    raise _refuse(where, spec, [*_ACTIVATION_NAMES.values(), "relu", "elu", "leaky_relu", "softmax", "gelu",
                                "log_softmax"])


def _activation(spec: Any, dtype: str, where: str) -> str | dict:
    entry = _activation_entry(spec, where)
    if isinstance(entry, str):
        return entry
    config = {"name": _ACTIVATION_LAYER_NAMES[entry.class_name], "trainable": True, "dtype": _policy(dtype),
              **entry.config}
    return _obj("keras.layers", entry.class_name, config)


# ---- layers -----------------------------------------------------------------------------

_LAYERS: dict[type, tuple[str]] = {_lay.Dense: ("Dense",), _lay.Dropout: ("Dropout",),
                                   _lay.Activation: ("Activation",),
                                   _lay.BatchNormalization: ("BatchNormalization",),
                                   _lay.LayerNormalization: ("LayerNormalization",),
                                   _lay.Embedding: ("Embedding",), _lay.SimpleRNN: ("SimpleRNN",),
                                   _lay.LSTM: ("LSTM",), _lay.GRU: ("GRU",)}
# convolution, pooling and reshaping: Keras's classes of the same names
_SPATIAL = (_lay.Conv1D, _lay.Conv2D, _lay.MaxPooling1D, _lay.MaxPooling2D, _lay.AveragePooling1D,
            _lay.AveragePooling2D, _lay.GlobalAveragePooling1D, _lay.GlobalAveragePooling2D, _lay.GlobalMaxPooling1D,
            _lay.GlobalMaxPooling2D, _lay.Flatten, _lay.Reshape)
_LAYERS.update({cls: (cls.__name__,) for cls in _SPATIAL})


class _Layer(NamedTuple):
    """One of the model's layers as Keras has it: its class, name, path in the weights file, and
    its weights' positions in the model's weight list."""

    spec: Any
    class_name: str
    name: str
    path: str
    weights: list[int]


def _keras_layers(model: Any) -> list[_Layer]:
    """The model's layers other than its Input, each as Keras names and paths it."""
    names = model.layer_names()
    shape = model.input_shape
    owned: dict[int, list[int]] = {}  # each layer's weights' positions
    for k, (owner, _) in enumerate([] if shape is None else model._weight_specs(tuple(shape))):
        owned.setdefault(owner, []).append(k)
    counts: dict[str, int] = {}
    out = []
    for index, (spec, name) in enumerate(zip(model._layers, names)):
        if type(spec) is _lay.Input:
            continue
        (class_name,) = _lookup(spec, _LAYERS, f"layer {index} ({brief(name, 80)}):", ("InputLayer",))
        _storable(name, f"layer {index}'s name")
        snake = snake_case(class_name)
        count = counts.get(snake, 0)
        counts[snake] = count + 1
        path = f"layers/{snake}" if count == 0 else f"layers/{snake}_{count}"
        out.append(_Layer(spec, class_name, name, path, owned.get(index, [])))
    return out


def _input_name(model: Any) -> str:
    """The InputLayer's name: the one given to polynn's Input, else Keras's 'input_layer' (made unique)."""
    first = model._layers[0] if model._layers else None
    if type(first) is _lay.Input and first.given_name is not None:
        return first.given_name
    taken = {name for spec, name in zip(model._layers, model.layer_names()) if type(spec) is not _lay.Input}
    name, count = "input_layer", 0
    while name in taken:
        count += 1
        name = f"input_layer_{count}"
    return name


def _dense(spec: _lay.Dense, base: dict, dtype: str, where: str) -> dict:
    config = dict(base)
    if spec.activity_regularizer is not None:
        config["activity_regularizer"] = _simple(spec.activity_regularizer, _REGULARIZERS, "keras.regularizers",
                                                 f"{where} activity_regularizer")
    config.update({
        "units": spec.units,
        "activation": _activation(spec.activation, dtype, f"{where} activation"),
        "use_bias": spec.use_bias,
        "kernel_initializer": _simple(spec.kernel_initializer, _INITIALIZERS, "keras.initializers",
                                      f"{where} kernel_initializer"),
        "bias_initializer": _simple(spec.bias_initializer, _INITIALIZERS, "keras.initializers",
                                    f"{where} bias_initializer"),
        "kernel_regularizer": _simple(spec.kernel_regularizer, _REGULARIZERS, "keras.regularizers",
                                      f"{where} kernel_regularizer"),
        "bias_regularizer": _simple(spec.bias_regularizer, _REGULARIZERS, "keras.regularizers",
                                    f"{where} bias_regularizer"),
        "kernel_constraint": _simple(spec.kernel_constraint, _CONSTRAINTS, "keras.constraints",
                                     f"{where} kernel_constraint"),
        "bias_constraint": _simple(spec.bias_constraint, _CONSTRAINTS, "keras.constraints",
                                   f"{where} bias_constraint"),
        "quantization_config": None,
    })
    return config


def _gamma_beta(spec: Any, where: str) -> dict:
    """A normalization layer's gamma and beta components, as Keras orders them in its config."""
    return {
        "beta_initializer": _simple(spec.beta_initializer, _INITIALIZERS, "keras.initializers",
                                    f"{where} beta_initializer"),
        "gamma_initializer": _simple(spec.gamma_initializer, _INITIALIZERS, "keras.initializers",
                                     f"{where} gamma_initializer"),
        **{f"{w}_regularizer": _simple(getattr(spec, f"{w}_regularizer"), _REGULARIZERS, "keras.regularizers",
                                       f"{where} {w}_regularizer") for w in ("beta", "gamma")},
        **{f"{w}_constraint": _simple(getattr(spec, f"{w}_constraint"), _CONSTRAINTS, "keras.constraints",
                                      f"{where} {w}_constraint") for w in ("beta", "gamma")},
    }


def _batch_normalization(spec: _lay.BatchNormalization, base: dict, where: str) -> dict:
    gamma_beta = _gamma_beta(spec, where)
    return {**base, "axis": spec.axis, "momentum": float(spec.momentum), "epsilon": float(spec.epsilon),
            "center": spec.center, "scale": spec.scale,
            "beta_initializer": gamma_beta.pop("beta_initializer"),
            "gamma_initializer": gamma_beta.pop("gamma_initializer"),
            "moving_mean_initializer": _simple(spec.moving_mean_initializer, _INITIALIZERS, "keras.initializers",
                                               f"{where} moving_mean_initializer"),
            "moving_variance_initializer": _simple(spec.moving_variance_initializer, _INITIALIZERS,
                                                   "keras.initializers", f"{where} moving_variance_initializer"),
            **gamma_beta, "synchronized": False, "renorm": False, "renorm_clipping": None, "renorm_momentum": 0.99}


def _layer_normalization(spec: _lay.LayerNormalization, base: dict, where: str) -> dict:
    # A built Keras LayerNormalization saves its axes as a sorted list.
    axes = sorted(spec.axis) if isinstance(spec.axis, tuple) else [spec.axis]
    return {**base, "axis": axes, "epsilon": float(spec.epsilon), "center": spec.center, "scale": spec.scale,
            "rms_scaling": spec.rms_scaling, **_gamma_beta(spec, where)}
def _weights_config(spec: Any, base: dict, dtype: str, where: str) -> dict:
    """The keys Keras's Conv layers write after their own: activation, bias, initializers, regularizers
    and constraints (Keras's BaseConv.get_config order)."""
    return {
        **base,
        "activation": _activation(spec.activation, dtype, f"{where} activation"),
        "use_bias": spec.use_bias,
        **{f"{w}_initializer": _simple(getattr(spec, f"{w}_initializer"), _INITIALIZERS, "keras.initializers",
                                       f"{where} {w}_initializer") for w in ("kernel", "bias")},
        **{f"{w}_regularizer": _simple(getattr(spec, f"{w}_regularizer"), _REGULARIZERS, "keras.regularizers",
                                       f"{where} {w}_regularizer") for w in ("kernel", "bias", "activity")},
        **{f"{w}_constraint": _simple(getattr(spec, f"{w}_constraint"), _CONSTRAINTS, "keras.constraints",
                                      f"{where} {w}_constraint") for w in ("kernel", "bias")},
    }


def _spatial_config(spec: Any, base: dict, dtype: str, where: str) -> dict:
    """A convolution, pooling or reshaping layer's config, as Keras 3.15's get_config writes it."""
    if isinstance(spec, (_lay.Conv1D, _lay.Conv2D)):
        return _weights_config(spec, {
            **base, "filters": spec.filters, "kernel_size": _plain(spec.kernel_size), "strides": _plain(spec.strides),
            "padding": spec.padding, "data_format": spec.data_format, "dilation_rate": _plain(spec.dilation_rate),
            "groups": spec.groups}, dtype, where)
    if isinstance(spec, (_lay.MaxPooling1D, _lay.MaxPooling2D, _lay.AveragePooling1D, _lay.AveragePooling2D)):
        return {**base, "pool_size": _plain(spec.pool_size), "padding": spec.padding, "strides": _plain(spec.strides),
                "data_format": spec.data_format}
    if isinstance(spec, _lay.Flatten):
        return {**base, "data_format": spec.data_format}
    if isinstance(spec, _lay.Reshape):
        return {**base, "target_shape": _plain(spec.target_shape)}
    return {**base, "data_format": spec.data_format, "keepdims": spec.keepdims}


def _components(spec: Any, where: str, kinds: tuple[tuple[str, dict, str], ...], *weights: str) -> dict:
    """The initializer, regularizer and constraint of each weight named, in that order per kind."""
    config: dict[str, Any] = {}
    for suffix, table, module in kinds:
        for weight in weights:
            key = f"{weight}_{suffix}"
            config[key] = _simple(getattr(spec, key), table, module, f"{where} {key}")
    return config


_INITIALIZER = ("initializer", _INITIALIZERS, "keras.initializers")
_REGULARIZER = ("regularizer", _REGULARIZERS, "keras.regularizers")
_CONSTRAINT = ("constraint", _CONSTRAINTS, "keras.constraints")


def _embedding(spec: _lay.Embedding, base: dict, where: str) -> dict:
    return {**base, "input_dim": spec.input_dim, "output_dim": spec.output_dim,
            **_components(spec, where, (_INITIALIZER, _REGULARIZER), "embeddings"),
            **_components(spec, where, (_REGULARIZER,), "activity"),
            **_components(spec, where, (_CONSTRAINT,), "embeddings"),
            "mask_zero": False, "quantization_config": None}


def _recurrent_activation(spec: Any, where: str) -> str:
    """A recurrent layer's activation: by name only (Keras's cell keeps no activation layer)."""
    entry = _activation_entry(spec, where)
    if not isinstance(entry, str):
        raise _unexpressible(where, spec, "settings other than Keras's defaults",
                             "an activation Keras names alone (tanh, sigmoid, relu, ...) for a recurrent layer")
    return entry


def _recurrent(spec: Any, class_name: str, base: dict, where: str) -> dict:
    """Keras's config of SimpleRNN, LSTM or GRU, its keys in Keras's order."""
    config = {**base, "return_sequences": spec.return_sequences, "return_state": False,
              "go_backwards": spec.go_backwards, "stateful": False, "unroll": spec.unroll,
              "zero_output_for_mask": False, "units": spec.units,
              "activation": _recurrent_activation(spec.activation, f"{where} activation")}
    if class_name != "SimpleRNN":
        config["recurrent_activation"] = _recurrent_activation(spec.recurrent_activation,
                                                               f"{where} recurrent_activation")
    config["use_bias"] = spec.use_bias
    config.update(_components(spec, where, (_INITIALIZER,), "kernel", "recurrent", "bias"))
    if class_name == "LSTM":
        config["unit_forget_bias"] = spec.unit_forget_bias
    config.update(_components(spec, where, (_REGULARIZER,), "kernel", "recurrent", "bias", "activity"))
    config.update(_components(spec, where, (_CONSTRAINT,), "kernel", "recurrent", "bias"))
    config.update({"dropout": 0.0, "recurrent_dropout": 0.0})
    if class_name == "GRU":
        config["reset_after"] = spec.reset_after
    if class_name != "SimpleRNN":  # Keras 3.15's SimpleRNN leaves its seed out of its config
        config["seed"] = spec.seed
    return config


def _layer_config(layer: _Layer, dtype: str, input_shape: tuple | None) -> dict:
    spec = layer.spec
    where = f"layer {brief(layer.name, 80)}'s"
    base = {"name": layer.name, "trainable": spec.trainable, "dtype": _policy(dtype)}
    built = None if input_shape is None else {"input_shape": [None, *input_shape]}
    if type(spec) in _SPATIAL:
        out = _obj("keras.layers", layer.class_name, _spatial_config(spec, base, dtype, where))
        # Keras writes a build_config for the layers it builds from their input (not for those built at init).
        if built is not None and isinstance(spec, (_lay.Conv1D, _lay.Conv2D, _lay.Flatten)):
            out["build_config"] = built
        return out
    if layer.class_name in ("Dense", "Embedding", *CELLS):
        if layer.class_name == "Dense":
            config = _dense(spec, base, dtype, where)
        elif layer.class_name == "Embedding":
            config = _embedding(spec, base, where)
        else:
            config = _recurrent(spec, layer.class_name, base, where)
        out = _obj("keras.layers", layer.class_name, config)
        if built is not None:
            out["build_config"] = built
        return out
    build = {} if built is None else {"build_config": built}
    if layer.class_name == "BatchNormalization":
        return {**_obj("keras.layers", "BatchNormalization", _batch_normalization(spec, base, where)), **build}
    if layer.class_name == "LayerNormalization":
        return {**_obj("keras.layers", "LayerNormalization", _layer_normalization(spec, base, where)), **build}
    if layer.class_name == "Dropout":
        return _obj("keras.layers", "Dropout", {**base, "rate": float(spec.rate), "seed": spec.seed,
                                                "noise_shape": _plain(spec.noise_shape)})
    return _obj("keras.layers", "Activation",
                {**base, "activation": _activation(spec.activation, dtype, f"{where} activation")})


def model_dtype(model: Any) -> str:
    """The dtype the model computes and keeps its weights in: compile()'s, float32 before it."""
    return model.dtype or "float32"


def _input_dtype(model: Any, dtype: str) -> str:
    """The InputLayer's dtype: the one the model's Input records (int32 for indices), else the model's."""
    given = [spec.dtype for spec in model._layers if type(spec) is _lay.Input and spec.dtype is not None]
    return given[0] if given else dtype


def model_config(model: Any) -> dict[str, Any]:
    """config.json of a .keras archive of `model` (Keras's serialize_keras_object of the Sequential)."""
    dtype = model_dtype(model)
    shape = model.input_shape
    layers_config: list[dict] = []
    if shape is not None:
        layers_config.append(_obj("keras.layers", "InputLayer", {
            "batch_shape": [None, *shape], "dtype": _input_dtype(model, dtype), "sparse": False, "ragged": False,
            "name": _input_name(model), "optional": False}))
    inputs: dict[int, tuple] = {}
    if shape is not None:
        current = tuple(shape)
        for index, spec in enumerate(model._layers):
            inputs[index] = current
            current = spec.output_shape(current)
    keras_layers = _keras_layers(model)
    positions = [i for i, spec in enumerate(model._layers) if type(spec) is not _lay.Input]
    for index, layer in zip(positions, keras_layers):
        layers_config.append(_layer_config(layer, dtype, inputs.get(index)))
    config: dict[str, Any] = {"name": model.name, "trainable": model.trainable, "dtype": _policy(dtype),
                              "layers": layers_config}
    if shape is not None:
        config["build_input_shape"] = [None, *shape]
    out = _obj("keras", "Sequential", config)
    if shape is not None:
        out["build_config"] = {"input_shape": [None, *shape]}
    out["compile_config"] = _compile_config(model, dtype)
    return out


# ---- losses and metrics ---------------------------------------------------------------

def _axis_minus_one(spec: Any, where: str) -> dict:
    if spec.axis != -1:
        raise _unexpressible(where, spec, f"axis={spec.axis}", f"axis=-1 (Keras's {type(spec).__name__} takes no "
                             f"other)")
    return {}


_LOSSES: dict[type, tuple[str, str, Callable[[Any, str], dict]]] = {
    _los.MeanSquaredError: ("MeanSquaredError", "mean_squared_error", lambda c, w: {}),
    _los.MeanAbsoluteError: ("MeanAbsoluteError", "mean_absolute_error", lambda c, w: {}),
    _los.MeanAbsolutePercentageError: ("MeanAbsolutePercentageError", "mean_absolute_percentage_error",
                                       lambda c, w: {}),
    _los.MeanSquaredLogarithmicError: ("MeanSquaredLogarithmicError", "mean_squared_logarithmic_error",
                                       lambda c, w: {}),
    _los.BinaryCrossentropy: ("BinaryCrossentropy", "binary_crossentropy", lambda c, w: {
        "from_logits": c.from_logits, **_floats(c, "label_smoothing"), "axis": c.axis}),
    _los.CategoricalCrossentropy: ("CategoricalCrossentropy", "categorical_crossentropy", lambda c, w: {
        "from_logits": c.from_logits, **_floats(c, "label_smoothing"), "axis": c.axis}),
    _los.SparseCategoricalCrossentropy: ("SparseCategoricalCrossentropy", "sparse_categorical_crossentropy",
                                         lambda c, w: {**_axis_minus_one(c, w), "from_logits": c.from_logits,
                                                       "ignore_class": None}),
    _los.Huber: ("Huber", "huber_loss", lambda c, w: _floats(c, "delta")),
    _los.LogCosh: ("LogCosh", "log_cosh", lambda c, w: {}),
    _los.Hinge: ("Hinge", "hinge", lambda c, w: {}),
    _los.SquaredHinge: ("SquaredHinge", "squared_hinge", lambda c, w: {}),
    _los.CategoricalHinge: ("CategoricalHinge", "categorical_hinge", lambda c, w: {}),
    _los.KLDivergence: ("KLDivergence", "kl_divergence", lambda c, w: {}),
    _los.Poisson: ("Poisson", "poisson", lambda c, w: {}),
    _los.CosineSimilarity: ("CosineSimilarity", "cosine_similarity", lambda c, w: {"axis": c.axis}),
}


def _loss(spec: Any) -> dict:
    where = "the loss"
    class_name, name, config = _lookup(spec, _LOSSES, where)
    return _obj("keras.losses", class_name, {"name": name, "reduction": spec.reduction, **config(spec, where)})


_METRICS: dict[type, tuple[str, Callable[[Any, str], dict]]] = {
    _met.Accuracy: ("Accuracy", lambda c, w: {}),
    _met.BinaryAccuracy: ("BinaryAccuracy", lambda c, w: _floats(c, "threshold")),
    _met.CategoricalAccuracy: ("CategoricalAccuracy", lambda c, w: {}),
    _met.SparseCategoricalAccuracy: ("SparseCategoricalAccuracy", lambda c, w: {}),
    _met.MeanSquaredError: ("MeanSquaredError", lambda c, w: {}),
    _met.MeanAbsoluteError: ("MeanAbsoluteError", lambda c, w: {}),
    _met.RootMeanSquaredError: ("RootMeanSquaredError", lambda c, w: {}),
    _met.MeanAbsolutePercentageError: ("MeanAbsolutePercentageError", lambda c, w: {}),
    _met.TopKCategoricalAccuracy: ("TopKCategoricalAccuracy", lambda c, w: {"k": c.k}),
    _met.SparseTopKCategoricalAccuracy: ("SparseTopKCategoricalAccuracy", lambda c, w: {"k": c.k}),
    _met.BinaryCrossentropy: ("BinaryCrossentropy", lambda c, w: {
        **_axis_minus_one(c, w), "from_logits": c.from_logits, **_floats(c, "label_smoothing")}),
    _met.CategoricalCrossentropy: ("CategoricalCrossentropy", lambda c, w: {
        "from_logits": c.from_logits, **_floats(c, "label_smoothing"), "axis": c.axis}),
    _met.SparseCategoricalCrossentropy: ("SparseCategoricalCrossentropy", lambda c, w: {
        "from_logits": c.from_logits, "ignore_class": None, "axis": c.axis}),
    _met.Precision: ("Precision", lambda c, w: {**_floats(c, "thresholds"), "top_k": None, "class_id": c.class_id}),
    _met.Recall: ("Recall", lambda c, w: {**_floats(c, "thresholds"), "top_k": None, "class_id": c.class_id}),
    _met.AUC: ("AUC", lambda c, w: {"num_thresholds": c.num_thresholds, "curve": c.curve,
                                    "summation_method": c.summation_method, "multi_label": False,
                                    "num_labels": None, "label_weights": None, "from_logits": c.from_logits}),
}


def _metric(identifier: Any, dtype: str) -> str | dict:
    """A compile() metric as Keras's compile_config holds it, logging under the name polynn logs it."""
    if isinstance(identifier, str):
        if identifier.lower() in ("accuracy", "acc"):
            return identifier.lower()  # Keras picks the accuracy from the data's shapes, as polynn
        spec, name = _met.get(identifier), identifier
    else:
        spec = _met.get(identifier)
        name = spec.given_name or (FunctionField.display_name(spec) if isinstance(spec, _met.CustomMetric)
                                   else spec.auto_name or spec.name)
    where = f"the metric {brief(name, 80)}:"
    class_name, config = _lookup(spec, _METRICS, where)
    return _obj("keras.metrics", class_name, {"name": name, "dtype": dtype, **config(spec, where)})


# ---- optimizers and schedules ---------------------------------------------------------

_SCHEDULES: dict[type, tuple[str, Callable[[Any], dict]]] = {
    _sch.ExponentialDecay: ("ExponentialDecay", lambda c: {
        **_floats(c, "initial_learning_rate"), "decay_steps": c.decay_steps, **_floats(c, "decay_rate"),
        "staircase": c.staircase, "name": "ExponentialDecay"}),
    # Keras casts the boundaries to the step's integer type; floor(b) compares with integer steps as b does.
    _sch.PiecewiseConstantDecay: ("PiecewiseConstantDecay", lambda c: {
        "boundaries": [int(min(math.floor(b), _opt.MAX_ITERATIONS)) for b in c.boundaries],
        "values": [float(v) for v in c.values], "name": "PiecewiseConstant"}),
    _sch.InverseTimeDecay: ("InverseTimeDecay", lambda c: {
        **_floats(c, "initial_learning_rate"), "decay_steps": c.decay_steps, **_floats(c, "decay_rate"),
        "staircase": c.staircase, "name": "InverseTimeDecay"}),
    _sch.PolynomialDecay: ("PolynomialDecay", lambda c: {
        **_floats(c, "initial_learning_rate"), "decay_steps": c.decay_steps,
        **_floats(c, "end_learning_rate", "power"), "cycle": c.cycle, "name": "PolynomialDecay"}),
    _sch.CosineDecay: ("CosineDecay", lambda c: {
        **_floats(c, "initial_learning_rate"), "decay_steps": c.decay_steps, **_floats(c, "alpha"),
        "name": "CosineDecay", "warmup_target": None if c.warmup_target is None else float(c.warmup_target),
        "warmup_steps": c.warmup_steps}),
}

# polynn optimizer -> (Keras class, Keras's default name, its own config keys); its slots are in
# the order _keras_components.OPTIMIZER_SLOTS gives, as the importer reads them.
_OPTIMIZERS: dict[type, tuple[str, str, tuple[str, ...]]] = {
    _opt.SGD: ("SGD", "sgd", ("momentum", "nesterov")),
    _opt.Adam: ("Adam", "adam", ("beta_1", "beta_2", "epsilon", "amsgrad")),
    _opt.AdamW: ("AdamW", "adam_w", ("beta_1", "beta_2", "epsilon", "amsgrad")),
    _opt.RMSprop: ("RMSprop", "rm_sprop", ("rho", "momentum", "epsilon", "centered")),
    _opt.Adagrad: ("Adagrad", "adagrad", ("initial_accumulator_value", "epsilon")),
    _opt.Adadelta: ("Adadelta", "adadelta", ("rho", "epsilon")),
    _opt.Adamax: ("Adamax", "adamax", ("beta_1", "beta_2", "epsilon")),
    _opt.Nadam: ("Nadam", "nadam", ("beta_1", "beta_2", "epsilon")),
}


def _number(value: Any) -> Any:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value


def _optimizer(spec: Any, learning_rate: float | None) -> dict:
    class_name, name, keys = _lookup(spec, _OPTIMIZERS, "the optimizer")
    if isinstance(spec.learning_rate, _sch.LearningRateSchedule):
        schedule, config = _lookup(spec.learning_rate, _SCHEDULES, "the optimizer's learning-rate schedule")
        rate: Any = _obj("keras.optimizers.schedules", schedule, config(spec.learning_rate))
    else:
        rate = float(spec.learning_rate if learning_rate is None else learning_rate)
    optional = {key: None if getattr(spec, key) is None else float(getattr(spec, key))
                for key in ("weight_decay", "clipnorm", "global_clipnorm", "clipvalue")}
    return _obj("keras.optimizers", class_name, {
        "name": name, "learning_rate": rate, **optional, "use_ema": False, "ema_momentum": 0.99,
        "ema_overwrite_frequency": None, "loss_scale_factor": None, "gradient_accumulation_steps": None,
        **{key: _number(getattr(spec, key)) for key in keys}})


def _compile_config(model: Any, dtype: str) -> dict[str, Any]:
    compiled = model._compiled
    if compiled is None:
        return {}
    metric_ids, weighted_ids = model._metric_ids_to_save()
    metrics = [_metric(m, dtype) for m in metric_ids]
    weighted = [_metric(m, dtype) for m in weighted_ids]
    steps = compiled.steps_per_execution
    return {
        "optimizer": _optimizer(compiled.optimizer, compiled.learning_rate),
        "loss": None if compiled.loss is None else _loss(compiled.loss),
        "loss_weights": None,
        "metrics": metrics or None,
        "weighted_metrics": weighted or None,
        "run_eagerly": False,
        # "auto" (an epoch per engine call unless callbacks need steps) trains as Keras's 1 does.
        "steps_per_execution": 1 if steps == "auto" else steps,
        "jit_compile": False,
    }


# ---- the weights file's variables -----------------------------------------------------

def _nadam_product(spec: _opt.Nadam, iterations: int) -> float:
    """Keras's Nadam u_product after `iterations` updates: the running product P_t of polynn's Nadam."""
    if iterations == 0:
        return 1.0
    head = min(iterations, _opt._NADAM_TERMS)
    tail = max(iterations - _opt._NADAM_TERMS, 0)
    return float(_opt._nadam_products(spec.beta_1)[head - 1] * np.power(spec.beta_1, float(tail)))


def _optimizer_group(model: Any, dtype: str) -> Group:
    compiled = model._compiled
    spec = compiled.optimizer
    class_name, name, _ = _lookup(spec, _OPTIMIZERS, "the optimizer")
    calls = OPTIMIZER_SLOTS[class_name]
    arrays = [np.asarray(model.iterations, dtype=np.int64)]
    if not isinstance(spec.learning_rate, _sch.LearningRateSchedule):
        rate = spec.learning_rate if compiled.learning_rate is None else compiled.learning_rate
        arrays.append(np.asarray(rate, dtype=dtype))
    shape = model.input_shape
    if shape is not None:
        specs = model._weight_specs(tuple(shape))
        slot_names = spec.slot_names()
        runtime = compiled.runtime
        if runtime is not None:
            state = runtime.get_optimizer_state()
        else:
            state = [[np.full(ws.shape, value) for value in spec.slot_initial_values()] for _, ws in specs]
        # Keras's optimizer holds slots for the trainable weights only.
        trainable = [slots for (owner, ws), slots in zip(specs, state)
                     if model._layers[owner].trainable and ws.trainable]
        for call in calls:
            present = [slot_names.index(slot) for slot in call if slot in slot_names]
            for slots in trainable:
                arrays.extend(np.asarray(slots[k], dtype=dtype) for k in present)
        if type(spec) is _opt.Nadam:
            arrays.append(np.asarray(_nadam_product(spec, model.iterations), dtype=dtype))
    return Group("optimizer", name, arrays)


def variable_groups(model: Any, *, activations: bool = True) -> list[Group]:
    """The groups of the Keras weights file of `model`, in the order Keras writes them: the model's
    root, each layer (and the activation layer it holds, if any), then the compiled optimizer.
    activations=False (weights-only files) leaves out the activation layers' groups, which hold no
    variables, so that an activation Keras lacks does not stop the weights from being written."""
    dtype = model_dtype(model)
    weights = model.get_weights() if model.input_shape is not None else []
    groups = [Group("", _storable(model.name, "the model's name"), [])]
    for layer in _keras_layers(model):
        arrays = [np.asarray(weights[k], dtype=dtype) for k in layer.weights]
        if layer.class_name in CELLS:
            attribute, cell = CELLS[layer.class_name]
            groups.append(Group(layer.path, layer.name, []))
            groups.append(Group(f"{layer.path}/{attribute}", cell, arrays))
            continue
        groups.append(Group(layer.path, layer.name, arrays))
        if not hasattr(layer.spec, "activation"):
            continue
        try:
            entry = _activation_entry(layer.spec.activation, f"layer {brief(layer.name, 80)}'s activation")
        except ModelFileError:
            if activations:
                raise
            continue
        if isinstance(entry, _ActivationLayer):
            groups.append(Group(f"{layer.path}/activation", _ACTIVATION_LAYER_NAMES[entry.class_name], []))
    if model._compiled is not None:
        groups.append(_optimizer_group(model, dtype))
    return groups
