"""Argument checks and window arithmetic shared by the convolution, pooling and reshaping layers."""

from __future__ import annotations

import numbers
from typing import Any

from .._spec import INT_LIMIT, check_shape
from ..errors import InvalidArgumentError

__all__ = ["check_data_format", "check_input_shape", "check_sizes", "check_padding", "check_rank", "conv_length",
           "pool_length", "spatial_names"]

CHANNELS_LAST = "channels_last"


def check_data_format(owner: str, value: Any) -> str:
    """Keras's data_format: None means channels_last here (Keras reads it from keras.json, whose
    default it is); channels_first is refused, as polynn's layers compute on channels_last only."""
    if value is None or value == CHANNELS_LAST:
        return CHANNELS_LAST
    raise InvalidArgumentError(
        "data_format", value, "'channels_last' or None (polynn's layers take channels_last inputs, (batch, ..., "
        "channels); transpose channels_first data to that order before the model)", owner=owner)


def check_sizes(owner: str, name: str, value: Any, rank: int) -> tuple[int, ...]:
    """An int, or `rank` of them, each > 0 (Keras's standardize_tuple): the tuple of `rank` sizes."""
    items = (value,) * rank if isinstance(value, numbers.Integral) and not isinstance(value, bool) else value
    try:
        sizes = tuple(items)
    except TypeError:
        sizes = ()
    valid = len(sizes) == rank and all(
        isinstance(s, numbers.Integral) and not isinstance(s, bool) and 0 < int(s) <= INT_LIMIT for s in sizes)
    if not valid:
        accepted = "an integer > 0" + ("" if rank == 1 else f", or a tuple of {rank} of them")
        raise InvalidArgumentError(name, value, accepted, owner=owner)
    return tuple(int(s) for s in sizes)


def check_padding(owner: str, value: Any, choices: tuple[str, ...]) -> str:
    """One of `choices`, in any case (Keras lower-cases a layer's padding)."""
    lowered = value.lower() if isinstance(value, str) else value
    if lowered not in choices:
        raise InvalidArgumentError("padding", value, "one of " + ", ".join(repr(c) for c in choices), owner=owner)
    return str(lowered)


def spatial_names(rank: int) -> str:
    return "steps" if rank == 1 else "height, width"


def check_rank(owner: str, input_shape: tuple, rank: int) -> None:
    """A per-sample input of `rank` spatial axes and a channel axis (the batch axis excluded)."""
    if len(input_shape) != rank + 1:
        raise InvalidArgumentError(
            "input shape", tuple(input_shape),
            f"a per-sample shape of {rank + 1} axes, ({spatial_names(rank)}, channels), channels_last (the batch "
            f"axis excluded)", owner=owner)


def check_input_shape(owner: str, value: Any, rank: int) -> tuple[int, ...]:
    """Keras's input_shape keyword of a first layer: a per-sample shape of `rank` spatial axes and
    a channel axis, as the layer takes."""
    shape = check_shape(owner, "input_shape", value)
    check_rank(owner, shape, rank)
    return shape


def conv_length(n: int, k: int, s: int, d: int, padding: str) -> int:
    """Output length of a convolution along one axis: ceil(n / s) for same and causal padding,
    floor((n - d (k - 1) - 1) / s) + 1 for valid (0 when the dilated kernel exceeds n)."""
    if padding in ("same", "causal"):
        return -(-n // s)
    span = d * (k - 1) + 1
    return 0 if n < span else (n - span) // s + 1


def pool_length(n: int, k: int, s: int, padding: str) -> int:
    """Output length of a pooling along one axis: ceil(n / s) for same, floor((n - k) / s) + 1 for
    valid (0 when the window exceeds n)."""
    if padding == "same":
        return -(-n // s)
    return 0 if n < k else (n - k) // s + 1
