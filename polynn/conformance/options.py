"""The option configurations each component is exercised with, chosen from the fields its spec has.

A configuration applies to every spec class holding all of its fields, so a component added
later (by polynn or a plugin) that spells an option as Keras does is exercised with it too.
Each kind also runs its default configuration. Values are chosen to make the option matter:
clipping thresholds below the probe's gradient norms, a schedule that halves the rate quickly.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection
from typing import Any

from ..constraints import MaxNorm, NonNeg
from ..initializers import RandomUniform
from ..losses import REDUCTIONS
from ..regularizers import L1, L1L2, L2
from ..schedules import ExponentialDecay


@dataclasses.dataclass(frozen=True)
class Config:
    """Keyword arguments for the spec class, and whether the case passes sample weights."""

    kwargs: tuple[tuple[str, Any], ...] = ()
    sample_weight: bool = False
    # Registry names the configuration is limited to (their subclasses too), for a value only some
    # of the classes holding its fields take (Conv1D's padding="causal", which Conv2D refuses).
    only: tuple[str, ...] = ()
    # Registry names it leaves out (their subclasses too), for a value the others take (a rank-2
    # input_shape, which a 2-D convolution or pooling refuses).
    skip: tuple[str, ...] = ()

    def label(self) -> str:
        parts = [f"{key}={_show(value)}" for key, value in self.kwargs]
        if self.sample_weight:
            parts.append("sample_weight")
        return f"({', '.join(parts)})" if parts else ""


def _show(value: Any) -> str:
    if hasattr(value, "kind") and hasattr(value, "get_config"):
        return value.name
    return str(value)


def _configs(*entries: tuple[dict[str, Any], bool]) -> list[Config]:
    return [Config(tuple(kwargs.items()), sample_weight) for kwargs, sample_weight in entries]


ACTIVATION = _configs(
    ({"alpha": 0.3}, False),
    ({"negative_slope": 0.2}, False),
    ({"max_value": 4.0}, False),
    ({"threshold": 0.5}, False),
)

LOSS = _configs(
    ({"from_logits": True}, False),
    ({"label_smoothing": 0.1}, False),
    ({"from_logits": True, "label_smoothing": 0.1}, False),
    ({"delta": 0.5}, False),
    # 'none' keeps per-sample values, which compile() refuses for training.
    *(({"reduction": r}, True) for r in REDUCTIONS if r != "none"),
)

METRIC = _configs(
    ({}, True),
    ({"threshold": 0.3}, False),
    ({"thresholds": 0.3}, False),
    ({"class_id": 1}, False),
    ({"k": 2}, False),
    ({"from_logits": True}, False),
    ({"label_smoothing": 0.1}, False),
    ({"curve": "PR"}, False),
    ({"summation_method": "majoring"}, False),
    ({"num_thresholds": 7}, False),
)


def _schedule_config(cls: type[Any]) -> list[Config]:
    """The class's default learning rate, halved every 3 steps by an ExponentialDecay."""
    default = next((f.default for f in dataclasses.fields(cls) if f.name == "learning_rate"), None)
    if not isinstance(default, float):
        return []
    schedule = ExponentialDecay(initial_learning_rate=default, decay_steps=3, decay_rate=0.5)
    return [Config((("learning_rate", schedule),))]


OPTIMIZER = _configs(
    ({"momentum": 0.9}, False),
    ({"momentum": 0.9, "nesterov": True}, False),
    ({"amsgrad": True}, False),
    ({"centered": True}, False),
    ({"centered": True, "momentum": 0.9}, False),
    ({"epsilon": 1e-3}, False),
    ({"clipnorm": 0.05}, False),
    ({"clipvalue": 0.02}, False),
    ({"global_clipnorm": 0.05}, False),
    ({"weight_decay": 0.1}, False),
)

INITIALIZER = _configs(
    ({"mode": "fan_out"}, False),
    ({"mode": "fan_avg"}, False),
    ({"distribution": "uniform"}, False),
    ({"distribution": "untruncated_normal"}, False),
    ({"scale": 2.0}, False),
    ({"gain": 2.0}, False),
    ({"value": 0.5}, False),
    ({"mean": 0.3, "stddev": 0.2}, False),
    ({"minval": -0.3, "maxval": 0.7}, False),
)

