"""The base of every spec object: immutable, validated, and round-trippable through JSON."""

from __future__ import annotations

import abc
import dataclasses
import difflib
import functools
import inspect
import math
import numbers
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import numpy as np

from . import _custom, _foreign, _registry, plugins
from .errors import InvalidArgumentError, UnknownComponentError

if TYPE_CHECKING:
    from typing_extensions import dataclass_transform
else:
    def dataclass_transform(**_: Any) -> Callable[[Any], Any]:  # typing's from Python 3.11; for type checkers
        return lambda decorated: decorated

_C = TypeVar("_C", bound="Component")


def component_field(kind: str, default: Any = None, *, optional: bool = True) -> Any:
    """A dataclass field holding another component, resolved from a name, dict or instance."""
    return dataclasses.field(default=default, metadata={"kind": kind, "optional": optional})


# The field holding the name a user gives a layer or a metric (Keras's `name=`). The class
# variable `name` is the component's registry name, which backends look implementations up by,
# so the instance's own name lives in this field; `name=` and the config key "name" fill it.
GIVEN_NAME = "given_name"


def check_name(owner: str, value: Any) -> str | None:
    """A name given with name=: None (the model names it) or a non-empty string without "/"
    (Keras refuses "/" too: it separates the parts of a weight's path)."""
    if value is None:
        return None
    if not isinstance(value, str) or not value or "/" in value:
        raise InvalidArgumentError("name", value, 'None or a non-empty string without "/"', owner=owner)
    return str(value)


def _takes_name(cls: type[Any]) -> bool:
    return GIVEN_NAME in getattr(cls, "__dataclass_fields__", {})


