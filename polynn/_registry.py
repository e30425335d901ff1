"""The registry of component specs: every name a config may use, and where it came from."""

from __future__ import annotations

from typing import Any

from .errors import PluginError, UnknownComponentError

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
_BY_NAME: dict[str, dict[str, type]] = {kind: {} for kind in KINDS}
# spec class -> where it was registered from (a plugin or distribution name)
_SOURCE: dict[type, str] = {}


def _keys(cls: type) -> list[str]:
    keys = [cls.name, cls.__name__, *getattr(cls, "aliases", ())]
    return list(dict.fromkeys(k.lower() for k in keys))


def register_spec(cls: type, *, source: str = "polynn") -> type:
    """Add a spec class under its name, its class name and its aliases, refusing clashes."""
    kind = cls.kind
    if kind not in _BY_NAME:
        raise PluginError(f"{source}: spec {cls.__name__} has unknown kind {kind!r}; accepted: {', '.join(KINDS)}")
    table = _BY_NAME[kind]
    for key in _keys(cls):
        holder = table.get(key)
        if holder is not None and holder is not cls:
            raise PluginError(
                f"{kind} {key!r} is registered twice: by {_SOURCE.get(holder, '?')} "
                f"({holder.__module__}.{holder.__qualname__}) and by {source} "
                f"({cls.__module__}.{cls.__qualname__})"
            )
    for key in _keys(cls):
        table[key] = cls
    _SOURCE[cls] = source
    return cls


def builtin(cls: type) -> type:
    """Class decorator for polynn's own specs."""
    return register_spec(cls, source="polynn")


def lookup(kind: str, name: str) -> type:
    """The spec class registered for `name` (case-insensitive), or UnknownComponentError."""
    table = _BY_NAME[kind]
    if name.lower() not in table:
        # a name may come from a component plugin not loaded yet
        from . import plugins

        plugins.load()
    try:
        return table[name.lower()]
    except KeyError:
        raise UnknownComponentError(kind, name, {c.name for c in table.values()}) from None


def forget_plugin_specs() -> None:
    """Drop every spec a plugin registered (polynn's own stay), so a rescan registers them afresh."""
    for table in _BY_NAME.values():
        for key in [k for k, cls in table.items() if _SOURCE.get(cls) != "polynn"]:
            del table[key]
    for cls in [c for c, source in _SOURCE.items() if source != "polynn"]:
        del _SOURCE[cls]


def names(kind: str) -> list[str]:
    """Canonical names of every registered component of a kind (see specs())."""
    return [c.name for c in specs(kind)]


def specs(kind: str) -> list[type]:
    """Every registered component class of a kind, in name order. The custom_* wrappers of user
    functions are left out: they are a mechanism, not a component, and need a function to exist."""
    return sorted({c for c in _BY_NAME[kind].values() if getattr(c, "enumerable", True)}, key=lambda c: c.name)


def builtin_specs(kind: str) -> list[type]:
    """specs(kind) limited to polynn's own components (not those plugins registered)."""
    return [c for c in specs(kind) if _SOURCE.get(c) == "polynn"]


def source_of(cls: type) -> str:
    return _SOURCE.get(cls, "?")


def serialize(component: Any) -> dict | None:
    """A JSON-able description naming only the registry entry: never a module path."""
    if component is None:
        return None
    return {"class_name": component.name, "config": component.get_config()}