# A layer's input, per sample, unless the layer declares its own.
LAYER_INPUT_SHAPE = (6,)
RANK3_INPUT_SHAPE = (3, 6)
# Layers that need inputs of another rank (images, sequences), by registry name: the input per
# sample. A subclass of one of them (a plugin's) is exercised with its parent's input.
LAYER_INPUT_SHAPES: dict[str, tuple] = {
    # convolution, pooling and reshaping: odd lengths, so that strides and "same" padding leave a remainder
    "conv1d": (7, 2), "conv2d": (6, 5, 2), "max_pooling1d": (7, 2), "max_pooling2d": (5, 6, 2),
    "average_pooling1d": (7, 2), "average_pooling2d": (5, 6, 2), "global_average_pooling1d": (7, 2),
    "global_average_pooling2d": (5, 4, 2), "global_max_pooling1d": (7, 2), "global_max_pooling2d": (5, 4, 2),
    "flatten": (3, 4), "reshape": (3, 4),
    # recurrent layers: (timesteps, features)
    "simple_rnn": (4, 3), "lstm": (4, 3), "gru": (4, 3),
}
# Layers that take integer inputs (Embedding), by registry name: the number of distinct values, so
# the kit draws integers in [0, n) and feeds them to the layer first.
LAYER_INTEGER_INPUTS: dict[str, int] = {
    "embedding": 10,  # Embedding's default input_dim
}
# Normalization layers: rank-3 inputs, so that they reduce over more than the batch and an axis
# other than the last means something.
LAYER_INPUT_SHAPES.update({"batch_normalization": RANK3_INPUT_SHAPE, "layer_normalization": RANK3_INPUT_SHAPE})


def _by_class(layer: Any, table: dict[str, Any]) -> Any:
    for klass in type(layer).__mro__:
        name = klass.__dict__.get("name")
        if isinstance(name, str) and name in table:
            return table[name]
    return None


def layer_input_shape(layer: Any) -> tuple | None:
    """The per-sample input LAYER_INPUT_SHAPES gives the layer (or a parent class), else None."""
    return _by_class(layer, LAYER_INPUT_SHAPES)


def layer_integer_inputs(layer: Any) -> int | None:
    """The number of distinct integer inputs LAYER_INTEGER_INPUTS gives the layer, else None."""
    return _by_class(layer, LAYER_INTEGER_INPUTS)

# The layers whose per-sample input is (height, width, channels).
_TWO_D = ("conv2d", "max_pooling2d", "average_pooling2d", "global_average_pooling2d", "global_max_pooling2d")