class _ComponentMeta(abc.ABCMeta):
    """Component's metaclass: cls(..., name=...) fills the `given_name` field of the kinds that
    have one (a dataclass's __init__ cannot take a keyword named as a class variable)."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        if _takes_name(cls):
            if "name" in kwargs:
                if GIVEN_NAME in kwargs:
                    raise InvalidArgumentError("keyword given_name", kwargs[GIVEN_NAME],
                                               "name= or given_name=, not both", owner=cls.__name__)
                kwargs[GIVEN_NAME] = kwargs.pop("name")
            if GIVEN_NAME in kwargs:
                kwargs[GIVEN_NAME] = check_name(cls.__name__, kwargs[GIVEN_NAME])
        return super().__call__(*args, **kwargs)


@_registry.register_base
class Component(metaclass=_ComponentMeta):
    """Shared behaviour of spec dataclasses.

    Subclasses are frozen dataclasses with ClassVars `kind` and `name`; fields made with
    `component_field` are resolved to spec instances, and `validate()` checks the rest.
    Layers and metrics also hold the name a user gives them (`name=`) in the field `given_name`.
    """

    kind: ClassVar[str]
    name: ClassVar[str]
    aliases: ClassVar[tuple[str, ...]] = ()
    __dataclass_fields__: ClassVar[dict[str, dataclasses.Field[Any]]]  # every subclass is a dataclass

    def __new__(cls: type[_C], *args: Any, **kwargs: Any) -> _C:
        # The dataclass __init__ would raise a bare TypeError for these; say what is accepted.
        if args or kwargs:
            accepted = _init_parameters(cls)
            if accepted is not None:
                # said as the user says it: name=, which the metaclass turned into given_name=
                shown = ["name" if a == GIVEN_NAME else a for a in accepted]
                check_arguments(cls.__name__, shown, args, {("name" if k == GIVEN_NAME else k): v
                                                           for k, v in kwargs.items()})
        return super().__new__(cls)

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, (np.generic, tuple, list)):
                # numpy scalars become Python numbers, so configs stay JSON and compare equal
                object.__setattr__(self, f.name, _plain(value))
            kind = f.metadata.get("kind")
            if kind is not None:
                value = getattr(self, f.name)
                if value is None and f.metadata.get("optional", True):
                    continue
                object.__setattr__(self, f.name, resolve(kind, value))
        self.validate()

    def validate(self) -> None:
        """Raise InvalidArgumentError for a bad field; normalise fields with _set."""

    def _set(self, field: str, value: Any) -> None:
        object.__setattr__(self, field, value)

    def _number(self, field: str, **bounds: Any) -> float:
        """check_number on a float field, which then holds a Python float: an engine never meets
        a Python int (one beyond int64 crashes NumPy and PyTorch arithmetic)."""
        value = check_number(type(self).__name__, field, getattr(self, field), **bounds)
        self._set(field, value)
        return value

    def get_config(self) -> dict[str, Any]:
        config = {f.name: _to_json(getattr(self, f.name)) for f in dataclasses.fields(self)}
        if "function" in config:
            config["function"] = FunctionField.to_json(self)
        if GIVEN_NAME in config:
            # Keras's key, first as in Keras; absent when the model names the component, so the
            # configs (and files) of unnamed layers and metrics are what they were before names.
            given = config.pop(GIVEN_NAME)
            config = config if given is None else {"name": given, **config}
        return config

    @classmethod
    def from_config(cls: type[_C], config: dict[str, Any]) -> _C:
        if not isinstance(config, dict):
            raise InvalidArgumentError("config", config, "a dict from get_config()", owner=cls.__name__)
        known = {f.name for f in dataclasses.fields(cls)}
        if GIVEN_NAME in known:
            known = (known - {GIVEN_NAME}) | {"name"}
        unknown = sorted(set(config) - known)
        if unknown:
            raise InvalidArgumentError(
                "config keys", unknown, f"keys of {cls.__name__}: {', '.join(sorted(known))}", owner=cls.__name__
            )
        return cls(**config)


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_plain(v) for v in value)
    return value


def _to_json(value: Any) -> Any:
    if isinstance(value, Component):
        return _registry.serialize(value)
    if isinstance(value, tuple):
        return [_to_json(v) for v in value]
    if isinstance(value, dict):
        return {k: _to_json(v) for k, v in value.items()}
    return value


def resolve(kind: str, identifier: Any) -> Any:
    """Turn a name (any case), a {'class_name', 'config'} dict or an instance into a spec."""
    if isinstance(identifier, Component):
        if type(identifier) is not identifier.__class__:
            # A view that reads as its spec (model.layers[i], model.optimizer): the spec itself.
            identifier = identifier.spec  # type: ignore[attr-defined]  # the view's spec
        if identifier.kind != kind:
            raise InvalidArgumentError(kind, identifier, f"a {kind} name or {kind} object")
        _registry.check_usable(identifier)
        return identifier
    # A Keras or torch loss is callable: it would pass as a user function and fail at fit.
    _foreign.refuse_component(kind, identifier)
    if isinstance(identifier, str):
        try:
            return plugins.lookup(kind, identifier)()
        except UnknownComponentError:
            if _custom.function(kind, identifier) is None:
                raise
            return plugins.lookup(kind, f"custom_{kind}")(function=identifier)
    if isinstance(identifier, dict) and "class_name" in identifier:
        cls: type[Any] = plugins.lookup(kind, str(identifier["class_name"]))
        return cls.from_config(identifier.get("config") or {})
    if isinstance(identifier, type) and issubclass(identifier, Component) and identifier.kind == kind:
        return identifier()
    spec_class = getattr(identifier, "__polynn_spec__", None)
    if spec_class is not None and callable(identifier) and getattr(spec_class, "kind", None) == kind:
        return spec_class()
    if callable(identifier) and spec_class is None and kind in ("loss", "metric", "activation"):
        return plugins.lookup(kind, f"custom_{kind}")(function=identifier)
    raise UnknownComponentError(kind, identifier, _registry.names(kind))


# ---- validation helpers shared by the spec modules -------------------------------------


@functools.cache
def _init_parameters(cls: type[Any]) -> list[str] | None:
    """The argument names cls(...) takes (InitVars included), or None when it takes *args or
    **kwargs (then its __init__ is left to judge)."""
    parameters = list(inspect.signature(cls.__init__).parameters.values())[1:]
    if any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in parameters):
        return None
    return [p.name for p in parameters]


# Keywords Keras users write out of habit, and what polynn has instead.
_KERAS_HINTS = {
    "name": "name= is taken by layers and metrics, whose names the summary and the logs show",
    "lr": "the rate is learning_rate, as in Keras 3",
}


def check_arguments(owner: str, accepted: list[str], args: tuple = (), kwargs: dict | None = None,
                    hints: dict[str, str] | None = None) -> None:
    """Refuse keywords outside `accepted` (and more positional arguments than it names) with an
    InvalidArgumentError naming them and the accepted ones; `hints` adds a word for known ones."""
    if len(args) > len(accepted):
        raise InvalidArgumentError("positional arguments", f"{len(args)} given", f"at most {len(accepted)}: "
                                   + ", ".join(accepted), owner=owner)
    for key, value in (kwargs or {}).items():
        if key in accepted[:len(args)]:
            raise InvalidArgumentError(f"keyword {key}", value, f"{key} given once: it is also positional "
                                       f"argument {accepted.index(key) + 1}", owner=owner)
        if key in accepted:
            continue
        hint = (hints or {}).get(key)
        if hint is None:
            close = difflib.get_close_matches(key, accepted, n=1, cutoff=0.6)
            hint = f"did you mean {close[0]!r}?" if close else None
        if hint is None and (key != "lr" or "learning_rate" in accepted):
            hint = _KERAS_HINTS.get(key)
        raise InvalidArgumentError(f"keyword {key}", value, "keywords " + ", ".join(accepted)
                                   + (f" ({hint})" if hint else ""), owner=owner)




# Float parameters reach the engines as float32 (the default dtype) or float64; a spec means the
# same number in either, so its magnitude stays within float32's (a larger one would be inf there).
FLOAT_LIMIT = float(np.finfo(np.float32).max)
# Integer parameters (sizes, counts, seeds, axes) are held by the engines as int64 (C long).
INT_LIMIT = 2**63 - 1


def as_real(value: Any) -> float | None:
    """`value` as a float when it is a real number (not a bool) that float64 holds, else None:
    a Python int too large for float64, a string or a bool give None, never an exception."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    try:
        return float(value)
    except (OverflowError, ValueError, TypeError):
        return None


