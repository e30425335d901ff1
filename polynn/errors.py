"""The one exception hierarchy every polynn error comes from."""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Iterable
from typing import Any

__all__ = [
    "PolynnError",
    "InvalidArgumentError",
    "ImmutableSpecError",
    "NotSupportedError",
    "UnknownComponentError",
    "ShapeMismatchError",
    "NotCompiledError",
    "UnknownBackendError",
    "BackendNotInstalledError",
    "MissingExtraError",
    "UnsupportedComponentError",
    "PluginError",
    "ModelFileError",
    "FileAccessError",
    "NonFiniteLossError",
    "DistributionError",
]


def bounded_repr(value: Any, limit: int = 200) -> str:
    """repr(value) cut to about `limit` characters, its length said; never raises (a Python int
    of more than 4300 digits has no repr, a hostile object's __repr__ may fail)."""
    try:
        text = repr(value)
    except Exception:  # ValueError for huge ints; anything from a user's __repr__
        bits = value.bit_length() if isinstance(value, int) else None
        return f"<int of {bits} bits>" if bits is not None else f"<{type(value).__name__} object>"
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text)} characters)"


class PolynnError(Exception):
    """Base class of every error polynn raises on purpose."""


class InvalidArgumentError(PolynnError, ValueError):
    """An argument has a value outside what is accepted."""

    def __init__(self, name: str, value: Any, accepted: str, *, owner: str | None = None) -> None:
        where = f"{owner}: " if owner else ""
        super().__init__(f"{where}invalid {name}={bounded_repr(value)}; accepted: {accepted}")
        self.name, self.value, self.accepted = name, value, accepted


class ImmutableSpecError(PolynnError, dataclasses.FrozenInstanceError):
    """A field of a spec object was assigned: specs are immutable (frozen dataclasses)."""


class NotSupportedError(PolynnError, AttributeError):
    """A Keras model attribute or method polynn's Sequential does not have; the message says what to use."""


class UnknownComponentError(PolynnError, ValueError):
    """A component was named that no registry entry answers to."""

    def __init__(self, kind: str, value: Any, known: Iterable[str]) -> None:
        known = sorted(set(known))
        close = difflib.get_close_matches(str(value).lower(), known, n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        plural = kind + ("es" if kind.endswith("s") else "s")
        super().__init__(
            f"unknown {kind} {value!r}.{hint} Known {plural}: {', '.join(known)}"
        )
        self.kind, self.value, self.close_matches = kind, value, close


class ShapeMismatchError(PolynnError, ValueError):
    """Data does not have the shape the model or the loss needs."""


class NotCompiledError(PolynnError, RuntimeError):
    """A model was used for training or evaluation before compile()."""


class UnknownBackendError(PolynnError, ValueError):
    """A backend name was given that no installed plugin registers."""

    def __init__(self, value: Any, known: Iterable[str]) -> None:
        known = sorted(known)
        close = difflib.get_close_matches(str(value), known, n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        super().__init__(
            f"unknown backend {value!r}.{hint} Available backends: {', '.join(known) or 'none'}"
        )
        self.value, self.close_matches = value, close


class BackendNotInstalledError(PolynnError, ImportError):
    """A known backend whose engine is not installed."""

    def __init__(self, backend: str, engine: str, install: str, cause: BaseException | None = None) -> None:
        detail = f" ({type(cause).__name__}: {cause})" if cause else ""
        super().__init__(
            f"backend {backend!r} needs the {engine!r} package, which is not installed{detail}. "
            f"Install it with: pip install '{install}'"
        )
        self.backend, self.engine, self.install = backend, engine, install


class MissingExtraError(PolynnError, ImportError):
    """An optional feature whose package is not installed; the message names the extra that installs it."""

    def __init__(self, feature: str, package: str, extra: str, cause: BaseException | None = None) -> None:
        detail = f" ({type(cause).__name__}: {cause})" if cause else ""
        super().__init__(
            f"{feature} needs the {package!r} package, which is not installed{detail}. "
            f"Install it with: pip install 'polynn[{extra}]'"
        )
        self.feature, self.package, self.extra = feature, package, extra


class UnsupportedComponentError(PolynnError, ValueError):
    """A model uses a component that the chosen backend has no implementation for."""

    def __init__(self, kind: str, name: str, backend: str, supported: Iterable[str] = ()) -> None:
        supported = sorted(supported)
        tail = f"; backends implementing it: {', '.join(supported)}" if supported else ""
        super().__init__(
            f"{kind} {name!r} has no implementation on backend {backend!r}{tail}"
        )
        self.kind, self.name, self.backend = kind, name, backend


class PluginError(PolynnError, RuntimeError):
    """A plugin failed to load or to register; the message names the plugin."""


class ModelFileError(PolynnError, ValueError):
    """A model file is malformed, truncated, or asks for something not allowed."""


class FileAccessError(ModelFileError, OSError):
    """A file or folder could not be opened, read or written; the message names it and the operating
    system's reason. Also an OSError (with its errno and filename), as the raw error was, so code
    catching OSError keeps working."""

    def __init__(self, message: str, cause: BaseException | None = None) -> None:
        super().__init__(message)
        if isinstance(cause, OSError):
            self.errno, self.strerror, self.filename = cause.errno, cause.strerror, cause.filename

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class NonFiniteLossError(PolynnError, FloatingPointError):
    """Training met a NaN or infinite loss under compile(nonfinite_loss="raise"); the model keeps its
    last finite step (the message says which)."""


class DistributionError(PolynnError, RuntimeError):
    """Data-parallel training failed across processes: a process died, raised or timed out, the
    processes disagree on the model or the data, or the launcher's environment is not one polynn
    can join. Every process of the job raises it."""