LAYER = _configs(
    ({"use_bias": False}, False),
    ({"kernel_initializer": "he_normal", "bias_initializer": RandomUniform(minval=-0.5, maxval=0.5)}, False),
    ({"kernel_regularizer": L2(l2=0.05)}, False),
    ({"bias_regularizer": L1(l1=0.05)}, False),
    ({"activity_regularizer": L1L2(l1=0.01, l2=0.02)}, False),
    ({"kernel_constraint": MaxNorm(max_value=0.5)}, False),
    ({"bias_constraint": NonNeg()}, False),
    ({"shape": RANK3_INPUT_SHAPE}, False),
    ({"activation": "softplus"}, False),
    ({"noise_shape": (None, 1)}, False),
    ({"seed": 7}, False),
    ({"center": False}, False),
    ({"scale": False}, False),
    # Normalization layers: the moving statistics move within the 8 steps (momentum 0.5), a frozen
    # BatchNormalization runs in inference mode, gamma and beta get penalties and constraints, the
    # moving statistics start away from 0 and 1; LayerNormalization over two axes (a key only it
    # has keeps that configuration off BatchNormalization, whose axis is one integer) and rms_scaling.
    ({"axis": 1}, False),
    ({"epsilon": 0.1}, False),
    ({"momentum": 0.5}, False),
    ({"momentum": 0.5, "trainable": False}, False),
    ({"gamma_regularizer": L2(l2=0.05), "beta_constraint": NonNeg()}, False),
    ({"momentum": 0.5, "moving_mean_initializer": RandomUniform(minval=-0.5, maxval=0.5),
      "moving_variance_initializer": RandomUniform(minval=0.5, maxval=1.5)}, False),
    ({"axis": (1, 2), "rms_scaling": False}, False),
    ({"rms_scaling": True}, False),
    # convolution, pooling and reshaping
    ({"filters": 3, "kernel_size": 2}, False),
    ({"strides": 2}, False),
    ({"padding": "same"}, False),
    ({"strides": 2, "padding": "same"}, False),
    ({"dilation_rate": 2}, False),
    ({"dilation_rate": 2, "padding": "same"}, False),
    ({"filters": 4, "groups": 2}, False),
    ({"pool_size": 3, "strides": 1}, False),
    ({"pool_size": 3, "strides": 2, "padding": "same"}, False),
    ({"keepdims": True}, False),
    ({"target_shape": (2, -1)}, False),
    ({"target_shape": (4, 3)}, False),
    # embedding and recurrent layers (units=4: several per gate)
    ({"output_dim": 4, "embeddings_regularizer": L2(l2=0.05)}, False),
    ({"output_dim": 4, "embeddings_constraint": MaxNorm(max_value=0.5)}, False),
    ({"units": 4, "return_sequences": True}, False),
    ({"units": 4, "go_backwards": True}, False),
    ({"units": 4, "go_backwards": True, "return_sequences": True}, False),
    ({"units": 4, "recurrent_regularizer": L2(l2=0.05), "recurrent_constraint": MaxNorm(max_value=0.5)}, False),
    ({"units": 4, "recurrent_activation": "hard_sigmoid", "unit_forget_bias": False}, False),
    ({"units": 4, "reset_after": False}, False),
    ({"units": 4, "reset_after": False, "use_bias": False}, False),
) + [
    # Keras's input_shape keyword on a first layer, of the rank each layer takes.
    Config((("input_shape", RANK3_INPUT_SHAPE),), skip=_TWO_D),
    Config((("input_shape", (5, 4, 2)),), only=_TWO_D),
    Config((("padding", "causal"),), only=("conv1d",)),
    Config((("padding", "causal"), ("dilation_rate", 2)), only=("conv1d",)),
]

REGULARIZER = _configs(
    ({"l1": 0.05}, False),
    ({"l2": 0.05}, False),
    ({"l1": 0.01, "l2": 0.02}, False),
)

CONSTRAINT = _configs(
    ({"max_value": 0.5}, False),
    ({"axis": 1}, False),
    ({"min_value": 0.5, "max_value": 0.8}, False),
    ({"min_value": 0.5, "max_value": 0.8, "rate": 0.5}, False),
)

# Within the 8 steps of a trajectory: decays every few steps, boundaries, a cycle, a warm-up.
SCHEDULE = _configs(
    ({"decay_steps": 3}, False),
    ({"decay_steps": 3, "staircase": True}, False),
    ({"boundaries": (2, 5), "values": (0.1, 0.05, 0.01)}, False),
    ({"decay_steps": 5, "power": 2.0}, False),
    ({"decay_steps": 3, "cycle": True}, False),
    ({"decay_steps": 5, "alpha": 0.1}, False),
    ({"decay_steps": 5, "warmup_target": 0.05, "warmup_steps": 3}, False),
)

_TABLES = {"activation": ACTIVATION, "loss": LOSS, "metric": METRIC, "optimizer": OPTIMIZER,
           "initializer": INITIALIZER, "layer": LAYER, "regularizer": REGULARIZER, "constraint": CONSTRAINT,
           "schedule": SCHEDULE}


def _default(kind: str, fields: Collection[str]) -> Config:
    # An Input layer has no valid default shape: its default case declares the usual one.
    if kind == "layer" and "shape" in fields:
        return Config((("shape", LAYER_INPUT_SHAPE),))
    return Config()


def configs(kind: str, cls: type[Any]) -> list[Config]:
    """The default configuration, then every table entry whose fields the class has."""
    fields = {f.name for f in dataclasses.fields(cls)}
    chosen = [_default(kind, fields)]
    names = {klass.__dict__.get("name") for klass in cls.__mro__}
    for config in _TABLES[kind]:
        if all(key in fields for key, _ in config.kwargs) and config not in chosen \
                and (not config.only or names & set(config.only)) and not names & set(config.skip):
            chosen.append(config)
    if kind == "optimizer" and "learning_rate" in fields:
        chosen.extend(_schedule_config(cls))
    return chosen