def check_int(owner: str, name: str, value: Any, *, low: int | None = None, high: int = INT_LIMIT,
              accepted: str | None = None) -> int:
    """An integer (not a bool; a NumPy integer too) in [low, high], high at most int64's largest."""
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    ok = ok and (low is None or value >= low) and value <= high
    if not ok:
        if accepted is None:
            accepted = "an integer " + ("" if low is None else f">= {low} and ") + f"<= {_limit_text(high)}"
        raise InvalidArgumentError(name, value, accepted, owner=owner)
    return int(value)


def _limit_text(high: int) -> str:
    return "2**63 - 1" if high == INT_LIMIT else str(high)


def check_positive_int(owner: str, name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise InvalidArgumentError(name, value, "an integer > 0", owner=owner)
    return check_int(owner, name, value, low=1, accepted="an integer > 0 and <= 2**63 - 1")


def check_seed(owner: str, name: str, value: Any) -> int:
    """A seed of polynn.random's streams: an integer in [0, 2**63), as compile(seed=) takes."""
    return check_int(owner, name, value, low=0, accepted="an integer in [0, 2**63)")


def check_axis(owner: str, value: Any, name: str = "axis") -> int:
    """An integer axis (its range is checked against the data's rank once that is known)."""
    return check_int(owner, name, value, low=-INT_LIMIT, accepted="an integer axis (|axis| <= 2**63 - 1)")


def check_feature_axis(owner: str, axis: int, rank: int, what: str, *, batch: bool = False) -> None:
    """`axis` must name an axis of `what`, an array of `rank` axes with the batch first: a feature
    axis, 1 .. rank - 1 or -(rank - 1) .. -1, or with `batch` the batch axis too. A loss or metric
    must not reduce over the batch: its values are per sample (sample weights, batching)."""
    low = -rank if batch else -(rank - 1)
    if not (low <= axis <= -1 or (0 if batch else 1) <= axis < rank):
        kind = "an axis" if batch else "a feature axis"
        raise InvalidArgumentError(
            "axis", axis, f"{kind} of {what} of rank {rank} (batch axis first): "
            f"{0 if batch else 1} to {rank - 1} or {low} to -1", owner=owner)


def check_output_axes(components: Any, output_shape: tuple) -> None:
    """Each component (a loss, a metric) with an integer `axis` must name a feature axis of the
    model's output, `output_shape` per sample: checked at compile when the shape is known, else at
    the first fit, evaluate or predict."""
    for component in components:
        axis = getattr(component, "axis", None)
        if isinstance(axis, int) and not isinstance(axis, bool):
            check_feature_axis(type(component).__name__, axis, len(output_shape) + 1, "the model's output")


def check_number(owner: str, name: str, value: Any, *, low: float | None = None, high: float | None = None,
                 low_open: bool = False, high_open: bool = False, accepted: str | None = None,
                 engine: bool = True) -> float:
    """A real number (not a bool), finite and in the bounds given; within float32's range
    (FLOAT_LIMIT) when it reaches the engine, which may compute in float32 (engine=False: a value
    the core alone compares, in float64, such as a callback's threshold)."""
    number = as_real(value)
    x = math.nan if number is None else number
    limit = FLOAT_LIMIT if engine else math.inf
    ok = math.isfinite(x) and abs(x) <= limit
    if ok and low is not None:
        ok = x > low if low_open else x >= low
    if ok and high is not None:
        ok = x < high if high_open else x <= high
    if not ok:
        if accepted is None:
            lo = "" if low is None else f"{'>' if low_open else '>='} {low}"
            hi = "" if high is None else f"{'<' if high_open else '<='} {high}"
            accepted = "a finite number " + " and ".join(p for p in (lo, hi) if p)
        integer = isinstance(value, numbers.Integral) and not isinstance(value, bool)
        if engine and ((math.isfinite(x) and abs(x) > FLOAT_LIMIT) or (number is None and integer)):
            accepted = f"{accepted.strip()}, at most {FLOAT_LIMIT:.8g} in magnitude (float32's largest)"
        raise InvalidArgumentError(name, value, accepted.strip(), owner=owner)
    return x


def check_choice(owner: str, name: str, value: Any, choices: Collection[Any]) -> Any:
    if value not in choices:
        raise InvalidArgumentError(name, value, "one of " + ", ".join(repr(c) for c in choices), owner=owner)
    return value


def check_bool(owner: str, name: str, value: Any) -> bool:
    """`value` as a bool: True or False, NumPy's too (np.bool_, what comparisons of arrays give)."""
    if isinstance(value, np.bool_):
        return bool(value)
    if not isinstance(value, bool):
        raise InvalidArgumentError(name, value, "True or False", owner=owner)
    return value


def check_shape(owner: str, name: str, value: Any, *, allow_none: bool = False) -> tuple:
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        value = (value,)
    try:
        dims = tuple(value)
    except TypeError:
        raise InvalidArgumentError(name, value, "a tuple of positive integers", owner=owner) from None
    for d in dims:
        if d is None and allow_none:
            continue
        if isinstance(d, bool) or not isinstance(d, numbers.Integral) or not 0 < int(d) <= INT_LIMIT:
            what = "positive integers or None" if allow_none else "positive integers"
            if isinstance(d, numbers.Integral) and not isinstance(d, bool) and int(d) > INT_LIMIT:
                what += " (each <= 2**63 - 1)"
            raise InvalidArgumentError(name, value, f"a tuple of {what}", owner=owner)
    return tuple(None if d is None else int(d) for d in dims)


def as_function(cls: type[Component], call: Callable[..., Any]) -> Callable[..., Any]:
    """A module-level function for spec class `cls` (Keras's keras.activations.relu and the like):
    calling it evaluates `call(cls(**options), *arrays)`; passing it where a component is expected
    means cls() with its defaults."""

    def function(*arrays: Any, **options: Any) -> Any:
        return call(cls(**options), *arrays)

    function.__name__ = function.__qualname__ = cls.name
    function.__doc__ = cls.__doc__
    function.__polynn_spec__ = cls  # type: ignore[attr-defined]  # an attribute of this function object
    return function


class FunctionField:
    """Validation and serialization of the `function` field of the custom_* specs."""

    @staticmethod
    def validate(component: Any) -> None:
        value = component.function
        if isinstance(value, str):
            held = _custom.function(component.kind, value)
            if held is None:
                raise UnknownComponentError(f"custom {component.kind} function", value,
                                            _custom._FUNCTIONS[component.kind])
            component._set("function", held)
        elif not callable(value):
            raise InvalidArgumentError("function", value, "a callable or the name given to polynn.register",
                                       owner=type(component).__name__)
        _custom.check_arity(component.kind, component.function, type(component).__name__)

    @staticmethod
    def to_json(component: Any) -> str:
        name = _custom.name_of(component.kind, component.function)
        if name is None:
            raise InvalidArgumentError(
                "function", component.function,
                f"a function registered with @polynn.register(name) before its {component.kind} is saved",
                owner=type(component).__name__)
        return name

    @staticmethod
    def display_name(component: Any) -> str:
        name = _custom.name_of(component.kind, component.function)
        if name:
            return name
        return getattr(component.function, "__name__", "custom")


@dataclass_transform(frozen_default=True, field_specifiers=(dataclasses.field,))
def spec(cls: type[_C]) -> type[_C]:
    """Decorator: make a frozen dataclass spec and register it as a built-in."""
    cls = dataclasses.dataclass(frozen=True, repr=True, eq=True)(cls)
    return _registry.builtin(cls)
