"""The registry of component specs: every name a config may use, and where it came from."""

from __future__ import annotations

import dataclasses
from typing import Any, NoReturn

from .errors import ImmutableSpecError, PluginError, UnknownComponentError

KINDS = (
    "layer",
    "activation",
    "loss",
    "metric",
    "optimizer",
    "schedule",
    "initializer",
    "regularizer",
    "constraint",
)

# kind -> lower-case name or alias -> spec class
_BY_NAME: dict[str, dict[str, type[Any]]] = {kind: {} for kind in KINDS}
# spec class -> where it was registered from (a plugin or distribution name)
_SOURCE: dict[type[Any], str] = {}
# A plugin's spec class -> (the plugin and its distribution, {key: polynn's own spec holding it}) for
# each of its keys that one of polynn's own specs holds: polynn's stays (register_spec). A class
# whose name is among them is left out of the tables altogether.
_YIELDED: dict[type[Any], tuple[str, dict[str, type[Any]]]] = {}


def _keys(cls: type[Any]) -> list[str]:
    keys = [cls.name, cls.__name__, *getattr(cls, "aliases", ())]
    return list(dict.fromkeys(k.lower() for k in keys))


# The classes a plugin's spec class is checked against: the root of every spec (polynn._spec's
# Component) and the base of each kind (polynn.layers.Layer, ...). Those modules import this one,
# so they hand their classes over with register_base as they define them.
_ROOT: list[type[Any]] = []
_BASES: dict[str, type[Any]] = {}


def register_base(cls: type[Any]) -> type[Any]:
    """Class decorator for polynn's spec root (no kind of its own) and its base of each kind."""
    kind = cls.__dict__.get("kind")
    if kind is None:
        _ROOT[:] = [cls]
    else:
        _BASES[kind] = cls
    return cls

# What the core reads from every spec of a kind and the base does not define (docs/plugins.md §4):
# kind -> (dataclass fields, methods the subclass must override; a tuple of names: one of them).
REQUIRED = {
    "loss": (("reduction",), ()),  # compile() refuses 'none', Loss.validate() checks it
    "optimizer": (("learning_rate",), ()),  # Optimizer.validate() and learning_rates() read it
    "metric": ((), ("compute",)),  # Metric.result() calls it
    # the optimizer evaluates its schedule at each step: evaluate(t), or the float32 rates(t) it wraps
    "schedule": ((), (("evaluate", "rates"),)),
    "initializer": ((), ("sample",)),  # the core draws initial weights with it
}
_FIELD_EXAMPLES = {
    "reduction": 'reduction: str = "sum_over_batch_size" (or another of polynn.losses.REDUCTIONS)',
    "learning_rate": "learning_rate: float = 0.01 (a number, or a schedule)",
}


def _describe(cls: Any) -> str:
    if isinstance(cls, type):
        return f"spec class {cls.__qualname__} ({cls.__module__}.{cls.__qualname__})"
    return f"spec class {cls!r} ({type(cls).__name__})"


def _a(kind: str) -> str:
    return f"{'an' if kind[0] in 'aeiou' else 'a'} {kind}"


def check_spec_class(cls: Any, source: str) -> None:
    """Raise PluginError, naming `source` and the class, unless `cls` is a spec class polynn can use."""
    def refuse(problem: str, accepted: str) -> NoReturn:
        raise PluginError(f"{source}: {_describe(cls)} {problem}; accepted: {accepted}")

    if not isinstance(cls, type) or not issubclass(cls, _ROOT[0]):
        refuse("is not a component class",
               "a frozen dataclass subclassing one of polynn's component bases (polynn.activations.Activation, "
               "polynn.losses.Loss, ...)")
    kind = getattr(cls, "kind", None)
    if kind not in KINDS:
        refuse(f"has kind {kind!r}", f"a subclass of a component base, which sets kind to one of {', '.join(KINDS)}")
    base = _BASES[kind]
    module, base_name = base.__module__, base.__qualname__
    if not issubclass(cls, base):
        refuse(f"has kind {kind!r} but does not subclass {module}.{base_name}",
               f"{_a(kind)} spec subclasses {module}.{base_name}")
    params = cls.__dict__.get("__dataclass_params__")  # set on the class itself by @dataclass
    if params is None or not params.frozen:
        refuse("is not itself a frozen dataclass" if params is None else "is a dataclass that is not frozen",
               "a class decorated with @dataclasses.dataclass(frozen=True)")
    fields = {f.name for f in dataclasses.fields(cls)}
    name = getattr(cls, "name", None)
    if "name" in fields or "kind" in fields:
        refuse("declares name or kind as a dataclass field",
               'class variables: name: ClassVar[str] = "my_name" (kind comes from the base)')
    if not isinstance(name, str) or not name:
        refuse(f"has name {name!r}", 'a non-empty string class variable: name: ClassVar[str] = "my_name"')
    aliases = getattr(cls, "aliases", ())
    if not isinstance(aliases, (tuple, list)) or not all(isinstance(a, str) and a for a in aliases):
        refuse(f"has aliases {aliases!r}", "a tuple of non-empty strings")
    needed_fields, needed_methods = REQUIRED.get(kind, ((), ()))
    for field in needed_fields:
        if field not in fields:
            refuse(f"is {_a(kind)} without a {field!r} field", f"{_a(kind)} declares {_FIELD_EXAMPLES[field]}")
    for needed in needed_methods:
        choices = needed if isinstance(needed, tuple) else (needed,)

        def defined(method: str) -> bool:
            inherited = getattr(cls, method, None) is getattr(base, method, None)
            return not inherited and method not in getattr(cls, "__abstractmethods__", ())

        if not any(defined(method) for method in choices):
            wanted = " or ".join(f"{method}()" for method in choices)
            refuse(f"is {_a(kind)} that does not define {wanted}",
                   f"{_a(kind)} overrides " + " or ".join(f"{base.__module__}.{base.__qualname__}.{method}()"
                                                          for method in choices))


