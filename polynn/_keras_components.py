"""Keras 3 component configs (layers, activations, initializers, ..., losses, metrics, optimizers) as polynn specs.

Only Keras's own built-in classes and functions that polynn has are read, each by a table that
names its polynn spec and every key of its Keras config: a key either fills a polynn field (Keras's
default when the key is absent), or names a Keras feature polynn lacks, accepted only at the value
that turns it off, or is dropped because it cannot change what the model computes (a component's
name, an initializer's seed). Nothing is imported or called by a name from the file: a class or
function outside the tables, a module that is not Keras's, a registered (custom) name, a Lambda or
any other serialized code is refused with a polynn error that says where, what and what is accepted.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from . import activations, constraints, initializers, layers, losses, metrics, optimizers, regularizers, schedules
from ._safetensors import brief
from .errors import ModelFileError, UnknownComponentError

__all__ = ["Field", "Off", "Ignored", "REQUIRED", "read_object", "read_options", "unknown", "check_class_name",
           "LAYER_CLASSES", "layer", "input_layer", "batch_shape", "policy", "activation", "initializer",
           "regularizer", "constraint", "loss", "metric", "optimizer", "ACTIVATION_FUNCTIONS", "OPTIMIZER_CLASSES",
           "OPTIMIZER_SLOTS", "snake_case", "CELLS"]

REQUIRED = object()  # a Field without a Keras default: the key must be present

# A Keras class or function name as a table key: never a path or a module.
_CLASS_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,99}")

# Where each kind of Keras object lives (serialize_keras_object's "module": the public API's).
MODULES = {
    "layer": ("keras.layers",),
    "activation": ("keras.activations",),
    "initializer": ("keras.initializers",),
    "regularizer": ("keras.regularizers",),
    "constraint": ("keras.constraints",),
    "schedule": ("keras.optimizers.schedules",),
    "optimizer": ("keras.optimizers",),
    "loss": ("keras.losses", "keras.metrics"),
    "metric": ("keras.metrics", "keras.losses"),
    "dtype policy": ("keras", "keras.dtype_policies"),
    "model": ("keras", "keras.models"),
}
# Keras 3.15 serializes a built-in function in compile_config as {"module": "builtins",
# "class_name": "function", "config": <its name>, "registered_name": "function"} and resolves it
# by that name alone among its own functions: read the same way here, by the tables only.
_FUNCTION_MODULES = ("builtins",)
_OBJECT_KEYS = {"module", "class_name", "config", "registered_name", "shared_object_id", "build_config"}
_CODE_CLASSES = {"Lambda": "a Lambda layer holds Python code",
                 "__lambda__": "a serialized Python lambda is code"}


class Field:
    """A Keras key that fills the polynn field `name` (the key's own name when None), with
    Keras's `default` when absent, through `convert(value, where)` when given."""

    def __init__(self, default: Any = REQUIRED, name: str | None = None,
                 convert: Callable[[Any, str], Any] | None = None) -> None:
        self.default, self.name, self.convert = default, name, convert


class Off:
    """A Keras feature polynn lacks: accepted only at `values`, those that leave it off."""

    def __init__(self, *values: Any, why: str) -> None:
        self.values, self.why = values, why


class Ignored:
    """A key read and dropped, whatever its value: it cannot change what the model computes."""


def _same(value: Any, accepted: Any) -> bool:
    """JSON equality that keeps null, booleans and numbers apart (false is not 0 here)."""
    if accepted is None or isinstance(accepted, bool):
        return value is accepted
    if isinstance(value, bool) or value is None:
        return False
    return bool(value == accepted)


def _json(value: Any) -> str:
    """A config value as JSON writes it (null, true, false), else its repr, bounded."""
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    return brief(value, 80)


def read_options(config: dict, table: dict[str, Any], owner: str, where: str) -> dict[str, Any]:
    """The polynn keyword arguments `config` (a Keras get_config() dict) gives under `table`."""
    if not isinstance(config, dict):
        raise ModelFileError(f"{where}: the config of {owner} is {brief(config, 80)}; accepted: an object")
    unknown = sorted(str(key) for key in config if key not in table)
    if unknown:
        raise ModelFileError(f"{where}: {owner} has the config keys {brief(unknown, 120)}, which polynn does not "
                             f"know; accepted: {', '.join(sorted(table))}")
    out: dict[str, Any] = {}
    for key, rule in table.items():
        present = key in config
        value = config.get(key)
        if isinstance(rule, Field):
            if not present:
                if rule.default is REQUIRED:
                    raise ModelFileError(f"{where}: {owner} has no {key!r}; accepted: a config with {key!r}")
                value = rule.default
            out[rule.name or key] = rule.convert(value, f"{where}.{key}") if rule.convert else value
        elif isinstance(rule, Off):
            if present and not any(_same(value, v) for v in rule.values):
                accepted = " or ".join(f"{key}={_json(v)}" for v in rule.values)
                raise ModelFileError(f"{where}: {owner} has {key}={_json(value)}, which polynn does not support "
                                     f"({rule.why}); accepted: {accepted}")
    return out


def check_class_name(name: Any, where: str) -> str:
    if not isinstance(name, str) or not _CLASS_NAME.fullmatch(name):
        raise ModelFileError(f"{where} names the class {brief(name, 80)}; accepted: the name of one of Keras's "
                             f"built-in classes (letters, digits and '_'), never a module or a path")
    return name


def unknown(kind: str, name: str, known: list[str], where: str) -> UnknownComponentError:
    """An UnknownComponentError for a Keras class or function polynn does not have, saying where."""
    error = UnknownComponentError(f"Keras {kind}", name, known)
    error.args = (f"{where}: {error} (polynn reads Keras's built-in components that it has itself)",)
    return error


def read_object(value: Any, kind: str, where: str) -> tuple[str, Any, bool]:
    """(class name, config, whether it is a function) of a serialized Keras object of `kind`,
    refused unless it is one of Keras's own (module, registered_name) and holds no code."""
    if not isinstance(value, dict):
        raise ModelFileError(f"{where} is {brief(value, 80)}; accepted: a Keras {kind} name or its serialized "
                             f"object {{module, class_name, config}}")
    extra = sorted(str(key) for key in value if key not in _OBJECT_KEYS)
    if extra or "class_name" not in value:
        raise ModelFileError(f"{where} has the keys {brief(sorted(map(str, value)), 120)}; accepted: "
                             f"class_name, config, module, registered_name (and shared_object_id, build_config)")
    class_name = value["class_name"]
    if isinstance(class_name, str) and class_name in _CODE_CLASSES:
        raise ModelFileError(f"{where}: {_CODE_CLASSES[class_name]}, and polynn never runs code from a file; "
                             f"accepted: Keras's built-in {kind}s that polynn has")
    class_name = check_class_name(class_name, f"{where}.class_name")
    module, registered = value.get("module"), value.get("registered_name")
    config = value.get("config")
    function = class_name == "function"
    modules = MODULES[kind] + (_FUNCTION_MODULES if function else ())
    registered_ok = registered is None or (function and isinstance(config, str) and registered in ("function", config))
    if module not in modules or not registered_ok:
        raise ModelFileError(
            f"{where} is a custom {kind} (module {_json(module)}, class_name {class_name!r}, registered_name "
            f"{_json(registered)}): polynn never imports or runs code named by a file; accepted: Keras's own "
            f"{kind}s, module {' or '.join(repr(m) for m in MODULES[kind])} with registered_name null")
    if function:
        if not isinstance(config, str):
            raise ModelFileError(f"{where} is a function whose config is {brief(config, 80)}; accepted: the name "
                                 f"of one of Keras's {kind} functions")
        return check_class_name(config, f"{where}.config"), None, True
    return class_name, {} if config is None else config, False


def _lookup(table: dict[str, Any], name: str, kind: str, where: str) -> Any:
    if name not in table:
        raise unknown(kind, name, sorted(table), where)
    return table[name]


# ---- value converters ----------------------------------------------------------------------


def _tuple(value: Any, where: str) -> Any:
    """A JSON list as the tuple a polynn spec field holds (a spec checks the items)."""
    return tuple(value) if isinstance(value, list) else value


def batch_shape(value: Any, where: str) -> tuple:
    """The per-sample shape of a Keras batch shape [null, d1, ...]."""
    if not isinstance(value, list) or len(value) < 2 or value[0] is not None:
        raise ModelFileError(f"{where} is {brief(value, 80)}; accepted: [null, d1, ...] (a batch of any size, "
                             f"then positive sizes: polynn fixes no batch size)")
    dims = value[1:]
    if not all(isinstance(d, int) and not isinstance(d, bool) and 0 < d < 2**63 for d in dims):
        raise ModelFileError(f"{where} is {brief(value, 80)}; accepted: [null, d1, ...] with every d a positive "
                             f"integer (polynn's sample shapes are fixed)")
    return tuple(dims)


_POLICY_DTYPES = ("float32", "float64")
# An integer input (an Embedding's indices): polynn's data are floats, which Embedding truncates as Keras.
_INDEX_DTYPES = ("int32", "int64")


def policy(value: Any, where: str) -> str | None:
    """A dtype policy (Keras 3.0 wrote its name alone): only float32 and float64 compute as polynn does."""
    if value is None:
        return None
    if isinstance(value, dict):
        class_name, config, _ = read_object(value, "dtype policy", where)
        if class_name not in ("DTypePolicy", "FloatDTypePolicy"):
            raise unknown("dtype policy class", class_name, ["DTypePolicy", "FloatDTypePolicy"], where)
        value = read_options(config, {"name": Field()}, class_name, where)["name"]
    if value not in _POLICY_DTYPES:
        raise ModelFileError(f"{where}: the dtype policy {brief(value, 80)} is not supported; accepted: "
                             f"'float32' or 'float64' (polynn computes every layer in the model's one dtype, "
                             f"without mixed precision or quantization)")
    return str(value)


# ---- activations ---------------------------------------------------------------------------

# keras.activations' functions polynn has (Keras's name -> polynn spec class); "swish" and
# "hard_swish" are Keras's aliases. Each with Keras's defaults, which polynn's specs share.
ACTIVATION_FUNCTIONS: dict[str, type] = {
    "linear": activations.Linear, "relu": activations.ReLU, "relu6": activations.ReLU6,
    "leaky_relu": activations.LeakyReLU, "elu": activations.ELU, "selu": activations.SELU,
    "softplus": activations.Softplus, "softsign": activations.Softsign, "silu": activations.SiLU,
    "swish": activations.SiLU, "gelu": activations.GELU, "tanh": activations.Tanh,
    "sigmoid": activations.Sigmoid, "exponential": activations.Exponential,
    "hard_sigmoid": activations.HardSigmoid, "hard_silu": activations.HardSiLU,
    "hard_swish": activations.HardSiLU, "mish": activations.Mish, "softmax": activations.Softmax,
    "log_softmax": activations.LogSoftmax,
}


def _axis(value: Any, where: str) -> Any:
    # Keras's Softmax and LayerNormalization take an axis or a list of them (a built
    # LayerNormalization saves a list): one axis as itself, several as a tuple.
    if isinstance(value, list):
        return value[0] if len(value) == 1 else tuple(value)
    return value


# Keras's activation layers, as polynn activation specs (Keras's class -> (spec, its options)).
# LeakyReLU's Keras default slope is 0.3 (the layer's), where the function's is 0.2.
ACTIVATION_LAYERS: dict[str, tuple[type, dict[str, Any]]] = {
    "ReLU": (activations.ReLU, {"max_value": Field(None), "negative_slope": Field(0.0), "threshold": Field(0.0)}),
    "LeakyReLU": (activations.LeakyReLU, {"negative_slope": Field(0.3)}),
    "ELU": (activations.ELU, {"alpha": Field(1.0)}),
    "Softmax": (activations.Softmax, {"axis": Field(-1, convert=_axis)}),
}


def activation_layer(class_name: str, config: dict, where: str) -> Any:
    """The polynn activation a Keras activation layer computes; its name, trainable and dtype
    are the caller's (config keys other than the layer's own options are refused)."""
    spec, table = ACTIVATION_LAYERS[class_name]
    return spec(**read_options(config, table, class_name, where))


# An activation layer given as a layer's activation: its layer keys mean nothing there.
_LAYER_KEYS = ("name", "trainable", "dtype")


def activation(value: Any, where: str) -> Any:
    """A layer's activation: null (linear), a Keras function's name, its serialized function,
    or a serialized Keras activation layer (Dense(activation=keras.layers.LeakyReLU(0.1)))."""
    if value is None:
        return activations.Linear()
    if isinstance(value, str):
        return _lookup(ACTIVATION_FUNCTIONS, value, "activation", where)()
    if isinstance(value, dict) and value.get("module") == "keras.layers":
        class_name, config, _ = read_object(value, "layer", where)
        if class_name not in ACTIVATION_LAYERS:
            raise unknown("activation layer", class_name, sorted(ACTIVATION_LAYERS), where)
        if not isinstance(config, dict):
            raise ModelFileError(f"{where}: the config of {class_name} is {brief(config, 80)}; accepted: an object")
        own = {k: v for k, v in config.items() if k not in _LAYER_KEYS}
        return activation_layer(class_name, own, where)
    name, _, _ = read_object(value, "activation", where)
    return _lookup(ACTIVATION_FUNCTIONS, name, "activation", where)()


# ---- initializers, regularizers, constraints -----------------------------------------------

_SEED = Ignored()  # weights come from the file; polynn draws any new ones from its own seeded stream
_AXES = {"input_axes": Off(None, why="polynn computes fans from the weight's shape"),
         "output_axes": Off(None, why="polynn computes fans from the weight's shape")}

INITIALIZERS: dict[str, tuple[type, dict[str, Any]]] = {
    "Zeros": (initializers.Zeros, {}),
    "Ones": (initializers.Ones, {}),
    "Constant": (initializers.Constant, {"value": Field(0.0)}),
    "RandomUniform": (initializers.RandomUniform, {"seed": _SEED, "minval": Field(-0.05), "maxval": Field(0.05)}),
    "RandomNormal": (initializers.RandomNormal, {"seed": _SEED, "mean": Field(0.0), "stddev": Field(0.05)}),
    "TruncatedNormal": (initializers.TruncatedNormal, {"seed": _SEED, "mean": Field(0.0), "stddev": Field(0.05)}),
    "VarianceScaling": (initializers.VarianceScaling, {
        "seed": _SEED, "scale": Field(1.0), "mode": Field("fan_in"), "distribution": Field("truncated_normal"),
        **_AXES}),
    **{name: (getattr(initializers, name), {"seed": _SEED, **_AXES})
       for name in ("GlorotUniform", "GlorotNormal", "HeUniform", "HeNormal", "LecunUniform", "LecunNormal")},
    "Orthogonal": (initializers.Orthogonal, {"seed": _SEED, "gain": Field(1.0)}),
    "Identity": (initializers.Identity, {"gain": Field(1.0)}),
}
# The names keras.initializers.get() takes for them (class names too, above).
_INITIALIZER_NAMES = {
    "zeros": "Zeros", "zero": "Zeros", "ones": "Ones", "one": "Ones", "constant": "Constant",
    "random_uniform": "RandomUniform", "uniform": "RandomUniform", "random_normal": "RandomNormal",
    "normal": "RandomNormal", "truncated_normal": "TruncatedNormal", "variance_scaling": "VarianceScaling",
    "glorot_uniform": "GlorotUniform", "glorot_normal": "GlorotNormal", "he_uniform": "HeUniform",
    "he_normal": "HeNormal", "lecun_uniform": "LecunUniform", "lecun_normal": "LecunNormal",
    "orthogonal": "Orthogonal", "identity": "Identity",
}

REGULARIZERS: dict[str, tuple[type, dict[str, Any]]] = {
    "L1": (regularizers.L1, {"l1": Field(0.01)}),
    "L2": (regularizers.L2, {"l2": Field(0.01)}),
    "L1L2": (regularizers.L1L2, {"l1": Field(0.0), "l2": Field(0.0)}),
}
_REGULARIZER_NAMES = {"l1": "L1", "l2": "L2", "l1l2": "L1L2"}

CONSTRAINTS: dict[str, tuple[type, dict[str, Any]]] = {
    "MaxNorm": (constraints.MaxNorm, {"max_value": Field(2.0), "axis": Field(0, convert=_tuple)}),
    "NonNeg": (constraints.NonNeg, {}),
    "UnitNorm": (constraints.UnitNorm, {"axis": Field(0, convert=_tuple)}),
    "MinMaxNorm": (constraints.MinMaxNorm, {"min_value": Field(0.0), "max_value": Field(1.0), "rate": Field(1.0),
                                            "axis": Field(0, convert=_tuple)}),
}
_CONSTRAINT_NAMES = {"max_norm": "MaxNorm", "non_neg": "NonNeg", "unit_norm": "UnitNorm",
                     "min_max_norm": "MinMaxNorm"}


def _component(value: Any, kind: str, table: dict, names: dict[str, str], where: str, optional: bool) -> Any:
    if value is None and optional:
        return None
    if isinstance(value, str):
        class_name = names.get(value, value)
        config: Any = {}
    else:
        class_name, config, function = read_object(value, kind, where)
        if function:
            raise unknown(kind, class_name, sorted(table), where)
    spec, options = _lookup(table, class_name, kind, where)
    return spec(**read_options(config, options, class_name, where))


def initializer(value: Any, where: str) -> Any:
    return _component(value, "initializer", INITIALIZERS, _INITIALIZER_NAMES, where, optional=False)


def regularizer(value: Any, where: str) -> Any:
    return _component(value, "regularizer", REGULARIZERS, _REGULARIZER_NAMES, where, optional=True)


def constraint(value: Any, where: str) -> Any:
    return _component(value, "constraint", CONSTRAINTS, _CONSTRAINT_NAMES, where, optional=True)


# ---- layers ----------------------------------------------------------------------------------

def snake_case(name: str) -> str:
    """Keras's naming.to_snake_case, which names a layer's weight group after its class."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()



_LAYER_BASE = {"name": Field(None, name="given_name"), "trainable": Field(True), "dtype": Field(None, convert=policy)}
_DENSE = {
    "units": Field(), "activation": Field(None, convert=activation), "use_bias": Field(True),
    "kernel_initializer": Field("glorot_uniform", convert=initializer),
    "bias_initializer": Field("zeros", convert=initializer),
    **{f"{w}_regularizer": Field(None, convert=regularizer) for w in ("kernel", "bias", "activity")},
    **{f"{w}_constraint": Field(None, convert=constraint) for w in ("kernel", "bias")},
    "quantization_config": Off(None, why="polynn does not quantize"),
    "lora_rank": Off(None, why="polynn has no LoRA"),
    "lora_alpha": Ignored(),  # used only with lora_rank, refused above
}
# Normalization layers: gamma and beta's components, Keras's defaults.
_GAMMA_BETA = {
    "beta_initializer": Field("zeros", convert=initializer),
    "gamma_initializer": Field("ones", convert=initializer),
    **{f"{w}_regularizer": Field(None, convert=regularizer) for w in ("beta", "gamma")},
    **{f"{w}_constraint": Field(None, convert=constraint) for w in ("beta", "gamma")},
}
_BATCH_NORMALIZATION = {
    "axis": Field(-1, convert=_axis), "momentum": Field(0.99), "epsilon": Field(1e-3), "center": Field(True),
    "scale": Field(True), **_GAMMA_BETA,
    "moving_mean_initializer": Field("zeros", convert=initializer),
    "moving_variance_initializer": Field("ones", convert=initializer),
    # Whether replicas share batch statistics: polynn refuses BatchNormalization under data-parallel
    # training, and on one process the statistics are the batch's either way.
    "synchronized": Ignored(),
    "renorm": Off(False, why="polynn has no batch renormalization"),
    "renorm_clipping": Ignored(),  # used only with renorm, refused above
    "renorm_momentum": Ignored(),
}
_LAYER_NORMALIZATION = {
    "axis": Field(-1, convert=_axis), "epsilon": Field(1e-3), "center": Field(True), "scale": Field(True),
    "rms_scaling": Field(False), **_GAMMA_BETA,
}
# Convolution, pooling and reshaping: Keras writes every key; data_format "channels_first" reaches
# the spec, which refuses it.
_CONV = {
    "filters": Field(), "kernel_size": Field(convert=_tuple), "strides": Field(1, convert=_tuple),
    "padding": Field("valid"), "data_format": Field(None), "dilation_rate": Field(1, convert=_tuple),
    "groups": Field(1), **{k: v for k, v in _DENSE.items() if k not in ("units", "quantization_config")},
}
_POOLING = {"strides": Field(None, convert=_tuple), "padding": Field("valid"), "data_format": Field(None)}
_GLOBAL_POOLING = {"data_format": Field(None), "keepdims": Field(False)}
# Embedding and the recurrent layers (their weights live in Keras's files under <layer>/cell).
_EMBEDDING = {
    "input_dim": Field(), "output_dim": Field(), "embeddings_initializer": Field("uniform", convert=initializer),
    "embeddings_regularizer": Field(None, convert=regularizer),
    "embeddings_constraint": Field(None, convert=constraint),
    "activity_regularizer": Field(None, convert=regularizer),
    "mask_zero": Off(False, why="polynn has no masks"),
    "quantization_config": Off(None, why="polynn does not quantize"),
    "lora_rank": Off(None, why="polynn has no LoRA"),
    "lora_alpha": Ignored(),  # used only with lora_rank, refused above
}
_NO_MASKS = "polynn has no masks or carried states"
_RECURRENT = {
    "units": Field(), "activation": Field("tanh", convert=activation), "use_bias": Field(True),
    "kernel_initializer": Field("glorot_uniform", convert=initializer),
    "recurrent_initializer": Field("orthogonal", convert=initializer),
    "bias_initializer": Field("zeros", convert=initializer),
    **{f"{w}_regularizer": Field(None, convert=regularizer) for w in ("kernel", "recurrent", "bias", "activity")},
    **{f"{w}_constraint": Field(None, convert=constraint) for w in ("kernel", "recurrent", "bias")},
    "dropout": Off(0.0, why=_NO_MASKS), "recurrent_dropout": Off(0.0, why=_NO_MASKS), "seed": Field(None),
    "return_sequences": Field(False), "go_backwards": Field(False), "unroll": Field(False),
    "return_state": Off(False, why="a polynn layer has one output"), "stateful": Off(False, why=_NO_MASKS),
    "zero_output_for_mask": Ignored(),  # acts on masked steps only, and polynn has no masks
}
_GATED = {**_RECURRENT, "recurrent_activation": Field("sigmoid", convert=activation)}
# Keras's layers polynn has (besides InputLayer and the activation layers): class -> options.
_LAYERS: dict[str, dict[str, Any]] = {
    "Dense": _DENSE,
    "Dropout": {"rate": Field(), "seed": Field(None), "noise_shape": Field(None, convert=_tuple)},
    "Activation": {"activation": Field(convert=activation)},
    "BatchNormalization": _BATCH_NORMALIZATION,
    "LayerNormalization": _LAYER_NORMALIZATION,
    # convolution, pooling and reshaping
    "Conv1D": _CONV, "Conv2D": _CONV,
    "MaxPooling1D": {"pool_size": Field(2, convert=_tuple), **_POOLING},
    "MaxPooling2D": {"pool_size": Field([2, 2], convert=_tuple), **_POOLING},
    "AveragePooling1D": {"pool_size": Field(convert=_tuple), **_POOLING},
    "AveragePooling2D": {"pool_size": Field(convert=_tuple), **_POOLING},
    **{name: _GLOBAL_POOLING for name in ("GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalMaxPooling1D",
                                          "GlobalMaxPooling2D")},
    "Flatten": {"data_format": Field(None)},
    "Reshape": {"target_shape": Field(convert=_tuple)},
    "Embedding": _EMBEDDING,
    "SimpleRNN": _RECURRENT,
    "LSTM": {**_GATED, "unit_forget_bias": Field(True)},
    "GRU": {**_GATED, "reset_after": Field(True)},
}
# Keras's layers whose weights a sublayer holds: class -> the sublayer's attribute (its group in
# the weights file, layers/<layer>/<attribute>/vars) and the name Keras gives it.
CELLS: dict[str, tuple[str, str]] = {"SimpleRNN": ("cell", "simple_rnn_cell"), "LSTM": ("cell", "lstm_cell"),
                                     "GRU": ("cell", "gru_cell")}
LAYER_CLASSES = ("InputLayer", *_LAYERS, *ACTIVATION_LAYERS)
_INPUT = {
    "batch_shape": Field(None), "batch_input_shape": Field(None), "name": Field(None), "dtype": Field(None),
    "sparse": Off(False, None, why="polynn's inputs are dense"),
    "ragged": Off(False, None, why="polynn's inputs are dense"),
    "optional": Off(False, why="a polynn model always takes its input"),
}


def input_layer(config: Any, where: str) -> Any:
    """An InputLayer as polynn's Input (its shape without the batch axis)."""
    options = read_options(config, _INPUT, "InputLayer", where)
    shape = options["batch_shape"] if options["batch_shape"] is not None else options["batch_input_shape"]
    if options["dtype"] not in (None, *_POLICY_DTYPES, *_INDEX_DTYPES):
        raise ModelFileError(f"{where}: the input dtype {brief(options['dtype'], 80)} is not supported; "
                             f"accepted: 'float32' or 'float64', or 'int32' or 'int64' (indices, which polynn "
                             f"takes as floats of the model's dtype)")
    # An index dtype is the data's (Embedding models); a float one is the model's, which the policy gives.
    dtype = options["dtype"] if options["dtype"] in _INDEX_DTYPES else None
    return layers.Input(shape=batch_shape(shape, f"{where}.batch_shape"), dtype=dtype, given_name=options["name"])


def layer(class_name: str, config: Any, where: str) -> tuple[Any, str | None]:
    """(polynn layer, its dtype policy's name or None) of a Keras layer other than InputLayer; an
    activation layer (ReLU, LeakyReLU, ELU, Softmax) becomes an Activation layer."""
    if not isinstance(config, dict):
        raise ModelFileError(f"{where}: the config of {class_name} is {brief(config, 80)}; accepted: an object")
    base = read_options({k: v for k, v in config.items() if k in _LAYER_BASE}, _LAYER_BASE, class_name, where)
    own = {k: v for k, v in config.items() if k not in _LAYER_BASE}
    dtype = base.pop("dtype")
    if class_name in ACTIVATION_LAYERS:
        return layers.Activation(activation=activation_layer(class_name, own, where), **base), dtype
    spec = getattr(layers, class_name)
    return spec(**read_options(own, _LAYERS[class_name], class_name, where), **base), dtype


# ---- losses ----------------------------------------------------------------------------------

_LOSS_BASE = {"name": Ignored(),  # a compiled model logs its loss as "loss"
              "reduction": Field("sum_over_batch_size"),
              "dtype": Off(None, why="polynn computes the loss in the model's dtype")}
_CROSSENTROPY = {"from_logits": Field(False), "label_smoothing": Field(0.0), "axis": Field(-1)}
LOSSES: dict[str, tuple[type, dict[str, Any]]] = {
    "MeanSquaredError": (losses.MeanSquaredError, {}),
    "MeanAbsoluteError": (losses.MeanAbsoluteError, {}),
    "MeanAbsolutePercentageError": (losses.MeanAbsolutePercentageError, {}),
    "MeanSquaredLogarithmicError": (losses.MeanSquaredLogarithmicError, {}),
    "BinaryCrossentropy": (losses.BinaryCrossentropy, _CROSSENTROPY),
    "CategoricalCrossentropy": (losses.CategoricalCrossentropy, _CROSSENTROPY),
    "SparseCategoricalCrossentropy": (losses.SparseCategoricalCrossentropy, {
        "from_logits": Field(False), "axis": Field(-1),
        "ignore_class": Off(None, why="polynn counts every label")}),
    "Huber": (losses.Huber, {"delta": Field(1.0)}),
    "LogCosh": (losses.LogCosh, {}),
    "Hinge": (losses.Hinge, {}),
    "SquaredHinge": (losses.SquaredHinge, {}),
    "CategoricalHinge": (losses.CategoricalHinge, {}),
    "KLDivergence": (losses.KLDivergence, {}),
    "Poisson": (losses.Poisson, {}),
    "CosineSimilarity": (losses.CosineSimilarity, {"axis": Field(-1)}),
}
# keras.losses' functions and the other names keras.losses.get() takes (case-sensitive).
_LOSS_NAMES = {
    "mean_squared_error": "MeanSquaredError", "mse": "MeanSquaredError", "MSE": "MeanSquaredError",
    "mean_absolute_error": "MeanAbsoluteError", "mae": "MeanAbsoluteError", "MAE": "MeanAbsoluteError",
    "mean_absolute_percentage_error": "MeanAbsolutePercentageError", "mape": "MeanAbsolutePercentageError",
    "MAPE": "MeanAbsolutePercentageError", "mean_squared_logarithmic_error": "MeanSquaredLogarithmicError",
    "msle": "MeanSquaredLogarithmicError", "MSLE": "MeanSquaredLogarithmicError",
    "binary_crossentropy": "BinaryCrossentropy", "bce": "BinaryCrossentropy", "BCE": "BinaryCrossentropy",
    "categorical_crossentropy": "CategoricalCrossentropy",
    "sparse_categorical_crossentropy": "SparseCategoricalCrossentropy", "huber": "Huber", "log_cosh": "LogCosh",
    "hinge": "Hinge", "squared_hinge": "SquaredHinge", "categorical_hinge": "CategoricalHinge",
    "kl_divergence": "KLDivergence", "kld": "KLDivergence", "KLD": "KLDivergence", "poisson": "Poisson",
    "cosine_similarity": "CosineSimilarity",
}


def loss(value: Any, where: str) -> Any:
    """A loss as compile() got it: a name keras.losses.get() takes, a function or a loss object."""
    if isinstance(value, str) or (isinstance(value, dict) and value.get("class_name") == "function"):
        name = value if isinstance(value, str) else read_object(value, "loss", where)[0]
        if name.lower() in ("crossentropy", "ce"):
            raise ModelFileError(f"{where}: the loss {name!r} is chosen by Keras from the labels' shapes at fit; "
                                 f"accepted: a named crossentropy (binary_crossentropy, categorical_crossentropy, "
                                 f"sparse_categorical_crossentropy)")
        class_name = _LOSS_NAMES.get(name, name)
        spec, _ = _lookup(LOSSES, class_name, "loss", where)
        return spec()
    class_name, config, _ = read_object(value, "loss", where)
    spec, options = _lookup(LOSSES, class_name, "loss", where)
    kwargs = read_options(config, {**_LOSS_BASE, **options}, class_name, where)
    if kwargs["reduction"] is None:  # Keras's None is its "none"
        kwargs["reduction"] = "none"
    return spec(**kwargs)


# ---- metrics ---------------------------------------------------------------------------------

def _metric_dtype(value: Any, where: str) -> None:
    # The metric's state dtype in Keras; polynn accumulates metric states in float64.
    if value not in (None, "float32", "float64"):
        raise ModelFileError(f"{where}: the metric dtype {brief(value, 80)} is not supported; accepted: null, "
                             f"'float32' or 'float64'")


def _thresholds(value: Any, where: str) -> Any:
    # Keras's null is its single threshold 0.5; several thresholds give several values, which polynn's do not.
    if value is None:
        return 0.5
    if isinstance(value, list) and len(value) == 1:
        return value[0]
    if isinstance(value, list):
        raise ModelFileError(f"{where} is {brief(value, 80)}; accepted: null or one threshold (polynn's precision "
                             f"and recall give one value)")
    return value


_METRIC_BASE = {"name": Field(None, name="given_name"), "dtype": Field(None, convert=_metric_dtype)}
_TOP_K = Off(None, why="polynn's precision and recall threshold every prediction")
METRICS: dict[str, tuple[type, dict[str, Any]]] = {
    "Accuracy": (metrics.Accuracy, {}),
    "BinaryAccuracy": (metrics.BinaryAccuracy, {"threshold": Field(0.5)}),
    "CategoricalAccuracy": (metrics.CategoricalAccuracy, {}),
    "SparseCategoricalAccuracy": (metrics.SparseCategoricalAccuracy, {}),
    "TopKCategoricalAccuracy": (metrics.TopKCategoricalAccuracy, {"k": Field(5)}),
    "SparseTopKCategoricalAccuracy": (metrics.SparseTopKCategoricalAccuracy, {
        "k": Field(5), "from_sorted_ids": Off(False, why="polynn ranks the scores itself")}),
    "MeanSquaredError": (metrics.MeanSquaredError, {}),
    "MeanAbsoluteError": (metrics.MeanAbsoluteError, {}),
    "MeanAbsolutePercentageError": (metrics.MeanAbsolutePercentageError, {}),
    "RootMeanSquaredError": (metrics.RootMeanSquaredError, {}),
    "BinaryCrossentropy": (metrics.BinaryCrossentropy, _CROSSENTROPY),
    "CategoricalCrossentropy": (metrics.CategoricalCrossentropy, _CROSSENTROPY),
    "SparseCategoricalCrossentropy": (metrics.SparseCategoricalCrossentropy, {
        "from_logits": Field(False), "axis": Field(-1), "ignore_class": Off(None, why="polynn counts every label")}),
    "Precision": (metrics.Precision, {"thresholds": Field(None, convert=_thresholds), "top_k": _TOP_K,
                                      "class_id": Field(None)}),
    "Recall": (metrics.Recall, {"thresholds": Field(None, convert=_thresholds), "top_k": _TOP_K,
                                "class_id": Field(None)}),
    "AUC": (metrics.AUC, {
        "num_thresholds": Field(200), "curve": Field("ROC"), "summation_method": Field("interpolation"),
        "from_logits": Field(False), "thresholds": Off(None, why="polynn spaces its thresholds evenly"),
        "multi_label": Off(False, why="polynn's AUC is over all labels at once"),
        "num_labels": Off(None, why="polynn's AUC is over all labels at once"),
        "label_weights": Off(None, why="polynn's AUC is over all labels at once")}),
}
# Names keras.metrics.get() takes (case-sensitive), functions included; "accuracy" and "acc" are
# compile()'s own (resolved from the shapes) and stay strings.
_METRIC_NAMES = {
    "auc": "AUC", "binary_accuracy": "BinaryAccuracy", "categorical_accuracy": "CategoricalAccuracy",
    "sparse_categorical_accuracy": "SparseCategoricalAccuracy",
    "top_k_categorical_accuracy": "TopKCategoricalAccuracy",
    "sparse_top_k_categorical_accuracy": "SparseTopKCategoricalAccuracy",
    "mean_squared_error": "MeanSquaredError", "mse": "MeanSquaredError", "MSE": "MeanSquaredError",
    "mean_absolute_error": "MeanAbsoluteError", "mae": "MeanAbsoluteError", "MAE": "MeanAbsoluteError",
    "mean_absolute_percentage_error": "MeanAbsolutePercentageError", "mape": "MeanAbsolutePercentageError",
    "MAPE": "MeanAbsolutePercentageError", "root_mean_squared_error": "RootMeanSquaredError",
    "binary_crossentropy": "BinaryCrossentropy", "bce": "BinaryCrossentropy", "BCE": "BinaryCrossentropy",
    "categorical_crossentropy": "CategoricalCrossentropy",
    "sparse_categorical_crossentropy": "SparseCategoricalCrossentropy", "precision": "Precision",
    "recall": "Recall",
}


def metric(value: Any, where: str) -> Any:
    """A metric as compile() got it: 'accuracy' or 'acc' (kept as such), another name
    keras.metrics.get() takes or a function (a spec logging under that name, as in Keras), or a
    metric object (a spec logging under its config's name)."""
    if isinstance(value, str) and value in ("accuracy", "acc"):
        return value
    if isinstance(value, str) or (isinstance(value, dict) and value.get("class_name") == "function"):
        name = value if isinstance(value, str) else read_object(value, "metric", where)[0]
        if name.lower() in ("accuracy", "acc"):
            raise ModelFileError(f"{where}: the metric {name!r} is Keras's accuracy logged as {name!r}; accepted: "
                                 f"'accuracy' or 'acc' (polynn logs the accuracy it chooses under those names)")
        class_name = _METRIC_NAMES.get(name, name)
        if class_name == "Accuracy" or class_name not in METRICS:
            raise unknown("metric", name, sorted({*_METRIC_NAMES, *METRICS} - {"Accuracy"}), where)
        spec, _ = METRICS[class_name]
        return spec(given_name=name)
    class_name, config, _ = read_object(value, "metric", where)
    spec, options = _lookup(METRICS, class_name, "metric", where)
    kwargs = read_options(config, {**_METRIC_BASE, **options}, class_name, where)
    kwargs.pop("dtype")
    return spec(**kwargs)


# ---- schedules and optimizers ----------------------------------------------------------------

_SCHEDULE_NAME = {"name": Ignored()}
SCHEDULES: dict[str, tuple[type, dict[str, Any]]] = {
    "ExponentialDecay": (schedules.ExponentialDecay, {
        "initial_learning_rate": Field(), "decay_steps": Field(), "decay_rate": Field(), "staircase": Field(False),
        **_SCHEDULE_NAME}),
    "PiecewiseConstantDecay": (schedules.PiecewiseConstantDecay, {
        "boundaries": Field(convert=_tuple), "values": Field(convert=_tuple), **_SCHEDULE_NAME}),
    "InverseTimeDecay": (schedules.InverseTimeDecay, {
        "initial_learning_rate": Field(), "decay_steps": Field(), "decay_rate": Field(), "staircase": Field(False),
        **_SCHEDULE_NAME}),
    "PolynomialDecay": (schedules.PolynomialDecay, {
        "initial_learning_rate": Field(), "decay_steps": Field(), "end_learning_rate": Field(0.0001),
        "power": Field(1.0), "cycle": Field(False), **_SCHEDULE_NAME}),
    "CosineDecay": (schedules.CosineDecay, {
        "initial_learning_rate": Field(), "decay_steps": Field(), "alpha": Field(0.0), "warmup_target": Field(None),
        "warmup_steps": Field(0), **_SCHEDULE_NAME}),
}


def _learning_rate(value: Any, where: str) -> Any:
    if not isinstance(value, dict):
        return value  # a number, checked by the optimizer spec
    class_name, config, function = read_object(value, "schedule", where)
    if function:
        raise unknown("learning-rate schedule", class_name, sorted(SCHEDULES), where)
    spec, options = _lookup(SCHEDULES, class_name, "learning-rate schedule", where)
    return spec(**read_options(config, options, class_name, where))


def _optimizer_base(learning_rate: float, weight_decay: Any = None) -> dict[str, Any]:
    return {
        "name": Ignored(),
        "learning_rate": Field(learning_rate, convert=_learning_rate),
        "weight_decay": Field(weight_decay), "clipnorm": Field(None), "clipvalue": Field(None),
        "global_clipnorm": Field(None),
        "use_ema": Off(False, why="polynn keeps no moving average of the weights"),
        # used only with use_ema, refused above
        "ema_momentum": Ignored(), "ema_overwrite_frequency": Ignored(),
        "loss_scale_factor": Off(None, why="polynn trains in float32 or float64, without loss scaling"),
        "gradient_accumulation_steps": Off(None, why="polynn applies every step's gradients"),
    }


_ADAM = {"beta_1": Field(0.9), "beta_2": Field(0.999), "epsilon": Field(1e-7), "amsgrad": Field(False)}
# Keras's class -> (polynn spec, options); optimizers.get() also takes their lower-case names.
OPTIMIZER_CLASSES: dict[str, tuple[type, dict[str, Any]]] = {
    "SGD": (optimizers.SGD, {**_optimizer_base(0.01), "momentum": Field(0.0), "nesterov": Field(False)}),
    "Adam": (optimizers.Adam, {**_optimizer_base(0.001), **_ADAM}),
    "AdamW": (optimizers.AdamW, {**_optimizer_base(0.001, 0.004), **_ADAM}),
    "RMSprop": (optimizers.RMSprop, {**_optimizer_base(0.001), "rho": Field(0.9), "momentum": Field(0.0),
                                     "epsilon": Field(1e-7), "centered": Field(False)}),
    "Adagrad": (optimizers.Adagrad, {**_optimizer_base(0.001), "initial_accumulator_value": Field(0.1),
                                     "epsilon": Field(1e-7)}),
    "Adadelta": (optimizers.Adadelta, {**_optimizer_base(0.001), "rho": Field(0.95), "epsilon": Field(1e-7)}),
    "Adamax": (optimizers.Adamax, {**_optimizer_base(0.001), "beta_1": Field(0.9), "beta_2": Field(0.999),
                                   "epsilon": Field(1e-7)}),
    "Nadam": (optimizers.Nadam, {**_optimizer_base(0.001), "beta_1": Field(0.9), "beta_2": Field(0.999),
                                 "epsilon": Field(1e-7)}),
}
_OPTIMIZER_NAMES = {name.lower(): name for name in OPTIMIZER_CLASSES}
# Keras optimizer class -> its slot variables as Keras creates them: blocks in order, each block
# one variable per trainable weight (in weight order) of each name in it, interleaved
# ("m", "v": m0, v0, m1, v1, ...). A name not in the spec's slot_names() is skipped (SGD's
# momentum without momentum, RMSprop's momentum and average_gradient, Adam's v_hat).
OPTIMIZER_SLOTS: dict[str, tuple[tuple[str, ...], ...]] = {
    "SGD": (("momentum",),),
    "Adam": (("m", "v"), ("v_hat",)),
    "AdamW": (("m", "v"), ("v_hat",)),
    "RMSprop": (("velocity",), ("momentum",), ("average_gradient",)),
    "Adagrad": (("accumulator",),),
    "Adadelta": (("accumulated_grad", "accumulated_delta"),),
    "Adamax": (("m", "u"),),
    "Nadam": (("m", "v"),),
}



def optimizer(value: Any, where: str) -> tuple[str, Any]:
    """(Keras class name, polynn spec) of a serialized Keras optimizer or its name."""
    config: Any = {}
    if isinstance(value, str):
        class_name = value
    else:
        class_name, config, function = read_object(value, "optimizer", where)
        if function:
            raise unknown("optimizer", class_name, sorted(OPTIMIZER_CLASSES), where)
    # Keras's optimizers.get() and deserialize() take any case ("adam", "Adam").
    class_name = _OPTIMIZER_NAMES.get(check_class_name(class_name, where).lower(), class_name)
    spec, options = _lookup(OPTIMIZER_CLASSES, class_name, "optimizer", where)
    return class_name, spec(**read_options(config, options, class_name, where))
