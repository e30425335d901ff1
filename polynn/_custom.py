"""User functions as components: polynn.register(name) and the registry of named functions.

A function registered by name can be used as a loss, metric or activation, and round-trips through
get_config/from_config by that name: a config never names a Python module, so loading a model
with a custom function only works where the program has registered that function itself.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

from . import _registry, ops
from ._typing import Tensor
from .errors import InvalidArgumentError, PluginError

KINDS = ("loss", "metric", "activation")
_FUNCTIONS: dict[str, dict[str, Callable]] = {kind: {} for kind in KINDS}


def _kinds_from_arity(function: Callable) -> tuple[str, ...]:
    try:
        params = [p for p in inspect.signature(function).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty]
    except (TypeError, ValueError):
        return KINDS
    if len(params) == 1:
        return ("activation",)
    if len(params) == 2:
        return ("loss", "metric")
    return KINDS


_F = TypeVar("_F", bound=Callable[..., Any])


def register(name: str, kind: str | None = None) -> Callable[[_F], _F]:
    """Decorator: register `function` under `name` as a loss, metric or activation.

    kind defaults to what the signature suggests: one argument (x) makes an activation, two
    (y_true, y_pred) a loss and a metric. Write the function with polynn.ops so it runs, and
    differentiates, on every backend.
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise InvalidArgumentError("name", name, "a Python identifier such as 'my_loss'", owner="polynn.register")
    if kind is not None and kind not in KINDS:
        raise InvalidArgumentError("kind", kind, "None, " + ", ".join(KINDS), owner="polynn.register")

    def decorator(function: _F) -> _F:
        if not callable(function):
            raise InvalidArgumentError("function", function, "a callable", owner="polynn.register")
        for k in (kind,) if kind else _kinds_from_arity(function):
            if name.lower() in _registry._BY_NAME[k]:
                raise PluginError(f"{k} {name!r} is registered twice: by polynn's built-in "
                                  f"{_registry.lookup(k, name).__name__} and by {function!r}")
            held = _FUNCTIONS[k].get(name)
            if held is not None and held is not function:
                raise PluginError(f"{k} {name!r} is registered twice: by {held!r} and by {function!r}")
            _FUNCTIONS[k][name] = function
        return function

    return decorator


def function(kind: str, name: str) -> Callable | None:
    return _FUNCTIONS.get(kind, {}).get(name)


def name_of(kind: str, function: Callable) -> str | None:
    for name, held in _FUNCTIONS.get(kind, {}).items():
        if held is function:
            return name
    return None


def unregister(name: str) -> None:
    """Forget a registered function under every kind (for tests and notebooks)."""
    for table in _FUNCTIONS.values():
        table.pop(name, None)


def _function_name(spec: Any) -> str:
    """The name a user function was registered under, else its __name__; a plugin's own spec's name."""
    function = getattr(spec, "function", None)
    name = None if function is None else name_of(spec.kind, function) or getattr(function, "__name__", None)
    return name if isinstance(name, str) else spec.name


def per_sample_check(spec, values_shape, y_pred_shape, weighted: bool = False) -> None:
    """A user loss or metric gives values per sample (at least one axis, the batch first: Keras' loss
    functions give y_pred's shape without its last axis) or one value for the batch (shape ()), both
    as Keras 3 takes them. A backend calls this with the static shapes, so the error comes at the
    first step, naming the function, not from deep in a reduction. `weighted`: the values are about to
    be weighted per sample (a metric of compile's weighted_metrics, given sample or class weights),
    which one value per batch cannot be; Keras 3 refuses it too."""
    values_shape, y_pred_shape = tuple(values_shape), tuple(y_pred_shape)
    if values_shape == ():
        if not weighted:
            return
        raise InvalidArgumentError(
            f"values of custom {spec.kind} {_function_name(spec)}, weighted by sample or class weights",
            "one value per batch (shape ())",
            f"one value per sample, shape {y_pred_shape[:-1]} (for example polynn.ops.mean(..., axis=-1)), which "
            f"weights can weight; or the {spec.kind} in compile(metrics=[...]) rather than weighted_metrics, "
            f"which ignores the weights (Keras 3 refuses a weighted one-per-batch value too)")
    # A graph engine may not know the batch size while it traces (None): that matches.
    if values_shape[0] == y_pred_shape[0] or None in (values_shape[0], y_pred_shape[0]):
        return
    raise InvalidArgumentError(
        f"values of custom {spec.kind} {_function_name(spec)}", f"shape {values_shape}",
        f"one value per sample: shape {y_pred_shape[:-1]} for y_pred of shape {y_pred_shape} (for example "
        f"polynn.ops.mean(..., axis=-1)), or one value for the batch: shape (); write it with polynn.ops, "
        f"whose reductions take an axis")


def check_arity(kind: str, function: Callable, owner: str) -> None:
    """A loss or metric function takes (y_true, y_pred), an activation (x): said at compile, not at fit."""
    arguments = ("x",) if kind == "activation" else ("y_true", "y_pred")
    try:
        inspect.signature(function).bind(*arguments)
    except ValueError:  # no signature to read (some builtins): the call will tell
        return
    except TypeError:
        raise InvalidArgumentError("function", function, f"a function of {len(arguments)} positional "
                                   f"argument{'s' if len(arguments) > 1 else ''} ({', '.join(arguments)})",
                                   owner=owner) from None


def per_sample_values(spec: Any, y_true: Tensor, y_pred: Tensor) -> Tensor:
    """A custom loss's or metric's values, spec.function(y_true, y_pred) on polynn.ops, as a tensor of
    y_pred's dtype (the function may return a number, an array or another float dtype), checked to
    give one value per sample or one for the batch."""
    values = ops.cast(ops.convert_to_tensor(spec.function(y_true, y_pred)), ops.dtype(y_pred))
    per_sample_check(spec, ops.shape(values), ops.shape(y_pred))
    return values


def __getattr__(name: str) -> Any:
    # polynn._custom.check_values was what plugins imported before it became public.
    if name == "check_values":
        warnings.warn("polynn._custom.check_values is deprecated: import polynn.backend.check_values",
                      DeprecationWarning, stacklevel=2)
        return per_sample_check
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