def refuse_assignment(self: Any, name: str, value: Any) -> None:
    """Specs are immutable (a frozen dataclass's assignment error, made a polynn error that says
    what to do instead); Keras users set optimizer.learning_rate in callbacks: model.learning_rate."""
    owner = type(self).__name__
    if name == "learning_rate" and getattr(self, "kind", None) == "optimizer":
        hint = "set model.optimizer.learning_rate (or model.learning_rate), the compiled model's live rate"
    else:
        hint = f"a new spec: dataclasses.replace(spec, {name}=...)"
    raise ImmutableSpecError(f"{owner}: specs are immutable, so {name}={value!r} cannot be set; accepted: {hint}")


def _show_given_name(cls: type[Any]) -> None:
    """A layer's or metric's repr ends with the name it was given, name='...', and a frozen layer's
    with trainable=False; its dataclass repr leaves those base fields out, so an unnamed, trainable
    one reads as it did before names and freezing."""
    fields = getattr(cls, "__dataclass_fields__", {})
    shown = [f for f in ("given_name", "trainable") if f in fields and not fields[f].repr]
    plain: Any = cls.__repr__
    if not shown or getattr(plain, "shows_given_name", False):
        return

    def named_repr(self: Any) -> str:
        text = plain(self)
        extra = []
        if "given_name" in shown and self.given_name is not None:
            extra.append(f"name={self.given_name!r}")
        if "trainable" in shown and self.trainable is not True:
            extra.append(f"trainable={self.trainable!r}")
        if not extra or not text.endswith(")"):
            return text
        return f"{text[:-1]}{'' if text.endswith('()') else ', '}{', '.join(extra)})"

    named_repr.__name__ = named_repr.__qualname__ = "__repr__"
    named_repr.shows_given_name = True  # type: ignore[attr-defined]  # marks the wrapper, wrapped once
    cls.__repr__ = named_repr  # type: ignore[assignment]  # a plain function: a method of the class


def register_spec(cls: type[Any], *, source: str = "polynn", label: str | None = None) -> type[Any]:
    """Add a spec class under its name, its class name and its aliases, refusing clashes. A plugin's
    class (`source` not "polynn"; `label` names the plugin and its distribution, for messages) yields
    to polynn's own specs: a key one of them holds stays theirs, and a class whose name one holds is
    left out (yielded() says which; check_usable() refuses its instances); polynn's own class handed
    in again stays polynn's."""
    plugin = source != "polynn"
    # polynn's own classes are checked once by a test instead of at every import
    # (measured: docs/performance.md#spec-class-checks-at-import).
    if plugin:
        check_spec_class(cls, source)
    # Assigning a field says what to do instead (still a FrozenInstanceError), for every spec.
    cls.__setattr__ = refuse_assignment  # type: ignore[assignment]  # a plain function: a method of the class
    _show_given_name(cls)
    if plugin and _SOURCE.get(cls) == "polynn":
        return cls
    kind = cls.kind
    table = _BY_NAME[kind]
    keys = _keys(cls)
    # polynn's own specs win over a plugin's: a release adding one must not break a plugin that had it
    ours = {key: held for key in keys if plugin and (held := table.get(key)) is not None
            and _SOURCE.get(held) == "polynn"}
    if cls.name.lower() in ours:
        keys = []  # its configs would load as polynn's class: left out
    for key in keys:
        holder = table.get(key)
        if holder is not None and holder is not cls and key not in ours:
            raise PluginError(
                f"{kind} {key!r} is registered twice: by {_SOURCE.get(holder, '?')} "
                f"({holder.__module__}.{holder.__qualname__}) and by {source} "
                f"({cls.__module__}.{cls.__qualname__})"
            )
    for key in keys:
        if key not in ours:
            table[key] = cls
    _SOURCE[cls] = source
    if ours:
        _YIELDED[cls] = (label or source, ours)
    return cls


def yielded(cls: type[Any]) -> dict[str, type[Any]]:
    """{key: polynn's own spec class holding it} for the keys of a plugin's class that polynn's own
    specs hold (empty if none); the class is left out when its name is one of them."""
    return dict(_YIELDED.get(cls, ("", {}))[1])


def yielded_by(label: str) -> list[type[Any]]:
    """The spec classes registered with `label` (a plugin) that yielded keys to polynn's own, in order."""
    return [cls for cls, (by, _) in _YIELDED.items() if by == label]


def spec_keys(cls: type[Any]) -> list[str]:
    """The lower-case keys a spec class registers under: its name, its class name, its aliases."""
    return _keys(cls)


def left_out(cls: type[Any]) -> bool:
    """Whether a plugin registered `cls` and it was left out: polynn's own spec holds its name."""
    return cls.name.lower() in _YIELDED.get(cls, ("", {}))[1]


def check_usable(component: Any) -> None:
    """Raise PluginError for a component whose class was left out (left_out()), or a subclass of one
    under the same name, which polynn's own spec of that name would silently stand in for."""
    for cls in type(component).__mro__:
        if cls in _YIELDED and left_out(cls) and getattr(component, "name", "").lower() == cls.name.lower():
            plugin, ours = _YIELDED[cls]
            own = ours[cls.name.lower()]
            public = f"{own.__module__}.{own.__qualname__}"
            what = f"{type(component).__module__}.{type(component).__qualname__}"
            if type(component) is not cls:
                what += f" (a subclass of {cls.__module__}.{cls.__qualname__})"
            raise PluginError(
                f"{what}: {cls.kind} {cls.name!r} of {plugin} "
                f"was left out when the plugins loaded, because polynn itself now provides {cls.kind} "
                f"{own.name!r} ({public}), which wins over a plugin's spec of the same name; "
                f"accepted: {public}, or the name {own.name!r}")


def builtin(cls: type[Any]) -> type[Any]:
    """Class decorator for polynn's own specs."""
    return register_spec(cls, source="polynn")


def known(kind: str, name: str) -> bool:
    """Whether a spec class is registered for `name` (case-insensitive)."""
    return name.lower() in _BY_NAME[kind]


def lookup(kind: str, name: str) -> type[Any]:
    """The spec class registered for `name` (case-insensitive), or UnknownComponentError; without
    loading plugins (polynn.plugins.lookup loads them first when the name is unknown)."""
    table = _BY_NAME[kind]
    try:
        return table[name.lower()]
    except KeyError:
        raise UnknownComponentError(kind, name, {c.name for c in table.values()}) from None


def find(kind: str, name: str) -> type[Any] | None:
    """The spec class registered for `name` (case-insensitive) now, or None; loads no plugin."""
    return _BY_NAME.get(kind, {}).get(name.lower())


def snapshot() -> tuple:
    """The registry's contents, for restore() to put back (a plugin hook that failed halfway)."""
    return {kind: dict(table) for kind, table in _BY_NAME.items()}, dict(_SOURCE), dict(_YIELDED)


def restore(state: tuple) -> None:
    # Only what was added since the snapshot is removed, never a cleared table refilled: lookup()
    # reads the tables without a lock, and another thread must not find 'dense' missing meanwhile.
    tables, sources, yielded_ = state
    for kind, saved in tables.items():
        table = _BY_NAME[kind]
        for key in set(table) - set(saved):
            del table[key]
        table.update(saved)
    for record, saved in ((_SOURCE, sources), (_YIELDED, yielded_)):
        for cls in set(record) - set(saved):
            del record[cls]
        record.update(saved)


def forget_plugin_specs() -> None:
    """Drop every spec a plugin registered (polynn's own stay), so a rescan registers them afresh."""
    for table in _BY_NAME.values():
        for key in [k for k, cls in table.items() if _SOURCE.get(cls) != "polynn"]:
            del table[key]
    for cls in [c for c, source in _SOURCE.items() if source != "polynn"]:
        del _SOURCE[cls]
    _YIELDED.clear()


def names(kind: str) -> list[str]:
    """Canonical names of every registered component of a kind (see specs())."""
    return [c.name for c in specs(kind)]


def specs(kind: str) -> list[type[Any]]:
    """Every registered component class of a kind, in name order. The custom_* wrappers of user
    functions are left out: they are a mechanism, not a component, and need a function to exist."""
    return sorted({c for c in _BY_NAME[kind].values() if getattr(c, "enumerable", True)}, key=lambda c: c.name)


def builtin_specs(kind: str) -> list[type[Any]]:
    """specs(kind) limited to polynn's own components (not those plugins registered)."""
    return [c for c in specs(kind) if _SOURCE.get(c) == "polynn"]


def source_of(cls: type[Any]) -> str:
    return _SOURCE.get(cls, "?")


def serialize(component: Any) -> dict | None:
    """A JSON-able description naming only the registry entry: never a module path."""
    if component is None:
        return None
    check_usable(component)  # its name would load as polynn's own class
    return {"class_name": component.name, "config": component.get_config()}
